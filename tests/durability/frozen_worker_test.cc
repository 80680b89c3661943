// A worker frozen past its lease cannot overwrite the new holder: the worker is a
// separate process, SIGSTOPped while it holds a lease, until ckptd (on its own clock)
// has expired the lease and another worker has leased and completed the item; then it
// is SIGCONTed. Its next heartbeat and its completion are refused FAILED_PRECONDITION,
// and the item is completed exactly once, by the new holder.
//
// Real time passes here (ckptd's clock cannot be faked across processes), but nothing
// waits on a timer: the test follows ckptd's state through WatchJob and the worker's
// answers through its stdout.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <memory>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "ckpt/v1/checkpoint.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/durability/ckptd_process.h"
#include "tests/durability/wire.h"
#include "tests/testing/temp_dir.h"

namespace ckpt {
namespace {

using ::ckpt::testutil::CkptdProcess;
using ::testing::HasSubstr;
using ::testing::StartsWith;
using Stub = v1::Checkpoint::Stub;

constexpr char kJob[] = "frozen";
constexpr absl::Duration kBound = absl::Seconds(60);  // for a hang; never a threshold

TEST(FrozenWorkerTest, HeartbeatAndCompletionAfterSigcontAreRefused) {
  auto server = CkptdProcess::Start(testutil::NewTempDir("frozen"), {});
  ASSERT_TRUE(server.ok()) << server.status();
  std::unique_ptr<Stub> stub = (*server)->NewStub();
  v1::CreateJobRequest create;
  create.set_job_id(kJob);
  create.mutable_lease_timeout()->set_seconds(1);
  ASSERT_TRUE(testutil::WireCall(*stub, &Stub::CreateJob, create).ok());
  v1::AddItemsRequest add;
  add.set_job_id(kJob);
  add.add_indices(7);
  add.set_seal(true);
  ASSERT_TRUE(testutil::WireCall(*stub, &Stub::AddItems, add).ok());

  // The worker leases item 7 and heartbeats.
  auto worker = testutil::SpawnChild(
      {testutil::Runfile("tests/durability/frozen_worker"), (*server)->address(), kJob});
  ASSERT_TRUE(worker.ok()) << worker.status();
  auto id_line = worker->stdout_->AwaitLine("worker ", kBound);
  ASSERT_TRUE(id_line.ok()) << id_line.status();
  const std::string frozen_id = id_line->substr(7);
  auto leased_line = worker->stdout_->AwaitLine("leased ", kBound);
  ASSERT_TRUE(leased_line.ok()) << leased_line.status();
  const std::vector<std::string> leased = absl::StrSplit(*leased_line, ' ');
  ASSERT_EQ(leased.size(), 3u);
  EXPECT_EQ(leased[1], "7");
  uint64_t old_token = 0;
  ASSERT_TRUE(absl::SimpleAtoi(leased[2], &old_token));
  ASSERT_TRUE(worker->stdout_->AwaitLine("heartbeat OK", kBound).ok());

  // Frozen. ckptd expires the lease by itself: the item goes back to PENDING.
  ASSERT_EQ(::kill(worker->pid, SIGSTOP), 0);
  {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + kBound));
    v1::WatchJobRequest watch;
    watch.set_job_id(kJob);
    auto stream = stub->WatchJob(&context, watch);
    v1::WatchJobResponse snapshot;
    bool expired = false;
    while (!expired && stream->Read(&snapshot)) {
      expired = snapshot.job().progress().leased() == 0;
    }
    ASSERT_TRUE(expired) << "the lease never expired";
    EXPECT_EQ(snapshot.job().progress().pending(), 1u);
    context.TryCancel();
    while (stream->Read(&snapshot)) {
    }
    stream->Finish();
  }

  // The new holder leases and completes it.
  auto holder = testutil::RegisterWorker(*stub, kJob);
  ASSERT_TRUE(holder.ok()) << holder.status();
  v1::LeaseItemsRequest lease;
  lease.set_job_id(kJob);
  lease.set_worker_id(*holder);
  lease.set_max_items(1);
  auto regranted = testutil::WireCall(*stub, &Stub::LeaseItems, lease);
  ASSERT_TRUE(regranted.ok()) << regranted.status();
  ASSERT_EQ(regranted->leases_size(), 1);
  const v1::Lease& fresh = regranted->leases(0);
  EXPECT_EQ(fresh.key().index(), 7u);
  EXPECT_NE(fresh.lease_token(), old_token);
  EXPECT_EQ(fresh.attempt(), 2u);  // the expiry counted the frozen try
  v1::CompleteItemsRequest complete;
  complete.set_job_id(kJob);
  complete.set_worker_id(*holder);
  v1::Completion* item = complete.add_items();
  *item->mutable_key() = fresh.key();
  item->set_lease_token(fresh.lease_token());
  item->mutable_result()->set_payload("from the new holder");
  auto completed = testutil::WireCall(*stub, &Stub::CompleteItems, complete);
  ASSERT_TRUE(completed.ok()) << completed.status();
  ASSERT_EQ(completed->outcomes_size(), 1);
  EXPECT_EQ(completed->outcomes(0), v1::COMPLETION_OUTCOME_COMPLETED);

  // Thawed: its next heartbeat, then its completion, are refused.
  ASSERT_EQ(::kill(worker->pid, SIGCONT), 0);
  auto beat = worker->stdout_->AwaitLine("heartbeat ", kBound, /*nth=*/2);
  ASSERT_TRUE(beat.ok()) << beat.status();
  EXPECT_THAT(*beat, StartsWith("heartbeat FAILED_PRECONDITION"));
  EXPECT_THAT(*beat, HasSubstr(frozen_id));
  ASSERT_EQ(::write(worker->stdin_fd, "complete\n", 9), 9);
  auto late = worker->stdout_->AwaitLine("complete ", kBound);
  ASSERT_TRUE(late.ok()) << late.status();
  EXPECT_THAT(*late, StartsWith("complete FAILED_PRECONDITION"));
  EXPECT_THAT(*late, HasSubstr("lease"));
  int status = 0;
  ASSERT_EQ(::waitpid(worker->pid, &status, 0), worker->pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << worker->stderr_->Text();
  ::close(worker->stdin_fd);

  // Completed once, by the new holder, whose result stands.
  auto final_item = testutil::GetItem(*stub, kJob, 7);
  ASSERT_TRUE(final_item.ok()) << final_item.status();
  EXPECT_EQ(final_item->state(), v1::ITEM_STATE_COMPLETED);
  EXPECT_EQ(final_item->result().payload(), "from the new holder");
  EXPECT_EQ(final_item->attempts(), 1u);
  auto job = testutil::GetJob(*stub, kJob);
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->status(), v1::JOB_STATUS_COMPLETED);
  EXPECT_EQ(job->progress().completed(), 1u);
  v1::ListWorkersRequest list;
  list.set_job_id(kJob);
  list.set_include_exited(true);
  auto workers = testutil::WireCall(*stub, &Stub::ListWorkers, list);
  ASSERT_TRUE(workers.ok()) << workers.status();
  ASSERT_EQ(workers->workers_size(), 2);
  for (const v1::Worker& w : workers->workers()) {
    SCOPED_TRACE(w.worker_id());
    if (w.worker_id() == frozen_id) {
      EXPECT_EQ(w.state(), v1::WORKER_STATE_LOST);
      EXPECT_EQ(w.completed(), 0u);
    } else {
      EXPECT_EQ(w.worker_id(), *holder);
      EXPECT_EQ(w.completed(), 1u);
    }
  }
}

}  // namespace
}  // namespace ckpt
