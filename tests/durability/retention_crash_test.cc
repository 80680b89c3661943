// A ckptd killed with SIGKILL while its retention sweep deletes jobs leaves each job
// either whole or entirely gone: a job's deletion is one write (DeleteJob's), so the
// store holds no part of a job without the rest. Every deletion ckptd logged is gone
// for good, and after a restart the sweep deletes the rest. With the sweep off (a
// restored backup, looked at first), expired jobs stay until deleted by hand.
#include <signal.h>
#include <sys/wait.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "ckpt/v1/checkpoint.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/common/proto_time.h"
#include "service/store/keys.h"
#include "service/store/store.h"
#include "tests/durability/ckptd_process.h"
#include "tests/durability/wire.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/test_stores.h"

namespace ckpt {
namespace {

using ::ckpt::testutil::CkptdProcess;
using Stub = v1::Checkpoint::Stub;

constexpr int kExpiring = 48;  // six groups of the sweep
constexpr int kKept = 2;
constexpr char kDeletedLine[] = "retention: deleted job \"";
// A bound on waiting for ckptd's log (never reached unless something is broken).
constexpr absl::Duration kLogWait = absl::Seconds(60);

std::string Expiring(int i) { return absl::StrCat("expiring-", i); }
std::string Kept(int i) { return absl::StrCat("kept-", i); }

// A job with records in every per-job family: items (a completed run, a failed item),
// a lease grant, a worker, a state blob, log entries, an error group. `retention`: ""
// for ckptd's default, else the seconds to keep it.
void MakeJob(Stub& stub, const std::string& id, const std::string& retention) {
  v1::CreateJobRequest create;
  create.set_job_id(id);
  if (!retention.empty()) create.mutable_retention()->set_seconds(std::stoll(retention));
  ASSERT_TRUE(testutil::WireCall(stub, &Stub::CreateJob, create).ok());
  v1::AddItemsRequest add;
  add.set_job_id(id);
  add.add_ranges()->set_end(20);
  ASSERT_TRUE(testutil::WireCall(stub, &Stub::AddItems, add).ok());
  auto worker = testutil::RegisterWorker(stub, id);
  ASSERT_TRUE(worker.ok()) << worker.status();
  v1::LeaseItemsRequest lease;
  lease.set_job_id(id);
  lease.set_worker_id(*worker);
  lease.set_max_items(6);
  auto leased = testutil::WireCall(stub, &Stub::LeaseItems, lease);
  ASSERT_TRUE(leased.ok()) << leased.status();
  v1::CompleteItemsRequest complete;
  complete.set_job_id(id);
  complete.set_worker_id(*worker);
  for (int i = 0; i < 5; ++i) {  // the sixth stays leased
    v1::Completion* c = complete.add_items();
    *c->mutable_key() = leased->leases(i).key();
    c->set_lease_token(leased->leases(i).lease_token());
    c->mutable_result()->add_output_paths(absl::StrCat("/out/", id, "/", i));
    c->add_logs()->set_message("done");
  }
  ASSERT_TRUE(testutil::WireCall(stub, &Stub::CompleteItems, complete).ok());
  v1::FailItemsRequest fail;
  fail.set_job_id(id);
  v1::Failure* f = fail.add_items();
  f->mutable_key()->set_index(19);
  f->mutable_error()->set_message("corrupt");
  ASSERT_TRUE(testutil::WireCall(stub, &Stub::FailItems, fail).ok());
  v1::PutStateRequest put;
  put.set_job_id(id);
  put.set_name("cursor");
  put.set_value("41");
  ASSERT_TRUE(testutil::WireCall(stub, &Stub::PutState, put).ok());
}

void StopJob(Stub& stub, const std::string& id) {
  v1::StopJobRequest stop;
  stop.set_job_id(id);
  ASSERT_TRUE(testutil::WireCall(stub, &Stub::StopJob, stop).ok());
}

// The job's keys in each per-job family, and its record (family "jobs").
std::map<std::string, int> StoredKeys(const Store& store, const std::string& id) {
  std::map<std::string, int> keys;
  auto record = store.Get(Cf::kJobs, id);
  EXPECT_TRUE(record.ok()) << record.status();
  if (record.ok() && record->has_value()) keys["jobs"] = 1;
  const std::pair<Cf, const char*> families[] = {
      {Cf::kItems, "items"},   {Cf::kSched, "sched"}, {Cf::kWorkers, "workers"},
      {Cf::kStates, "states"}, {Cf::kLogs, "logs"},   {Cf::kCompletions, "completions"}};
  for (const auto& [cf, name] : families) {
    auto it = store.Scan(cf, keys::JobPrefix(id));
    for (; it->Valid(); it->Next()) ++keys[name];
    EXPECT_TRUE(it->status().ok()) << it->status();
  }
  return keys;
}

// The jobs whose deletion ckptd logged.
std::vector<std::string> LoggedDeletions(const std::string& log) {
  std::vector<std::string> ids;
  for (absl::string_view line : absl::StrSplit(log, '\n')) {
    const size_t at = line.find(kDeletedLine);
    if (at == absl::string_view::npos) continue;
    line.remove_prefix(at + sizeof(kDeletedLine) - 1);
    ids.emplace_back(line.substr(0, line.find('"')));
  }
  return ids;
}

class RetentionCrashTest : public ::testing::TestWithParam<testutil::StoreKind> {};

TEST_P(RetentionCrashTest, AJobIsWholeOrGoneAfterASigkillMidSweep) {
  const testutil::StoreLocation location = testutil::StoreLocation::New(GetParam());
  const std::vector<std::string> flags = {"--default_retention=2s",
                                          "--retention_sweep_interval=1s"};
  auto server = CkptdProcess::Start(location.address(), flags);
  ASSERT_TRUE(server.ok()) << server.status();
  {
    std::unique_ptr<Stub> stub = (*server)->NewStub();
    for (int i = 0; i < kKept; ++i) MakeJob(*stub, Kept(i), "0");
    for (int i = 0; i < kExpiring; ++i) MakeJob(*stub, Expiring(i), "");
    // Stopped together, they expire together: one sweep takes all its groups at once.
    for (int i = 0; i < kKept; ++i) StopJob(*stub, Kept(i));
    for (int i = 0; i < kExpiring; ++i) StopJob(*stub, Expiring(i));
  }
  if (HasFatalFailure()) return;
  // Killed once the sweep has logged a few deletions, with more (likely) still to go.
  ASSERT_TRUE((*server)->AwaitStderrLine(kDeletedLine, kLogWait, 3).ok()) << (*server)->Stderr();
  (*server)->Kill();
  const int status = (*server)->Wait();
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << status;
  const std::vector<std::string> logged = LoggedDeletions((*server)->Stderr());
  server->reset();

  int gone = 0;
  {
    auto store = location.Open();
    ASSERT_TRUE(store.ok()) << store.status();
    const std::map<std::string, int> whole = StoredKeys(**store, Kept(0));
    ASSERT_EQ(whole.size(), 7u) << "the reference job lacks a family";
    EXPECT_EQ(StoredKeys(**store, Kept(1)), whole);
    for (int i = 0; i < kExpiring; ++i) {
      const std::map<std::string, int> keys = StoredKeys(**store, Expiring(i));
      if (keys.empty()) {
        ++gone;
      } else {
        EXPECT_EQ(keys, whole) << Expiring(i) << " is neither whole nor gone";
      }
    }
    for (const std::string& id : logged) {
      EXPECT_TRUE(StoredKeys(**store, id).empty()) << id << " was logged deleted";
    }
  }
  EXPECT_GE(gone, static_cast<int>(logged.size()));
  std::cerr << logged.size() << " deletions logged, " << gone << " of " << kExpiring
            << " jobs gone at the SIGKILL\n";

  // Restarted, the sweep deletes the rest (each logged once), and keeps the others.
  auto again = CkptdProcess::Start(location.address(), flags);
  ASSERT_TRUE(again.ok()) << again.status();
  if (gone < kExpiring) {
    ASSERT_TRUE((*again)->AwaitStderrLine(kDeletedLine, kLogWait, kExpiring - gone).ok())
        << (*again)->Stderr();
  }
  std::unique_ptr<Stub> stub = (*again)->NewStub();
  v1::ListJobsRequest list;
  list.set_limit(1000);
  auto listed = testutil::WireCall(*stub, &Stub::ListJobs, list);
  ASSERT_TRUE(listed.ok()) << listed.status();
  std::vector<std::string> ids;
  for (const v1::Job& job : listed->jobs()) ids.push_back(job.job_id());
  EXPECT_THAT(ids, ::testing::UnorderedElementsAre(Kept(0), Kept(1)));
  const int stopped = (*again)->Stop();
  EXPECT_TRUE(WIFEXITED(stopped) && WEXITSTATUS(stopped) == 0) << stopped;
  EXPECT_EQ(LoggedDeletions((*again)->Stderr()).size(), static_cast<size_t>(kExpiring - gone));
}

// A store restored from an old backup may hold jobs whose retention ran out since it
// was taken: with --retention_sweep_interval=inf ckptd keeps them, for a look first,
// until they are deleted by hand.
TEST_P(RetentionCrashTest, WithTheSweepOffExpiredJobsStayUntilDeletedByHand) {
  const testutil::StoreLocation location = testutil::StoreLocation::New(GetParam());
  const std::vector<std::string> flags = {"--retention_sweep_interval=inf"};
  absl::Time expiry;
  {
    auto server = CkptdProcess::Start(location.address(), flags);
    ASSERT_TRUE(server.ok()) << server.status();
    std::unique_ptr<Stub> stub = (*server)->NewStub();
    MakeJob(*stub, "restored", "1");
    StopJob(*stub, "restored");
    auto stopped = testutil::GetJob(*stub, "restored");
    ASSERT_TRUE(stopped.ok()) << stopped.status();
    expiry = FromProtoTime(stopped->finish_time()) + absl::Seconds(1);
    const int status = (*server)->Stop();
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  }
  // The job's retention (a second, the shortest) runs out while ckptd is down.
  while (absl::Now() <= expiry) absl::SleepFor(absl::Milliseconds(50));
  auto server = CkptdProcess::Start(location.address(), flags);
  ASSERT_TRUE(server.ok()) << server.status();
  std::unique_ptr<Stub> stub = (*server)->NewStub();
  // A sweep would have run by the time this write is answered (in its group, if not
  // before).
  MakeJob(*stub, "probe", "");
  auto restored = testutil::GetJob(*stub, "restored");
  ASSERT_TRUE(restored.ok()) << restored.status();
  EXPECT_EQ(restored->retention().seconds(), 1);
  v1::DeleteJobsRequest by_hand;
  by_hand.set_job_id_prefix("restored");
  auto deleted = testutil::WireCall(*stub, &Stub::DeleteJobs, by_hand);
  ASSERT_TRUE(deleted.ok()) << deleted.status();
  EXPECT_EQ(deleted->jobs_size(), 1);
  EXPECT_FALSE(testutil::GetJob(*stub, "restored").ok());
  const int status = (*server)->Stop();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
}

INSTANTIATE_TEST_SUITE_P(Stores, RetentionCrashTest, ::testing::ValuesIn(testutil::AllStoreKinds()),
                         testutil::StoreKindTestName);

}  // namespace
}  // namespace ckpt
