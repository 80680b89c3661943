// Each ckpt command against a real ckptd: what it prints for people, what it prints with
// --json for scripts, and the binary's exit codes.
#include "tools/cli/commands.h"

#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "tests/cli/cli_test_base.h"
#include "tests/cli/run_ckpt.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/test_server.h"

namespace ckpt {
namespace cli {
namespace {

using ::ckpt::testutil::StatusIs;
using ::ckpt::testutil::TestServer;
using ::testing::AllOf;
using ::testing::ContainsRegex;
using ::testing::HasSubstr;
using ::testing::Not;

class CommandsTest : public CliTest {
 protected:
  // Job "crawl": indices 0..9 sealed; 0-3 completed (with outputs), 4-6 failed, one
  // worker registered holding item 7.
  void MakeCrawlJob() {
    v1::CreateJobRequest create;
    create.set_job_id("crawl");
    create.set_display_name("web crawl");
    (*create.mutable_labels())["team"] = "search";
    CKPT_ASSERT_OK(client_->CreateJob(create));
    v1::AddItemsRequest add;
    add.set_job_id("crawl");
    add.add_ranges()->set_end(10);
    add.set_seal(true);
    CKPT_ASSERT_OK(client_->AddItems(add));
    v1::CompleteItemsRequest complete;
    complete.set_job_id("crawl");
    for (uint64_t i = 0; i < 4; ++i) {
      v1::Completion* c = complete.add_items();
      *c->mutable_key() = IndexKey(i);
      c->mutable_result()->add_output_paths(absl::StrCat("/out/page-", i, ".html"));
    }
    CKPT_ASSERT_OK(client_->CompleteItems(complete));
    v1::FailItemsRequest fail;
    fail.set_job_id("crawl");
    for (uint64_t i = 4; i < 7; ++i) {
      v1::Failure* f = fail.add_items();
      *f->mutable_key() = IndexKey(i);
      f->mutable_error()->set_message(i == 6 ? "DNS failure" : "HTTP 503");
    }
    CKPT_ASSERT_OK(client_->FailItems(fail));
    v1::RegisterWorkerRequest reg;
    reg.set_job_id("crawl");
    reg.set_hostname("crawler-1");
    reg.set_pid(4242);
    auto worker = client_->RegisterWorker(reg);
    CKPT_ASSERT_OK(worker);
    worker_id_ = worker->worker_id();
    v1::LeaseItemsRequest lease;
    lease.set_job_id("crawl");
    lease.set_worker_id(worker_id_);
    lease.set_max_items(1);
    CKPT_ASSERT_OK(client_->LeaseItems(lease));
  }

