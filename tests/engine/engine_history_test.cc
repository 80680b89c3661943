// Who did what, resuming a failed run, and what a released lease keeps: through the
// engine, on a real store with a fake clock.
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/engine/engine_test_base.h"
#include "tests/engine/recount.h"
#include "tests/testing/engine_harness.h"
#include "tests/testing/status_matchers.h"

namespace ckpt {
namespace {

using ::ckpt::testutil::Parse;
using ::ckpt::testutil::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;

class EngineHistoryTest : public testutil::EngineTest {
 protected:
  absl::StatusOr<v1::LeaseItemsResponse> Lease(const std::string& text) {
    return h_.Call(&Engine::LeaseItems, Parse<v1::LeaseItemsRequest>(text));
  }
  absl::StatusOr<v1::UnregisterWorkerResponse> Unregister(const std::string& job,
                                                          const std::string& worker) {
    v1::UnregisterWorkerRequest r;
    r.set_job_id(job);
    r.set_worker_id(worker);
    return h_.Call(&Engine::UnregisterWorker, r);
  }
  v1::Item GetItem(const std::string& job, const std::string& key_text) {
    auto out = h_.Read(&Engine::GetItem, Parse<v1::GetItemRequest>(absl::StrFormat(
                                             R"pb(job_id: "%s" key { %s })pb", job, key_text)));
    EXPECT_TRUE(out.ok()) << out.status();
    return out.ok() ? out->item() : v1::Item();
  }
  absl::StatusOr<v1::ResumeJobResponse> Resume(const std::string& job) {
    v1::ResumeJobRequest r;
    r.set_job_id(job);
    return h_.Call(&Engine::ResumeJob, r);
  }
  std::vector<v1::Item> Items(const std::string& job, v1::ItemState state) {
    return testutil::ListAll(h_, job, "", state, 3);
  }
};

// The defect black-box testing found: a claimed item that had used up its attempts went
// back to PENDING on UnregisterWorker and was handed out for a third try.
TEST_P(EngineHistoryTest, UnregisteringTheHolderOfAnItemOutOfAttemptsLeavesItFailed) {
  CreateJob(R"pb(job_id: "j" max_attempts: 2)pb");
  Add(R"pb(job_id: "j" names: "a" names: "b")pb");
  for (int i = 0; i < 2; ++i) {
    CKPT_ASSERT_OK(Fail(R"pb(job_id: "j"
                             worker_id: "pipeline"
                             items {
                               key { name: "b" }
                               error { message: "bad page" }
                             })pb"));
  }
  const std::string w = Register("j");
  auto claim = Lease(absl::StrCat(R"pb(job_id: "j"
                                       keys { name: "b" }
                                       worker_id: ")pb",
                                  w, "\""));
  CKPT_ASSERT_OK(claim);
  ASSERT_EQ(claim->leases_size(), 1);
  EXPECT_EQ(claim->leases(0).attempt(), 3u);

  auto released = Unregister("j", w);
  CKPT_ASSERT_OK(released);
  EXPECT_EQ(released->released(), 1u);
  auto check = [&] {
    const v1::Item b = GetItem("j", R"pb(name: "b")pb");
    EXPECT_EQ(b.state(), v1::ITEM_STATE_FAILED);
    EXPECT_EQ(b.attempts(), 2u);
    EXPECT_EQ(b.last_error().message(), "bad page");
    EXPECT_EQ(b.worker_id(), "pipeline");
    EXPECT_EQ(Job("j").progress().failed(), 1u);
    testutil::ExpectCountersMatchRecount(h_, "j");
  };
  check();
  // Another worker gets "a" only: "b" is not tried a third time.
  const std::string w2 = Register("j");
  auto next = Lease(absl::StrCat(R"pb(job_id: "j" max_items: 5 worker_id: ")pb", w2, "\""));
  CKPT_ASSERT_OK(next);
  ASSERT_EQ(next->leases_size(), 1);
  EXPECT_EQ(next->leases(0).key().name(), "a");
  h_.Reopen();
  check();
}

TEST_P(EngineHistoryTest, ARetryReleasedByUnregisterKeepsItsAttemptsAndLastError) {
  CreateJob(R"pb(job_id: "r" max_attempts: 3)pb");
  Add(R"pb(job_id: "r" indices: 7)pb");
  const std::string w = Register("r");
  auto first = Lease(absl::StrCat(R"pb(job_id: "r" max_items: 1 worker_id: ")pb", w, "\""));
  CKPT_ASSERT_OK(first);
  ASSERT_EQ(first->leases_size(), 1);
  CKPT_ASSERT_OK(FailRetryable("r", 7, first->leases(0).lease_token(), "timeout"));
  auto second = Lease(absl::StrCat(R"pb(job_id: "r" max_items: 1 worker_id: ")pb", w, "\""));
  CKPT_ASSERT_OK(second);
  ASSERT_EQ(second->leases_size(), 1);
  EXPECT_EQ(second->leases(0).attempt(), 2u);
  CKPT_ASSERT_OK(Unregister("r", w));
  const v1::Item item = GetItem("r", "index: 7");
  EXPECT_EQ(item.state(), v1::ITEM_STATE_PENDING);
  EXPECT_EQ(item.attempts(), 1u);
  EXPECT_EQ(item.last_error().message(), "timeout");
  EXPECT_EQ(item.last_error().worker_id(), w);  // the holder whose token failed it
  testutil::ExpectCountersMatchRecount(h_, "r");
}

