// A seeded random walk over the engine, checked step by step against a model.
//
// Two jobs of two steps each take ~3000 random operations: registrations (names from a
// small pool and ranges that overlap, so duplicates happen), leases by three workers,
// completions and failures with tokens or in record mode, stale tokens, heartbeats,
// clock advances with lease expiry, unregistrations, resets by state, pause/resume and
// restarts. In lease_next mode (seeds of their own, so the others walk as before) a
// worker also completes its leases and leases its next batch in one CompleteItems, and
// sometimes repeats that call as after a lost answer. The model knows every item's
// state, attempts, cursor and lease, so every answer is checked exactly; the O(1) counters are
// compared with it after every op, and every 200 ops (and at the end) items, workers and counters
// are compared in full, before and after a reopen.
#include <algorithm>
#include <functional>
#include <iostream>
#include <map>
#include <random>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/common/proto_time.h"
#include "service/store/keys.h"
#include "tests/engine/recount.h"
#include "tests/testing/engine_harness.h"
#include "tests/testing/status_matchers.h"

namespace ckpt {
namespace {

using ::ckpt::testutil::EngineHarness;
using ::ckpt::testutil::StatusIs;
using ::testing::HasSubstr;

constexpr int kOps = 3000;
constexpr int kCheckEvery = 200;
constexpr int kNamePool = 60;
constexpr uint64_t kIndexLimit = 300;
constexpr int kSlots = 3;
constexpr size_t kMaxStale = 256;

enum class State { kPending, kLeased, kCompleted, kFailed };

v1::ItemState ToProto(State state) {
  switch (state) {
    case State::kPending:
      return v1::ITEM_STATE_PENDING;
    case State::kLeased:
      return v1::ITEM_STATE_LEASED;
    case State::kCompleted:
      return v1::ITEM_STATE_COMPLETED;
    case State::kFailed:
      return v1::ITEM_STATE_FAILED;
  }
  return v1::ITEM_STATE_UNSPECIFIED;
}

// What the engine should hold for one item.
struct ItemModel {
  State state = State::kPending;
  bool retry = false;     // PENDING after a try: leased before never-tried items
  uint32_t attempts = 0;  // tries counted so far (for LEASED: before this lease)
  std::string cursor;
  uint64_t token = 0;            // LEASED
  std::string worker;            // LEASED
  std::string done_by;           // who last completed or failed it (Item.worker_id)
  absl::Time deadline;           // LEASED
  uint64_t completed_token = 0;  // COMPLETED
};

struct WorkerModel {
  absl::Time last_heartbeat;
  bool exited = false;
  uint64_t completed = 0;
  uint64_t failed = 0;
};

// A lease that ended. Presenting it again must be refused (unless it completed the item
// and the item is still completed: then the completion is a repeat).
struct StaleLease {
  int step;
  std::string key;
  uint64_t token;
};

struct JobModel {
  std::string id;
  std::vector<std::string> steps;
  absl::Duration lease_timeout;
  uint32_t max_attempts = 0;
  bool paused = false;
  std::vector<std::map<std::string, ItemModel>> items;  // per step, by encoded key
  std::map<std::string, WorkerModel> workers;           // every worker ever registered
  std::string slots[kSlots];                            // the workers in use
  std::vector<StaleLease> stale;
};

v1::ItemKey Key(const std::string& encoded) { return *keys::DecodeItemKey(encoded); }

// One seed on one store kind, with or without lease_next.
class EngineRandomTest
    : public ::testing::TestWithParam<std::tuple<uint64_t, testutil::StoreKind, bool>> {
 protected:
  static uint64_t Seed() { return std::get<0>(GetParam()); }
  static bool LeaseNextMode() { return std::get<2>(GetParam()); }

  void SetUp() override {
    rng_.seed(Seed());
    MakeJob(&jobs_[0], "rand-a", {"extract", "load"}, absl::Seconds(30), 3);
    MakeJob(&jobs_[1], "rand-b", {"parse", "index"}, absl::Seconds(20), 2);
  }

  void MakeJob(JobModel* job, const std::string& id, std::vector<std::string> steps,
               absl::Duration lease_timeout, uint32_t max_attempts) {
    job->id = id;
    job->steps = std::move(steps);
    job->lease_timeout = lease_timeout;
    job->max_attempts = max_attempts;
    job->items.resize(job->steps.size());
    v1::CreateJobRequest r;
    r.set_job_id(id);
    for (const std::string& step : job->steps) r.add_steps(step);
    *r.mutable_lease_timeout() = ToProtoDuration(lease_timeout);
    r.set_max_attempts(max_attempts);
    CKPT_ASSERT_OK(h_.Call(&Engine::CreateJob, r));
    for (int slot = 0; slot < kSlots; ++slot) Register(*job, slot);
  }

  // ---- randomness ----
  uint64_t Uniform(uint64_t lo, uint64_t hi) {  // inclusive
    return std::uniform_int_distribution<uint64_t>(lo, hi)(rng_);
  }
  bool Chance(double p) { return std::uniform_real_distribution<double>(0, 1)(rng_) < p; }
  template <typename T>
  const T& PickFrom(const std::vector<T>& v) {
    return v[Uniform(0, v.size() - 1)];
  }
  std::vector<std::string> KeysIn(const JobModel& job, int step,
                                  const std::function<bool(const ItemModel&)>& wanted) {
    std::vector<std::string> out;
    for (const auto& [key, item] : job.items[step]) {
      if (wanted(item)) out.push_back(key);
    }
    return out;
  }
  // Up to `n` distinct keys of `pool`, in random order.
  std::vector<std::string> Sample(std::vector<std::string> pool, size_t n) {
    std::shuffle(pool.begin(), pool.end(), rng_);
    pool.resize(std::min(n, pool.size()));
    return pool;
  }

  absl::Time Now() { return h_.clock().Now(); }
  bool Lost(const JobModel& job, const std::string& worker) {
    return Now() - job.workers.at(worker).last_heartbeat > job.lease_timeout;
  }
  void Stale(JobModel& job, int step, const std::string& key, uint64_t token) {
    if (job.stale.size() >= kMaxStale) job.stale.erase(job.stale.begin());
    job.stale.push_back({step, key, token});
  }
  // The item's lease ends (it was completed, failed, reset or released).
  void EndLease(JobModel& job, int step, const std::string& key, ItemModel& item) {
    Stale(job, step, key, item.token);
    item.token = 0;
    item.worker.clear();
  }
  void Credit(JobModel& job, const std::string& worker_id, uint64_t completed, uint64_t failed) {
    auto it = job.workers.find(worker_id);
    if (it == job.workers.end()) return;
    it->second.completed += completed;
    it->second.failed += failed;
  }

  // ---- operations ----

  void Register(JobModel& job, int slot) {
    v1::RegisterWorkerRequest r;
    r.set_job_id(job.id);
    r.set_hostname(absl::StrCat("host-", slot));
    r.set_pid(1000 + slot);
    auto out = h_.Call(&Engine::RegisterWorker, r);
    CKPT_ASSERT_OK(out);
    ASSERT_EQ(job.workers.count(out->worker_id()), 0u) << "worker id reused";
    job.workers[out->worker_id()].last_heartbeat = Now();
    job.slots[slot] = out->worker_id();
  }

  void AddItems(JobModel& job, int step) {
    v1::AddItemsRequest r;
    r.set_job_id(job.id);
    r.set_step(job.steps[step]);
    auto& items = job.items[step];
    std::set<std::string> fresh;
    uint64_t requested = 0;
    auto offer = [&](const std::string& key) {
      ++requested;
      if (!items.count(key)) fresh.insert(key);
    };
    for (uint64_t i = Uniform(0, 5); i > 0; --i) {
      const std::string name = absl::StrFormat("item-%02d", Uniform(0, kNamePool - 1));
      r.add_names(name);
      offer(keys::EncodeName(name));
    }
    for (uint64_t i = Uniform(0, 3); i > 0; --i) {
      const uint64_t index = Uniform(0, kIndexLimit - 1);
      r.add_indices(index);
      offer(keys::EncodeIndex(index));
    }
    for (uint64_t i = Uniform(0, 2); i > 0; --i) {
      const uint64_t begin = Uniform(0, kIndexLimit - 1);
      const uint64_t end = std::min(begin + Uniform(1, 30), kIndexLimit);
      v1::IndexRange* range = r.add_ranges();
      range->set_begin(begin);
      range->set_end(end);
      for (uint64_t index = begin; index < end; ++index) offer(keys::EncodeIndex(index));
    }
    if (requested == 0) {
      r.add_names("item-00");
      offer(keys::EncodeName("item-00"));
    }
    auto out = h_.Call(&Engine::AddItems, r);
    CKPT_ASSERT_OK(out);
    EXPECT_EQ(out->added(), fresh.size());
    EXPECT_EQ(out->duplicates(), requested - fresh.size());
    for (const std::string& key : fresh) items[key] = ItemModel();
    ++stats_["add"];
  }

  void LeaseItems(JobModel& job, int step) {
    const int slot = static_cast<int>(Uniform(0, kSlots - 1));
    const uint32_t n = static_cast<uint32_t>(Uniform(1, 20));
    v1::LeaseItemsRequest r;
    r.set_job_id(job.id);
    r.set_step(job.steps[step]);
    r.set_worker_id(job.slots[slot]);
    r.set_max_items(n);
    if (Lost(job, job.slots[slot])) {  // refused; a real worker registers again
      EXPECT_THAT(h_.Call(&Engine::LeaseItems, r),
                  StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("declared lost")));
      Register(job, slot);
      r.set_worker_id(job.slots[slot]);
      ++stats_["lease lost"];
    }
    const std::string worker = job.slots[slot];
    auto out = h_.Call(&Engine::LeaseItems, r);
    CKPT_ASSERT_OK(out);
    ExpectLeased(job, step, worker, n, *out, "lease");
  }

