// absl::Time/Duration <-> google.protobuf.Timestamp/Duration.
#ifndef CKPT_SERVICE_COMMON_PROTO_TIME_H_
#define CKPT_SERVICE_COMMON_PROTO_TIME_H_

#include "absl/time/time.h"
#include "google/protobuf/duration.pb.h"
#include "google/protobuf/timestamp.pb.h"

namespace ckpt {

google::protobuf::Timestamp ToProtoTime(absl::Time t);
absl::Time FromProtoTime(const google::protobuf::Timestamp& t);
google::protobuf::Duration ToProtoDuration(absl::Duration d);
absl::Duration FromProtoDuration(const google::protobuf::Duration& d);

}  // namespace ckpt

#endif  // CKPT_SERVICE_COMMON_PROTO_TIME_H_
