// A replica's part in the cluster: it reads the lease table (shard_leases.h) every
// round, renews its own shards' leases and its member row, tells the ShardSet who owns
// every other shard, and, following PlanShards, takes free shards (loading each into an
// engine over its fenced store) and hands surplus ones over (stop taking calls for it,
// answer those in flight, release the lease). A shard whose renewal finds it taken is
// dropped at once; one whose lease this replica could not renew in time is no longer
// served (ShardSet) even before that.
//
// Leave() (SIGTERM) hands every shard over before the member row goes, so that the
// others take them as they are released, not while they still answer calls.
//
// Two threads: the round loop (the only user of the lease table) and a worker that
// loads and retires engines, so that a slow load or a long drain never delays renewals.
#ifndef CKPT_SERVICE_CLUSTER_SHARD_COORDINATOR_H_
#define CKPT_SERVICE_CLUSTER_SHARD_COORDINATOR_H_

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "service/cluster/shard_plan.h"
#include "service/cluster/shard_set.h"
#include "service/engine/engine.h"
#include "service/store/shard_leases.h"

namespace ckpt {

struct ShardCoordinatorOptions {
  MemberClaim member;  // who this replica is; member.lease is every lease's length
  // How often the table is read and the leases renewed.
  absl::Duration interval = absl::Seconds(1);
  // How long calls in flight on a shard being handed over may take.
  absl::Duration retire_grace = absl::Seconds(10);
  // A member whose session stays closed this long is gone (died): its shards are taken
  // at once. Longer than a database failover's reconnect, which also closes sessions.
  absl::Duration gone_after = absl::Seconds(2);
  // Makes the engine of `shard` over `store` (which outlives it).
  std::function<absl::StatusOr<std::unique_ptr<Engine>>(int shard, Store* store)> open_engine;
  // Told whether the replica can serve or forward calls (it can read the lease table);
  // called on the round thread. May be empty.
  std::function<void(bool)> on_health;
};

// Thread-safe.
class ShardCoordinator {
 public:
  // Joins: reads the table once (UNAVAILABLE if the database cannot be reached), then
  // runs its rounds. `store` and `shards` must outlive it.
  static absl::StatusOr<std::unique_ptr<ShardCoordinator>> Start(ShardedStore* store,
                                                                 ShardSet* shards,
                                                                 ShardCoordinatorOptions options);
  // Stops the rounds and retires every local shard without handing it over (the others
  // take them when their leases run out); call Leave() first to hand them over.
  ~ShardCoordinator();
  ShardCoordinator(const ShardCoordinator&) = delete;
  ShardCoordinator& operator=(const ShardCoordinator&) = delete;

  // Hands every shard over and leaves the member table, waiting until done or
  // `deadline`. Returns whether everything was handed over. Takes nothing afterwards.
  bool Leave(absl::Time deadline);
  // Runs a round now (a peer said it does not own a shard it was thought to own).
  void Wake();

  // The shards this replica holds (loading, serving or being handed over), ascending.
  std::vector<int> Held() const;

 private:
  class Fence;
  enum class Phase { kLoading, kServing, kRetiring, kReleasing };
  struct HeldShard {
    int64_t epoch = 0;
    Phase phase = Phase::kLoading;
    std::shared_ptr<Fence> fence;
    SteadyTime valid_until;
  };
  struct Task {
    int shard;
    int64_t epoch;
    bool load;     // else retire
    bool handoff;  // retire: then release the lease
  };

  ShardCoordinator(ShardedStore* store, ShardSet* shards, ShardCoordinatorOptions options,
                   std::unique_ptr<ShardLeaseTable> leases);
  void Loop();
  void Round();
  void ReleaseHandedOver();
  void RenewHeld();
  // Routes every shard held elsewhere, and works out who is gone, who is live (into
  // `live`) and what is overdue.
  void Observe(const ClusterView& view, PlanInput* input, ClusterView* live);
  void Act(const ClusterView& live, const PlanInput& input);
  bool Take(const ShardLease& lease, bool owner_gone);
  void WorkerLoop();
  void Load(const Task& task);
  void Retire(const Task& task);
  void Post(Task task) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void SetHealth(bool healthy);

  ShardedStore* const store_;
  ShardSet* const shards_;
  const ShardCoordinatorOptions options_;
  const std::unique_ptr<ShardLeaseTable> leases_;  // the round thread's only

  // The round thread's own.
  absl::flat_hash_map<std::string, SteadyTime> disconnected_since_;
  absl::flat_hash_map<int, SteadyTime> free_since_;
  SteadyTime last_read_;
  int health_ = -1;  // unknown, 0, 1

  mutable absl::Mutex mu_;
  std::map<int, HeldShard> held_ ABSL_GUARDED_BY(mu_);
  std::vector<std::pair<int, int64_t>> handed_over_ ABSL_GUARDED_BY(mu_);  // to release
  std::deque<Task> tasks_ ABSL_GUARDED_BY(mu_);
  bool wake_ ABSL_GUARDED_BY(mu_) = false;
  bool leaving_ ABSL_GUARDED_BY(mu_) = false;
  bool left_ ABSL_GUARDED_BY(mu_) = false;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;

  std::thread loop_;
  std::thread worker_;
};

}  // namespace ckpt

#endif  // CKPT_SERVICE_CLUSTER_SHARD_COORDINATOR_H_
