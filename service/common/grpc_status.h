// Conversions between absl::Status and grpc::Status: the one mapping at the RPC edge.
#ifndef CKPT_SERVICE_COMMON_GRPC_STATUS_H_
#define CKPT_SERVICE_COMMON_GRPC_STATUS_H_

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace ckpt {

// Trailing metadata of a RESOURCE_EXHAUSTED that may be retried as it is (ckptd's write
// queue was full; the write was not applied): how long to wait first, in milliseconds
// as decimal text. Both SDKs honour it.
inline constexpr char kRetryAfterMetadataKey[] = "ckpt-retry-after-ms";

// Same code, same message. The canonical codes of absl and gRPC share numbers.
grpc::Status ToGrpcStatus(const absl::Status& status);
absl::Status FromGrpcStatus(const grpc::Status& status);

}  // namespace ckpt

#endif  // CKPT_SERVICE_COMMON_GRPC_STATUS_H_
