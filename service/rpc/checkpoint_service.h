// ckpt.v1.Checkpoint over gRPC's callback API: thin handlers that authenticate the call,
// parse the request, authorize it, validate it, call the engine and convert its status
// once. A refused call reaches neither validation nor the engine, so it changes nothing.
// No RPC thread waits for a disk sync: a write's reactor is finished by the engine's
// writer after the group commit.
//
// Every method is registered raw (ByteBuffer in, ByteBuffer out) and parses its request
// itself on a per-call arena, so a request that does not parse is answered
// INVALID_ARGUMENT saying why (wire_message.h), not gRPC's bare UNIMPLEMENTED.
#ifndef CKPT_SERVICE_RPC_CHECKPOINT_SERVICE_H_
#define CKPT_SERVICE_RPC_CHECKPOINT_SERVICE_H_

#include <grpcpp/grpcpp.h>

#include <functional>

#include "absl/base/thread_annotations.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "ckpt/v1/checkpoint.grpc.pb.h"
#include "service/auth/authorizer.h"
#include "service/engine/engine.h"
#include "service/rpc/validate.h"
#include "service/rpc/watch_hub.h"

namespace ckpt {

// Thread-safe.
class CheckpointService final : public v1::Checkpoint::CallbackService {
 public:
  // `engine`, and `authorizer` if not null, must outlive the service. Without an
  // authorizer every call is allowed (ckptd without --auth_file).
  CheckpointService(Engine* engine, const Limits& limits,
                    const auth::Authorizer* authorizer = nullptr);

  // From now on every new call is answered UNAVAILABLE ("ckptd is shutting down"), and
  // WatchJob streams end, so a graceful shutdown waits only for calls in flight.
  void BeginShutdown();
  // Blocks until no unary call is in flight (each was answered) or `deadline` passes.
  // Returns true if none is in flight. WatchJob streams: watch_hub()->AwaitNoWatchers.
  bool AwaitIdle(absl::Time deadline);

  // The hub behind WatchJob, shared with other front ends (the HTTP event stream).
  WatchHub* watch_hub() { return &watch_hub_; }

 private:
  template <typename Request, typename Response>
  using WriteMethod = void (Engine::*)(const Request&, Response*, Engine::Done);
  template <typename Request, typename Response>
  using ReadMethod = absl::Status (Engine::*)(const Request&, Response*) const;
  // A read across jobs (ListJobs, FindOutput) that sees only jobs under a job-id prefix.
  template <typename Request, typename Response>
  using CrossJobReadMethod = absl::Status (Engine::*)(const Request&, Response*,
                                                      absl::string_view) const;
  // What a read does once its call is admitted, given the principal's job-id prefix.
  template <typename Request, typename Response>
  using ReadFn = std::function<absl::Status(const Request&, Response*, absl::string_view)>;

  // Registers method `name` (also its name in the role table, service/auth/roles.h) as
  // raw, served by Write (or Read) below.
  template <typename Request, typename Response>
  void ServeWrite(absl::string_view name, WriteMethod<Request, Response> method);
  template <typename Request, typename Response>
  void ServeRead(absl::string_view name, ReadMethod<Request, Response> method);
  // A confined principal sees only the jobs under its prefix.
  template <typename Request, typename Response>
  void ServeReadAcrossJobs(absl::string_view name, CrossJobReadMethod<Request, Response> method);
  template <typename Request, typename Response>
  void ServeReadFn(absl::string_view name, ReadFn<Request, Response> read);
  // Authenticate, parse, authorize, validate, then the engine's write, answered by the
  // writer after its commit.
  template <typename Request, typename Response>
  grpc::ServerUnaryReactor* Write(absl::string_view name, WriteMethod<Request, Response> method,
                                  grpc::CallbackServerContext* context,
                                  const grpc::ByteBuffer* request, grpc::ByteBuffer* response);
  // The same for a read, answered on the calling thread.
  template <typename Request, typename Response>
  grpc::ServerUnaryReactor* Read(absl::string_view name, const ReadFn<Request, Response>& read,
                                 grpc::CallbackServerContext* context,
                                 const grpc::ByteBuffer* request, grpc::ByteBuffer* response);
  void ServeWatch();

  // Counts a call in flight; false (counting nothing) once shutting down.
  bool Enter();
  void Leave();

  Engine* const engine_;
  const Limits limits_;
  const auth::Authorizer* const authorizer_;
  WatchHub watch_hub_;
  absl::Mutex mu_;
  int in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  bool shutting_down_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace ckpt

#endif  // CKPT_SERVICE_RPC_CHECKPOINT_SERVICE_H_
