// ckpt::Checkpoint against a real ckptd: record mode as the seeds' checkpoint managers
// use it, and physicsnemo-curator's query helpers.
#include "client/checkpoint.h"

#include "client/worker.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/client_fixture.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/test_server.h"

namespace ckpt {
namespace {

using ::ckpt::testutil::StatusIs;
using ::ckpt::testutil::TestServer;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;

class CheckpointTest : public testutil::ServerAndClientTest {
 protected:
  std::unique_ptr<Checkpoint> Open(const std::string& job_id, const std::string& config) {
    v1::CreateJobRequest job;
    job.set_job_id(job_id);
    job.set_config(config);
    auto checkpoint = Checkpoint::Open(client_.get(), job);
    EXPECT_TRUE(checkpoint.ok()) << checkpoint.status();
    return std::move(*checkpoint);
  }
};

TEST_F(CheckpointTest, RecordModeRemembersWhatWasDoneAcrossRuns) {
  {
    std::unique_ptr<Checkpoint> run = Open("curate", R"({"files": 10})");
    EXPECT_FALSE(run->resumed());
    CKPT_ASSERT_OK(run->AddIndices(0, 10, /*seal=*/true));
    for (uint64_t i : {0, 1, 2}) {
      CKPT_ASSERT_OK(run->MarkInProgress(IndexKey(i)));
      v1::ItemResult result;
      result.add_output_paths(absl::StrCat("/out/", i, ".parquet"));
      result.set_payload("rows=1000");
      CKPT_ASSERT_OK(run->MarkCompleted(IndexKey(i), result));
    }
    CKPT_ASSERT_OK(run->MarkFailed(IndexKey(5), "corrupt header"));
  }
  server_->Shutdown(absl::Seconds(5));
  CKPT_ASSERT_OK(server_->StartOnSamePort());

  std::unique_ptr<Checkpoint> resumed = Open("curate", R"({"files": 10})");
  EXPECT_TRUE(resumed->resumed());
  CKPT_ASSERT_OK(resumed->AddIndices(0, 10, /*seal=*/true));  // repeats are ignored
  v1::ItemResult cached;
  auto done = resumed->IsCompleted(IndexKey(1), &cached);
  CKPT_ASSERT_OK(done);
  EXPECT_TRUE(*done);
  EXPECT_THAT(cached.output_paths(), ElementsAre("/out/1.parquet"));
  EXPECT_EQ(cached.payload(), "rows=1000");
  done = resumed->IsCompleted(IndexKey(3));
  CKPT_ASSERT_OK(done);
  EXPECT_FALSE(*done);

  auto completed = resumed->CompletedIndices();
  CKPT_ASSERT_OK(completed);
  EXPECT_THAT(*completed, ElementsAre(0u, 1u, 2u));
  auto failed = resumed->FailedIndices();
  CKPT_ASSERT_OK(failed);
  EXPECT_THAT(*failed, ElementsAre(Pair(5u, "corrupt header")));
  auto remaining = resumed->RemainingIndices();
  CKPT_ASSERT_OK(remaining);
  EXPECT_THAT(*remaining, ElementsAre(3u, 4u, 6u, 7u, 8u, 9u));
}

TEST_F(CheckpointTest, AChangedConfigRefusesToResume) {
  Open("fingerprinted", R"({"model": "a"})");
  v1::CreateJobRequest job;
  job.set_job_id("fingerprinted");
  job.set_config(R"({"model": "b"})");
  EXPECT_THAT(Checkpoint::Open(client_.get(), job),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("fingerprint")));
}

TEST_F(CheckpointTest, MarkingRefusesWhatTheServerRefuses) {
  std::unique_ptr<Checkpoint> run = Open("strict", "{}");
  CKPT_ASSERT_OK(run->AddIndices(0, 3));
  CKPT_ASSERT_OK(run->MarkCompleted(IndexKey(0)));
  CKPT_EXPECT_OK(run->MarkCompleted(IndexKey(0)));  // again: the first result stands
  EXPECT_THAT(run->MarkInProgress(IndexKey(0)),
              StatusIs(absl::StatusCode::kFailedPrecondition, ::testing::_));
  EXPECT_THAT(run->MarkCompleted(IndexKey(99)),
              StatusIs(absl::StatusCode::kNotFound, ::testing::_));
  EXPECT_THAT(run->MarkFailed(IndexKey(1), ""),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("message")));

