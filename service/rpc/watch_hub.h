// Job watches, all served by one thread that waits on the engine's publish counter: an
// idle watcher costs nothing per write, a busy one gets at most one snapshot per
// min_interval (default and floor 100 ms). Two kinds of watcher share it: WatchJob's
// gRPC streams, and subscriptions that another front end drains on its own thread (the
// HTTP gateway's server-sent events).
#ifndef CKPT_SERVICE_RPC_WATCH_HUB_H_
#define CKPT_SERVICE_RPC_WATCH_HUB_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "ckpt/v1/checkpoint.pb.h"
#include "service/engine/engine.h"

namespace ckpt {

// Thread-safe.
class WatchHub {
 public:
  class Subscription;

  // `engine` must outlive the hub.
  explicit WatchHub(const Engine* engine);
  // Ends every open watch (UNAVAILABLE) and stops the thread. Subscriptions must be
  // destroyed before the hub.
  ~WatchHub();

  // Starts a stream for a validated request: the job's snapshot at once, then one on
  // each change; ends after the snapshot that shows the job finished or stopped, or
  // NOT_FOUND once the job is deleted.
  // Writes serialized v1::WatchJobResponse messages (the method is served raw).
  grpc::ServerWriteReactor<grpc::ByteBuffer>* Watch(const v1::WatchJobRequest& request);

  // The same snapshots for a consumer that is not a gRPC stream, taken with
  // Subscription::Next. The request must be validated.
  std::unique_ptr<Subscription> Subscribe(const v1::WatchJobRequest& request);

  // Ends every open watch with UNAVAILABLE (the server is shutting down); later ones
  // end at once.
  void Shutdown();
  // Blocks until every watch has ended (gRPC streams: their last message sent), or
  // until `deadline`. Returns true if none is left.
  bool AwaitNoWatchers(absl::Time deadline);
  // Ends every open watch with `why` (later ones end at once) and stops the thread:
  // from then on the hub no longer reads the engine, which may close. The hub itself
  // may be destroyed once no watcher is left (AwaitNoWatchers). Idempotent.
  void Stop(const absl::Status& why);

 private:
  class Watcher;
  class Stream;
  class Feed;

  void Add(Watcher* watcher);
  void Remove(Watcher* watcher);
  void Loop();

  const Engine* const engine_;
  absl::Mutex mu_;
  absl::flat_hash_set<Watcher*> watchers_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status why_ ABSL_GUARDED_BY(mu_);  // why watches end, once stopping_
  absl::Mutex join_mu_;
  std::thread thread_ ABSL_GUARDED_BY(join_mu_);
};

// One subscription's snapshots. Only the newest snapshot not yet taken is kept, so a
// slow consumer skips snapshots and never makes anything queue. Destroying it ends the
// subscription. Thread-safe; Next is meant for one consumer thread.
class WatchHub::Subscription {
 public:
  enum class Kind {
    kJob,      // `job` is the job as of a change
    kEnd,      // the watch is over; `status` says why (OK after the final snapshot)
    kTimeout,  // nothing new by the deadline
  };
  struct Event {
    Kind kind = Kind::kTimeout;
    v1::Job job;
    // With kJob: the job's latest completions as of the same snapshot (GetJob's).
    std::vector<v1::RecentCompletion> recent_completions;
    absl::Status status;
  };

  ~Subscription();
  Subscription(const Subscription&) = delete;
  Subscription& operator=(const Subscription&) = delete;

  // Blocks until a snapshot not yet taken, the end of the watch, or `deadline`. The
  // end comes after every snapshot sent before it; after kEnd, Next returns kEnd again.
  Event Next(absl::Time deadline);

 private:
  friend class WatchHub;
  Subscription(WatchHub* hub, std::unique_ptr<Feed> feed);

  WatchHub* const hub_;
  std::unique_ptr<Feed> feed_;
};

}  // namespace ckpt

#endif  // CKPT_SERVICE_RPC_WATCH_HUB_H_
