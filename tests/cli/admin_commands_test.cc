// ckpt backup: a copy of the whole store, and what it says when it cannot make one.
// ckpt gc: finished jobs deleted by filter, listed first with --dry-run.
#include <filesystem>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/cli/cli_test_base.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"

namespace ckpt {
namespace cli {
namespace {

using ::ckpt::testutil::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

class AdminCommandsTest : public CliTest {
 protected:
  // Creates `id` and ends it as `status` (RUNNING: left running), labelled team=`team`.
  void MakeJob(const std::string& id, v1::JobStatus status, const std::string& team) {
    v1::CreateJobRequest create;
    create.set_job_id(id);
    (*create.mutable_labels())["team"] = team;
    CKPT_ASSERT_OK(client_->CreateJob(create));
    if (status == v1::JOB_STATUS_STOPPED) {
      v1::StopJobRequest stop;
      stop.set_job_id(id);
      CKPT_ASSERT_OK(client_->StopJob(stop));
    } else if (status != v1::JOB_STATUS_RUNNING) {
      v1::FinishJobRequest finish;
      finish.set_job_id(id);
      finish.set_status(status);
      CKPT_ASSERT_OK(client_->FinishJob(finish));
    }
  }

  bool Exists(const std::string& id) {
    v1::GetJobRequest get;
    get.set_job_id(id);
    return client_->GetJob(get).ok();
  }
};

TEST_F(AdminCommandsTest, BackupCopiesTheStoreAndSaysHowToRestoreIt) {
  v1::CreateJobRequest create;
  create.set_job_id("nightly");
  CKPT_ASSERT_OK(client_->CreateJob(create));
  const std::string dir = testutil::NewTempDir("backups") + "/copy";
  auto printed = Run({"backup", dir});
  CKPT_ASSERT_OK(printed);
  EXPECT_THAT(*printed, HasSubstr("backup in " + dir));
  EXPECT_THAT(*printed, HasSubstr("ckptd --data_dir=" + dir));
  EXPECT_TRUE(std::filesystem::exists(dir + "/CURRENT"));

  const std::string other = testutil::NewTempDir("backups") + "/copy";
  auto json = Run({"backup", other, "--json"});
  CKPT_ASSERT_OK(json);
  const auto response = FromJson<v1::BackupStoreResponse>(*json);
  EXPECT_EQ(response.dir(), other);
  EXPECT_GT(response.files(), 0u);
}

TEST_F(AdminCommandsTest, BackupRefusesAPathItCannotUse) {
  const std::string dir = testutil::NewTempDir("backups");
  EXPECT_THAT(Run({"backup", dir}),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("already exists")));
  EXPECT_THAT(Run({"backup", "copy"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("absolute path")));
  EXPECT_THAT(Run({"backup"}), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("usage")));
}

TEST_F(AdminCommandsTest, GcDeletesFinishedJobsOlderThanAnAgeAndListsThemFirst) {
  MakeJob("nightly-1", v1::JOB_STATUS_COMPLETED, "a");
  MakeJob("nightly-2", v1::JOB_STATUS_FAILED, "a");
  MakeJob("adhoc", v1::JOB_STATUS_STOPPED, "b");
  MakeJob("live", v1::JOB_STATUS_RUNNING, "a");

  // Finished moments ago: none of them is 30 days old.
  auto none = Run({"gc", "--finished-before", "30d"});
  CKPT_ASSERT_OK(none);
  EXPECT_THAT(*none, HasSubstr("deleted 0 of the 0 jobs that matched"));

  now_ahead_ = absl::Hours(24 * 31);  // a month on, they are
  auto listed = Run({"gc", "--finished-before", "30d", "--dry-run"});
  CKPT_ASSERT_OK(listed);
  EXPECT_THAT(*listed, HasSubstr("would delete adhoc  STOPPED  finished "));
  EXPECT_THAT(*listed, HasSubstr("would delete nightly-2  FAILED  finished "));
  EXPECT_THAT(*listed, Not(HasSubstr("live")));
  EXPECT_THAT(*listed, HasSubstr("would delete 3 of the 3 jobs that matched (--dry-run: "
                                 "nothing deleted)"));
  EXPECT_TRUE(Exists("nightly-1") && Exists("nightly-2") && Exists("adhoc"));

  auto completed = Run({"gc", "--finished-before", "30d", "--status", "completed"});
  CKPT_ASSERT_OK(completed);
  EXPECT_THAT(*completed, HasSubstr("deleted nightly-1  COMPLETED"));
  EXPECT_THAT(*completed, HasSubstr("deleted 1 of the 1 jobs that matched"));
  EXPECT_FALSE(Exists("nightly-1"));
  EXPECT_TRUE(Exists("nightly-2"));

  auto json = Run({"gc", "--label", "team=b", "--json"});
  CKPT_ASSERT_OK(json);
  const auto answer = FromJson<v1::DeleteJobsResponse>(*json);
  EXPECT_EQ(answer.matched(), 1u);
  ASSERT_EQ(answer.jobs_size(), 1);
  EXPECT_EQ(answer.jobs(0).job_id(), "adhoc");
  EXPECT_FALSE(Exists("adhoc"));
  EXPECT_TRUE(Exists("nightly-2") && Exists("live"));
}

TEST_F(AdminCommandsTest, StatusShowsWhenAFinishedJobWillBeDeleted) {
  v1::CreateJobRequest create;
  create.set_job_id("kept");
  create.mutable_retention()->set_seconds(30 * 86400);
  CKPT_ASSERT_OK(client_->CreateJob(create));
  auto running = Run({"status", "kept"});
  CKPT_ASSERT_OK(running);
  EXPECT_THAT(*running, HasSubstr("Retention  30d00h after it finishes\n"));
  MakeJob("kept", v1::JOB_STATUS_COMPLETED, "a");  // resumed by fingerprint, then finished
  auto finished = Run({"status", "kept"});
  CKPT_ASSERT_OK(finished);
  EXPECT_THAT(*finished, HasSubstr("Retention  30d00h after it finishes: deleted from "));
}

TEST_F(AdminCommandsTest, GcGoesThroughEveryPage) {
  for (int i = 0; i < 5; ++i) MakeJob(absl::StrCat("batch-", i), v1::JOB_STATUS_COMPLETED, "a");
  auto deleted = Run({"gc", "--prefix", "batch-", "--limit", "2"});
  CKPT_ASSERT_OK(deleted);
  EXPECT_THAT(*deleted, HasSubstr("deleted 5 of the 5 jobs that matched"));
  for (int i = 0; i < 5; ++i) EXPECT_FALSE(Exists(absl::StrCat("batch-", i)));
}

TEST_F(AdminCommandsTest, GcRefusesWithoutAFilterAndSparesRunningJobsUnlessTold) {
  MakeJob("live", v1::JOB_STATUS_RUNNING, "a");
  EXPECT_THAT(Run({"gc"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("gc needs a filter")));
  EXPECT_THAT(Run({"gc", "--status", "running"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--include-unfinished")));
  EXPECT_THAT(Run({"gc", "--status", "done"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--status must be one of")));
  EXPECT_THAT(Run({"gc", "--finished-before", "soon"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--finished-before")));
  EXPECT_TRUE(Exists("live"));
  auto deleted = Run({"gc", "--status", "running", "--include-unfinished", "--prefix", "live"});
  CKPT_ASSERT_OK(deleted);
  EXPECT_THAT(*deleted, HasSubstr("deleted live  RUNNING  finished -"));
  EXPECT_FALSE(Exists("live"));
}

}  // namespace
}  // namespace cli
}  // namespace ckpt
