// The shards this replica serves, each an Engine over its own store, and where every
// other shard's calls go: the router in front of the engines. The single-node ckptd is
// a ShardSet of one shard, served for ever; a replica's ShardCoordinator
// (shard_coordinator.h) tells it which shards it owns and who owns the rest.
//
// A call asks Route(shard) and gets one of: a ShardHold on the local engine (the engine
// stays open while any hold exists), the owner's address (service/rpc forwards the
// call), or UNAVAILABLE. While a shard has no known owner (being loaded, moving between
// replicas, its owner's lease running out) the call is parked, not refused, and goes on
// as soon as the shard has an owner again, or is answered UNAVAILABLE at its deadline.
// A local shard whose lease this replica could not renew in time stops being served
// (its calls park) even before the coordinator hears that it was taken: a frozen or
// cut-off replica never answers from a shard someone else may own.
#ifndef CKPT_SERVICE_CLUSTER_SHARD_SET_H_
#define CKPT_SERVICE_CLUSTER_SHARD_SET_H_

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "service/engine/engine.h"
#include "service/store/store.h"

namespace ckpt {

using SteadyTime = std::chrono::steady_clock::time_point;

class LocalShard;

// A local shard's engine in use. While any hold on it exists the engine stays open; a
// write keeps its hold until it is answered. Copyable (a copy is one more hold);
// thread-compatible.
class ShardHold {
 public:
  ShardHold() = default;
  ~ShardHold();
  ShardHold(ShardHold&& other) noexcept = default;
  ShardHold& operator=(ShardHold&& other) noexcept;
  ShardHold(const ShardHold& other);
  ShardHold& operator=(const ShardHold& other);

  explicit operator bool() const { return local_ != nullptr; }
  // REQUIRES: *this.
  Engine& engine() const;
  int shard() const;
  // True once the shard has begun to retire (ShardListener::OnRetiring is called after
  // this turns true): take on nothing new that would hold the engine.
  bool retiring() const;

 private:
  friend class ShardSet;
  explicit ShardHold(std::shared_ptr<LocalShard> local);
  void Release();
  std::shared_ptr<LocalShard> local_;
};

// Where a shard's calls go now.
struct ShardRoute {
  int shard = 0;
  ShardHold local;      // set: this replica serves the shard
  std::string owner;    // else, if not empty: the owner's gRPC address
  absl::Status status;  // else: why neither (UNAVAILABLE)
};

// Told when a local shard starts and stops being served; called without the set's
// lock, on the thread that changed it. OnRetiring comes before the engine closes, so
// that whatever holds the engine (watch streams) can let go.
class ShardListener {
 public:
  virtual ~ShardListener() = default;
  virtual void OnServing(int shard, Engine* engine) = 0;
  virtual void OnRetiring(int shard, Engine* engine) = 0;
};

struct ShardSetOptions {
  int shards = 1;
  // A parked call waits at most this long (less if its deadline is nearer).
  absl::Duration max_wait = absl::Seconds(30);
  // Parked calls beyond this many are refused UNAVAILABLE at once (memory stays bounded).
  size_t max_parked = 10000;
  // Called (without the lock) when a peer said it does not own a shard it was thought
  // to own: the coordinator reads the lease table again. May be empty.
  std::function<void()> on_stale;
  // Called (without the lock) when a shard routed to a remote owner stops being routed
  // there (taken here, by another owner, or its lease ran out): calls forwarded to the
  // former owner for it will not be answered by an owner any more. May be empty.
  std::function<void(int shard, const std::string& former_owner)> on_moved;
  // Threads that run parked calls once their route is known (a local read may wait on
  // the store: never on the thread that changed the route, e.g. the coordinator's).
  int executor_threads = 2;
};

// Thread-safe.
class ShardSet {
 public:
  explicit ShardSet(const ShardSetOptions& options);
  // Retires every local shard (at once: no grace) and answers parked calls UNAVAILABLE.
  ~ShardSet();
  ShardSet(const ShardSet&) = delete;
  ShardSet& operator=(const ShardSet&) = delete;

  int shards() const { return options_.shards; }
  // The shard of `job_id` (shard_map.h).
  int ShardOf(absl::string_view job_id) const;

