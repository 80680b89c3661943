#include "service/cluster/shard_set.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "service/cluster/shard_map.h"
#include "service/common/log.h"

namespace ckpt {

// A local shard: its store and engine, and how many calls hold them.
class LocalShard {
 public:
  LocalShard(int shard, std::unique_ptr<Store> store, std::unique_ptr<Engine> engine)
      : shard_(shard), store_(std::move(store)), engine_(std::move(engine)) {}

  int shard() const { return shard_; }
  Engine& engine() const { return *engine_; }

  void Enter() {
    absl::MutexLock lock(&mu_);
    ++in_flight_;
  }
  void Leave() {
    absl::MutexLock lock(&mu_);
    --in_flight_;
  }
  bool retiring() const {
    absl::MutexLock lock(&mu_);
    return retiring_;
  }
  void BeginRetiring() {
    absl::MutexLock lock(&mu_);
    retiring_ = true;
  }

  // Waits for every hold to go (queued writes refused after `grace`), then closes the
  // engine and the store.
  void Close(absl::Duration grace) {
    auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return in_flight_ == 0; };
    bool drained;
    {
      absl::MutexLock lock(&mu_);
      drained = mu_.AwaitWithTimeout(absl::Condition(&idle), grace);
    }
    if (!drained) {
      engine_->RefuseQueued();
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(&idle));
    }
    engine_.reset();
    store_.reset();
  }

 private:
  const int shard_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<Engine> engine_;
  mutable absl::Mutex mu_;
  int in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  bool retiring_ ABSL_GUARDED_BY(mu_) = false;
};

// ---------------------------------------------------------------- ShardHold

ShardHold::ShardHold(std::shared_ptr<LocalShard> local) : local_(std::move(local)) {
  local_->Enter();
}

ShardHold::~ShardHold() { Release(); }

ShardHold::ShardHold(const ShardHold& other) : local_(other.local_) {
  if (local_ != nullptr) local_->Enter();
}

ShardHold& ShardHold::operator=(const ShardHold& other) {
  if (this != &other) {
    Release();
    local_ = other.local_;
    if (local_ != nullptr) local_->Enter();
  }
  return *this;
}

ShardHold& ShardHold::operator=(ShardHold&& other) noexcept {
  if (this != &other) {
    Release();
    local_ = std::move(other.local_);
  }
  return *this;
}

void ShardHold::Release() {
  if (local_ != nullptr) local_->Leave();
  local_.reset();
}

Engine& ShardHold::engine() const { return local_->engine(); }
int ShardHold::shard() const { return local_->shard(); }
bool ShardHold::retiring() const { return local_->retiring(); }

// ---------------------------------------------------------------- ShardSet

namespace {

absl::Status NoOwnerInTime(int shard) {
  return absl::UnavailableError(absl::StrCat(
      "shard ", shard,
      " has no owner right now (it is moving between replicas, or its owner failed and "
      "its lease has not run out yet); this call was not applied; retry"));
}

absl::Status NotOwnedHere(int shard) {
  return absl::FailedPreconditionError(
      absl::StrCat("this replica does not own shard ", shard, " (any more)"));
}

}  // namespace

ShardSet::ShardSet(const ShardSetOptions& options)
    : options_(options), slots_(static_cast<size_t>(std::max(1, options.shards))) {
  timer_ = std::thread([this] { TimerLoop(); });
  for (int i = 0; i < std::max(1, options.executor_threads); ++i) {
    executors_.emplace_back([this] { ExecutorLoop(); });
  }
}

