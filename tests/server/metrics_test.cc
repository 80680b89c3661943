// GET /metrics on a real server: the numbers move with the RPCs, items and group commits
// that happened, per-job series are capped, and Prometheus' own linter accepts the page.
#include <cstdio>
#include <fstream>
#include <map>
#include <string>

#include "absl/strings/str_cat.h"
#include "ckpt/v1/checkpoint.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/common/clock.h"
#include "service/server/server.h"
#include "tests/testing/http_client.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/test_server.h"

namespace ckpt {
namespace {

using ::ckpt::testutil::Call;
using ::ckpt::testutil::StatusIs;
using ::ckpt::testutil::TestServer;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

class MetricsTest : public ::testing::Test {
 protected:
  void StartServer(size_t max_jobs = 100) {
    ServerOptions options;
    options.http_listen_address = "127.0.0.1:0";
    options.metrics_max_jobs = max_jobs;
    options.clock = &clock_;
    auto server = TestServer::Start(options);
    CKPT_ASSERT_OK(server);
    server_ = std::move(*server);
  }

  std::string Page() {
    auto answer = testutil::HttpGet(server_->server().http_address(), "/metrics");
    EXPECT_TRUE(answer.ok()) << answer.status();
    if (!answer.ok()) return "";
    EXPECT_EQ(answer->status, 200);
    EXPECT_THAT(answer->Header("Content-Type"), HasSubstr("text/plain; version=0.0.4"));
    return answer->body;
  }

  std::map<std::string, double> Scrape() { return testutil::ParseMetricsPage(Page()); }

  void CreateJob(const std::string& id, uint64_t items) {
    v1::CreateJobRequest create;
    create.set_job_id(id);
    CKPT_ASSERT_OK(Call(server_->stub(), &v1::Checkpoint::Stub::CreateJob, create));
    v1::AddItemsRequest add;
    add.set_job_id(id);
    auto* range = add.add_ranges();
    range->set_begin(0);
    range->set_end(items);
    CKPT_ASSERT_OK(Call(server_->stub(), &v1::Checkpoint::Stub::AddItems, add));
    clock_.Advance(absl::Seconds(1));  // create times order the jobs
  }

  FakeClock clock_;
  std::unique_ptr<TestServer> server_;
};

TEST_F(MetricsTest, CountsRpcsItemsAndGroupCommits) {
  StartServer();
  CreateJob("curate", 10);
  v1::RegisterWorkerRequest reg;
  reg.set_job_id("curate");
  auto worker = Call(server_->stub(), &v1::Checkpoint::Stub::RegisterWorker, reg);
  CKPT_ASSERT_OK(worker);
  v1::LeaseItemsRequest lease;
  lease.set_job_id("curate");
  lease.set_worker_id(worker->worker_id());
  lease.set_max_items(5);
  auto leased = Call(server_->stub(), &v1::Checkpoint::Stub::LeaseItems, lease);
  CKPT_ASSERT_OK(leased);
  ASSERT_EQ(leased->leases_size(), 5);
  v1::CompleteItemsRequest complete;
  complete.set_job_id("curate");
  for (int i = 0; i < 3; ++i) {
    v1::Completion* c = complete.add_items();
    *c->mutable_key() = leased->leases(i).key();
    c->set_lease_token(leased->leases(i).lease_token());
  }
  CKPT_ASSERT_OK(Call(server_->stub(), &v1::Checkpoint::Stub::CompleteItems, complete));
  v1::FailItemsRequest fail;
  fail.set_job_id("curate");
  v1::Failure* f = fail.add_items();
  *f->mutable_key() = leased->leases(3).key();
  f->set_lease_token(leased->leases(3).lease_token());
  f->mutable_error()->set_message("corrupt header");  // not retryable: FAILED at once
  CKPT_ASSERT_OK(Call(server_->stub(), &v1::Checkpoint::Stub::FailItems, fail));
  v1::GetJobRequest missing;
  missing.set_job_id("no-such-job");
  EXPECT_THAT(Call(server_->stub(), &v1::Checkpoint::Stub::GetJob, missing),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("no-such-job")));