  // A lease of up to `n` items of the step to `worker`, answered now: checked against the
  // model, which then holds the leases.
  void ExpectLeased(JobModel& job, int step, const std::string& worker, uint32_t n,
                    const v1::LeaseItemsResponse& leased, const std::string& stat) {
    const v1::LeaseItemsResponse* out = &leased;
    job.workers[worker].last_heartbeat = Now();  // asking for work is a sign of life
    if (job.paused) {
      EXPECT_EQ(out->leases_size(), 0);
      EXPECT_EQ(out->shortfall(), v1::LEASE_SHORTFALL_JOB_PAUSED);
      EXPECT_EQ(out->control(), v1::CONTROL_WORD_PAUSE);
      ++stats_[stat + " paused"];
      return;
    }
    // Retries first, then never-tried items, each in key order.
    std::vector<std::string> expected =
        KeysIn(job, step, [](const ItemModel& m) { return m.state == State::kPending && m.retry; });
    for (const std::string& key : KeysIn(job, step, [](const ItemModel& m) {
           return m.state == State::kPending && !m.retry;
         })) {
      expected.push_back(key);
    }
    if (expected.size() > n) expected.resize(n);
    EXPECT_EQ(out->control(), v1::CONTROL_WORD_RUN);
    EXPECT_EQ(out->shortfall(), expected.size() < n ? v1::LEASE_SHORTFALL_NONE_PENDING
                                                    : v1::LEASE_SHORTFALL_UNSPECIFIED);
    ASSERT_EQ(out->leases_size(), static_cast<int>(expected.size()));
    for (int i = 0; i < out->leases_size(); ++i) {
      const v1::Lease& lease = out->leases(i);
      ASSERT_EQ(keys::EncodeItemKey(lease.key()), expected[i]) << lease.ShortDebugString();
      ItemModel& item = job.items[step][expected[i]];
      EXPECT_EQ(lease.step(), job.steps[step]);
      EXPECT_EQ(lease.attempt(), item.attempts + 1) << lease.ShortDebugString();
      EXPECT_EQ(lease.cursor(), item.cursor) << lease.ShortDebugString();
      EXPECT_GT(lease.lease_token(), max_token_) << "tokens are never reused";
      max_token_ = lease.lease_token();
      EXPECT_EQ(FromProtoTime(lease.expire_time()), Now() + job.lease_timeout);
      item.state = State::kLeased;
      item.retry = false;
      item.token = lease.lease_token();
      item.worker = worker;
      item.deadline = Now() + job.lease_timeout;
    }
    ++stats_[expected.empty() ? stat + " none" : stat];
  }

