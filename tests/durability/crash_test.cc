// "Nothing acknowledged is lost", shown the way RocksDB's and etcd's crash tests show it:
// inject the fault, log what clients were told, check the result against that log.
//
// ckptd runs as a child process. Eight writer threads lease items and complete them with
// results, logging every completion ckptd acknowledged (and every one it refused). When
// the number of acknowledged completions reaches a seeded random count, the writer that
// got there SIGKILLs ckptd, while the others' calls are in flight; then ckptd restarts on
// the same data dir. After every restart:
//   - every acknowledged completion is there, COMPLETED, with its exact result;
//   - every COMPLETED item carries a result some writer sent, never one ckptd refused;
//   - every item is in exactly one state (none both finished and pending);
//   - GetJob's counters equal a recount through ListItems.
// After the last round the job is sealed and the writers drain it to COMPLETED.
// The whole test runs with --sync=true and with --sync=false: a process crash loses
// nothing either way (only a power failure can cost --sync=false its last writes).
//
// Flags, after gtest's: --rounds=N (default 4; //tests/durability:crash_long_test runs 50)
// and --seed=N (default 20251214; printed, so a failing round can be replayed).
#include <signal.h>
#include <sys/wait.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "ckpt/v1/checkpoint.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/durability/ckptd_process.h"
#include "tests/durability/wire.h"
#include "tests/testing/temp_dir.h"

namespace ckpt {
namespace {

using ::ckpt::testutil::CkptdProcess;
using ::testing::IsEmpty;
using Stub = v1::Checkpoint::Stub;

int g_rounds = 4;
uint64_t g_seed = 20251214;

constexpr int kWriters = 8;
constexpr uint64_t kItemsPerRound = 256;
constexpr uint64_t kMaxKillAt = 200;  // acknowledged completions in a round, at most
constexpr char kJob[] = "crash";

// The result a writer sends for `index` under lease `token`: unique per grant, with NUL
// and high bytes, so a stored result that compares equal was stored byte for byte, and
// its token says which grant wrote it.
std::string Payload(uint64_t index, uint64_t token) {
  std::string payload = absl::StrCat("i=", index, " t=", token, ";");
  std::mt19937_64 bytes(index * 1000003 + token);
  const size_t size = 16 + bytes() % 240;
  while (payload.size() < size) payload.push_back(static_cast<char>(bytes()));
  return payload;
}

std::string OutputPath(uint64_t index, uint64_t token) {
  return absl::StrCat("/out/", index, "/", token, ".parquet");
}

// The token a payload names, or 0 if it is not one of Payload()'s.
uint64_t TokenOf(const std::string& payload) {
  const size_t t = payload.find(" t=");
  const size_t end = payload.find(';');
  uint64_t token = 0;
  if (t == std::string::npos || end == std::string::npos || end < t) return 0;
  if (!absl::SimpleAtoi(payload.substr(t + 3, end - t - 3), &token)) return 0;
  return token;
}

// What the writers were told. Thread-safe.
class Ledger {
 public:
  void Sent(uint64_t index, uint64_t token) {
    absl::MutexLock lock(&mu_);
    sent_.insert({index, token});
  }
  void Acked(uint64_t index, uint64_t token) {
    absl::MutexLock lock(&mu_);
    acked_[index] = token;
  }
  void Refused(uint64_t index, uint64_t token) {
    absl::MutexLock lock(&mu_);
    refused_.insert({index, token});
  }
  void Error(std::string error) {
    absl::MutexLock lock(&mu_);
    errors_.push_back(std::move(error));
  }
  std::map<uint64_t, uint64_t> acked() const {
    absl::MutexLock lock(&mu_);
    return acked_;
  }
  bool WasSent(uint64_t index, uint64_t token) const {
    absl::MutexLock lock(&mu_);
    return sent_.count({index, token}) > 0;
  }
  bool WasRefused(uint64_t index, uint64_t token) const {
    absl::MutexLock lock(&mu_);
    return refused_.count({index, token}) > 0;
  }
  std::vector<std::string> errors() const {
    absl::MutexLock lock(&mu_);
    return errors_;
  }

