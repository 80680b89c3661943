#include "service/cluster/shard_coordinator.h"

#include <algorithm>
#include <atomic>
#include <chrono>

#include "absl/strings/str_cat.h"
#include "service/common/log.h"
#include "service/common/status_macros.h"

namespace ckpt {
namespace {

SteadyTime SteadyNow() { return std::chrono::steady_clock::now(); }

std::chrono::nanoseconds Chrono(absl::Duration d) { return absl::ToChronoNanoseconds(d); }

}  // namespace

// A shard's fence: the epoch this replica took it at. A write the database refused
// (another replica took the shard) deposes it: later writes are refused without
// asking, and the next round drops the shard.
class ShardCoordinator::Fence : public ShardFence {
 public:
  Fence(ShardCoordinator* coordinator, int shard, int64_t epoch)
      : coordinator_(coordinator), shard_(shard), epoch_(epoch) {}

  int64_t epoch() const override { return epoch_; }
  absl::Status Owned() const override {
    if (!deposed_.load()) return absl::OkStatus();
    return absl::UnavailableError(
        absl::StrCat("this ckptd no longer owns shard ", shard_,
                     " (another replica took it over at a "
                     "later epoch); this write was not applied; retry: it goes to the new owner"));
  }
  void Deposed() override {
    if (!deposed_.exchange(true)) coordinator_->Wake();
  }
  void Unreachable() override {}
  void SetListener(std::function<void(bool)>) override {}

 private:
  ShardCoordinator* const coordinator_;
  const int shard_;
  const int64_t epoch_;
  std::atomic<bool> deposed_{false};
};

absl::StatusOr<std::unique_ptr<ShardCoordinator>> ShardCoordinator::Start(
    ShardedStore* store, ShardSet* shards, ShardCoordinatorOptions options) {
  std::unique_ptr<ShardLeaseTable> leases = store->NewLeaseTable(options.member);
  CKPT_RETURN_IF_ERROR(leases->Read().status());
  std::unique_ptr<ShardCoordinator> coordinator(
      new ShardCoordinator(store, shards, std::move(options), std::move(leases)));
  coordinator->worker_ = std::thread([c = coordinator.get()] { c->WorkerLoop(); });
  coordinator->loop_ = std::thread([c = coordinator.get()] { c->Loop(); });
  return coordinator;
}

ShardCoordinator::ShardCoordinator(ShardedStore* store, ShardSet* shards,
                                   ShardCoordinatorOptions options,
                                   std::unique_ptr<ShardLeaseTable> leases)
    : store_(store), shards_(shards), options_(std::move(options)), leases_(std::move(leases)) {
  last_read_ = SteadyNow();
}

ShardCoordinator::~ShardCoordinator() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  loop_.join();
  worker_.join();
  std::vector<int> held = Held();
  for (int shard : held) shards_->Retire(shard, absl::ZeroDuration());
}

std::vector<int> ShardCoordinator::Held() const {
  absl::MutexLock lock(&mu_);
  std::vector<int> out;
  for (const auto& [shard, held] : held_) out.push_back(shard);
  return out;
}

void ShardCoordinator::Wake() {
  absl::MutexLock lock(&mu_);
  wake_ = true;
}

bool ShardCoordinator::Leave(absl::Time deadline) {
  absl::MutexLock lock(&mu_);
  leaving_ = true;
  wake_ = true;
  auto left = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return left_ || stop_; };
  return mu_.AwaitWithDeadline(absl::Condition(&left), deadline) && left_;
}

// ---------------------------------------------------------------- rounds

void ShardCoordinator::Loop() {
  for (;;) {
    {
      absl::MutexLock lock(&mu_);
      auto woken = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return wake_ || stop_; };
      mu_.AwaitWithTimeout(absl::Condition(&woken), options_.interval);
      if (stop_) return;
      wake_ = false;
    }
    Round();
  }
}

void ShardCoordinator::Round() {
  ReleaseHandedOver();
  RenewHeld();
  absl::StatusOr<ClusterView> view = leases_->Read();
  if (!view.ok()) {
    if (SteadyNow() - last_read_ > Chrono(options_.member.lease)) SetHealth(false);
    return;
  }
  last_read_ = SteadyNow();
  SetHealth(true);
  PlanInput input;
  input.me = options_.member.id;
  ClusterView live;
  Observe(*view, &input, &live);
  Act(live, input);
}