ShardSet::~ShardSet() {
  for (int shard : LocalShards()) Retire(shard, absl::ZeroDuration());
  Resolved refused;
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    for (size_t shard = 0; shard < slots_.size(); ++shard) {
      for (Parked& parked : slots_[shard].parked) {
        ShardRoute route;
        route.shard = static_cast<int>(shard);
        route.status = absl::UnavailableError("ckptd is shutting down; retry");
        refused.emplace_back(std::move(parked.then), std::move(route));
      }
      slots_[shard].parked.clear();
    }
  }
  Run(refused);
  timer_.join();
  {
    absl::MutexLock lock(&run_mu_);
    run_stop_ = true;  // executors finish what is queued first
  }
  for (std::thread& executor : executors_) executor.join();
}

int ShardSet::ShardOf(absl::string_view job_id) const {
  return ShardOfJob(job_id, options_.shards);
}

void ShardSet::Route(int shard, absl::Time deadline, std::function<void(ShardRoute)> then) {
  RouteImpl(shard, deadline, /*here_only=*/false, std::move(then));
}

void ShardSet::RouteHere(int shard, absl::Time deadline, std::function<void(ShardRoute)> then) {
  RouteImpl(shard, deadline, /*here_only=*/true, std::move(then));
}

void ShardSet::RouteImpl(int shard, absl::Time deadline, bool here_only,
                         std::function<void(ShardRoute)> then) {
  ShardRoute route;
  route.shard = shard;
  {
    absl::MutexLock lock(&mu_);
    Slot& slot = slots_[shard];
    if (!TryResolve(shard, slot, here_only, &route)) {
      if (stopping_ || parked_ >= options_.max_parked) {
        route.status = absl::UnavailableError(
            absl::StrCat("too many calls are waiting for shards to get an owner (", parked_,
                         "); this call was not applied; retry"));
      } else {
        deadline = std::min(deadline, absl::Now() + options_.max_wait);
        slot.parked.push_back({deadline, here_only, std::move(then)});
        ++parked_;
        ++wake_;
        return;
      }
    }
  }
  then(std::move(route));
}

ShardRoute ShardSet::RouteNow(int shard, bool here_only) {
  ShardRoute route;
  route.shard = shard;
  absl::MutexLock lock(&mu_);
  if (!TryResolve(shard, slots_[shard], here_only, &route)) {
    route.status = here_only ? NotOwnedHere(shard) : NoOwnerInTime(shard);
  }
  return route;
}

bool ShardSet::TryResolve(int shard, Slot& slot, bool here_only, ShardRoute* route) {
  switch (slot.state) {
    case State::kLocal:
      if (std::chrono::steady_clock::now() >= slot.valid_until) return false;  // renewing
      route->local = ShardHold(slot.local);
      return true;
    case State::kLoading:
      return false;
    case State::kRemote:
      if (here_only) {
        route->status = NotOwnedHere(shard);
      } else {
        route->owner = slot.owner;
      }
      return true;
    case State::kUnowned:
      if (here_only) {
        route->status = NotOwnedHere(shard);
        return true;
      }
      return false;
  }
  return false;
}

void ShardSet::RouteAll(absl::Time deadline, std::function<void(std::vector<ShardRoute>)> then) {
  struct Gather {
    absl::Mutex mu;
    std::vector<ShardRoute> routes;
    int pending;
    std::function<void(std::vector<ShardRoute>)> then;
  };
  auto gather = std::make_shared<Gather>();
  gather->routes.resize(static_cast<size_t>(options_.shards));
  gather->pending = options_.shards;
  gather->then = std::move(then);
  for (int shard = 0; shard < options_.shards; ++shard) {
    Route(shard, deadline, [gather, shard](ShardRoute route) {
      bool last;
      {
        absl::MutexLock lock(&gather->mu);
        gather->routes[static_cast<size_t>(shard)] = std::move(route);
        last = --gather->pending == 0;
      }
      if (last) gather->then(std::move(gather->routes));
    });
  }
}

void ShardSet::NoteStale(int shard, absl::string_view owner, bool wake) {
  {
    absl::MutexLock lock(&mu_);
    Slot& slot = slots_[shard];
    if (slot.state != State::kRemote || slot.owner != owner) return;
    slot.state = State::kUnowned;
    slot.owner.clear();
  }
  if (wake && options_.on_stale) options_.on_stale();
}