  // lease_next: a worker completes some of its leases and leases its next batch in the
  // same call; sometimes the call is sent again, as after a lost answer, and gets the
  // same leases back.
  void CompleteAndLeaseNext(JobModel& job, int step) {
    const int slot = static_cast<int>(Uniform(0, kSlots - 1));
    const std::string worker = job.slots[slot];
    auto mine = KeysIn(job, step, [&worker](const ItemModel& m) {
      return m.state == State::kLeased && m.worker == worker;
    });
    if (mine.empty()) return;
    const auto chosen = Sample(mine, Uniform(1, 5));
    const uint32_t n = static_cast<uint32_t>(Uniform(1, 20));
    v1::CompleteItemsRequest r;
    r.set_job_id(job.id);
    r.set_step(job.steps[step]);
    r.set_worker_id(worker);
    r.mutable_lease_next()->set_max_items(n);
    for (const std::string& key : chosen) {
      v1::Completion* c = r.add_items();
      *c->mutable_key() = Key(key);
      c->set_lease_token(job.items[step][key].token);
      c->mutable_result()->set_payload(absl::StrCat("r", c->lease_token()));
    }
    if (Lost(job, worker)) {  // refused whole, as LeaseItems refuses it
      EXPECT_THAT(h_.Call(&Engine::CompleteItems, r),
                  StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("declared lost")));
      Register(job, slot);
      ++stats_["complete+lease lost"];
      return;
    }
    auto out = h_.Call(&Engine::CompleteItems, r);
    CKPT_ASSERT_OK(out);
    ASSERT_EQ(out->outcomes_size(), r.items_size());
    for (int i = 0; i < r.items_size(); ++i) {
      EXPECT_EQ(out->outcomes(i), v1::COMPLETION_OUTCOME_COMPLETED);
      ItemModel& item = job.items[step][chosen[i]];
      item.completed_token = item.token;
      item.done_by = worker;
      EndLease(job, step, chosen[i], item);
      item.state = State::kCompleted;
      item.cursor.clear();
    }
    Credit(job, worker, chosen.size(), 0);
    ExpectLeased(job, step, worker, n, out->leased(), "complete+lease");
    if (!Chance(0.3)) return;
    auto repeat = h_.Call(&Engine::CompleteItems, r);
    CKPT_ASSERT_OK(repeat);
    for (int i = 0; i < r.items_size(); ++i) {
      EXPECT_EQ(repeat->outcomes(i), v1::COMPLETION_OUTCOME_ALREADY_COMPLETED);
    }
    ASSERT_EQ(repeat->leased().leases_size(), out->leased().leases_size());
    for (int i = 0; i < out->leased().leases_size(); ++i) {
      EXPECT_EQ(repeat->leased().leases(i).lease_token(), out->leased().leases(i).lease_token());
    }
    EXPECT_EQ(repeat->leased().shortfall(), out->leased().shortfall());
    ++stats_["complete+lease repeated"];
  }

  // Completes leased items with their current tokens.
  void CompleteLeased(JobModel& job, int step) {
    auto leased = KeysIn(job, step, [](const ItemModel& m) { return m.state == State::kLeased; });
    if (leased.empty()) return;
    const auto chosen = Sample(leased, Uniform(1, 5));
    v1::CompleteItemsRequest r;
    r.set_job_id(job.id);
    r.set_step(job.steps[step]);
    if (Chance(0.7)) r.set_worker_id(job.items[step][chosen[0]].worker);
    for (const std::string& key : chosen) {
      v1::Completion* c = r.add_items();
      *c->mutable_key() = Key(key);
      c->set_lease_token(job.items[step][key].token);
      c->mutable_result()->set_payload(absl::StrCat("r", c->lease_token()));
      if (Chance(0.5)) {
        *c->mutable_result()->mutable_metrics()->mutable_wall_time() =
            ToProtoDuration(absl::Milliseconds(Uniform(1, 5000)));
      }
    }
    auto out = h_.Call(&Engine::CompleteItems, r);
    CKPT_ASSERT_OK(out);
    ASSERT_EQ(out->outcomes_size(), r.items_size());
    for (int i = 0; i < r.items_size(); ++i) {
      EXPECT_EQ(out->outcomes(i), v1::COMPLETION_OUTCOME_COMPLETED);
      ItemModel& item = job.items[step][chosen[i]];
      item.completed_token = item.token;
      item.done_by = r.worker_id().empty() ? item.worker : r.worker_id();
      EndLease(job, step, chosen[i], item);
      item.state = State::kCompleted;
      item.cursor.clear();
    }
    Credit(job, r.worker_id(), chosen.size(), 0);
    ++stats_["complete leased"];
  }