  // Calls `then` with where `shard`'s calls go: at once (on this thread) when that is
  // known, else once it is (on one of the set's executor threads), or with UNAVAILABLE
  // at `deadline` (at most max_wait from now).
  void Route(int shard, absl::Time deadline, std::function<void(ShardRoute)> then);
  // Route for a call another replica forwarded here: the local engine (waiting while the
  // shard is being loaded here), or at once FAILED_PRECONDITION if this replica does not
  // own the shard (the sender's view is stale; it asks again).
  void RouteHere(int shard, absl::Time deadline, std::function<void(ShardRoute)> then);
  // Where `shard`'s calls go right now, without waiting: UNAVAILABLE while the shard has
  // no owner (with `here_only`, FAILED_PRECONDITION unless it is served here). For
  // calls that cannot wait (streams).
  ShardRoute RouteNow(int shard, bool here_only);
  // Routes every shard; `then` gets them all, in shard order.
  void RouteAll(absl::Time deadline, std::function<void(std::vector<ShardRoute>)> then);
  // A peer at `owner` answered that it does not own `shard`: forget that route (if it is
  // still the one known; its calls park) and, with `wake`, have the coordinator look
  // again now. Without it (the peer could not be reached: asking the table again at
  // once would only name it again), the next regular round sets the route.
  void NoteStale(int shard, absl::string_view owner, bool wake = true);

  // ---- The coordinator's view of ownership ----

  // This replica took `shard` and is loading it: its calls park here.
  void SetLoading(int shard);
  // Serves `shard` with `engine` over `store` (both owned from now on) until
  // `valid_until` (extended by Extend).
  void Serve(int shard, std::unique_ptr<Store> store, std::unique_ptr<Engine> engine,
             SteadyTime valid_until);
  // The lease of local `shard` was renewed: serve it until `valid_until`.
  void Extend(int shard, SteadyTime valid_until);
  // Another replica owns `shard` at `epoch`, serving on `address`. Ignored for a local
  // shard and for an epoch older than one already known.
  void SetRemote(int shard, const std::string& address, int64_t epoch);
  // Nobody is known to own `shard`: its calls park.
  void SetUnowned(int shard);
  // Stops serving local `shard` (no-op if it is not local): its calls park from now on;
  // listeners hear OnRetiring; calls in flight on its engine are answered (for at most
  // `grace`; then the writes still queued are answered UNAVAILABLE, not applied, and
  // only the group being written is waited for); then the engine and its store close.
  void Retire(int shard, absl::Duration grace);

  // Shards served here (not loading), ascending.
  std::vector<int> LocalShards() const;
  // Calls `visit` for each local engine while holding it, e.g. for metrics.
  void ForEachLocal(const std::function<void(int shard, const Engine& engine)>& visit) const;

  void AddListener(ShardListener* listener);
  void RemoveListener(ShardListener* listener);

 private:
  enum class State { kUnowned, kLoading, kLocal, kRemote };
  struct Parked {
    absl::Time deadline;
    bool here_only = false;  // from RouteHere: not owned here means refused
    std::function<void(ShardRoute)> then;
  };
  struct Slot {
    State state = State::kUnowned;
    std::shared_ptr<LocalShard> local;  // kLocal
    SteadyTime valid_until;             // kLocal
    std::string owner;                  // kRemote
    int64_t epoch = 0;                  // the newest epoch heard of
    std::vector<Parked> parked;
  };
  // Calls to resolve outside the lock.
  using Resolved = std::vector<std::pair<std::function<void(ShardRoute)>, ShardRoute>>;

  void RouteImpl(int shard, absl::Time deadline, bool here_only,
                 std::function<void(ShardRoute)> then);
  // The route of `slot` now, or nullopt-like (status kParked) when calls must wait.
  bool TryResolve(int shard, Slot& slot, bool here_only, ShardRoute* route)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Moves the parked calls of `shard` that can now be resolved into `out`.
  void Unpark(int shard, Resolved* out) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Moves the parked calls whose deadline is past into `out`, answered UNAVAILABLE.
  void TakeExpired(absl::Time now, Resolved* out) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Hands resolved calls to the executor threads.
  void Run(Resolved& resolved);
  // Tells on_moved, unless `former_owner` is empty.
  void Moved(int shard, const std::string& former_owner);
  void TimerLoop();
  void ExecutorLoop();

  const ShardSetOptions options_;
  mutable absl::Mutex mu_;
  std::vector<Slot> slots_ ABSL_GUARDED_BY(mu_);
  size_t parked_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t wake_ ABSL_GUARDED_BY(mu_) = 0;  // bumped when a nearer deadline is parked

  absl::Mutex listeners_mu_;
  std::vector<ShardListener*> listeners_ ABSL_GUARDED_BY(listeners_mu_);

  absl::Mutex run_mu_;
  std::deque<std::pair<std::function<void(ShardRoute)>, ShardRoute>> runnable_
      ABSL_GUARDED_BY(run_mu_);
  bool run_stop_ ABSL_GUARDED_BY(run_mu_) = false;

  std::thread timer_;
  std::vector<std::thread> executors_;
};

}  // namespace ckpt

#endif  // CKPT_SERVICE_CLUSTER_SHARD_SET_H_