// Releases the leases of shards whose engines were retired for a hand-over.
void ShardCoordinator::ReleaseHandedOver() {
  std::vector<std::pair<int, int64_t>> released;
  {
    absl::MutexLock lock(&mu_);
    released.swap(handed_over_);
  }
  for (const auto& [shard, epoch] : released) {
    const absl::Status status = leases_->Release(shard, epoch);
    absl::MutexLock lock(&mu_);
    if (!status.ok()) {  // try again next round; the lease is still renewed meanwhile
      handed_over_.emplace_back(shard, epoch);
      continue;
    }
    auto it = held_.find(shard);
    if (it != held_.end() && it->second.epoch == epoch) held_.erase(it);
    LogLine(absl::StrCat("shard ", shard, " handed over (epoch ", epoch, ")"));
  }
}

void ShardCoordinator::RenewHeld() {
  std::vector<std::pair<int, int64_t>> renew;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [shard, held] : held_) {
      if (held.epoch > 0) renew.emplace_back(shard, held.epoch);
    }
  }
  if (renew.empty()) return;
  const SteadyTime sent = SteadyNow();
  absl::StatusOr<std::vector<int>> renewed = leases_->Renew(renew);
  if (!renewed.ok()) return;  // the local leases lapse by themselves if this goes on
  // The database set `expires` to its now + lease, and its now is later than `sent`:
  // serving until sent + 80% of the lease never outlives the lease.
  const SteadyTime valid_until = sent + Chrono(options_.member.lease * 0.8);
  std::vector<int> extend;
  {
    absl::MutexLock lock(&mu_);
    for (auto& [shard, held] : held_) {
      if (std::find(renewed->begin(), renewed->end(), shard) != renewed->end()) {
        held.valid_until = valid_until;
        if (held.phase == Phase::kServing) extend.push_back(shard);
        continue;
      }
      if (held.epoch < 0) continue;  // already being dropped
      LogLine(absl::StrCat("shard ", shard,
                           " was taken over by another replica (this one "
                           "held epoch ",
                           held.epoch, "); dropping it"));
      Post({shard, held.epoch, /*load=*/false, /*handoff=*/false});
      held.phase = Phase::kRetiring;
      held.epoch = -1;  // renewed no more; erased once retired
    }
  }
  for (int shard : extend) shards_->Extend(shard, valid_until);
}

void ShardCoordinator::Observe(const ClusterView& view, PlanInput* input, ClusterView* live) {
  const SteadyTime now = SteadyNow();
  for (const ClusterMember& member : view.members) {
    if (member.connected) {
      disconnected_since_.erase(member.id);
    } else {
      auto [it, first] = disconnected_since_.try_emplace(member.id, now);
      // Closed on two reads gone_after apart: not a database failover's reconnect.
      if (!first && now - it->second >= Chrono(options_.gone_after)) {
        input->gone.insert(member.id);
      }
    }
  }
  for (const ClusterMember& member : view.members) {
    if (member.renewed && !input->gone.contains(member.id)) live->members.push_back(member);
  }
  live->shards = view.shards;
  for (const ShardLease& lease : view.shards) {
    const bool known = std::any_of(view.members.begin(), view.members.end(),
                                   [&](const ClusterMember& m) { return m.id == lease.owner; });
    if (lease.held && !known) input->gone.insert(lease.owner);  // its member row is gone
  }
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [shard, held] : held_) input->mine.insert(shard);
    input->leaving = leaving_;
  }
  for (const ShardLease& lease : view.shards) {
    if (!IsFree(lease, *input)) {
      free_since_.erase(lease.shard);
    } else if (now - free_since_.try_emplace(lease.shard, now).first->second >
               Chrono(options_.member.lease)) {
      input->overdue.insert(lease.shard);
    }
    if (input->mine.contains(lease.shard)) continue;
    if (lease.held && !input->gone.contains(lease.owner)) {
      shards_->SetRemote(lease.shard, lease.address, lease.epoch);
    } else {
      shards_->SetUnowned(lease.shard);
    }
  }
}

void ShardCoordinator::Act(const ClusterView& live, const PlanInput& input) {
  const ShardPlan plan = PlanShards(live, input);
  {
    absl::MutexLock lock(&mu_);
    for (int shard : plan.release) {
      HeldShard& held = held_[shard];
      if (held.phase != Phase::kServing) continue;  // loading: released once loaded
      held.phase = Phase::kRetiring;
      Post({shard, held.epoch, /*load=*/false, /*handoff=*/true});
    }
  }
  bool leave;
  {
    absl::MutexLock lock(&mu_);
    leave = input.leaving && held_.empty() && !left_;
  }
  if (leave && leases_->Leave().ok()) {
    LogLine("left the cluster: every shard handed over");
    absl::MutexLock lock(&mu_);
    left_ = true;
  }
  for (int shard : plan.take) {
    const ShardLease& lease = live.shards[shard];
    if (!Take(lease, lease.held)) break;  // the database is away: next round
  }
}