  std::map<std::string, double> m = Scrape();
  EXPECT_EQ(m["ckpt_items_leased_total"], 5);
  EXPECT_EQ(m["ckpt_items_completed_total"], 3);
  EXPECT_EQ(m["ckpt_items_failed_total"], 1);
  EXPECT_EQ(m["ckpt_rpcs_total{method=\"CompleteItems\",code=\"OK\"}"], 1);
  EXPECT_EQ(m["ckpt_rpcs_total{method=\"GetJob\",code=\"NOT_FOUND\"}"], 1);
  EXPECT_EQ(m["ckpt_rpc_duration_seconds_count{method=\"LeaseItems\"}"], 1);
  EXPECT_EQ(m["ckpt_rpc_duration_seconds_bucket{method=\"LeaseItems\",le=\"+Inf\"}"], 1);
  EXPECT_EQ(m["ckpt_job_items{job_id=\"curate\",state=\"pending\"}"], 5);
  EXPECT_EQ(m["ckpt_job_items{job_id=\"curate\",state=\"leased\"}"], 1);
  EXPECT_EQ(m["ckpt_job_items{job_id=\"curate\",state=\"completed\"}"], 3);
  EXPECT_EQ(m["ckpt_job_items{job_id=\"curate\",state=\"failed\"}"], 1);
  EXPECT_EQ(m["ckpt_jobs{status=\"running\"}"], 1);
  EXPECT_EQ(m["ckpt_workers_active"], 1);
  EXPECT_EQ(m["ckpt_writer_queue_ops"], 0);
  // CreateJob, AddItems, RegisterWorker, LeaseItems, CompleteItems, FailItems: one
  // group each (one caller at a time), each written and synced.
  EXPECT_EQ(m["ckpt_group_commit_ops_count"], 6);
  EXPECT_EQ(m["ckpt_group_commit_sync_seconds_count"], 6);
  EXPECT_GT(m["ckpt_group_commit_sync_seconds_sum"], 0);
  EXPECT_EQ(m["ckpt_group_commit_failures_total"], 0);
  EXPECT_GT(m["ckpt_store_size_bytes"], 0);
  EXPECT_GT(m["process_resident_memory_bytes"], 0);
  EXPECT_GT(m["process_open_fds"], 0);
}

// Deleted jobs are counted by who deleted them: the retention sweep or a request.
TEST_F(MetricsTest, CountsJobsDeletedByRetentionAndOnRequest) {
  StartServer();
  v1::CreateJobRequest kept_a_second;
  kept_a_second.set_job_id("expires");
  kept_a_second.mutable_retention()->set_seconds(1);
  CKPT_ASSERT_OK(Call(server_->stub(), &v1::Checkpoint::Stub::CreateJob, kept_a_second));
  v1::StopJobRequest stop;
  stop.set_job_id("expires");
  CKPT_ASSERT_OK(Call(server_->stub(), &v1::Checkpoint::Stub::StopJob, stop));
  CreateJob("deleted", 1);
  v1::DeleteJobRequest remove;
  remove.set_job_id("deleted");
  CKPT_ASSERT_OK(Call(server_->stub(), &v1::Checkpoint::Stub::DeleteJob, remove));
  // Past the retention and the sweep interval: the next write's group sweeps.
  clock_.Advance(absl::Minutes(2));
  CreateJob("probe", 1);
  v1::GetJobRequest get;
  get.set_job_id("expires");
  EXPECT_THAT(Call(server_->stub(), &v1::Checkpoint::Stub::GetJob, get),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("expires")));

  std::map<std::string, double> m = Scrape();
  EXPECT_EQ(m["ckpt_jobs_deleted_total{by=\"retention\"}"], 1);
  EXPECT_EQ(m["ckpt_jobs_deleted_total{by=\"request\"}"], 1);
}

TEST_F(MetricsTest, JobSeriesCoverOnlyTheNewestRunningOrPausedJobs) {
  StartServer(/*max_jobs=*/2);
  for (const char* id : {"oldest", "stopped", "paused", "newest"}) CreateJob(id, 4);
  v1::StopJobRequest stop;
  stop.set_job_id("stopped");
  CKPT_ASSERT_OK(Call(server_->stub(), &v1::Checkpoint::Stub::StopJob, stop));
  v1::PauseJobRequest pause;
  pause.set_job_id("paused");
  CKPT_ASSERT_OK(Call(server_->stub(), &v1::Checkpoint::Stub::PauseJob, pause));

  const std::string page = Page();
  std::map<std::string, double> m = testutil::ParseMetricsPage(page);
  EXPECT_EQ(m["ckpt_job_items{job_id=\"newest\",state=\"pending\"}"], 4);
  EXPECT_EQ(m["ckpt_job_items{job_id=\"paused\",state=\"pending\"}"], 4);
  EXPECT_THAT(page, Not(HasSubstr("job_id=\"oldest\"")));   // over the cap of 2
  EXPECT_THAT(page, Not(HasSubstr("job_id=\"stopped\"")));  // not running or paused
  EXPECT_EQ(m["ckpt_job_items_omitted_jobs"], 1);
  EXPECT_EQ(m["ckpt_jobs{status=\"running\"}"], 2);
  EXPECT_EQ(m["ckpt_jobs{status=\"paused\"}"], 1);
  EXPECT_EQ(m["ckpt_jobs{status=\"stopped\"}"], 1);
}

TEST_F(MetricsTest, PromtoolAcceptsThePage) {
  StartServer();
  CreateJob("lint", 3);
  v1::GetJobRequest bad;
  bad.set_job_id("not \"valid\"");  // refused: a code label other than OK
  EXPECT_THAT(Call(server_->stub(), &v1::Checkpoint::Stub::GetJob, bad),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("job_id")));
  const std::string file = testutil::NewTempDir("promtool") + "/metrics.txt";
  std::ofstream(file) << Page();
  const std::string command = absl::StrCat("promtool check metrics < '", file, "' 2>&1");
  FILE* pipe = ::popen(command.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string output;
  char buffer[4096];
  while (size_t n = std::fread(buffer, 1, sizeof(buffer), pipe)) output.append(buffer, n);
  const int status = ::pclose(pipe);
  EXPECT_EQ(status, 0) << "promtool check metrics:\n" << output;
  EXPECT_EQ(output, "");  // not even a lint warning
}

TEST(MetricsServerTest, NoHttpListenerWithoutAnAddress) {
  auto server = TestServer::Start();
  CKPT_ASSERT_OK(server);
  EXPECT_EQ((*server)->server().http_port(), 0);
  EXPECT_EQ((*server)->server().http_address(), "");
}

TEST(MetricsServerTest, HttpPortInUseIsRefused) {
  ServerOptions options;
  options.http_listen_address = "127.0.0.1:0";
  auto first = TestServer::Start(options);
  CKPT_ASSERT_OK(first);
  options.http_listen_address = (*first)->server().http_address();
  EXPECT_THAT(TestServer::Start(options),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr("Address already in use"), HasSubstr("--http_listen"))));
}

}  // namespace
}  // namespace ckpt