  v1::StopJobRequest stop;
  stop.set_job_id("strict");
  CKPT_ASSERT_OK(client_->StopJob(stop));
  EXPECT_THAT(run->MarkCompleted(IndexKey(1)),
              StatusIs(absl::StatusCode::kFailedPrecondition, ::testing::_));
  EXPECT_THAT(run->MarkInProgress(IndexKey(1)),
              StatusIs(absl::StatusCode::kFailedPrecondition, ::testing::_));
}

TEST_F(CheckpointTest, SummaryAndResets) {
  std::unique_ptr<Checkpoint> run = Open("summary", "{}");
  CKPT_ASSERT_OK(run->AddIndices(0, 6, /*seal=*/true));
  v1::ItemResult result;
  result.mutable_metrics()->mutable_wall_time()->set_seconds(2);
  CKPT_ASSERT_OK(run->MarkCompleted(IndexKey(0), result));
  CKPT_ASSERT_OK(run->MarkCompleted(IndexKey(1), result));
  CKPT_ASSERT_OK(run->MarkFailed(IndexKey(2), "timeout"));
  CKPT_ASSERT_OK(run->MarkFailed(IndexKey(3), "timeout"));
  CKPT_ASSERT_OK(run->MarkFailed(IndexKey(4), "oom"));

  auto summary = run->Summary();
  CKPT_ASSERT_OK(summary);
  EXPECT_EQ(summary->status, v1::JOB_STATUS_RUNNING);
  EXPECT_EQ(summary->total, 6u);
  EXPECT_EQ(summary->completed, 2u);
  EXPECT_EQ(summary->failed, 3u);
  EXPECT_EQ(summary->remaining, 1u);
  ASSERT_EQ(summary->errors.size(), 2u);
  EXPECT_EQ(summary->errors[0].message(), "timeout");
  EXPECT_EQ(summary->errors[0].count(), 2u);
  EXPECT_GE(summary->avg_time, absl::Milliseconds(1900));
  EXPECT_LE(summary->avg_time, absl::Milliseconds(2100));

  CKPT_ASSERT_OK(run->ResetIndex(2));
  auto remaining = run->RemainingIndices();
  CKPT_ASSERT_OK(remaining);
  EXPECT_THAT(*remaining, ElementsAre(2u, 5u));

  CKPT_ASSERT_OK(run->Reset());
  auto completed = run->CompletedIndices();
  CKPT_ASSERT_OK(completed);
  EXPECT_THAT(*completed, ::testing::IsEmpty());
  remaining = run->RemainingIndices();
  CKPT_ASSERT_OK(remaining);
  EXPECT_EQ(remaining->size(), 6u);
}

TEST_F(CheckpointTest, ActiveWorkersAreTheOnesRegisteredAndAlive) {
  std::unique_ptr<Checkpoint> run = Open("crew", "{}");
  WorkerOptions options;
  options.job_id = "crew";
  options.invocation_id = "launch-1";
  auto worker = Worker::Register(client_.get(), options);
  CKPT_ASSERT_OK(worker);
  auto active = run->ActiveWorkers();
  CKPT_ASSERT_OK(active);
  ASSERT_EQ(active->size(), 1u);
  EXPECT_EQ((*active)[0].worker_id(), (*worker)->worker_id());
  EXPECT_EQ((*active)[0].invocation_id(), "launch-1");
  EXPECT_EQ((*active)[0].pid(), static_cast<uint32_t>(getpid()));

  worker->reset();  // unregisters
  active = run->ActiveWorkers();
  CKPT_ASSERT_OK(active);
  EXPECT_TRUE(active->empty());
}