void ShardSet::SetLoading(int shard) {
  std::string former;
  {
    absl::MutexLock lock(&mu_);
    Slot& slot = slots_[shard];
    if (slot.state == State::kLocal) return;
    if (slot.state == State::kRemote) former = slot.owner;
    slot.state = State::kLoading;
    slot.owner.clear();
  }
  Moved(shard, former);
}

void ShardSet::Moved(int shard, const std::string& former_owner) {
  if (!former_owner.empty() && options_.on_moved) options_.on_moved(shard, former_owner);
}

void ShardSet::Serve(int shard, std::unique_ptr<Store> store, std::unique_ptr<Engine> engine,
                     SteadyTime valid_until) {
  auto local = std::make_shared<LocalShard>(shard, std::move(store), std::move(engine));
  Engine* raw = &local->engine();
  {
    absl::MutexLock lock(&listeners_mu_);
    for (ShardListener* listener : listeners_) listener->OnServing(shard, raw);
  }
  Resolved resolved;
  {
    absl::MutexLock lock(&mu_);
    Slot& slot = slots_[shard];
    slot.state = State::kLocal;
    slot.local = std::move(local);
    slot.valid_until = valid_until;
    slot.owner.clear();
    Unpark(shard, &resolved);
  }
  Run(resolved);
}

void ShardSet::Extend(int shard, SteadyTime valid_until) {
  Resolved resolved;
  {
    absl::MutexLock lock(&mu_);
    Slot& slot = slots_[shard];
    if (slot.state != State::kLocal) return;
    slot.valid_until = valid_until;
    Unpark(shard, &resolved);
  }
  Run(resolved);
}

void ShardSet::SetRemote(int shard, const std::string& address, int64_t epoch) {
  Resolved resolved;
  std::string former;
  {
    absl::MutexLock lock(&mu_);
    Slot& slot = slots_[shard];
    if (slot.state == State::kLocal || slot.state == State::kLoading || epoch < slot.epoch) return;
    if (slot.state == State::kRemote && slot.owner != address) former = slot.owner;
    slot.state = State::kRemote;
    slot.owner = address;
    slot.epoch = epoch;
    Unpark(shard, &resolved);
  }
  Moved(shard, former);
  Run(resolved);
}

void ShardSet::SetUnowned(int shard) {
  Resolved resolved;
  std::string former;
  {
    absl::MutexLock lock(&mu_);
    Slot& slot = slots_[shard];
    if (slot.state == State::kLocal) return;
    if (slot.state == State::kRemote) former = slot.owner;
    slot.state = State::kUnowned;
    slot.owner.clear();
    Unpark(shard, &resolved);  // forwarded calls: not owned here
  }
  Moved(shard, former);
  Run(resolved);
}

void ShardSet::Retire(int shard, absl::Duration grace) {
  std::shared_ptr<LocalShard> local;
  Resolved refused;
  {
    absl::MutexLock lock(&mu_);
    Slot& slot = slots_[shard];
    if (slot.state == State::kLoading) {  // never served: forwarded calls are refused
      slot.state = State::kUnowned;
      Unpark(shard, &refused);
    } else if (slot.state == State::kLocal) {
      local = std::move(slot.local);
      slot.state = State::kUnowned;
    }
  }
  Run(refused);
  if (local == nullptr) return;
  local->BeginRetiring();
  {
    absl::MutexLock lock(&listeners_mu_);
    for (ShardListener* listener : listeners_) listener->OnRetiring(shard, &local->engine());
  }
  local->Close(grace);
  Resolved resolved;
  {
    absl::MutexLock lock(&mu_);
    Unpark(shard, &resolved);  // forwarded calls parked meanwhile: not owned here
  }
  Run(resolved);
}

