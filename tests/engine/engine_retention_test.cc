// Retention and bulk deletes through the engine: the sweep deletes exactly the finished
// jobs whose retention has run out (in bounded groups, its index rebuilt on reopen), and
// DeleteJobs selects by status, finish time, labels and prefix within the caller's
// scope, pages, and changes nothing on a dry run.
#include <atomic>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/common/proto_time.h"
#include "service/engine/engine_observer.h"
#include "service/store/keys.h"
#include "tests/engine/engine_test_base.h"
#include "tests/testing/engine_harness.h"
#include "tests/testing/status_matchers.h"

namespace ckpt {
namespace {

using ::ckpt::testutil::Parse;
using ::ckpt::testutil::StatusIs;
using ::ckpt::testutil::WriterHold;
using ::testing::_;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;
using ::testing::UnorderedElementsAreArray;

// Counts group commits, to see how many a bulk delete takes.
class CommitCounter : public EngineObserver {
 public:
  void OnGroupCommitted(const GroupCommitStats&) override { ++commits_; }
  int commits() const { return commits_.load(); }

 private:
  std::atomic<int> commits_{0};
};

EngineOptions Options(absl::Duration default_retention, absl::Duration sweep_interval,
                      EngineObserver* observer = nullptr) {
  EngineOptions options;
  options.retention.default_retention = default_retention;
  options.retention.sweep_interval = sweep_interval;
  options.observer = observer;
  return options;
}

std::vector<std::string> Ids(const v1::DeleteJobsResponse& response) {
  std::vector<std::string> ids;
  for (const v1::DeletedJob& job : response.jobs()) ids.push_back(job.job_id());
  return ids;
}

// Sweeps only when a test asks (SweepExpiredJobs), so each test decides when.
class RetentionTest : public testutil::EngineTest {
 protected:
  RetentionTest() : EngineTest(Options(absl::ZeroDuration(), absl::InfiniteDuration())) {}

  // A job with one item completed and a state blob, then ended as `status` (RUNNING:
  // left running). `retention`: text-format Duration fields, or "" for none.
  void MakeJob(const std::string& id, v1::JobStatus status, const std::string& retention,
               const std::string& labels = "") {
    const std::string kept = retention.empty() ? "" : absl::StrCat("retention {", retention, "}");
    CreateJob(absl::StrFormat(R"pb(job_id: "%s" %s %s)pb", id, kept, labels));
    Add(absl::StrFormat(R"pb(job_id: "%s"
                             ranges { begin: 0 end: 3 })pb",
                        id));
    CKPT_ASSERT_OK(Complete(absl::StrFormat(R"pb(job_id: "%s"
                                                 items {
                                                   key { index: 0 }
                                                   result { output_paths: "/out/%s/0" }
                                                 })pb",
                                            id, id)));
    CKPT_ASSERT_OK(Put(id, "cursor", "41"));
    End(id, status);
  }

  void End(const std::string& id, v1::JobStatus status) {
    v1::Job ignored;
    switch (status) {
      case v1::JOB_STATUS_RUNNING:
        return;
      case v1::JOB_STATUS_PAUSED:
        CKPT_ASSERT_OK(h_.Call(&Engine::PauseJob, Parse<v1::PauseJobRequest>(
                                                      absl::StrFormat(R"pb(job_id: "%s")pb", id))));
        return;
      case v1::JOB_STATUS_STOPPED:
        CKPT_ASSERT_OK(h_.Call(&Engine::StopJob, Parse<v1::StopJobRequest>(
                                                     absl::StrFormat(R"pb(job_id: "%s")pb", id))));
        return;
      default:
        CKPT_ASSERT_OK(h_.Call(&Engine::FinishJob, Parse<v1::FinishJobRequest>(absl::StrFormat(
                                                       R"pb(job_id: "%s" status: %s)pb", id,
                                                       v1::JobStatus_Name(status)))));
    }
  }

  bool Exists(const std::string& id) {
    v1::GetJobRequest r;
    r.set_job_id(id);
    return h_.Read(&Engine::GetJob, r).ok();
  }

