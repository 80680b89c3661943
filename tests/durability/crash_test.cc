// "Nothing acknowledged is lost", shown the way RocksDB's and etcd's crash tests show it:
// inject the fault, log what clients were told, check the result against that log.
//
// ckptd runs as a child process under the load of crash_load.h: eight writers lease and
// complete items, logging what ckptd acknowledged and refused. When the acknowledged
// completions reach a seeded random count, the writer that got there SIGKILLs ckptd,
// while the others' calls are in flight; then ckptd restarts on the same store, and
// crash_load.h's Verify checks everything against the log. After the last round the job
// is sealed and the writers drain it to COMPLETED.
// The whole test runs on RocksDB with --sync=true and with --sync=false (a process
// crash loses nothing either way; only a power failure can cost --sync=false its last
// writes), and on PostgreSQL (a schema of the test's own cluster), where the restarted
// ckptd takes the store over from the killed one at once.
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
#include "tests/durability/crash_load.h"
#include "tests/durability/wire.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/test_stores.h"

namespace ckpt {
namespace {

using ::ckpt::testutil::CkptdProcess;
using ::ckpt::testutil::kWriters;
using ::ckpt::testutil::Ledger;
using ::ckpt::testutil::Round;
using ::ckpt::testutil::Verify;
using ::testing::IsEmpty;
using Stub = v1::Checkpoint::Stub;

int g_rounds = 4;
uint64_t g_seed = 20251214;

constexpr uint64_t kItemsPerRound = 256;
constexpr uint64_t kMaxKillAt = 200;  // acknowledged completions in a round, at most
constexpr const char* kJob = testutil::kCrashJob;

// A store and how ckptd runs on it.
struct CrashCase {
  const char* name;
  testutil::StoreKind store;
  std::vector<std::string> flags;
  uint64_t seed_offset;  // each case its own seeded sequence
};

class CrashTest : public ::testing::TestWithParam<CrashCase> {
 protected:
  const std::vector<std::string>& Flags() const { return GetParam().flags; }
};

TEST_P(CrashTest, AcknowledgedCompletionsSurviveSigkill) {
  const std::string dir = testutil::StoreLocation::New(GetParam().store).address();
  Ledger ledger;
  std::vector<std::string> workers(kWriters);
  std::mt19937_64 rng(g_seed + GetParam().seed_offset);
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
    auto connected = (*server)->NewConnectedStub();
    ASSERT_TRUE(connected.ok()) << connected.status();
    std::unique_ptr<Stub> stub = *std::move(connected);
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
      threads.emplace_back(testutil::Write, t, std::ref(r), std::ref(ledger), std::ref(workers[t]),
                           g_seed * 1000 + round * kWriters + t);
    }
    for (std::thread& thread : threads) thread.join();
    // ckptd's own account goes with a writer's failure: a refused or failed call may be
    // ckptd's doing (an exit, a stopped listener) rather than the client's.
    ASSERT_THAT(ledger.errors(), IsEmpty()) << "ckptd's stderr:\n" << (*server)->Stderr();
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

INSTANTIATE_TEST_SUITE_P(
    Stores, CrashTest,
    ::testing::Values(
        CrashCase{"RocksDbSyncTrue", testutil::StoreKind::kRocksDb, {"--sync=true"}, 0},
        CrashCase{"RocksDbSyncFalse", testutil::StoreKind::kRocksDb, {"--sync=false"}, 1},
        CrashCase{"Postgres", testutil::StoreKind::kPostgres, {}, 2}),
    [](const ::testing::TestParamInfo<CrashCase>& info) { return info.param.name; });

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