// PATAS's resume-mining from C++: a run that failed resumes with its results and
// states; one that ran over its failure budget resumes once the budget is raised; the
// worker recorded with each item says who did it.
TEST_F(CheckpointTest, AFailedRunResumesKeepingItsWorkOnceUnderBudget) {
  v1::CreateJobRequest job;
  job.set_job_id("mining");
  job.mutable_failure_budget()->set_max_failed_items(1);
  auto opened = Checkpoint::Open(client_.get(), job);
  CKPT_ASSERT_OK(opened);
  std::unique_ptr<Checkpoint> run = std::move(*opened);
  CKPT_ASSERT_OK(run->AddIndices(0, 8));
  CKPT_ASSERT_OK(run->MarkCompleted(IndexKey(0), {}, "miner-1"));
  CKPT_ASSERT_OK(run->MarkFailed(IndexKey(1), "bad message", "miner-2"));
  CKPT_ASSERT_OK(run->MarkFailed(IndexKey(2), "bad message", "miner-2"));
  auto summary = run->Summary();
  CKPT_ASSERT_OK(summary);
  ASSERT_EQ(summary->status, v1::JOB_STATUS_FAILED);

  EXPECT_THAT(run->Resume(),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("raise the budget")));
  v1::FailureBudget budget;
  budget.set_max_failed_items(10);
  CKPT_ASSERT_OK(run->SetFailureBudget(budget));
  CKPT_ASSERT_OK(run->Resume());
  summary = run->Summary();
  CKPT_ASSERT_OK(summary);
  EXPECT_EQ(summary->status, v1::JOB_STATUS_RUNNING);
  EXPECT_EQ(summary->completed, 1u);
  EXPECT_EQ(summary->failed, 2u);

  v1::GetItemRequest get;
  get.set_job_id("mining");
  *get.mutable_key() = IndexKey(0);
  auto item = client_->GetItem(get);
  CKPT_ASSERT_OK(item);
  EXPECT_EQ(item->item().worker_id(), "miner-1");
  *get.mutable_key() = IndexKey(2);
  item = client_->GetItem(get);
  CKPT_ASSERT_OK(item);
  EXPECT_EQ(item->item().worker_id(), "miner-2");
}

TEST_F(CheckpointTest, LatestAndSinceListCompletionsByTime) {
  std::unique_ptr<Checkpoint> run = Open("watched", "{}");
  CKPT_ASSERT_OK(run->AddIndices(0, 10));
  for (uint64_t i : {7, 2, 5}) CKPT_ASSERT_OK(run->MarkCompleted(IndexKey(i)));
  auto latest = run->LatestCompleted(2);
  CKPT_ASSERT_OK(latest);
  ASSERT_EQ(latest->size(), 2u);
  EXPECT_EQ((*latest)[0].key().index(), 5u);
  EXPECT_EQ((*latest)[1].key().index(), 2u);
  const absl::Time seen = absl::FromUnixSeconds((*latest)[1].update_time().seconds()) +
                          absl::Nanoseconds((*latest)[1].update_time().nanos());
  auto since = run->CompletedSince(seen, 100);
  CKPT_ASSERT_OK(since);
  ASSERT_EQ(since->size(), 1u);
  EXPECT_EQ((*since)[0].key().index(), 5u);
}

TEST_F(CheckpointTest, RecordModeLogsGoToTheItem) {
  std::unique_ptr<Checkpoint> run = Open("journal", "{}");
  CKPT_ASSERT_OK(run->AddIndices(0, 3));
  CKPT_ASSERT_OK(run->Log(IndexKey(1), v1::LOG_LEVEL_WARNING, "retrying page 4", "host-2:77"));
  EXPECT_THAT(run->Log(IndexKey(9), v1::LOG_LEVEL_INFO, "ghost"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("index 9")));
  v1::ListLogsRequest list;
  list.set_job_id("journal");
  *list.mutable_key() = IndexKey(1);
  auto logs = client_->ListLogs(list);
  CKPT_ASSERT_OK(logs);
  ASSERT_EQ(logs->entries_size(), 1);
  EXPECT_EQ(logs->entries(0).entry().message(), "retrying page 4");
  EXPECT_EQ(logs->entries(0).entry().level(), v1::LOG_LEVEL_WARNING);
  EXPECT_EQ(logs->entries(0).worker_id(), "host-2:77");
}

TEST_F(CheckpointTest, AttachToAMissingJobIsNotFound) {
  EXPECT_THAT(Checkpoint::Attach(client_.get(), "missing"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("missing")));
}

}  // namespace
}  // namespace ckpt