// curator records the worker per index: GetItem and ListItems say who completed or
// failed each item, across a restart.
TEST_P(EngineHistoryTest, ItemsSayWhichWorkerCompletedOrFailedThem) {
  CreateJob(R"pb(job_id: "who"
                 lease_timeout { seconds: 10 })pb");
  Add(R"pb(job_id: "who"
           ranges { begin: 0 end: 6 })pb");
  // Record mode, naming the worker.
  CKPT_ASSERT_OK(Complete(R"pb(job_id: "who"
                               worker_id: "host-a:7"
                               items { key { index: 0 } })pb"));
  CKPT_ASSERT_OK(Fail(R"pb(job_id: "who"
                           worker_id: "host-b:9"
                           items {
                             key { index: 1 }
                             error { message: "bad" }
                           })pb"));
  // With a lease and no worker_id in the request: the lease's holder.
  const std::string w = Register("who");
  auto leased = Lease(absl::StrCat(R"pb(job_id: "who" max_items: 3 worker_id: ")pb", w, "\""));
  CKPT_ASSERT_OK(leased);
  ASSERT_EQ(leased->leases_size(), 3);  // 2, 3, 4
  CKPT_ASSERT_OK(Complete(absl::StrCat(R"pb(job_id: "who"
                                            items { key { index: 2 }
                                                    lease_token:)pb",
                                       leased->leases(0).lease_token(), "}")));
  CKPT_ASSERT_OK(Fail(absl::StrCat(R"pb(job_id: "who"
                                        items { key { index: 3 }
                                                error { message: "oom" }
                                                lease_token:)pb",
                                   leased->leases(1).lease_token(), "}")));
  // An expired lease: its holder failed it.
  h_.clock().Advance(absl::Seconds(11));
  CKPT_ASSERT_OK(h_.Expire());

  auto check = [&] {
    EXPECT_EQ(GetItem("who", "index: 0").worker_id(), "host-a:7");
    EXPECT_EQ(GetItem("who", "index: 1").worker_id(), "host-b:9");
    EXPECT_EQ(GetItem("who", "index: 1").last_error().worker_id(), "host-b:9");
    EXPECT_EQ(GetItem("who", "index: 2").worker_id(), w);
    EXPECT_EQ(GetItem("who", "index: 3").worker_id(), w);
    EXPECT_EQ(GetItem("who", "index: 3").last_error().worker_id(), w);
    const v1::Item expired = GetItem("who", "index: 4");
    EXPECT_EQ(expired.state(), v1::ITEM_STATE_PENDING);
    EXPECT_EQ(expired.worker_id(), w);
    EXPECT_EQ(GetItem("who", "index: 5").worker_id(), "");  // never tried
    std::vector<std::string> completed_by, failed_by;
    for (const v1::Item& item : Items("who", v1::ITEM_STATE_COMPLETED)) {
      completed_by.push_back(item.worker_id());
    }
    for (const v1::Item& item : Items("who", v1::ITEM_STATE_FAILED)) {
      failed_by.push_back(item.worker_id());
    }
    EXPECT_THAT(completed_by, ::testing::ElementsAre("host-a:7", w));
    EXPECT_THAT(failed_by, ::testing::ElementsAre("host-b:9", w));
  };
  check();
  h_.Reopen();
  check();
  // A reset item is as new: nobody did it.
  CKPT_ASSERT_OK(
      h_.Call(&Engine::ResetItems, Parse<v1::ResetItemsRequest>(R"pb(job_id: "who"
                                                                     step: "main"
                                                                     keys { index: 0 })pb")));
  EXPECT_EQ(GetItem("who", "index: 0").worker_id(), "");
}

// PATAS's resume-mining: a run that failed comes back to RUNNING with its cursor, its
// intermediate state, its results and its failed items, instead of a ResetJob that
// would throw them away.
TEST_P(EngineHistoryTest, ResumingAFailedRunKeepsEverything) {
  CreateJob(R"pb(job_id: "mine")pb");
  Add(R"pb(job_id: "mine"
           ranges { begin: 0 end: 10 })pb");
  CKPT_ASSERT_OK(Complete(R"pb(job_id: "mine"
                               items {
                                 key { index: 0 }
                                 result { output_paths: "/out/0" }
                               })pb"));
  CKPT_ASSERT_OK(Fail(R"pb(job_id: "mine"
                           items {
                             key { index: 1 }
                             error { message: "parse error" }
                           })pb"));
  v1::PutStateRequest put;
  put.set_job_id("mine");
  put.set_name("last_processed_message_id");
  put.set_value("msg-4411");
  CKPT_ASSERT_OK(h_.Call(&Engine::PutState, put));
  CKPT_ASSERT_OK(
      h_.Call(&Engine::FinishJob, Parse<v1::FinishJobRequest>(R"pb(job_id: "mine"
                                                                   status: JOB_STATUS_FAILED
                                                                   reason: "mining crashed")pb")));
  h_.Reopen();

  auto resumed = Resume("mine");
  CKPT_ASSERT_OK(resumed);
  EXPECT_EQ(resumed->job().status(), v1::JOB_STATUS_RUNNING);
  EXPECT_EQ(resumed->job().status_reason(), "");
  EXPECT_FALSE(resumed->job().has_finish_time());
  const v1::Progress p = resumed->job().progress();
  EXPECT_EQ(p.completed(), 1u);
  EXPECT_EQ(p.failed(), 1u);
  EXPECT_EQ(p.pending(), 8u);
  EXPECT_EQ(GetItem("mine", "index: 0").result().output_paths(0), "/out/0");
  EXPECT_EQ(GetItem("mine", "index: 1").state(), v1::ITEM_STATE_FAILED);  // until reset
  v1::GetStateRequest get;
  get.set_job_id("mine");
  get.set_name("last_processed_message_id");
  auto state = h_.Read(&Engine::GetState, get);
  CKPT_ASSERT_OK(state);
  EXPECT_EQ(state->state().value(), "msg-4411");
  // Work goes on: leases are handed out again. A repeat of the resume changes nothing.
  const std::string w = Register("mine");
  auto lease = Lease(absl::StrCat(R"pb(job_id: "mine" max_items: 2 worker_id: ")pb", w, "\""));
  CKPT_ASSERT_OK(lease);
  EXPECT_EQ(lease->leases_size(), 2);
  CKPT_ASSERT_OK(Resume("mine"));
  testutil::ExpectCountersMatchRecount(h_, "mine");
}

TEST_P(EngineHistoryTest, ABudgetFailedJobResumesOnlyOnceUnderItsBudget) {
  CreateJob(R"pb(job_id: "b"
                 failure_budget { max_failed_items: 1 })pb");
  Add(R"pb(job_id: "b"
           ranges { begin: 0 end: 10 })pb");
  CKPT_ASSERT_OK(Fail(R"pb(job_id: "b"
                           items {
                             key { index: 0 }
                             error { message: "x" }
                           }
                           items {
                             key { index: 1 }
                             error { message: "x" }
                           })pb"));
  ASSERT_EQ(Job("b").status(), v1::JOB_STATUS_FAILED);
  EXPECT_THAT(Resume("b"),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr("failure budget exceeded: 2 of 10"),
                             HasSubstr("reset failed items"), HasSubstr("raise the budget"))));
  EXPECT_EQ(Job("b").status(), v1::JOB_STATUS_FAILED);

  // Raising the budget does not resume it by itself; ResumeJob then does.
  auto raised = h_.Call(&Engine::UpdateJob, Parse<v1::UpdateJobRequest>(R"pb(
    job_id: "b"
    failure_budget { max_failed_items: 5 })pb"));
  CKPT_ASSERT_OK(raised);
  EXPECT_EQ(raised->job().status(), v1::JOB_STATUS_FAILED);
  EXPECT_EQ(raised->job().failure_budget().max_failed_items(), 5u);
  auto resumed = Resume("b");
  CKPT_ASSERT_OK(resumed);
  EXPECT_EQ(resumed->job().status(), v1::JOB_STATUS_RUNNING);
  EXPECT_EQ(resumed->job().progress().failed(), 2u);

  // Lowering it below what has failed fails the job at once.
  auto lowered = h_.Call(&Engine::UpdateJob, Parse<v1::UpdateJobRequest>(R"pb(
    job_id: "b"
    failure_budget { max_failed_fraction: 0.1 })pb"));
  CKPT_ASSERT_OK(lowered);
  EXPECT_EQ(lowered->job().status(), v1::JOB_STATUS_FAILED);
  EXPECT_THAT(lowered->job().status_reason(), HasSubstr("failure budget exceeded"));
  h_.Reopen();
  EXPECT_EQ(Job("b").failure_budget().max_failed_fraction(), 0.1);
  testutil::ExpectCountersMatchRecount(h_, "b");
}

TEST_P(EngineHistoryTest, ASealedJobWithNothingLeftButFailuresSaysToRetryThem) {
  CreateJob(R"pb(job_id: "s")pb");
  Add(R"pb(job_id: "s" indices: 0 indices: 1 seal: true)pb");
  CKPT_ASSERT_OK(Complete(R"pb(job_id: "s"
                               items { key { index: 0 } })pb"));
  CKPT_ASSERT_OK(Fail(R"pb(job_id: "s"
                           items {
                             key { index: 1 }
                             error { message: "x" }
                           })pb"));
  ASSERT_EQ(Job("s").status(), v1::JOB_STATUS_FAILED);
  EXPECT_THAT(Resume("s"), StatusIs(absl::StatusCode::kFailedPrecondition,
                                    AllOf(HasSubstr("every item is finished, 1 of 2 failed"),
                                          HasSubstr("ResetItems"))));
  // Stopped and completed jobs stay where they are.
  CreateJob(R"pb(job_id: "stopped")pb");
  CKPT_ASSERT_OK(h_.Call(&Engine::StopJob, Parse<v1::StopJobRequest>(R"pb(job_id: "stopped")pb")));
  EXPECT_THAT(Resume("stopped"),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("STOPPED -> RUNNING")));
  CreateJob(R"pb(job_id: "done")pb");
  Add(R"pb(job_id: "done" seal: true)pb");
  ASSERT_EQ(Job("done").status(), v1::JOB_STATUS_COMPLETED);
  EXPECT_THAT(Resume("done"),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("COMPLETED -> RUNNING")));
}

INSTANTIATE_TEST_SUITE_P(Stores, EngineHistoryTest, CKPT_ENGINE_STORE_KINDS);

}  // namespace
}  // namespace ckpt
