// ckpt.v1.Checkpoint over gRPC's callback API: thin handlers that parse and validate the
// request, call the engine and convert its status once. No RPC thread waits for a disk
// sync: a write's reactor is finished by the engine's writer after the group commit.
//
// Every method is registered raw (ByteBuffer in, ByteBuffer out) and parses its request
// itself on a per-call arena, so a request that does not parse is answered
// INVALID_ARGUMENT saying why (wire_message.h), not gRPC's bare UNIMPLEMENTED.
#ifndef CKPT_SERVICE_RPC_CHECKPOINT_SERVICE_H_
#define CKPT_SERVICE_RPC_CHECKPOINT_SERVICE_H_

#include <grpcpp/grpcpp.h>

#include "absl/base/thread_annotations.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "ckpt/v1/checkpoint.grpc.pb.h"
#include "service/engine/engine.h"
#include "service/rpc/validate.h"
#include "service/rpc/watch_hub.h"

namespace ckpt {

// Thread-safe.
class CheckpointService final : public v1::Checkpoint::CallbackService {
 public:
  // `engine` must outlive the service.
  CheckpointService(Engine* engine, const Limits& limits);

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

  // Registers method `name` as raw, served by Write (or Read) below.
  template <typename Request, typename Response>
  void ServeWrite(absl::string_view name, WriteMethod<Request, Response> method);
  template <typename Request, typename Response>
  void ServeRead(absl::string_view name, ReadMethod<Request, Response> method);
  // Parse, validate, then the engine's write, answered by the writer after its commit.
  template <typename Request, typename Response>
  grpc::ServerUnaryReactor* Write(WriteMethod<Request, Response> method,
                                  grpc::CallbackServerContext* context,
                                  const grpc::ByteBuffer* request, grpc::ByteBuffer* response);
  // The same for a read, answered on the calling thread.
  template <typename Request, typename Response>
  grpc::ServerUnaryReactor* Read(ReadMethod<Request, Response> method,
                                 grpc::CallbackServerContext* context,
                                 const grpc::ByteBuffer* request, grpc::ByteBuffer* response);
  void ServeWatch();

  // Counts a call in flight; false (counting nothing) once shutting down.
  bool Enter();
  void Leave();

  Engine* const engine_;
  const Limits limits_;
  WatchHub watch_hub_;
  absl::Mutex mu_;
  int in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  bool shutting_down_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace ckpt

#endif  // CKPT_SERVICE_RPC_CHECKPOINT_SERVICE_H_