  // Record mode: completes any registered items without a token.
  void CompleteRecorded(JobModel& job, int step) {
    auto all = KeysIn(job, step, [](const ItemModel&) { return true; });
    if (all.empty()) return;
    const auto chosen = Sample(all, Uniform(1, 5));
    v1::CompleteItemsRequest r;
    r.set_job_id(job.id);
    r.set_step(job.steps[step]);
    if (Chance(0.5)) r.set_worker_id(job.slots[Uniform(0, kSlots - 1)]);
    for (const std::string& key : chosen) *r.add_items()->mutable_key() = Key(key);
    if (Chance(0.05)) {  // an unregistered key fails the whole batch
      v1::Completion* ghost = r.add_items();
      if (Chance(0.5)) {
        ghost->mutable_key()->set_index(kIndexLimit + Uniform(0, 10));
      } else {
        ghost->mutable_key()->set_name(absl::StrCat("ghost-", Uniform(0, 10)));
      }
      r.mutable_items()->SwapElements(r.items_size() - 1,
                                      static_cast<int>(Uniform(0, r.items_size() - 1)));
      EXPECT_THAT(h_.Call(&Engine::CompleteItems, r),
                  StatusIs(absl::StatusCode::kNotFound, HasSubstr("not registered")));
      ++stats_["complete unregistered"];
      return;
    }
    auto out = h_.Call(&Engine::CompleteItems, r);
    CKPT_ASSERT_OK(out);
    ASSERT_EQ(out->outcomes_size(), r.items_size());
    uint64_t completed = 0;
    for (int i = 0; i < r.items_size(); ++i) {
      ItemModel& item = job.items[step][chosen[i]];
      if (item.state == State::kCompleted) {
        EXPECT_EQ(out->outcomes(i), v1::COMPLETION_OUTCOME_ALREADY_COMPLETED);
        continue;
      }
      EXPECT_EQ(out->outcomes(i), v1::COMPLETION_OUTCOME_COMPLETED);
      if (item.state == State::kLeased) EndLease(job, step, chosen[i], item);
      item.done_by = r.worker_id();
      item.state = State::kCompleted;
      item.retry = false;
      item.completed_token = 0;
      item.cursor.clear();
      ++completed;
    }
    Credit(job, r.worker_id(), completed, 0);
    ++stats_["complete recorded"];
  }

  std::string ErrorMessage() {
    static const char* const kMessages[] = {"timeout", "oom", "corrupt header", "no such file"};
    return kMessages[Uniform(0, 3)];
  }

  // Fails leased items with their tokens, retryable or not.
  void FailLeased(JobModel& job, int step) {
    auto leased = KeysIn(job, step, [](const ItemModel& m) { return m.state == State::kLeased; });
    if (leased.empty()) return;
    const auto chosen = Sample(leased, Uniform(1, 4));
    v1::FailItemsRequest r;
    r.set_job_id(job.id);
    r.set_step(job.steps[step]);
    if (Chance(0.7)) r.set_worker_id(job.items[step][chosen[0]].worker);
    for (const std::string& key : chosen) {
      v1::Failure* f = r.add_items();
      *f->mutable_key() = Key(key);
      f->set_lease_token(job.items[step][key].token);
      f->mutable_error()->set_message(ErrorMessage());
      f->mutable_error()->set_retryable(Chance(0.6));
    }
    auto out = h_.Call(&Engine::FailItems, r);
    CKPT_ASSERT_OK(out);
    ASSERT_EQ(out->states_size(), r.items_size());
    ASSERT_EQ(out->attempts_size(), r.items_size());
    for (int i = 0; i < r.items_size(); ++i) {
      ItemModel& item = job.items[step][chosen[i]];
      item.attempts += 1;
      const bool retry = r.items(i).error().retryable() && item.attempts < job.max_attempts;
      item.done_by = r.worker_id().empty() ? item.worker : r.worker_id();
      EndLease(job, step, chosen[i], item);
      item.state = retry ? State::kPending : State::kFailed;
      item.retry = retry;
      EXPECT_EQ(out->states(i), ToProto(item.state));
      EXPECT_EQ(out->attempts(i), item.attempts);
    }
    Credit(job, r.worker_id(), 0, chosen.size());
    ++stats_["fail leased"];
  }

