// ckptd as one replica of several over one PostgreSQL store (--store and --advertise):
// the store split into shards (PostgresDatabase), the shards this replica serves and
// where the others are (ShardSet), the calls it forwards to their owners (Forwarder),
// and the coordinator that takes, renews and hands over shard leases
// (ShardCoordinator). docs/deploy.md explains the settings; SCALE_OUT.md the design.
//
// Lifecycle: Open (the database and the router; nothing owned yet, calls park), Join
// once the gRPC server listens (so that peers never forward to a replica that cannot
// answer), Leave on SIGTERM (every shard handed over while calls are still forwarded),
// then destruction (whatever is still local retires at once).
#ifndef CKPT_SERVICE_SERVER_REPLICA_H_
#define CKPT_SERVICE_SERVER_REPLICA_H_

#include <functional>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "service/cluster/shard_coordinator.h"
#include "service/cluster/shard_set.h"
#include "service/engine/engine.h"
#include "service/rpc/forwarder.h"
#include "service/store/postgres_store.h"

namespace ckpt {

struct ReplicaOptions {
  std::string conninfo;   // --store
  std::string advertise;  // --advertise: HOST:PORT the other replicas forward to
  // Shards of a database initialised now (1..kMaxShards); an existing one keeps its own.
  int shards = 16;
  // Every shard lease's length (--store_lease); renewed every lease/10.
  absl::Duration lease = absl::Seconds(10);
  size_t read_connections = 8;
  size_t max_message_bytes = 16 << 20;
  // Each shard's engine; the replica sets the id ranges (id_first, id_stride) so that
  // lease tokens and worker ids stay unique across shards and replicas.
  EngineOptions engine;
};

// Thread-safe.
class Replica {
 public:
  // Opens (or initialises) the database. Errors as PostgresDatabase::Open's, or
  // INVALID_ARGUMENT for a bad --advertise.
  static absl::StatusOr<std::unique_ptr<Replica>> Open(const ReplicaOptions& options);
  // Retires every local shard at once (no hand-over; call Leave first for one).
  ~Replica();
  Replica(const Replica&) = delete;
  Replica& operator=(const Replica&) = delete;

  ShardSet* shards() { return shards_.get(); }
  Forwarder* forwarder() { return forwarder_.get(); }
  // "ADDRESS/INCARNATION": this process's id in the member table.
  const std::string& member_id() const { return member_id_; }

  // Joins the cluster: takes a fair share of the shards from now on. `on_health` hears
  // whether the lease table can be read (grpc.health.v1). UNAVAILABLE if the database
  // cannot be reached.
  absl::Status Join(std::function<void(bool)> on_health);
  // Hands every shard over to the other replicas and leaves the member table, waiting
  // until done or `deadline`. Returns whether everything was handed over.
  bool Leave(absl::Time deadline);
  // Stops the coordinator: every local shard retires now, its queued writes answered
  // UNAVAILABLE (not applied). Idempotent.
  void Stop();

 private:
  Replica(ReplicaOptions options, std::unique_ptr<PostgresDatabase> database);
  absl::StatusOr<std::unique_ptr<Engine>> OpenEngine(int shard, Store* store) const;

  const ReplicaOptions options_;
  const std::string member_id_;
  const std::unique_ptr<PostgresDatabase> database_;
  std::unique_ptr<ShardSet> shards_;
  std::unique_ptr<Forwarder> forwarder_;
  absl::Mutex mu_;
  std::unique_ptr<ShardCoordinator> coordinator_ ABSL_GUARDED_BY(mu_);
};

}  // namespace ckpt

#endif  // CKPT_SERVICE_SERVER_REPLICA_H_