 private:
  mutable absl::Mutex mu_;
  std::set<std::pair<uint64_t, uint64_t>> sent_ ABSL_GUARDED_BY(mu_);
  std::map<uint64_t, uint64_t> acked_ ABSL_GUARDED_BY(mu_);  // index -> token
  std::set<std::pair<uint64_t, uint64_t>> refused_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> errors_ ABSL_GUARDED_BY(mu_);
};

// One round's shared state between the writers.
struct Round {
  CkptdProcess* server = nullptr;
  uint64_t kill_at = 0;  // 0: never kill (the final drain)
  std::atomic<uint64_t> acks{0};
  std::atomic<bool> killed{false};
  std::atomic<bool> stop{false};  // a writer failed: everyone stops
};

// A writer: lease 1..8 items, complete them with Payload(), log the answers; until ckptd
// is killed (any failed call after that is an unknown outcome, logged as nothing), or,
// without a kill, until the job is finished.
void Write(int writer, Round& round, Ledger& ledger, std::string& worker_id, uint64_t seed) {
  std::unique_ptr<Stub> stub = round.server->NewStub();
  std::mt19937_64 rng(seed);
  const absl::Time give_up = absl::Now() + absl::Minutes(3);  // a bound for a hang
  auto fail = [&](const std::string& what) {
    ledger.Error(absl::StrCat("writer ", writer, ": ", what));
    round.stop = true;
  };
  while (!round.killed && !round.stop) {
    if (absl::Now() > give_up) return fail("no end after 3 minutes");
    v1::LeaseItemsRequest lease;
    lease.set_job_id(kJob);
    lease.set_worker_id(worker_id);
    lease.set_max_items(1 + rng() % 8);
    auto leased = testutil::WireCall(*stub, &Stub::LeaseItems, lease);
    if (!leased.ok()) {
      if (round.killed) return;
      if (leased.status().code() == absl::StatusCode::kFailedPrecondition &&
          absl::StrContains(leased.status().message(), "register again")) {
        // Silent past the lease timeout (e.g. across a restart): a new id.
        auto registered = testutil::RegisterWorker(*stub, kJob);
        if (!registered.ok()) return fail(registered.status().ToString());
        worker_id = *registered;
        continue;
      }
      return fail(absl::StrCat("LeaseItems: ", leased.status().ToString()));
    }
    if (leased->leases().empty()) {
      const auto shortfall = leased->shortfall();
      if (shortfall == v1::LEASE_SHORTFALL_JOB_FINISHED) return;
      if (shortfall != v1::LEASE_SHORTFALL_NONE_PENDING) {
        return fail(absl::StrCat("shortfall ", v1::LeaseShortfall_Name(shortfall)));
      }
      // Others hold the rest, or leases lost in a crash have yet to expire: back off.
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
      continue;
    }
    v1::CompleteItemsRequest complete;
    complete.set_job_id(kJob);
    complete.set_worker_id(worker_id);
    complete.set_skip_lost_leases(rng() % 2 == 0);
    for (const v1::Lease& l : leased->leases()) {
      const uint64_t index = l.key().index(), token = l.lease_token();
      v1::Completion* c = complete.add_items();
      *c->mutable_key() = l.key();
      c->set_lease_token(token);
      c->mutable_result()->set_payload(Payload(index, token));
      c->mutable_result()->add_output_paths(OutputPath(index, token));
      ledger.Sent(index, token);
    }
    auto done = testutil::WireCall(*stub, &Stub::CompleteItems, complete);
    if (!done.ok()) {
      if (round.killed) return;  // unknown outcome: the call may or may not have applied
      if (done.status().code() == absl::StatusCode::kFailedPrecondition) {
        // A lease expired (all or nothing: none applied).
        for (const auto& c : complete.items()) ledger.Refused(c.key().index(), c.lease_token());
        continue;
      }
      return fail(absl::StrCat("CompleteItems: ", done.status().ToString()));
    }
    uint64_t acks = 0;
    for (int i = 0; i < done->outcomes_size(); ++i) {
      const auto& c = complete.items(i);
      switch (done->outcomes(i)) {
        case v1::COMPLETION_OUTCOME_COMPLETED:
          ledger.Acked(c.key().index(), c.lease_token());
          ++acks;
          break;
        case v1::COMPLETION_OUTCOME_LEASE_LOST:
          ledger.Refused(c.key().index(), c.lease_token());
          break;
        default:
          return fail(absl::StrCat("outcome ", v1::CompletionOutcome_Name(done->outcomes(i)),
                                   " for index ", c.key().index()));
      }
    }
    const uint64_t before = round.acks.fetch_add(acks);
    if (round.kill_at > 0 && before < round.kill_at && before + acks >= round.kill_at) {
      round.killed = true;
      round.server->Kill();  // mid-flight for the other seven
    }
  }
}

class CrashTest : public ::testing::TestWithParam<bool> {
 protected:
  std::vector<std::string> Flags() const { return {GetParam() ? "--sync=true" : "--sync=false"}; }