  // Record mode: fails registered items without a token; a completed one among them
  // fails the whole batch.
  void FailRecorded(JobModel& job, int step) {
    const bool any = Chance(0.2);
    auto pool = KeysIn(job, step,
                       [any](const ItemModel& m) { return any || m.state != State::kCompleted; });
    if (pool.empty()) return;
    const auto chosen = Sample(pool, Uniform(1, 4));
    v1::FailItemsRequest r;
    r.set_job_id(job.id);
    r.set_step(job.steps[step]);
    if (Chance(0.5)) r.set_worker_id(job.slots[Uniform(0, kSlots - 1)]);
    bool refused = false;
    for (const std::string& key : chosen) {
      v1::Failure* f = r.add_items();
      *f->mutable_key() = Key(key);
      f->mutable_error()->set_message(ErrorMessage());
      f->mutable_error()->set_retryable(Chance(0.5));  // record mode: failed either way
      refused = refused || job.items[step][key].state == State::kCompleted;
    }
    if (refused) {
      EXPECT_THAT(h_.Call(&Engine::FailItems, r),
                  StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("already COMPLETED")));
      ++stats_["fail completed refused"];
      return;
    }
    auto out = h_.Call(&Engine::FailItems, r);
    CKPT_ASSERT_OK(out);
    ASSERT_EQ(out->states_size(), r.items_size());
    for (int i = 0; i < r.items_size(); ++i) {
      ItemModel& item = job.items[step][chosen[i]];
      if (item.state == State::kLeased) EndLease(job, step, chosen[i], item);
      item.done_by = r.worker_id();
      item.attempts += 1;
      item.state = State::kFailed;
      item.retry = false;
      EXPECT_EQ(out->states(i), v1::ITEM_STATE_FAILED);
      EXPECT_EQ(out->attempts(i), item.attempts);
    }
    Credit(job, r.worker_id(), 0, chosen.size());
    ++stats_["fail recorded"];
  }

  // Presents a lease that ended: refused and nothing changes, alone or in a batch with a
  // valid lease (all or nothing, or skipped with skip_lost_leases).
  void StaleWrite(JobModel& job) {
    if (job.stale.empty()) return;
    const StaleLease stale = PickFrom(job.stale);
    const int step = stale.step;
    ItemModel& item = job.items[step].at(stale.key);
    const bool repeat = item.state == State::kCompleted && item.completed_token == stale.token;
    if (Chance(0.25)) {  // FailItems never accepts a token that is not current
      v1::FailItemsRequest r;
      r.set_job_id(job.id);
      r.set_step(job.steps[step]);
      v1::Failure* f = r.add_items();
      *f->mutable_key() = Key(stale.key);
      f->set_lease_token(stale.token);
      f->mutable_error()->set_message("late failure");
      EXPECT_THAT(h_.Call(&Engine::FailItems, r),
                  StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("lease lost")));
      ++stats_["stale fail"];
      return;
    }
    v1::CompleteItemsRequest r;
    r.set_job_id(job.id);
    r.set_step(job.steps[step]);
    r.set_skip_lost_leases(Chance(0.3));
    auto leased = KeysIn(job, step, [](const ItemModel& m) { return m.state == State::kLeased; });
    leased.erase(std::remove(leased.begin(), leased.end(), stale.key), leased.end());
    std::string valid;
    if (!leased.empty() && Chance(0.5)) valid = PickFrom(leased);
    const bool valid_first = Chance(0.5);
    auto add_valid = [&]() {
      if (valid.empty()) return;
      v1::Completion* c = r.add_items();
      *c->mutable_key() = Key(valid);
      c->set_lease_token(job.items[step][valid].token);
    };
    if (valid_first) add_valid();
    v1::Completion* c = r.add_items();
    *c->mutable_key() = Key(stale.key);
    c->set_lease_token(stale.token);
    if (!valid_first) add_valid();
    const int stale_at = valid_first && !valid.empty() ? 1 : 0;

    auto out = h_.Call(&Engine::CompleteItems, r);
    if (!repeat && !r.skip_lost_leases()) {
      EXPECT_THAT(out, StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("lease lost")));
      ++stats_["stale complete refused"];
      return;  // all or nothing: the valid lease is still held
    }
    CKPT_ASSERT_OK(out);
    ASSERT_EQ(out->outcomes_size(), r.items_size());
    EXPECT_EQ(out->outcomes(stale_at), repeat ? v1::COMPLETION_OUTCOME_ALREADY_COMPLETED
                                              : v1::COMPLETION_OUTCOME_LEASE_LOST);
    if (!valid.empty()) {
      EXPECT_EQ(out->outcomes(1 - stale_at), v1::COMPLETION_OUTCOME_COMPLETED);
      ItemModel& done = job.items[step][valid];
      done.completed_token = done.token;
      done.done_by = done.worker;  // the holder of the token presented
      EndLease(job, step, valid, done);
      done.state = State::kCompleted;
      done.cursor.clear();
    }
    ++stats_[repeat ? "stale complete repeat" : "stale complete skipped"];
  }

  void Heartbeat(JobModel& job) {
    const int slot = static_cast<int>(Uniform(0, kSlots - 1));
    const std::string worker = job.slots[slot];
    v1::HeartbeatRequest r;
    r.set_job_id(job.id);
    r.set_worker_id(worker);
    if (Lost(job, worker)) {
      EXPECT_THAT(h_.Call(&Engine::Heartbeat, r),
                  StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("declared lost")));
      Register(job, slot);
      ++stats_["heartbeat lost"];
      return;
    }
    std::set<std::pair<int, std::string>> presented;
    std::map<std::pair<int, std::string>, std::string> cursors;
    for (int step = 0; step < static_cast<int>(job.steps.size()); ++step) {
      for (auto& [key, item] : job.items[step]) {
        if (item.state != State::kLeased || item.worker != worker || Chance(0.2)) continue;
        v1::HeldLease* held = r.add_leases();
        held->set_step(job.steps[step]);
        *held->mutable_key() = Key(key);
        held->set_lease_token(item.token);
        if (Chance(0.3)) {
          held->set_cursor(absl::StrCat("row ", Uniform(0, 1000000)));
          cursors[{step, key}] = held->cursor();
        }
        presented.insert({step, key});
      }
    }
    std::vector<StaleLease> lost;
    if (!job.stale.empty() && Chance(0.3)) {
      const StaleLease stale = PickFrom(job.stale);
      if (!presented.count({stale.step, stale.key})) {
        v1::HeldLease* held = r.add_leases();
        held->set_step(job.steps[stale.step]);
        *held->mutable_key() = Key(stale.key);
        held->set_lease_token(stale.token);
        held->set_cursor("never saved");
        lost.push_back(stale);
      }
    }
    auto out = h_.Call(&Engine::Heartbeat, r);
    CKPT_ASSERT_OK(out);
    EXPECT_EQ(out->control(), job.paused ? v1::CONTROL_WORD_PAUSE : v1::CONTROL_WORD_RUN);
    ASSERT_EQ(out->lost_size(), static_cast<int>(lost.size())) << out->ShortDebugString();
    for (size_t i = 0; i < lost.size(); ++i) {
      EXPECT_EQ(keys::EncodeItemKey(out->lost(i).key()), lost[i].key);
      EXPECT_EQ(out->lost(i).lease_token(), lost[i].token);
    }
    // Every lease of the worker is extended, presented or not.
    job.workers[worker].last_heartbeat = Now();
    for (int step = 0; step < static_cast<int>(job.steps.size()); ++step) {
      for (auto& [key, item] : job.items[step]) {
        if (item.state != State::kLeased || item.worker != worker) continue;
        item.deadline = Now() + job.lease_timeout;
        auto cursor = cursors.find({step, key});
        if (cursor != cursors.end()) item.cursor = cursor->second;
      }
    }
    ++stats_["heartbeat"];
  }

  void AdvanceAndExpire() {
    h_.clock().Advance(absl::Seconds(Uniform(1, 15)));
    CKPT_ASSERT_OK(h_.Expire());
    for (JobModel& job : jobs_) {
      for (int step = 0; step < static_cast<int>(job.steps.size()); ++step) {
        for (auto& [key, item] : job.items[step]) {
          if (item.state != State::kLeased || item.deadline > Now()) continue;
          item.attempts += 1;
          const bool retry = item.attempts < job.max_attempts;
          item.done_by = item.worker;
          EndLease(job, step, key, item);
          item.state = retry ? State::kPending : State::kFailed;
          item.retry = retry;
          ++stats_["expired"];
        }
      }
    }
    ++stats_["advance"];
  }

  void Unregister(JobModel& job) {
    const int slot = static_cast<int>(Uniform(0, kSlots - 1));
    const std::string worker = job.slots[slot];
    v1::UnregisterWorkerRequest r;
    r.set_job_id(job.id);
    r.set_worker_id(worker);
    auto out = h_.Call(&Engine::UnregisterWorker, r);
    CKPT_ASSERT_OK(out);
    uint64_t released = 0;
    for (int step = 0; step < static_cast<int>(job.steps.size()); ++step) {
      for (auto& [key, item] : job.items[step]) {
        if (item.state != State::kLeased || item.worker != worker) continue;
        // Released without counting an attempt, keeping who failed it last; an item
        // with no attempt to spare goes back to FAILED.
        const bool retry = item.attempts < job.max_attempts;
        EndLease(job, step, key, item);
        item.state = retry ? State::kPending : State::kFailed;
        item.retry = retry;
        ++released;
      }
    }
    EXPECT_EQ(out->released(), released);
    job.workers[worker].exited = true;
    if (Chance(0.5)) {
      v1::LeaseItemsRequest lease;
      lease.set_job_id(job.id);
      lease.set_worker_id(worker);
      lease.set_max_items(1);
      EXPECT_THAT(h_.Call(&Engine::LeaseItems, lease),
                  StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("unregistered")));
    }
    Register(job, slot);
    ++stats_["unregister"];
  }

  void ResetItems(JobModel& job) {
    static constexpr State kStates[] = {State::kFailed, State::kLeased, State::kCompleted};
    const State state = kStates[Uniform(0, 2)];
    const int only = static_cast<int>(Uniform(0, job.steps.size())) - 1;  // -1: every step
    v1::ResetItemsRequest r;
    r.set_job_id(job.id);
    if (only >= 0) r.set_step(job.steps[only]);
    r.set_state(ToProto(state));
    r.set_dry_run(Chance(0.3));
    uint64_t matched = 0;
    for (int step = 0; step < static_cast<int>(job.steps.size()); ++step) {
      if (only >= 0 && step != only) continue;
      for (auto& [key, item] : job.items[step]) {
        if (item.state != state) continue;
        ++matched;
        if (r.dry_run()) continue;
        if (item.state == State::kLeased) EndLease(job, step, key, item);
        item = ItemModel();
      }
    }
    auto out = h_.Call(&Engine::ResetItems, r);
    CKPT_ASSERT_OK(out);
    EXPECT_EQ(out->matched(), matched) << r.ShortDebugString();
    ++stats_[r.dry_run() ? "reset dry run" : "reset"];
  }

  void PauseOrResume(JobModel& job) {
    // Paused about a quarter of the time; a repeat of either call is a no-op.
    const bool pause = job.paused ? Chance(0.15) : Chance(0.4);
    v1::Job answer;
    if (pause) {
      v1::PauseJobRequest r;
      r.set_job_id(job.id);
      auto out = h_.Call(&Engine::PauseJob, r);
      CKPT_ASSERT_OK(out);
      answer = out->job();
    } else {
      v1::ResumeJobRequest r;
      r.set_job_id(job.id);
      auto out = h_.Call(&Engine::ResumeJob, r);
      CKPT_ASSERT_OK(out);
      answer = out->job();
    }
    job.paused = pause;
    EXPECT_EQ(answer.status(), pause ? v1::JOB_STATUS_PAUSED : v1::JOB_STATUS_RUNNING);
    ++stats_[pause ? "pause" : "resume"];
  }

  void Reopen() {
    h_.Reopen();
    // A restart gives every lease a full timeout of grace and every worker a fresh start.
    for (JobModel& job : jobs_) {
      for (auto& step : job.items) {
        for (auto& [key, item] : step) {
          if (item.state == State::kLeased) item.deadline = Now() + job.lease_timeout;
        }
      }
      for (auto& [id, worker] : job.workers) worker.last_heartbeat = Now();
    }
    ++stats_["reopen"];
  }

  // ---- checks ----

  // The O(1) counters against the model.
  void CheckCounts(const JobModel& job) {
    v1::GetJobRequest r;
    r.set_job_id(job.id);
    auto out = h_.Read(&Engine::GetJob, r);
    CKPT_ASSERT_OK(out);
    const v1::Job& j = out->job();
    EXPECT_EQ(j.status(), job.paused ? v1::JOB_STATUS_PAUSED : v1::JOB_STATUS_RUNNING);
    ASSERT_EQ(j.step_progress_size(), static_cast<int>(job.steps.size()));
    uint64_t total = 0;
    for (int step = 0; step < j.step_progress_size(); ++step) {
      uint64_t counts[4] = {0, 0, 0, 0};
      for (const auto& [key, item] : job.items[step]) ++counts[static_cast<int>(item.state)];
      const v1::Progress& p = j.step_progress(step).progress();
      const auto where = [&]() { return absl::StrCat(job.id, "/", job.steps[step]); };
      EXPECT_EQ(p.total(), job.items[step].size()) << where();
      EXPECT_EQ(p.pending(), counts[static_cast<int>(State::kPending)]) << where();
      EXPECT_EQ(p.leased(), counts[static_cast<int>(State::kLeased)]) << where();
      EXPECT_EQ(p.completed(), counts[static_cast<int>(State::kCompleted)]) << where();
      EXPECT_EQ(p.failed(), counts[static_cast<int>(State::kFailed)]) << where();
      EXPECT_EQ(p.total(), p.pending() + p.leased() + p.completed() + p.failed()) << where();
      total += p.total();
    }
    EXPECT_EQ(j.progress().total(), total);
  }

  // Every item, as listed, against the model; no item listed in two states.
  void CheckItems(const JobModel& job) {
    for (int step = 0; step < static_cast<int>(job.steps.size()); ++step) {
      const std::string where = absl::StrCat(job.id, "/", job.steps[step]);
      const auto listed =
          testutil::ListAll(h_, job.id, job.steps[step], v1::ITEM_STATE_UNSPECIFIED, 100);
      ASSERT_EQ(listed.size(), job.items[step].size()) << where;
      auto model = job.items[step].begin();
      for (const v1::Item& item : listed) {
        ASSERT_EQ(keys::EncodeItemKey(item.key()), model->first) << where;
        const ItemModel& m = model->second;
        EXPECT_EQ(item.state(), ToProto(m.state)) << where << " " << item.ShortDebugString();
        EXPECT_EQ(item.attempts(), m.attempts) << where << " " << item.ShortDebugString();
        EXPECT_EQ(item.cursor(), m.cursor) << where << " " << item.ShortDebugString();
        EXPECT_EQ(item.lease_token(), m.state == State::kLeased ? m.token : 0)
            << where << " " << item.ShortDebugString();
        EXPECT_EQ(item.worker_id(), m.state == State::kLeased ? m.worker : m.done_by)
            << where << " " << item.ShortDebugString();
        ++model;
      }
      std::set<std::string> seen;
      uint64_t by_state = 0;
      for (v1::ItemState state : {v1::ITEM_STATE_PENDING, v1::ITEM_STATE_LEASED,
                                  v1::ITEM_STATE_COMPLETED, v1::ITEM_STATE_FAILED}) {
        for (const v1::Item& item : testutil::ListAll(h_, job.id, job.steps[step], state, 100)) {
          EXPECT_TRUE(seen.insert(keys::EncodeItemKey(item.key())).second)
              << where << ": listed in two states: " << item.ShortDebugString();
          ++by_state;
        }
      }
      EXPECT_EQ(by_state, job.items[step].size()) << where;
      std::set<std::string> completed;
      for (const auto& [key, item] : job.items[step]) {
        if (item.state == State::kCompleted) completed.insert(key);
      }
      testutil::ExpectCompletionIndexIs(h_, job.id, job.steps[step], completed);
    }
    // Error groups (job-wide, kept incrementally) agree with the failed items' errors.
    std::map<std::string, uint64_t> errors;
    for (const std::string& step : job.steps) {
      for (const v1::Item& item : testutil::ListAll(h_, job.id, step, v1::ITEM_STATE_FAILED, 100)) {
        ++errors[item.last_error().message()];
      }
    }
    v1::ListItemsRequest groups;
    groups.set_job_id(job.id);
    groups.set_state(v1::ITEM_STATE_FAILED);
    groups.set_limit(1);
    groups.set_error_groups(100);
    auto out = h_.Read(&Engine::ListItems, groups);
    CKPT_ASSERT_OK(out);
    EXPECT_EQ(out->error_groups_size(), static_cast<int>(std::min<size_t>(errors.size(), 100)));
    for (const v1::ErrorGroup& group : out->error_groups()) {
      EXPECT_EQ(group.count(), errors[group.message()]) << group.message();
    }
  }

  void CheckWorkers(const JobModel& job) {
    v1::ListWorkersRequest r;
    r.set_job_id(job.id);
    r.set_include_exited(true);
    auto out = h_.Call(&Engine::ListWorkers, r);
    CKPT_ASSERT_OK(out);
    ASSERT_EQ(out->workers_size(), static_cast<int>(job.workers.size()));
    for (const v1::Worker& worker : out->workers()) {
      auto it = job.workers.find(worker.worker_id());
      ASSERT_NE(it, job.workers.end()) << worker.worker_id();
      const WorkerModel& m = it->second;
      const v1::WorkerState state = m.exited                        ? v1::WORKER_STATE_EXITED
                                    : Lost(job, worker.worker_id()) ? v1::WORKER_STATE_LOST
                                                                    : v1::WORKER_STATE_ACTIVE;
      EXPECT_EQ(worker.state(), state) << worker.ShortDebugString();
      EXPECT_EQ(worker.completed(), m.completed) << worker.ShortDebugString();
      EXPECT_EQ(worker.failed(), m.failed) << worker.ShortDebugString();
      std::multiset<std::string> held;
      for (const auto& key : worker.current_items()) held.insert(keys::EncodeItemKey(key));
      std::multiset<std::string> expected;
      for (const auto& step : job.items) {
        for (const auto& [key, item] : step) {
          if (item.state == State::kLeased && item.worker == worker.worker_id()) {
            expected.insert(key);
          }
        }
      }
      EXPECT_EQ(held, expected) << worker.ShortDebugString();
    }
  }

  void CheckEverything() {
    for (const JobModel& job : jobs_) {
      SCOPED_TRACE(job.id);
      CheckCounts(job);
      testutil::ExpectCountersMatchRecount(h_, job.id);
      CheckItems(job);
      CheckWorkers(job);
    }
  }

  void RunOne() {
    JobModel& job = jobs_[Uniform(0, 1)];
    const int step = static_cast<int>(Uniform(0, job.steps.size() - 1));
    const uint64_t roll = Uniform(0, 999);
    // Weights per thousand.
    if (roll < 140) {
      AddItems(job, step);
    } else if (roll < 330) {
      LeaseItems(job, step);
    } else if (roll < 480) {
      if (LeaseNextMode() && Chance(0.6)) {
        CompleteAndLeaseNext(job, step);
      } else {
        CompleteLeased(job, step);
      }
    } else if (roll < 560) {
      CompleteRecorded(job, step);
    } else if (roll < 650) {
      FailLeased(job, step);
    } else if (roll < 700) {
      FailRecorded(job, step);
    } else if (roll < 760) {
      StaleWrite(job);
    } else if (roll < 860) {
      Heartbeat(job);
    } else if (roll < 900) {
      AdvanceAndExpire();
      for (const JobModel& j : jobs_) CheckCounts(j);  // expiry touches both jobs
      return;
    } else if (roll < 920) {
      Unregister(job);
    } else if (roll < 950) {
      ResetItems(job);
    } else if (roll < 975) {
      PauseOrResume(job);
    } else if (roll < 997) {
      CheckWorkers(job);
    } else {
      Reopen();
      for (const JobModel& j : jobs_) CheckCounts(j);
      return;
    }
    CheckCounts(job);  // the other job is untouched
  }

  EngineHarness h_{std::get<1>(GetParam())};
  std::mt19937_64 rng_;
  JobModel jobs_[2];
  uint64_t max_token_ = 0;
  std::map<std::string, int> stats_;
};

