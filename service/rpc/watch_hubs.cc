#include "service/rpc/watch_hubs.h"

#include <algorithm>
#include <utility>

namespace ckpt {

WatchHubs::~WatchHubs() {
  absl::MutexLock lock(&mu_);
  hubs_.clear();
  stopped_.clear();
}

WatchHub* WatchHubs::For(const ShardHold& hold) {
  absl::MutexLock lock(&mu_);
  Bury();
  // Checked under mu_: OnRetiring takes mu_ after the shard starts retiring, so a hub
  // made here is either seen and stopped by it, or never made.
  if (hold.retiring()) return nullptr;
  Entry& entry = hubs_[hold.shard()];
  if (entry.hub != nullptr && entry.engine == &hold.engine()) return entry.hub.get();
  if (entry.hub != nullptr) {  // a hub of an engine long gone (missed OnRetiring)
    entry.hub->Stop(absl::UnavailableError("the job's shard moved; watch again"));
    stopped_.push_back(std::move(entry.hub));
  }
  entry.engine = &hold.engine();
  entry.hub = std::make_unique<WatchHub>(entry.engine);
  if (shut_down_) entry.hub->Shutdown();
  return entry.hub.get();
}

void WatchHubs::Shutdown() {
  absl::MutexLock lock(&mu_);
  shut_down_ = true;
  for (auto& [shard, entry] : hubs_) entry.hub->Shutdown();
}

bool WatchHubs::AwaitNoWatchers(absl::Time deadline) {
  std::vector<WatchHub*> hubs;
  {
    absl::MutexLock lock(&mu_);
    for (auto& [shard, entry] : hubs_) hubs.push_back(entry.hub.get());
    for (auto& hub : stopped_) hubs.push_back(hub.get());
  }
  // Hubs are destroyed only by ~WatchHubs and Bury (of hubs with no watcher left), so
  // these stay valid: this runs during shutdown, after no new watch can start.
  bool none = true;
  for (WatchHub* hub : hubs) none = hub->AwaitNoWatchers(deadline) && none;
  return none;
}

void WatchHubs::OnRetiring(int shard, Engine* engine) {
  std::unique_ptr<WatchHub> hub;
  {
    absl::MutexLock lock(&mu_);
    auto it = hubs_.find(shard);
    if (it == hubs_.end() || it->second.engine != engine) return;
    hub = std::move(it->second.hub);
    hubs_.erase(it);
  }
  // Outside mu_: Stop joins the hub's thread.
  hub->Stop(absl::UnavailableError(
      "this job's shard moved to another ckptd replica (or this one is shutting down); "
      "watch again: the call finds the new owner"));
  absl::MutexLock lock(&mu_);
  stopped_.push_back(std::move(hub));
  Bury();
}

void WatchHubs::Bury() {
  stopped_.erase(std::remove_if(stopped_.begin(), stopped_.end(),
                                [](const std::unique_ptr<WatchHub>& hub) {
                                  return hub->AwaitNoWatchers(absl::InfinitePast());
                                }),
                 stopped_.end());
}

}  // namespace ckpt