  // The checks listed at the top, against the ckptd at `server`.
  void Verify(CkptdProcess& server, const Ledger& ledger, uint64_t registered) {
    std::unique_ptr<Stub> stub = server.NewStub();
    auto job = testutil::GetJob(*stub, kJob);
    ASSERT_TRUE(job.ok()) << job.status();
    const v1::Progress& p = job->progress();
    EXPECT_EQ(p.total(), registered);
    EXPECT_EQ(p.pending() + p.leased() + p.completed() + p.failed(), p.total());
    EXPECT_EQ(p.failed(), 0u);

    auto all = testutil::ListAll(*stub, kJob, v1::ITEM_STATE_UNSPECIFIED, /*keys_only=*/false);
    ASSERT_TRUE(all.ok()) << all.status();
    std::map<uint64_t, v1::Item> items;
    for (const v1::Item& item : *all) {
      EXPECT_TRUE(items.emplace(item.key().index(), item).second)
          << "listed twice: " << item.key().index();
    }
    ASSERT_EQ(items.size(), registered);
    EXPECT_EQ(items.rbegin()->first, registered - 1);

    // One state per item: the lists by state are disjoint, cover every item, and have
    // the sizes GetJob counts.
    std::map<uint64_t, v1::ItemState> state_of;
    const std::map<v1::ItemState, uint64_t> counted = {{v1::ITEM_STATE_PENDING, p.pending()},
                                                       {v1::ITEM_STATE_LEASED, p.leased()},
                                                       {v1::ITEM_STATE_COMPLETED, p.completed()},
                                                       {v1::ITEM_STATE_FAILED, p.failed()}};
    for (const auto& [state, count] : counted) {
      auto listed = testutil::ListAll(*stub, kJob, state, /*keys_only=*/true);
      ASSERT_TRUE(listed.ok()) << listed.status();
      EXPECT_EQ(listed->size(), count) << v1::ItemState_Name(state);
      for (const v1::Item& item : *listed) {
        const uint64_t index = item.key().index();
        EXPECT_TRUE(state_of.emplace(index, state).second)
            << "item " << index << " is both " << v1::ItemState_Name(state_of[index]) << " and "
            << v1::ItemState_Name(state);
        EXPECT_EQ(items[index].state(), state) << "item " << index;
      }
    }
    EXPECT_EQ(state_of.size(), registered);

    // Every acknowledged completion, exactly.
    const std::map<uint64_t, uint64_t> acked = ledger.acked();
    EXPECT_GE(p.completed(), acked.size());
    for (const auto& [index, token] : acked) {
      const v1::Item& item = items[index];
      ASSERT_EQ(item.state(), v1::ITEM_STATE_COMPLETED)
          << "acknowledged completion of item " << index << " (token " << token << ") is lost";
      EXPECT_EQ(item.result().payload(), Payload(index, token)) << "item " << index;
      ASSERT_EQ(item.result().output_paths_size(), 1) << "item " << index;
      EXPECT_EQ(item.result().output_paths(0), OutputPath(index, token));
    }
    // Every completed item was completed by a completion that was sent and not refused.
    for (const auto& [index, item] : items) {
      if (item.state() != v1::ITEM_STATE_COMPLETED) continue;
      const uint64_t token = TokenOf(item.result().payload());
      EXPECT_TRUE(ledger.WasSent(index, token)) << "item " << index << " has a result nobody sent";
      EXPECT_FALSE(ledger.WasRefused(index, token))
          << "item " << index << " holds the result of a refused completion (token " << token
          << ")";
      EXPECT_EQ(item.result().payload(), Payload(index, token)) << "item " << index;
    }
    // GetItem reads the same records by key.
    int checked = 0;
    for (auto it = acked.rbegin(); it != acked.rend() && checked < 50; ++it, ++checked) {
      auto item = testutil::GetItem(*stub, kJob, it->first);
      ASSERT_TRUE(item.ok()) << item.status();
      EXPECT_EQ(item->result().payload(), Payload(it->first, it->second));
    }
  }
};

TEST_P(CrashTest, AcknowledgedCompletionsSurviveSigkill) {
  const std::string dir = testutil::NewTempDir("crash");
  Ledger ledger;
  std::vector<std::string> workers(kWriters);
  std::mt19937_64 rng(g_seed + (GetParam() ? 0 : 1));
  uint64_t registered = 0;

  for (int round = 0; round <= g_rounds; ++round) {
    const bool drain = round == g_rounds;
    SCOPED_TRACE(absl::StrCat("round ", round, drain ? " (drain)" : "", ", seed ", g_seed));
    auto server = CkptdProcess::Start(dir, Flags());
    ASSERT_TRUE(server.ok()) << server.status();
    if (round > 0) {
      Verify(**server, ledger, registered);
      if (HasFatalFailure()) return;
    }
    std::unique_ptr<Stub> stub = (*server)->NewStub();
    if (round == 0) {
      v1::CreateJobRequest create;
      create.set_job_id(kJob);
      create.mutable_lease_timeout()->set_seconds(2);
      create.set_max_attempts(1000);
      ASSERT_TRUE(testutil::WireCall(*stub, &Stub::CreateJob, create).ok());
      for (std::string& worker : workers) {
        auto registered_worker = testutil::RegisterWorker(*stub, kJob);
        ASSERT_TRUE(registered_worker.ok()) << registered_worker.status();
        worker = *registered_worker;
      }
    }
    v1::AddItemsRequest add;
    add.set_job_id(kJob);
    if (!drain) {
      add.add_ranges()->set_begin(registered);
      add.mutable_ranges(0)->set_end(registered + kItemsPerRound);
    }
    add.set_seal(drain);
    auto added = testutil::WireCall(*stub, &Stub::AddItems, add);
    ASSERT_TRUE(added.ok()) << added.status();
    if (!drain) registered += kItemsPerRound;

    Round r;
    r.server = server->get();
    r.kill_at = drain ? 0 : 1 + rng() % kMaxKillAt;
    std::cerr << "round " << round << ": "
              << (drain ? std::string("drain") : absl::StrCat("kill at ack ", r.kill_at)) << "\n";
    std::vector<std::thread> threads;
    for (int t = 0; t < kWriters; ++t) {
      threads.emplace_back(Write, t, std::ref(r), std::ref(ledger), std::ref(workers[t]),
                           g_seed * 1000 + round * kWriters + t);
    }
    for (std::thread& thread : threads) thread.join();
    ASSERT_THAT(ledger.errors(), IsEmpty());
    if (drain) {
      auto job = testutil::GetJob(*stub, kJob);
      ASSERT_TRUE(job.ok()) << job.status();
      EXPECT_EQ(job->status(), v1::JOB_STATUS_COMPLETED);
      EXPECT_EQ(job->progress().completed(), registered);
      Verify(**server, ledger, registered);
      const int status = (*server)->Stop();
      EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
    } else {
      ASSERT_TRUE(r.killed) << "the writers stopped before the kill";
      const int status = (*server)->Wait();
      ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << status;
    }
  }
  // After the drain, a last restart: the finished job is as it was.
  auto server = CkptdProcess::Start(dir, Flags());
  ASSERT_TRUE(server.ok()) << server.status();
  Verify(**server, ledger, registered);
  std::cerr << g_rounds << " SIGKILLs survived; " << ledger.acked().size()
            << " acknowledged completions of " << registered << " items checked after each\n";
}

INSTANTIATE_TEST_SUITE_P(Sync, CrashTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? "SyncTrue" : "SyncFalse";
                         });

}  // namespace
}  // namespace ckpt

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  for (int i = 1; i < argc; ++i) {
    const absl::string_view arg = argv[i];
    if (absl::StartsWith(arg, "--rounds=")) {
      if (!absl::SimpleAtoi(arg.substr(9), &ckpt::g_rounds)) return 2;
    } else if (absl::StartsWith(arg, "--seed=")) {
      if (!absl::SimpleAtoi(arg.substr(7), &ckpt::g_seed)) return 2;
    }
  }
  std::cerr << "crash test: " << ckpt::g_rounds << " rounds, seed " << ckpt::g_seed << "\n";
  return RUN_ALL_TESTS();
}