TEST_P(EngineRandomTest, ThreeThousandOpsMatchTheModel) {
  for (int op = 1; op <= kOps; ++op) {
    SCOPED_TRACE(absl::StrCat("seed ", Seed(), " op ", op));
    RunOne();
    if (op % kCheckEvery == 0 || op == kOps) {
      CheckEverything();
      Reopen();
      CheckEverything();
    }
    if (HasFailure()) break;
  }
  std::string summary;
  for (const auto& [name, count] : stats_) absl::StrAppend(&summary, name, "=", count, " ");
  uint64_t items = 0;
  for (const JobModel& job : jobs_) {
    for (const auto& step : job.items) items += step.size();
  }
  std::cout << "seed " << Seed() << ": " << items << " items; " << summary << std::endl;
}

std::string SeedName(const ::testing::TestParamInfo<EngineRandomTest::ParamType>& info) {
  return absl::StrCat(testutil::StoreKindName(std::get<1>(info.param)), "_",
                      std::get<0>(info.param), std::get<2>(info.param) ? "_lease_next" : "");
}

INSTANTIATE_TEST_SUITE_P(
    Seeds, EngineRandomTest,
    ::testing::Combine(::testing::Values(uint64_t{20251214}, uint64_t{42}, uint64_t{7777}),
                       ::testing::ValuesIn(testutil::AllStoreKinds()), ::testing::Values(false)),
    SeedName);

INSTANTIATE_TEST_SUITE_P(LeaseNextSeeds, EngineRandomTest,
                         ::testing::Combine(::testing::Values(uint64_t{8}, uint64_t{20261205}),
                                            ::testing::ValuesIn(testutil::AllStoreKinds()),
                                            ::testing::Values(true)),
                         SeedName);

}  // namespace
}  // namespace ckpt
