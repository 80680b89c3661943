// One WatchHub per local shard, made when the first watch of one of its jobs arrives
// and stopped when the shard retires (its watches end UNAVAILABLE: the client opens
// them again and is routed to the shard's new owner). A stopped hub is kept until its
// last stream is done, since gRPC may still be finishing one.
#ifndef CKPT_SERVICE_RPC_WATCH_HUBS_H_
#define CKPT_SERVICE_RPC_WATCH_HUBS_H_

#include <memory>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "service/cluster/shard_set.h"
#include "service/rpc/watch_hub.h"

namespace ckpt {

// Thread-safe.
class WatchHubs : public ShardListener {
 public:
  WatchHubs() = default;
  // Stops every hub. REQUIRES: no stream is open (the gRPC server has stopped).
  ~WatchHubs() override;

  // The hub of the held shard's engine, made on first use; null once the shard is
  // retiring. The hub stays valid while `hold` does.
  WatchHub* For(const ShardHold& hold);
  // Ends every watch (UNAVAILABLE, shutting down); later ones end at once.
  void Shutdown();
  // Blocks until every watch of every hub has ended, or `deadline`.
  bool AwaitNoWatchers(absl::Time deadline);

  void OnServing(int shard, Engine* engine) override {}
  void OnRetiring(int shard, Engine* engine) override;

 private:
  struct Entry {
    const Engine* engine = nullptr;
    std::unique_ptr<WatchHub> hub;
  };
  // Destroys stopped hubs whose streams are all done.
  void Bury() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  absl::Mutex mu_;
  absl::flat_hash_map<int, Entry> hubs_ ABSL_GUARDED_BY(mu_);
  std::vector<std::unique_ptr<WatchHub>> stopped_ ABSL_GUARDED_BY(mu_);
  bool shut_down_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace ckpt

#endif  // CKPT_SERVICE_RPC_WATCH_HUBS_H_
