// ckpt.v1.Checkpoint over gRPC's callback API: thin handlers that authenticate the call,
// parse the request, authorize it, validate it, find where the job's shard is served
// (ShardSet), and either call the local engine, converting its status once, or forward
// the call to the replica that owns the shard (Forwarder) and relay its answer. A
// refused call reaches neither validation nor an engine, so it changes nothing. No RPC
// thread waits for a disk sync: a write's reactor is finished by the engine's writer
// after the group commit, or by the forwarded call's completion.
//
// A single-node ckptd is a ShardSet of one local shard and no forwarder. In a cluster,
// ListJobs, FindOutput and DeleteJobs are answered from every shard (local engines,
// plus one call per owning replica); WatchJob of a remote shard is relayed as a stream and ends
// UNAVAILABLE when the shard moves (the SDKs watch again). BackupStore copies a
// single-node ckptd's store; a replica refuses it FAILED_PRECONDITION (PostgreSQL's own
// tools back up a cluster's store). docs/api.md, "Replicas".
//
// Every method is registered raw (ByteBuffer in, ByteBuffer out) and parses its request
// itself on a per-call arena, so a request that does not parse is answered
// INVALID_ARGUMENT saying why (wire_message.h), not gRPC's bare UNIMPLEMENTED.
#ifndef CKPT_SERVICE_RPC_CHECKPOINT_SERVICE_H_
#define CKPT_SERVICE_RPC_CHECKPOINT_SERVICE_H_

#include <grpcpp/grpcpp.h>

#include <functional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "ckpt/v1/checkpoint.grpc.pb.h"
#include "service/auth/authorizer.h"
#include "service/cluster/shard_set.h"
#include "service/engine/engine.h"
#include "service/rpc/forwarder.h"
#include "service/rpc/validate.h"
#include "service/rpc/watch_hubs.h"

namespace ckpt {

// Thread-safe.
class CheckpointService final : public v1::Checkpoint::CallbackService {
 public:
  // `shards`, and `forwarder` and `authorizer` if not null, must outlive the service.
  // Without a forwarder every shard must be local (a single-node ckptd). Without an
  // authorizer every call is allowed (ckptd without --auth_file).
  CheckpointService(ShardSet* shards, Forwarder* forwarder, const Limits& limits,
                    const auth::Authorizer* authorizer = nullptr);
  ~CheckpointService() override;

  // From now on every new call is answered UNAVAILABLE ("ckptd is shutting down"), and
  // WatchJob streams end, so a graceful shutdown waits only for calls in flight.
  void BeginShutdown();
  // Blocks until no unary call is in flight (each was answered) or `deadline` passes.
  // Returns true if none is in flight. WatchJob streams: AwaitNoWatchers.
  bool AwaitIdle(absl::Time deadline);
  // Blocks until every local WatchJob stream has ended, or `deadline`.
  bool AwaitNoWatchers(absl::Time deadline);

  // The hub behind WatchJob of shard 0, shared with other front ends (the HTTP event
  // stream). REQUIRES: shard 0 is local (a single-node ckptd).
  WatchHub* watch_hub();

 private:
  template <typename Request, typename Response>
  using WriteMethod = void (Engine::*)(const Request&, Response*, Engine::Done);
  template <typename Request, typename Response>
  using ReadMethod = absl::Status (Engine::*)(const Request&, Response*) const;
  // A read across jobs (ListJobs, FindOutput) that sees only jobs under a job-id prefix.
  template <typename Request, typename Response>
  using CrossJobReadMethod = absl::Status (Engine::*)(const Request&, Response*,
                                                      absl::string_view) const;
  // A write across jobs (DeleteJobs) that reaches only jobs under a job-id prefix.
  template <typename Request, typename Response>
  using CrossJobWriteMethod = void (Engine::*)(const Request&, Response*, absl::string_view,
                                               Engine::Done);
  template <typename Request, typename Response>
  struct Call;

  // Register method `name` (also its name in the role table, service/auth/roles.h) as
  // raw: a write answered by the engine's writer after its commit, a read answered on
  // the thread that routed it, a read across jobs answered from every shard.
  template <typename Request, typename Response>
  void ServeWrite(absl::string_view name, WriteMethod<Request, Response> method);
  template <typename Request, typename Response>
  void ServeRead(absl::string_view name, ReadMethod<Request, Response> method);
  // A confined principal sees only the jobs under its prefix.
  template <typename Request, typename Response>
  void ServeReadAcrossJobs(absl::string_view name, CrossJobReadMethod<Request, Response> method);
  // The same for a write: each shard's engine answers through its Done.
  template <typename Request, typename Response>
  void ServeWriteAcrossJobs(absl::string_view name, CrossJobWriteMethod<Request, Response> method);
  void ServeWatch();
  // BackupStore copies a single-node ckptd's whole store on this node (never forwarded);
  // a replica refuses it FAILED_PRECONDITION: its store is PostgreSQL's to back up.
  void ServeBackup();
  absl::Status BackUpHere(const v1::BackupStoreRequest& request, v1::BackupStoreResponse* response);

  // Authenticate, parse, authorize, validate; on failure answers and returns null.
  // Counts the call in flight until it is answered.
  template <typename Request, typename Response>
  Call<Request, Response>* Accept(absl::string_view name, grpc::CallbackServerContext* context,
                                  const grpc::ByteBuffer* request, grpc::ByteBuffer* response,
                                  grpc::ServerUnaryReactor* reactor);
  // Sends `call` where its job's shard is served: run_local, or to the owner.
  template <typename Request, typename Response>
  void Dispatch(Call<Request, Response>* call);
  template <typename Request, typename Response>
  void OnRoute(Call<Request, Response>* call, ShardRoute route);
  template <typename Request, typename Response>
  void Forward(Call<Request, Response>* call, ShardRoute route);
  // Answers a route with neither a local engine nor an owner to forward to.
  template <typename Request, typename Response>
  void Refuse(Call<Request, Response>* call, const ShardRoute& route);
  // Answers the call and frees it.
  template <typename Request, typename Response>
  void Finish(Call<Request, Response>* call, absl::Status status);
  // A call spanning jobs: every shard answers (local engines, one sub-call per owner).
  template <typename Request, typename Response>
  void FanOut(Call<Request, Response>* call);
  template <typename Request, typename Response>
  void Gather(Call<Request, Response>* call, std::vector<ShardRoute> routes);

  // Counts a call in flight; false (counting nothing) once shutting down.
  bool Enter();
  void Leave();

  ShardSet* const shards_;
  Forwarder* const forwarder_;
  const Limits limits_;
  const auth::Authorizer* const authorizer_;
  WatchHubs hubs_;
  absl::Mutex mu_;
  int in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  bool shutting_down_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace ckpt

#endif  // CKPT_SERVICE_RPC_CHECKPOINT_SERVICE_H_