// Takes `lease`'s shard and has the worker load it. False if the database is away.
bool ShardCoordinator::Take(const ShardLease& lease, bool owner_gone) {
  absl::StatusOr<int64_t> epoch = leases_->Take(lease.shard, lease.epoch, owner_gone);
  if (!epoch.ok()) return !absl::IsUnavailable(epoch.status());
  LogLine(absl::StrCat("took shard ", lease.shard, " at epoch ", *epoch,
                       lease.owner.empty()
                           ? std::string()
                           : absl::StrCat(" from ", lease.owner, owner_gone ? " (gone)" : "")));
  shards_->SetLoading(lease.shard);
  absl::MutexLock lock(&mu_);
  HeldShard& held = held_[lease.shard];
  held.epoch = *epoch;
  held.phase = Phase::kLoading;
  held.fence = std::make_shared<Fence>(this, lease.shard, *epoch);
  // The lease was just written: as after a renewal.
  held.valid_until = SteadyNow() + Chrono(options_.member.lease * 0.8);
  Post({lease.shard, *epoch, /*load=*/true, /*handoff=*/false});
  return true;
}

void ShardCoordinator::SetHealth(bool healthy) {
  if (health_ == static_cast<int>(healthy)) return;
  const bool was_unhealthy = health_ == 0;
  health_ = healthy;
  if (!healthy) {
    LogLine(absl::StrCat("cannot read the lease table of ", store_->display_name(),
                         " for a whole lease: not serving until it can"));
  } else if (was_unhealthy) {
    LogLine(absl::StrCat("reads the lease table of ", store_->display_name(), " again"));
  }
  if (options_.on_health) options_.on_health(healthy);
}

// ---------------------------------------------------------------- worker

void ShardCoordinator::Post(Task task) { tasks_.push_back(task); }

void ShardCoordinator::WorkerLoop() {
  for (;;) {
    Task task;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stop_ || !tasks_.empty(); };
      mu_.Await(absl::Condition(&ready));
      if (stop_) return;
      task = tasks_.front();
      tasks_.pop_front();
    }
    if (task.load) {
      Load(task);
    } else {
      Retire(task);
    }
  }
}

void ShardCoordinator::Load(const Task& task) {
  std::shared_ptr<Fence> fence;
  {
    absl::MutexLock lock(&mu_);
    auto it = held_.find(task.shard);
    if (it == held_.end() || it->second.epoch != task.epoch) return;  // dropped meanwhile
    fence = it->second.fence;
  }
  const auto start = SteadyNow();
  std::unique_ptr<Store> store = store_->OpenShard(task.shard, fence);
  absl::StatusOr<std::unique_ptr<Engine>> engine = options_.open_engine(task.shard, store.get());
  SteadyTime valid_until;
  bool leaving;
  {
    absl::MutexLock lock(&mu_);
    auto it = held_.find(task.shard);
    if (it == held_.end() || it->second.epoch != task.epoch) return;
    if (!engine.ok()) {
      LogLine(absl::StrCat("cannot load shard ", task.shard, ": ", engine.status().message(),
                           "; releasing it"));
      it->second.phase = Phase::kReleasing;
      handed_over_.emplace_back(task.shard, task.epoch);
      wake_ = true;
    } else {
      leaving = leaving_;
      it->second.phase = leaving ? Phase::kRetiring : Phase::kServing;
      valid_until = it->second.valid_until;
      if (leaving) Post({task.shard, task.epoch, /*load=*/false, /*handoff=*/true});
    }
  }
  if (!engine.ok()) {
    shards_->Retire(task.shard, absl::ZeroDuration());  // its parked calls are refused here
    return;
  }
  LogLine(absl::StrCat("serving shard ", task.shard, " (epoch ", task.epoch, "), loaded in ",
                       absl::FormatDuration(absl::FromChrono(SteadyNow() - start))));
  shards_->Serve(task.shard, std::move(store), std::move(*engine), valid_until);
}

void ShardCoordinator::Retire(const Task& task) {
  shards_->Retire(task.shard, task.handoff ? options_.retire_grace : absl::Seconds(1));
  absl::MutexLock lock(&mu_);
  auto it = held_.find(task.shard);
  if (it == held_.end()) return;
  if (!task.handoff) {
    held_.erase(it);  // taken by another replica: nothing to release
    return;
  }
  it->second.phase = Phase::kReleasing;
  handed_over_.emplace_back(task.shard, task.epoch);
  wake_ = true;
}

}  // namespace ckpt