void ShardSet::Unpark(int shard, Resolved* out) {
  Slot& slot = slots_[shard];
  auto still_parked = slot.parked.begin();
  for (auto it = slot.parked.begin(); it != slot.parked.end(); ++it) {
    ShardRoute route;
    route.shard = shard;
    if (TryResolve(shard, slot, it->here_only, &route)) {
      out->emplace_back(std::move(it->then), std::move(route));
      --parked_;
    } else {
      *still_parked++ = std::move(*it);
    }
  }
  slot.parked.erase(still_parked, slot.parked.end());
}

void ShardSet::Run(Resolved& resolved) {
  if (resolved.empty()) return;
  absl::MutexLock lock(&run_mu_);
  for (auto& entry : resolved) runnable_.push_back(std::move(entry));
  resolved.clear();
}

void ShardSet::ExecutorLoop() {
  for (;;) {
    std::pair<std::function<void(ShardRoute)>, ShardRoute> next;
    {
      absl::MutexLock lock(&run_mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(run_mu_) {
        return run_stop_ || !runnable_.empty();
      };
      run_mu_.Await(absl::Condition(&ready));
      if (runnable_.empty()) return;  // stopping, and nothing left
      next = std::move(runnable_.front());
      runnable_.pop_front();
    }
    next.first(std::move(next.second));
  }
}

std::vector<int> ShardSet::LocalShards() const {
  std::vector<int> out;
  absl::MutexLock lock(&mu_);
  for (size_t shard = 0; shard < slots_.size(); ++shard) {
    if (slots_[shard].state == State::kLocal) out.push_back(static_cast<int>(shard));
  }
  return out;
}

void ShardSet::ForEachLocal(
    const std::function<void(int shard, const Engine& engine)>& visit) const {
  std::vector<ShardHold> holds;
  {
    absl::MutexLock lock(&mu_);
    for (const Slot& slot : slots_) {
      if (slot.state == State::kLocal) holds.push_back(ShardHold(slot.local));
    }
  }
  for (const ShardHold& hold : holds) visit(hold.shard(), hold.engine());
}

void ShardSet::AddListener(ShardListener* listener) {
  absl::MutexLock lock(&listeners_mu_);
  listeners_.push_back(listener);
}

void ShardSet::RemoveListener(ShardListener* listener) {
  absl::MutexLock lock(&listeners_mu_);
  listeners_.erase(std::remove(listeners_.begin(), listeners_.end(), listener), listeners_.end());
}

// Deadlines are gRPC's: real time.
void ShardSet::TimerLoop() {
  for (;;) {
    Resolved expired;
    {
      absl::MutexLock lock(&mu_);
      absl::Time next = absl::InfiniteFuture();
      for (const Slot& slot : slots_) {
        for (const Parked& parked : slot.parked) next = std::min(next, parked.deadline);
      }
      // Local shards whose lease lapsed come back by Extend or Retire, which unpark.
      const uint64_t wake = wake_;
      auto woken = [this, wake]()
                       ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_ || wake_ != wake; };
      mu_.AwaitWithDeadline(absl::Condition(&woken), next);
      if (stopping_) return;
      TakeExpired(absl::Now(), &expired);
    }
    Run(expired);
  }
}

void ShardSet::TakeExpired(absl::Time now, Resolved* out) {
  for (size_t shard = 0; shard < slots_.size(); ++shard) {
    auto& parked = slots_[shard].parked;
    auto keep = parked.begin();
    for (auto it = parked.begin(); it != parked.end(); ++it) {
      if (it->deadline > now) {
        *keep++ = std::move(*it);
        continue;
      }
      ShardRoute route;
      route.shard = static_cast<int>(shard);
      route.status = NoOwnerInTime(static_cast<int>(shard));
      out->emplace_back(std::move(it->then), std::move(route));
      --parked_;
    }
    parked.erase(keep, parked.end());
  }
}

}  // namespace ckpt