  std::string worker_id_;
};

TEST_F(CommandsTest, JobsListsNewestFirstAndFilters) {
  MakeCrawlJob();
  v1::CreateJobRequest other;
  other.set_job_id("index-build");
  CKPT_ASSERT_OK(client_->CreateJob(other));
  v1::PauseJobRequest pause;
  pause.set_job_id("index-build");
  CKPT_ASSERT_OK(client_->PauseJob(pause));

  auto text = Run({"jobs"});
  CKPT_ASSERT_OK(text);
  EXPECT_THAT(*text, HasSubstr("JOB"));
  EXPECT_THAT(*text, ContainsRegex("index-build +PAUSED"));
  EXPECT_THAT(*text, ContainsRegex("crawl +RUNNING +7/10 +70.0% +3"));
  EXPECT_LT(text->find("index-build"), text->find("crawl"));  // newest first

  auto paused = Run({"jobs", "--status", "paused"});
  CKPT_ASSERT_OK(paused);
  EXPECT_THAT(*paused, AllOf(HasSubstr("index-build"), Not(HasSubstr("crawl"))));
  auto labelled = Run({"jobs", "--label=team=search", "--json"});
  CKPT_ASSERT_OK(labelled);
  const auto listed = FromJson<v1::ListJobsResponse>(*labelled);
  ASSERT_EQ(listed.jobs_size(), 1);
  EXPECT_EQ(listed.jobs(0).job_id(), "crawl");
  EXPECT_EQ(listed.jobs(0).progress().failed(), 3u);

  EXPECT_TRUE(IsUsageError(Run({"jobs", "--status", "sleepy"}).status()));
  EXPECT_TRUE(IsUsageError(Run({"jobs", "--limit", "0"}).status()));
  EXPECT_TRUE(IsUsageError(Run({"jobs", "--label", "novalue"}).status()));
}

TEST_F(CommandsTest, StatusShowsProgressStepsErrorsAndWorkers) {
  MakeCrawlJob();
  auto text = Run({"status", "crawl"});
  CKPT_ASSERT_OK(text);
  EXPECT_THAT(*text, HasSubstr("web crawl"));
  EXPECT_THAT(*text, ContainsRegex("Status +RUNNING, sealed"));
  EXPECT_THAT(*text, HasSubstr("70.0%  4 completed, 3 failed of 10"));
  EXPECT_THAT(*text, HasSubstr("Remaining  3 (2 pending, 1 leased)"));
  EXPECT_THAT(*text, ContainsRegex("main +10 +4 +3 +2 +1 +70.0%"));
  EXPECT_THAT(*text, ContainsRegex("Recently completed\nITEM +STEP +COMPLETED +WORKER\n3 +main"));
  EXPECT_THAT(*text, ContainsRegex("2 +HTTP 503"));
  EXPECT_THAT(*text, ContainsRegex("1 +DNS failure"));
  EXPECT_THAT(*text, ContainsRegex(worker_id_ + " +ACTIVE +crawler-1 +4242"));

  auto json = Run({"status", "crawl", "--json"});
  CKPT_ASSERT_OK(json);
  const auto parsed = FromJson<google::protobuf::Struct>(*json);
  EXPECT_EQ(parsed.fields().at("job").struct_value().fields().at("job_id").string_value(), "crawl");
  EXPECT_EQ(parsed.fields().at("error_groups").list_value().values_size(), 2);
  EXPECT_EQ(parsed.fields().at("workers").list_value().values_size(), 1);
  EXPECT_EQ(parsed.fields().at("recent_completions").list_value().values_size(), 4);

  EXPECT_THAT(Run({"status", "nope"}), StatusIs(absl::StatusCode::kNotFound, HasSubstr("nope")));
  EXPECT_TRUE(IsUsageError(Run({"status"}).status()));
}

TEST_F(CommandsTest, WatchFollowsTheJobUntilItFinishes) {
  v1::CreateJobRequest create;
  create.set_job_id("short");
  CKPT_ASSERT_OK(client_->CreateJob(create));
  v1::AddItemsRequest add;
  add.set_job_id("short");
  add.add_indices(0);
  add.set_seal(true);
  CKPT_ASSERT_OK(client_->AddItems(add));

  absl::Notification first;
  on_watch_snapshot_ = [&](const v1::Job&) {
    if (!first.HasBeenNotified()) first.Notify();
    return true;
  };
  absl::StatusOr<std::string> watched;
  std::thread watcher([&] { watched = Run({"watch", "short", "--interval", "100"}); });
  first.WaitForNotification();
  v1::CompleteItemsRequest complete;
  complete.set_job_id("short");
  *complete.add_items()->mutable_key() = IndexKey(0);
  CKPT_ASSERT_OK(client_->CompleteItems(complete));
  watcher.join();

  CKPT_ASSERT_OK(watched);
  EXPECT_THAT(*watched, ContainsRegex("RUNNING \\[\\.+\\] +0\\.0% +0/1"));
  EXPECT_THAT(*watched, ContainsRegex("COMPLETED \\[#+\\] 100\\.0% +1/1"));
  EXPECT_THAT(*watched, HasSubstr("job short COMPLETED"));
  EXPECT_THAT(*watched, Not(HasSubstr("\x1b")));  // no terminal: no escapes
}

TEST_F(CommandsTest, PauseResumeStopResetDelete) {
  MakeCrawlJob();
  auto paused = Run({"pause", "crawl", "--reason", "maintenance"});
  CKPT_ASSERT_OK(paused);
  EXPECT_EQ(*paused, "job crawl paused: PAUSED\n");
  auto resumed = Run({"resume", "crawl", "--json"});
  CKPT_ASSERT_OK(resumed);
  EXPECT_EQ(FromJson<v1::Job>(*resumed).status(), v1::JOB_STATUS_RUNNING);
  auto stopped = Run({"stop", "crawl"});
  CKPT_ASSERT_OK(stopped);
  EXPECT_EQ(*stopped, "job crawl stopped: STOPPED\n");
  EXPECT_THAT(Run({"resume", "crawl"}),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("STOPPED")));
  auto reset = Run({"reset", "crawl"});
  CKPT_ASSERT_OK(reset);
  EXPECT_EQ(*reset, "job crawl reset: RUNNING\n");
  auto status = Run({"status", "crawl", "--json"});
  CKPT_ASSERT_OK(status);
  EXPECT_THAT(*status, HasSubstr("\"completed\":\"0\""));
  auto deleted = Run({"delete", "crawl"});
  CKPT_ASSERT_OK(deleted);
  EXPECT_EQ(*deleted, "job crawl deleted\n");
  EXPECT_THAT(Run({"status", "crawl"}), StatusIs(absl::StatusCode::kNotFound, ::testing::_));
}

TEST_F(CommandsTest, RetryPutsFailedItemsBackAndDryRunOnlyCounts) {
  MakeCrawlJob();
  auto dry = Run({"retry", "crawl", "--dry-run"});
  CKPT_ASSERT_OK(dry);
  EXPECT_EQ(*dry, "3 failed items would go back to pending (dry run)\n");
  auto failed = Run({"items", "crawl", "--state", "failed", "--json"});
  CKPT_ASSERT_OK(failed);
  EXPECT_EQ(FromJson<v1::ListItemsResponse>(*failed).items_size(), 3);

  auto one_group = Run({"retry", "crawl", "--error", "DNS failure"});
  CKPT_ASSERT_OK(one_group);
  EXPECT_EQ(*one_group, "1 failed items are pending again\n");
  auto retried = Run({"retry", "crawl", "--step", "main"});
  CKPT_ASSERT_OK(retried);
  EXPECT_EQ(*retried, "2 failed items are pending again\n");
  failed = Run({"items", "crawl", "--state", "failed"});
  CKPT_ASSERT_OK(failed);
  EXPECT_EQ(*failed, "no items\n");
}

TEST_F(CommandsTest, OpenPrintsTheDashboardAddressAndOpensItWhereItCan) {
  MakeCrawlJob();
  // Without --http or $CKPT_HTTP: the --server host on ckptd's default HTTP port.
  auto base = Run({"open"});
  CKPT_ASSERT_OK(base);
  EXPECT_EQ(*base, "http://127.0.0.1:7701/\n");
  auto job = Run({"open", "crawl", "--http", "ckpt.internal:8443"});
  CKPT_ASSERT_OK(job);
  EXPECT_EQ(*job, "http://ckpt.internal:8443/#/jobs/crawl\n");
  EXPECT_THAT(Run({"open", "nope"}), StatusIs(absl::StatusCode::kNotFound, HasSubstr("nope")));

  std::string opened;
  open_url_ = [&](const std::string& url) {
    opened = url;
    return true;
  };
  auto shown = Run({"open", "crawl", "--http", "https://ckpt.internal/", "--json"});
  CKPT_ASSERT_OK(shown);
  EXPECT_EQ(opened, "https://ckpt.internal/#/jobs/crawl");
  auto answer = FromJson<google::protobuf::Struct>(*shown);
  EXPECT_EQ(answer.fields().at("url").string_value(), "https://ckpt.internal/#/jobs/crawl");
  EXPECT_TRUE(answer.fields().at("opened").bool_value());
}

TEST_F(CommandsTest, ItemsAndItem) {
  MakeCrawlJob();
  auto text = Run({"items", "crawl", "--limit", "5"});
  CKPT_ASSERT_OK(text);
  EXPECT_THAT(*text, ContainsRegex("0 +COMPLETED +0 .* /out/page-0.html"));
  EXPECT_THAT(*text, ContainsRegex("4 +FAILED +1 .* HTTP 503"));
  EXPECT_THAT(*text, HasSubstr("(more: --page-token "));
  auto leased = Run({"items", "crawl", "--state", "leased", "--json"});
  CKPT_ASSERT_OK(leased);
  const auto listed = FromJson<v1::ListItemsResponse>(*leased);
  ASSERT_EQ(listed.items_size(), 1);
  EXPECT_EQ(listed.items(0).key().index(), 7u);
  EXPECT_EQ(listed.items(0).worker_id(), worker_id_);

  auto item = Run({"item", "crawl", "6"});
  CKPT_ASSERT_OK(item);
  EXPECT_THAT(*item, ContainsRegex("State +FAILED"));
  EXPECT_THAT(*item, ContainsRegex("Error +DNS failure"));
  auto json = Run({"item", "crawl", "2", "--json"});
  CKPT_ASSERT_OK(json);
  EXPECT_EQ(FromJson<v1::Item>(json.value()).result().output_paths(0), "/out/page-2.html");
  EXPECT_THAT(Run({"item", "crawl", "2", "--name"}),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("\"2\"")));
  EXPECT_THAT(Run({"items", "crawl", "--state", "done"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--state")));
}

TEST_F(CommandsTest, WorkersStateAndFindOutput) {
  MakeCrawlJob();
  auto workers = Run({"workers", "crawl"});
  CKPT_ASSERT_OK(workers);
  EXPECT_THAT(*workers, ContainsRegex(worker_id_ + " +ACTIVE +crawler-1 +4242 +- +.* +7 +0 +0"));
  auto json = Run({"workers", "crawl", "--json"});
  CKPT_ASSERT_OK(json);
  EXPECT_EQ(FromJson<v1::ListWorkersResponse>(*json).workers(0).hostname(), "crawler-1");

  auto put = Run({"state", "put", "crawl", "frontier"}, "https://example.com/a\n");
  CKPT_ASSERT_OK(put);
  EXPECT_EQ(*put, "state frontier of job crawl is at version 1 (22 bytes)\n");
  auto got = Run({"state", "get", "crawl", "frontier"});
  CKPT_ASSERT_OK(got);
  EXPECT_EQ(*got, "https://example.com/a\n");
  EXPECT_THAT(Run({"state", "put", "crawl", "frontier", "--expected-version", "0"}, "x"),
              StatusIs(absl::StatusCode::kAborted, ::testing::_));
  auto list = Run({"state", "list", "crawl", "--json"});
  CKPT_ASSERT_OK(list);
  EXPECT_EQ(FromJson<v1::ListStatesResponse>(*list).states(0).version(), 1u);
  EXPECT_THAT(Run({"state", "get", "crawl", "missing"}),
              StatusIs(absl::StatusCode::kNotFound, ::testing::_));
  EXPECT_TRUE(IsUsageError(Run({"state", "drop", "crawl", "frontier"}).status()));

  auto found = Run({"find-output", "/out/page-3.html"});
  CKPT_ASSERT_OK(found);
  EXPECT_THAT(*found, AllOf(ContainsRegex("Job +crawl"), ContainsRegex("Item +3")));
  auto found_json = Run({"find-output", "/out/page-3.html", "--json"});
  CKPT_ASSERT_OK(found_json);
  EXPECT_EQ(FromJson<v1::FindOutputResponse>(*found_json).job_id(), "crawl");
  EXPECT_THAT(Run({"find-output", "/out/nowhere"}),
              StatusIs(absl::StatusCode::kNotFound, ::testing::_));
}

TEST_F(CommandsTest, UsageMistakesNameTheMistake) {
  EXPECT_THAT(Run({"frobnicate"}), StatusIs(absl::StatusCode::kInvalidArgument,
                                            HasSubstr("unknown command \"frobnicate\"")));
  EXPECT_THAT(Run({"pause"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("usage: ckpt pause JOB")));
  EXPECT_THAT(Run({"items", "j", "--colour"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("unknown flag --colour")));
  EXPECT_THAT(Run({"items", "j", "--limit"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--limit needs a value")));
  EXPECT_TRUE(IsUsageError(Run({"frobnicate"}).status()));
}

// The binary: exit codes 0 ok, 1 error, 2 usage, 3 not found, and what it says.
TEST_F(CommandsTest, TheBinaryExitsWithTheDocumentedCodes) {
  MakeCrawlJob();
  const std::string server = absl::StrCat("--server=", server_->server().address());
  testutil::CkptOutcome ok = testutil::RunCkptBinary(server + " jobs");
  EXPECT_EQ(ok.exit_code, 0) << ok.output;
  EXPECT_THAT(ok.output, HasSubstr("crawl"));
  EXPECT_EQ(testutil::RunCkptBinary(server + " status nope").exit_code, 3);
  EXPECT_EQ(testutil::RunCkptBinary(server + " pause").exit_code, 2);
  EXPECT_EQ(testutil::RunCkptBinary("").exit_code, 2);
  EXPECT_EQ(testutil::RunCkptBinary("--help").exit_code, 0);
  testutil::CkptOutcome stopped = testutil::RunCkptBinary(server + " stop crawl");
  EXPECT_EQ(stopped.exit_code, 0);
  EXPECT_EQ(testutil::RunCkptBinary(server + " resume crawl").exit_code, 1);

  setenv("CKPT_SERVER", server_->server().address().c_str(), 1);
  EXPECT_EQ(testutil::RunCkptBinary("jobs --status stopped").exit_code, 0);
  unsetenv("CKPT_SERVER");

  server_->Shutdown(absl::Seconds(5));
  testutil::CkptOutcome away = testutil::RunCkptBinary(server + " jobs");
  EXPECT_EQ(away.exit_code, 1);
  EXPECT_THAT(away.output,
              HasSubstr(absl::StrCat("cannot reach ckptd at ", server_->server().address(),
                                     ": is it running? Start it with "
                                     "./tools/serve.sh")));
}

}  // namespace
}  // namespace cli
}  // namespace ckpt
