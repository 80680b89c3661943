// Small clients of ckpt.v1.Checkpoint over the wire, for tests that talk to a ckptd
// child process through raw stubs.
#ifndef CKPT_TESTS_DURABILITY_WIRE_H_
#define CKPT_TESTS_DURABILITY_WIRE_H_

#include <grpcpp/grpcpp.h>

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "ckpt/v1/checkpoint.grpc.pb.h"
#include "service/common/grpc_status.h"

namespace ckpt {
namespace testutil {

// Calls a unary RPC with a deadline (a bound for a hung server, 60 s) and returns the
// answer or the status gRPC gave.
template <typename Request, typename Response>
absl::StatusOr<Response> WireCall(v1::Checkpoint::Stub& stub,
                                  grpc::Status (v1::Checkpoint::Stub::*method)(grpc::ClientContext*,
                                                                               const Request&,
                                                                               Response*),
                                  const Request& request) {
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(60)));
  Response response;
  const grpc::Status status = (stub.*method)(&context, request, &response);
  if (!status.ok()) return FromGrpcStatus(status);
  return response;
}

// RegisterWorker; returns the worker id.
absl::StatusOr<std::string> RegisterWorker(v1::Checkpoint::Stub& stub, const std::string& job_id);

absl::StatusOr<v1::Job> GetJob(v1::Checkpoint::Stub& stub, const std::string& job_id);

// GetItem of an index in the job's first step.
absl::StatusOr<v1::Item> GetItem(v1::Checkpoint::Stub& stub, const std::string& job_id,
                                 uint64_t index);

// Every item of the job's first step in `state` (UNSPECIFIED: all), paging ListItems.
absl::StatusOr<std::vector<v1::Item>> ListAll(v1::Checkpoint::Stub& stub, const std::string& job_id,
                                              v1::ItemState state, bool keys_only);

}  // namespace testutil
}  // namespace ckpt

#endif  // CKPT_TESTS_DURABILITY_WIRE_H_