  // The jobs there are, by id.
  std::vector<std::string> AllJobs() { return ListJobIds(R"pb(limit: 1000)pb"); }

  // Keys left under the job's prefix in every per-job family, and its job record.
  int StoredKeys(const std::string& id) {
    int keys = h_.store().Get(Cf::kJobs, id).value_or(std::nullopt).has_value() ? 1 : 0;
    for (Cf cf : {Cf::kItems, Cf::kSched, Cf::kWorkers, Cf::kStates, Cf::kLogs, Cf::kCompletions}) {
      auto it = h_.store().Scan(cf, keys::JobPrefix(id));
      for (; it->Valid(); it->Next()) ++keys;
      EXPECT_TRUE(it->status().ok()) << it->status();
    }
    return keys;
  }

  absl::StatusOr<v1::DeleteJobsResponse> DeleteJobs(const std::string& text,
                                                    absl::string_view scope = "") {
    const v1::DeleteJobsRequest request = Parse<v1::DeleteJobsRequest>(text);
    v1::DeleteJobsResponse response;
    absl::Notification done;
    absl::Status status;
    h_.engine().DeleteJobsWithPrefix(request, &response, scope, [&](absl::Status s) {
      status = s;
      done.Notify();
    });
    done.WaitForNotification();
    if (!status.ok()) return status;
    return response;
  }
};

// ---------------------------------------------------------------- the sweep

TEST_P(RetentionTest, TheSweepDeletesExactlyTheFinishedJobsWhoseRetentionRanOut) {
  MakeJob("completed", v1::JOB_STATUS_COMPLETED, "seconds: 3600");
  MakeJob("failed", v1::JOB_STATUS_FAILED, "seconds: 3600");
  MakeJob("stopped", v1::JOB_STATUS_STOPPED, "seconds: 3600");
  MakeJob("kept-longer", v1::JOB_STATUS_COMPLETED, "seconds: 7200");
  MakeJob("running", v1::JOB_STATUS_RUNNING, "seconds: 3600");
  MakeJob("paused", v1::JOB_STATUS_PAUSED, "seconds: 3600");
  MakeJob("forever", v1::JOB_STATUS_COMPLETED, "");
  const int stored = StoredKeys("completed");
  ASSERT_GT(stored, 3);
  EXPECT_EQ(Job("completed").retention().seconds(), 3600);
  EXPECT_FALSE(Job("forever").has_retention());

  // A second short of the hour: nothing has run out.
  h_.clock().Advance(absl::Hours(1) - absl::Seconds(1));
  CKPT_ASSERT_OK(h_.SweepExpiredJobs());
  EXPECT_EQ(AllJobs().size(), 7u);

  h_.clock().Advance(absl::Seconds(1));
  CKPT_ASSERT_OK(h_.SweepExpiredJobs());
  EXPECT_THAT(AllJobs(), UnorderedElementsAre("kept-longer", "running", "paused", "forever"));
  for (const std::string id : {"completed", "failed", "stopped"}) {
    EXPECT_EQ(StoredKeys(id), 0) << id;  // items, sched, states, ... and the record: all gone
    v1::FindOutputRequest find;
    find.set_output_path(absl::StrCat("/out/", id, "/0"));
    EXPECT_THAT(h_.Read(&Engine::FindOutput, find), StatusIs(absl::StatusCode::kNotFound, _));
  }
  EXPECT_EQ(StoredKeys("forever"), stored);

  // Only the longer retention runs out next, whatever the clock does to the others.
  h_.clock().Advance(absl::Hours(24 * 365));
  CKPT_ASSERT_OK(h_.SweepExpiredJobs());
  EXPECT_THAT(AllJobs(), UnorderedElementsAre("running", "paused", "forever"));
}

TEST_P(RetentionTest, AJobThatLeavesItsFinalStateStopsExpiringAndCountsAgainFromItsNextFinish) {
  MakeJob("resumed", v1::JOB_STATUS_FAILED, "seconds: 3600");
  MakeJob("reset", v1::JOB_STATUS_COMPLETED, "seconds: 3600");
  MakeJob("items-reset", v1::JOB_STATUS_COMPLETED, "seconds: 3600");
  h_.clock().Advance(absl::Minutes(30));
  CKPT_ASSERT_OK(
      h_.Call(&Engine::ResumeJob, Parse<v1::ResumeJobRequest>(R"pb(job_id: "resumed")pb")));
  CKPT_ASSERT_OK(h_.Call(&Engine::ResetJob, Parse<v1::ResetJobRequest>(R"pb(job_id: "reset")pb")));
  CKPT_ASSERT_OK(h_.Call(&Engine::ResetItems,
                         Parse<v1::ResetItemsRequest>(R"pb(job_id: "items-reset"
                                                           state: ITEM_STATE_COMPLETED)pb")));
  for (const std::string id : {"resumed", "reset", "items-reset"}) {
    EXPECT_EQ(Job(id).status(), v1::JOB_STATUS_RUNNING) << id;
    EXPECT_FALSE(Job(id).has_finish_time()) << id;
  }
  h_.clock().Advance(absl::Hours(5));
  CKPT_ASSERT_OK(h_.SweepExpiredJobs());
  EXPECT_THAT(AllJobs(), UnorderedElementsAre("resumed", "reset", "items-reset"));

  // Finished again: an hour from now, not from the first finish.
  End("resumed", v1::JOB_STATUS_FAILED);
  h_.clock().Advance(absl::Minutes(59));
  CKPT_ASSERT_OK(h_.SweepExpiredJobs());
  EXPECT_TRUE(Exists("resumed"));
  h_.clock().Advance(absl::Minutes(1));
  CKPT_ASSERT_OK(h_.SweepExpiredJobs());
  EXPECT_FALSE(Exists("resumed"));
  EXPECT_THAT(AllJobs(), UnorderedElementsAre("reset", "items-reset"));
}

TEST_P(RetentionTest, UpdateJobSetsAndRemovesARetention) {
  MakeJob("given", v1::JOB_STATUS_COMPLETED, "");
  MakeJob("taken", v1::JOB_STATUS_COMPLETED, "seconds: 3600");
  MakeJob("lengthened", v1::JOB_STATUS_COMPLETED, "seconds: 3600");
  h_.clock().Advance(absl::Hours(2));
  // A retention that ran out already goes at the next sweep; 0 keeps a job for good.
  auto given =
      h_.Call(&Engine::UpdateJob, Parse<v1::UpdateJobRequest>(R"pb(job_id: "given"
                                                                   retention { seconds: 60 })pb"));
  CKPT_ASSERT_OK(given);
  EXPECT_EQ(given->job().retention().seconds(), 60);
  auto taken = h_.Call(&Engine::UpdateJob, Parse<v1::UpdateJobRequest>(R"pb(job_id: "taken"
                                                                            retention {})pb"));
  CKPT_ASSERT_OK(taken);
  EXPECT_FALSE(taken->job().has_retention());
  CKPT_ASSERT_OK(h_.Call(&Engine::UpdateJob,
                         Parse<v1::UpdateJobRequest>(R"pb(job_id: "lengthened"
                                                          retention { seconds: 36000 })pb")));
  // An update without a retention leaves it as it is.
  CKPT_ASSERT_OK(h_.Call(&Engine::UpdateJob, Parse<v1::UpdateJobRequest>(R"pb(job_id: "lengthened"
                                                                              stage: "s")pb")));
  EXPECT_EQ(Job("lengthened").retention().seconds(), 36000);
  CKPT_ASSERT_OK(h_.SweepExpiredJobs());
  EXPECT_THAT(AllJobs(), UnorderedElementsAre("taken", "lengthened"));
}

TEST_P(RetentionTest, TheIndexIsRebuiltWhenTheEngineOpensAgain) {
  MakeJob("short", v1::JOB_STATUS_COMPLETED, "seconds: 3600");
  MakeJob("long", v1::JOB_STATUS_STOPPED, "seconds: 86400");
  MakeJob("running", v1::JOB_STATUS_RUNNING, "seconds: 3600");
  h_.Reopen();
  EXPECT_EQ(Job("short").retention().seconds(), 3600);  // stored with the job
  h_.clock().Advance(absl::Hours(2));
  CKPT_ASSERT_OK(h_.SweepExpiredJobs());
  EXPECT_THAT(AllJobs(), UnorderedElementsAre("long", "running"));
  h_.Reopen();
  h_.clock().Advance(absl::Hours(24));
  CKPT_ASSERT_OK(h_.SweepExpiredJobs());
  EXPECT_THAT(AllJobs(), ElementsAre("running"));
}

TEST_P(RetentionTest, OneSweepDeletesAFewJobsPerGroupCommit) {
  for (int i = 0; i < 20; ++i) {
    MakeJob(absl::StrCat("j", i), v1::JOB_STATUS_COMPLETED, "seconds: 1");
  }
  h_.clock().Advance(absl::Seconds(1));
  CKPT_ASSERT_OK(h_.SweepExpiredJobs());
  EXPECT_EQ(AllJobs().size(), 20u - kJobsPerDeleteGroup);
  CKPT_ASSERT_OK(h_.SweepExpiredJobs());
  CKPT_ASSERT_OK(h_.SweepExpiredJobs());
  EXPECT_THAT(AllJobs(), IsEmpty());
}

TEST_P(RetentionTest, ABigJobIsDeletedInAGroupOfItsOwn) {
  static_assert(kItemsPerDeleteGroup == 100000);
  for (const std::string id : {"big-0", "big-1", "small"}) {
    CreateJob(absl::StrFormat(R"pb(job_id: "%s"
                                   retention { seconds: 1 })pb",
                              id));
    Add(absl::StrFormat(R"pb(job_id: "%s"
                             ranges { end: %d })pb",
                        id, id == "small" ? 10 : 60000));
    End(id, v1::JOB_STATUS_STOPPED);
  }
  h_.clock().Advance(absl::Seconds(1));
  CKPT_ASSERT_OK(h_.SweepExpiredJobs());
  EXPECT_THAT(AllJobs(), UnorderedElementsAre("big-1", "small"));
  CKPT_ASSERT_OK(h_.SweepExpiredJobs());  // 60 000 + 10 fit together
  EXPECT_THAT(AllJobs(), IsEmpty());
}

TEST_P(RetentionTest, AJobResumedInTheSameGroupAsTheSweepIsKept) {
  MakeJob("resumed", v1::JOB_STATUS_FAILED, "seconds: 60");
  h_.clock().Advance(absl::Minutes(2));
  // ResumeJob is decided first in the group, before the index learns of it at flush.
  WriterHold hold(h_.engine(), "resumed");
  absl::Notification resumed, swept;
  v1::ResumeJobRequest resume;
  resume.set_job_id("resumed");
  v1::ResumeJobResponse response;
  h_.engine().ResumeJob(resume, &response, [&](absl::Status s) {
    CKPT_EXPECT_OK(s);
    resumed.Notify();
  });
  h_.engine().SweepExpiredJobs([&](absl::Status s) {
    CKPT_EXPECT_OK(s);
    swept.Notify();
  });
  hold.Release();
  resumed.WaitForNotification();
  swept.WaitForNotification();
  EXPECT_EQ(Job("resumed").status(), v1::JOB_STATUS_RUNNING);
}

INSTANTIATE_TEST_SUITE_P(Stores, RetentionTest, CKPT_ENGINE_STORE_KINDS);

// ---------------------------------------------------------------- defaults, the writer

class DefaultRetentionTest : public testutil::EngineTest {
 protected:
  DefaultRetentionTest() : EngineTest(Options(absl::Hours(24), absl::Minutes(1))) {}
};

TEST_P(DefaultRetentionTest, AJobWithoutOneGetsTheDefaultAndZeroOptsOut) {
  EXPECT_EQ(Create(R"pb(job_id: "default")pb")->job().retention().seconds(), 86400);
  EXPECT_FALSE(Create(R"pb(job_id: "none"
                           retention {})pb")
                   ->job()
                   .has_retention());
  EXPECT_EQ(Create(R"pb(job_id: "own"
                        retention { seconds: 7 })pb")
                ->job()
                .retention()
                .seconds(),
            7);
  h_.Reopen();
  EXPECT_EQ(Job("default").retention().seconds(), 86400);
  EXPECT_FALSE(Job("none").has_retention());
}

TEST_P(DefaultRetentionTest, TheWriterSweepsByItself) {
  for (const std::string id : {"a", "b", "none"}) {
    CreateJob(absl::StrCat(R"pb(job_id: ")pb", id, "\"", id == "none" ? " retention {}" : ""));
    CKPT_ASSERT_OK(h_.Call(&Engine::StopJob,
                           Parse<v1::StopJobRequest>(absl::StrCat(R"pb(job_id: ")pb", id, "\""))));
  }
  h_.clock().Advance(absl::Hours(25));
  // The writer checks the index whenever it runs a group: after this one it has swept.
  CKPT_ASSERT_OK(h_.Expire());
  EXPECT_THAT(ListJobIds(""), ElementsAre("none"));
}

INSTANTIATE_TEST_SUITE_P(Stores, DefaultRetentionTest, CKPT_ENGINE_STORE_KINDS);

// ---------------------------------------------------------------- DeleteJobs

class DeleteJobsTest : public RetentionTest {
 protected:
  // At t0: "old-done" COMPLETED and "old-failed" FAILED (team a), "old-stopped" STOPPED
  // (team b). At t0 + 10 days: "new-done" COMPLETED (team a). Still running: "running",
  // "paused".
  void SetUp() override {
    t0_ = Now();
    MakeJob("a-old-done", v1::JOB_STATUS_COMPLETED, "", R"(labels { key: "team" value: "a" })");
    MakeJob("a-old-failed", v1::JOB_STATUS_FAILED, "", R"(labels { key: "team" value: "a" })");
    MakeJob("b-old-stopped", v1::JOB_STATUS_STOPPED, "", R"(labels { key: "team" value: "b" })");
    h_.clock().Advance(absl::Hours(240));
    MakeJob("a-new-done", v1::JOB_STATUS_COMPLETED, "", R"(labels { key: "team" value: "a" })");
    MakeJob("a-running", v1::JOB_STATUS_RUNNING, "", R"(labels { key: "team" value: "a" })");
    MakeJob("b-paused", v1::JOB_STATUS_PAUSED, "", R"(labels { key: "team" value: "b" })");
  }

  // finished_before: { seconds: <t0 + hours> }
  std::string Before(int hours) {
    return absl::StrCat(
        "finished_before { seconds: ", absl::ToUnixSeconds(t0_ + absl::Hours(hours)), " }");
  }

  absl::Time t0_;
};

TEST_P(DeleteJobsTest, OnlyFinishedJobsByDefaultOldestFirst) {
  auto dry = DeleteJobs(R"pb(dry_run: true)pb");
  CKPT_ASSERT_OK(dry);
  EXPECT_EQ(dry->matched(), 4u);
  EXPECT_THAT(Ids(*dry), ElementsAre("a-old-done", "a-old-failed", "b-old-stopped", "a-new-done"));
  EXPECT_EQ(dry->jobs(0).status(), v1::JOB_STATUS_COMPLETED);
  EXPECT_EQ(FromProtoTime(dry->jobs(0).finish_time()), t0_);
  EXPECT_TRUE(dry->next_page_token().empty());
  EXPECT_EQ(AllJobs().size(), 6u);  // a dry run deletes nothing

  auto deleted = DeleteJobs(absl::StrCat(Before(1)));
  CKPT_ASSERT_OK(deleted);
  EXPECT_EQ(deleted->matched(), 3u);
  EXPECT_THAT(Ids(*deleted), ElementsAre("a-old-done", "a-old-failed", "b-old-stopped"));
  EXPECT_THAT(AllJobs(), UnorderedElementsAre("a-new-done", "a-running", "b-paused"));
  for (const std::string& id : Ids(*deleted)) EXPECT_EQ(StoredKeys(id), 0) << id;
}

TEST_P(DeleteJobsTest, FiltersCombine) {
  auto by_status = DeleteJobs(R"pb(dry_run: true statuses: JOB_STATUS_COMPLETED)pb");
  EXPECT_THAT(Ids(*by_status), ElementsAre("a-old-done", "a-new-done"));
  auto by_label = DeleteJobs(R"pb(dry_run: true
                                  labels { key: "team" value: "b" })pb");
  EXPECT_THAT(Ids(*by_label), ElementsAre("b-old-stopped"));
  auto by_prefix = DeleteJobs(R"pb(dry_run: true job_id_prefix: "a-old-")pb");
  EXPECT_THAT(Ids(*by_prefix), ElementsAre("a-old-done", "a-old-failed"));
  auto by_time = DeleteJobs(absl::StrCat("dry_run: true ", Before(241)));
  EXPECT_EQ(by_time->matched(), 4u);
  auto all_of_them = DeleteJobs(absl::StrCat("dry_run: true statuses: JOB_STATUS_COMPLETED ",
                                             Before(1), R"pb(labels { key: "team" value: "a" }
                                                             job_id_prefix: "a-")pb"));
  EXPECT_THAT(Ids(*all_of_them), ElementsAre("a-old-done"));
  // Unfinished jobs only when asked for, and never by a finish time.
  auto unfinished = DeleteJobs(
      R"pb(dry_run: true
           include_unfinished: true
           statuses: [ JOB_STATUS_RUNNING, JOB_STATUS_PAUSED ])pb");
  EXPECT_THAT(Ids(*unfinished), ElementsAre("a-running", "b-paused"));
  EXPECT_FALSE(unfinished->jobs(0).has_finish_time());
  auto never = DeleteJobs(absl::StrCat(
      R"pb(include_unfinished: true statuses: JOB_STATUS_RUNNING)pb", " ", Before(1000)));
  EXPECT_EQ(never->matched(), 0u);
  CKPT_ASSERT_OK(DeleteJobs(R"pb(include_unfinished: true statuses: JOB_STATUS_RUNNING)pb"));
  EXPECT_FALSE(Exists("a-running"));
  EXPECT_EQ(AllJobs().size(), 5u);
}

TEST_P(DeleteJobsTest, AConfinedCallerSeesAndDeletesOnlyItsPrefix) {
  auto dry = DeleteJobs(R"pb(dry_run: true)pb", "b-");
  EXPECT_EQ(dry->matched(), 1u);
  EXPECT_THAT(Ids(*dry), ElementsAre("b-old-stopped"));
  // Its own prefix filter narrows further; it never widens.
  EXPECT_EQ(DeleteJobs(R"pb(dry_run: true job_id_prefix: "a-")pb", "b-")->matched(), 0u);
  auto deleted = DeleteJobs(R"pb(labels { key: "team" value: "a" })pb", "b-");
  CKPT_ASSERT_OK(deleted);
  EXPECT_EQ(deleted->matched(), 0u);
  EXPECT_EQ(AllJobs().size(), 6u);
  CKPT_ASSERT_OK(DeleteJobs("", "b-"));
  EXPECT_THAT(AllJobs(), UnorderedElementsAre("a-old-done", "a-old-failed", "a-new-done",
                                              "a-running", "b-paused"));
}

TEST_P(DeleteJobsTest, ALimitPagesAndDeletesAFewJobsPerGroupCommit) {
  for (int i = 0; i < 18; ++i) {
    MakeJob(absl::StrFormat("z%02d", i), v1::JOB_STATUS_COMPLETED, "");
  }
  // 22 finished jobs: listed 5 at a time, each page after the token of the one before.
  std::vector<std::string> listed;
  std::string token;
  int pages = 0;
  do {
    auto page =
        DeleteJobs(absl::StrFormat(R"pb(dry_run: true limit: 5 page_token: "%s")pb", token));
    CKPT_ASSERT_OK(page);
    EXPECT_EQ(page->matched(), 22u);
    EXPECT_LE(page->jobs_size(), 5);
    for (const std::string& id : Ids(*page)) listed.push_back(id);
    token = page->next_page_token();
    ++pages;
  } while (!token.empty());
  EXPECT_EQ(pages, 5);
  EXPECT_EQ(listed.size(), 22u);
  EXPECT_THAT(std::vector<std::string>(listed.begin(), listed.begin() + 3),
              ElementsAre("a-old-done", "a-old-failed", "b-old-stopped"));
  EXPECT_EQ(AllJobs().size(), 24u);
  EXPECT_THAT(DeleteJobs(R"pb(page_token: "nonsense")pb"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("page_token")));

  // Deleting 20 goes in groups of kJobsPerDeleteGroup, and says more are left.
  auto deleted = DeleteJobs(R"pb(limit: 20)pb");
  CKPT_ASSERT_OK(deleted);
  EXPECT_EQ(deleted->jobs_size(), 20);
  EXPECT_EQ(deleted->matched(), 22u);
  EXPECT_FALSE(deleted->next_page_token().empty());
  EXPECT_THAT(Ids(*deleted), UnorderedElementsAreArray(
                                 std::vector<std::string>(listed.begin(), listed.begin() + 20)));
  auto rest = DeleteJobs(R"pb(limit: 20)pb");
  EXPECT_EQ(rest->matched(), 2u);
  EXPECT_TRUE(rest->next_page_token().empty());
  EXPECT_THAT(AllJobs(), UnorderedElementsAre("a-running", "b-paused"));
}

TEST_P(DeleteJobsTest, AJobThatLeftTheFilterAfterItWasSelectedIsKept) {
  // Selection reads what is published; the ResumeJob queued first is decided first.
  WriterHold hold(h_.engine(), "a-old-failed");
  absl::Notification resumed;
  v1::ResumeJobRequest resume;
  resume.set_job_id("a-old-failed");
  v1::ResumeJobResponse response;
  h_.engine().ResumeJob(resume, &response, [&](absl::Status s) {
    CKPT_EXPECT_OK(s);
    resumed.Notify();
  });
  v1::DeleteJobsRequest request = Parse<v1::DeleteJobsRequest>(Before(1));
  v1::DeleteJobsResponse deleted;
  absl::Notification done;
  h_.engine().DeleteJobs(request, &deleted, [&](absl::Status s) {
    CKPT_EXPECT_OK(s);
    done.Notify();
  });
  hold.Release();
  resumed.WaitForNotification();
  done.WaitForNotification();
  EXPECT_EQ(deleted.matched(), 3u);
  EXPECT_THAT(Ids(deleted), ElementsAre("a-old-done", "b-old-stopped"));
  EXPECT_EQ(Job("a-old-failed").status(), v1::JOB_STATUS_RUNNING);
}

INSTANTIATE_TEST_SUITE_P(Stores, DeleteJobsTest, CKPT_ENGINE_STORE_KINDS);

// How many group commits a bulk delete takes.
class DeleteJobsGroupsTest : public testutil::EngineTest {
 protected:
  DeleteJobsGroupsTest()
      : EngineTest(Options(absl::ZeroDuration(), absl::InfiniteDuration(), &commits_)) {}
  static CommitCounter commits_;
};
CommitCounter DeleteJobsGroupsTest::commits_;

TEST_P(DeleteJobsGroupsTest, TwentyJobsGoInThreeGroups) {
  for (int i = 0; i < 20; ++i) {
    CreateJob(absl::StrFormat(R"pb(job_id: "j%d")pb", i));
    CKPT_ASSERT_OK(h_.Call(&Engine::StopJob,
                           Parse<v1::StopJobRequest>(absl::StrFormat(R"pb(job_id: "j%d")pb", i))));
  }
  const int before = commits_.commits();
  v1::DeleteJobsResponse deleted;
  absl::Notification done;
  h_.engine().DeleteJobs(v1::DeleteJobsRequest(), &deleted, [&](absl::Status s) {
    CKPT_EXPECT_OK(s);
    done.Notify();
  });
  done.WaitForNotification();
  EXPECT_EQ(deleted.jobs_size(), 20);
  static_assert(kJobsPerDeleteGroup == 8);
  EXPECT_EQ(commits_.commits() - before, 3);
}

TEST_P(DeleteJobsGroupsTest, BigJobsGoOneGroupEach) {
  for (int i = 0; i < 3; ++i) {
    CreateJob(absl::StrFormat(R"pb(job_id: "big%d")pb", i));
    Add(absl::StrFormat(R"pb(job_id: "big%d"
                             ranges { end: 60000 })pb",
                        i));
    CKPT_ASSERT_OK(h_.Call(
        &Engine::StopJob, Parse<v1::StopJobRequest>(absl::StrFormat(R"pb(job_id: "big%d")pb", i))));
  }
  const int before = commits_.commits();
  v1::DeleteJobsResponse deleted;
  absl::Notification done;
  h_.engine().DeleteJobs(v1::DeleteJobsRequest(), &deleted, [&](absl::Status s) {
    CKPT_EXPECT_OK(s);
    done.Notify();
  });
  done.WaitForNotification();
  EXPECT_THAT(Ids(deleted), ElementsAre("big0", "big1", "big2"));
  EXPECT_EQ(commits_.commits() - before, 3);
  EXPECT_THAT(ListJobIds(""), IsEmpty());
}

INSTANTIATE_TEST_SUITE_P(Stores, DeleteJobsGroupsTest, CKPT_ENGINE_STORE_KINDS);

// A write queue of two ops, so that a test can fill it between a bulk delete's groups.
class DeleteJobsQueueTest : public testutil::EngineTest {
 protected:
  DeleteJobsQueueTest() : EngineTest(SmallQueue()) {}
  static EngineOptions SmallQueue() {
    EngineOptions options = Options(absl::ZeroDuration(), absl::InfiniteDuration());
    options.queue.max_ops = 2;
    return options;
  }
};

TEST_P(DeleteJobsQueueTest, AGroupRefusedAfterOthersWereDeletedCarriesNoRetryHint) {
  for (int i = 0; i < 10; ++i) {
    CreateJob(absl::StrFormat(R"pb(job_id: "j%d")pb", i));
    CKPT_ASSERT_OK(h_.Call(&Engine::StopJob,
                           Parse<v1::StopJobRequest>(absl::StrFormat(R"pb(job_id: "j%d")pb", i))));
  }
  // Queued behind the held writer, then decided as one group: a ListWorkers whose
  // answer (first) holds the writer again, and the bulk delete's first group.
  v1::ListWorkersRequest list;
  list.set_job_id("j0");
  v1::ListWorkersResponse listed, filler[2];
  absl::Notification in_answer, go_on, done, filled[2];
  WriterHold hold(h_.engine(), "j0");
  h_.engine().ListWorkers(list, &listed, [&](absl::Status) {
    in_answer.Notify();
    go_on.WaitForNotification();
  });
  v1::DeleteJobsResponse deleted;
  absl::Status status;
  h_.engine().DeleteJobs(v1::DeleteJobsRequest(), &deleted, [&](absl::Status s) {
    status = s;
    done.Notify();
  });
  hold.Release();
  in_answer.WaitForNotification();
  // The first group is committed; the queue fills before its next group is queued.
  for (int i = 0; i < 2; ++i) {
    h_.engine().ListWorkers(list, &filler[i], [&, i](absl::Status) { filled[i].Notify(); });
  }
  go_on.Notify();
  done.WaitForNotification();
  for (absl::Notification& n : filled) n.WaitForNotification();
  // Eight jobs are gone: a retry hint would tell the SDKs that nothing was applied, and
  // they would send the call again and report only what the second call deleted.
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kResourceExhausted,
                               HasSubstr("DeleteJobs deleted 8 jobs, then: ")));
  EXPECT_FALSE(status.GetPayload(kRetryAfterPayload).has_value());
  EXPECT_EQ(ListJobIds("").size(), 2u);
}

INSTANTIATE_TEST_SUITE_P(Stores, DeleteJobsQueueTest, CKPT_ENGINE_STORE_KINDS);

}  // namespace
}  // namespace ckpt
