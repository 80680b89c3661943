// Jobs, workers and state blobs through the engine, on a real store with a fake clock.
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/blocking_counter.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "service/common/proto_time.h"
#include "tests/engine/engine_test_base.h"
#include "tests/engine/recount.h"
#include "tests/testing/engine_harness.h"
#include "tests/testing/status_matchers.h"

namespace ckpt {
namespace {

using ::ckpt::testutil::EngineHarness;
using ::ckpt::testutil::Parse;
using ::ckpt::testutil::StatusIs;
using ::testing::_;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Pair;
using ::testing::StartsWith;
using ::testing::UnorderedElementsAre;

// Equal protos, or a readable difference.
::testing::AssertionResult ProtoEq(const google::protobuf::Message& expected,
                                   const google::protobuf::Message& actual) {
  google::protobuf::util::MessageDifferencer differ;
  std::string diff;
  differ.ReportDifferencesToString(&diff);
  if (differ.Compare(expected, actual)) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << diff;
}

// Holds the engine's writer inside a done callback (the writer runs them itself), so
// that the ops submitted meanwhile queue up and are decided as one group once released.
// Release, then wait for those ops' answers, before this goes out of scope.
class WriterHold {
 public:
  WriterHold(Engine& engine, const std::string& job_id) {
    request_.set_job_id(job_id);
    engine.ListWorkers(request_, &response_, [this](absl::Status) {
      held_.Notify();
      release_.WaitForNotification();
    });
    held_.WaitForNotification();
  }
  void Release() { release_.Notify(); }

 private:
  v1::ListWorkersRequest request_;
  v1::ListWorkersResponse response_;
  absl::Notification held_, release_;
};

class EngineJobsTest : public testutil::EngineTest {
 protected:
  absl::StatusOr<v1::LeaseItemsResponse> Lease(const std::string& job, const std::string& worker,
                                               int n, const std::string& step = "") {
    return h_.Call(
        &Engine::LeaseItems,
        Parse<v1::LeaseItemsRequest>(absl::StrFormat(
            R"pb(job_id: "%s" step: "%s" worker_id: "%s" max_items: %d)pb", job, step, worker, n)));
  }
  absl::StatusOr<v1::HeartbeatResponse> Heartbeat(const std::string& job,
                                                  const std::string& worker) {
    return h_.Call(&Engine::Heartbeat, Parse<v1::HeartbeatRequest>(absl::StrFormat(
                                           R"pb(job_id: "%s" worker_id: "%s")pb", job, worker)));
  }
  std::vector<v1::Worker> Workers(const std::string& job, bool include_exited = false) {
    v1::ListWorkersRequest r;
    r.set_job_id(job);
    r.set_include_exited(include_exited);
    auto out = h_.Call(&Engine::ListWorkers, r);
    EXPECT_TRUE(out.ok()) << out.status();
    if (!out.ok()) return {};
    return {out->workers().begin(), out->workers().end()};
  }
  absl::StatusOr<v1::GetItemResponse> GetItem(const std::string& text) {
    return h_.Read(&Engine::GetItem, Parse<v1::GetItemRequest>(text));
  }
  absl::StatusOr<v1::PutStateResponse> Put(const std::string& job, const std::string& name,
                                           const std::string& value) {
    v1::PutStateRequest r;
    r.set_job_id(job);
    r.set_name(name);
    r.set_value(value);
    return h_.Call(&Engine::PutState, r);
  }
  absl::StatusOr<v1::PutStateResponse> PutIf(const std::string& job, const std::string& name,
                                             const std::string& value, uint64_t expected) {
    v1::PutStateRequest r;
    r.set_job_id(job);
    r.set_name(name);
    r.set_value(value);
    r.set_expected_version(expected);
    return h_.Call(&Engine::PutState, r);
  }
  absl::StatusOr<v1::GetStateResponse> GetState(const std::string& job, const std::string& name) {
    v1::GetStateRequest r;
    r.set_job_id(job);
    r.set_name(name);
    return h_.Read(&Engine::GetState, r);
  }
  std::vector<v1::State> States(const std::string& job, bool include_values) {
    v1::ListStatesRequest r;
    r.set_job_id(job);
    r.set_include_values(include_values);
    auto out = h_.Read(&Engine::ListStates, r);
    EXPECT_TRUE(out.ok()) << out.status();
    if (!out.ok()) return {};
    return {out->states().begin(), out->states().end()};
  }
  std::vector<v1::Item> Items(const std::string& job, const std::string& step = "",
                              v1::ItemState state = v1::ITEM_STATE_UNSPECIFIED) {
    return testutil::ListAll(h_, job, step, state, 11);
  }
  std::vector<std::string> ListJobIds(const std::string& text) {
    auto out = h_.Read(&Engine::ListJobs, Parse<v1::ListJobsRequest>(text));
    EXPECT_TRUE(out.ok()) << out.status();
    std::vector<std::string> ids;
    if (out.ok()) {
      for (const auto& job : out->jobs()) ids.push_back(job.job_id());
    }
    return ids;
  }
  absl::Time Now() { return h_.clock().Now(); }
};

// ---------------------------------------------------------------- CreateJob

TEST_F(EngineJobsTest, CreateThenResubmitWithTheSameFingerprintResumesAndChangesNothing) {
  auto first = Create(R"pb(job_id: "j" display_name: "first" config: "{}" fingerprint: "fp-1")pb");
  CKPT_ASSERT_OK(first);
  EXPECT_TRUE(first->created());
  EXPECT_FALSE(first->resumed());
  EXPECT_FALSE(first->reset());
  EXPECT_EQ(first->job().job_id(), "j");
  EXPECT_EQ(first->job().status(), v1::JOB_STATUS_RUNNING);
  Add(R"pb(job_id: "j"
           ranges { begin: 0 end: 10 })pb");
  CKPT_ASSERT_OK(Complete(R"pb(job_id: "j"
                               items { key { index: 0 } })pb"));
  const v1::Job before = Job("j");

  h_.clock().Advance(absl::Minutes(1));
  auto again = Create(R"pb(job_id: "j"
                           display_name: "second"
                           config: "{\"x\": 1}"
                           fingerprint: "fp-1"
                           labels { key: "k" value: "v" }
                           max_attempts: 9)pb");
  CKPT_ASSERT_OK(again);
  EXPECT_FALSE(again->created());
  EXPECT_TRUE(again->resumed());
  EXPECT_FALSE(again->reset());
  // The stored definition stands; the resubmitted one is ignored.
  EXPECT_EQ(again->job().display_name(), "first");
  EXPECT_EQ(again->job().config(), "{}");
  EXPECT_TRUE(again->job().labels().empty());
  EXPECT_EQ(again->job().max_attempts(), 3u);
  EXPECT_TRUE(ProtoEq(before.update_time(), again->job().update_time()));
  EXPECT_EQ(again->job().progress().total(), 10u);
  EXPECT_EQ(again->job().progress().completed(), 1u);

  h_.Reopen();
  again = Create(R"pb(job_id: "j" fingerprint: "fp-1")pb");
  CKPT_ASSERT_OK(again);
  EXPECT_TRUE(again->resumed());
  EXPECT_EQ(again->job().display_name(), "first");
  EXPECT_EQ(again->job().progress().total(), 10u);
  EXPECT_EQ(again->job().progress().completed(), 1u);
  testutil::ExpectCountersMatchRecount(h_, "j");
}

TEST_F(EngineJobsTest, EmptyFingerprintIsTheSha256OfTheConfig) {
  const std::string config = R"({"model": "gpt", "batch": 8})";
  v1::CreateJobRequest request;
  request.set_job_id("j");
  request.set_config(config);
  auto created = h_.Call(&Engine::CreateJob, request);
  CKPT_ASSERT_OK(created);
  // printf '%s' '{"model": "gpt", "batch": 8}' | sha256sum
  EXPECT_EQ(created->job().fingerprint(),
            "sha256:1ee92c79b67176010fda7677b868032e794583b18d6f69b133a1bfdf179abd46");
  EXPECT_THAT(created->job().fingerprint(), ::testing::MatchesRegex("sha256:[0-9a-f]{64}"));

  h_.Reopen();
  auto again = h_.Call(&Engine::CreateJob, request);
  CKPT_ASSERT_OK(again);
  EXPECT_TRUE(again->resumed());
  EXPECT_EQ(again->job().fingerprint(), created->job().fingerprint());

  // A changed config is a changed fingerprint.
  request.set_config(R"({"model": "gpt", "batch": 16})");
  EXPECT_THAT(
      h_.Call(&Engine::CreateJob, request),
      StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr(created->job().fingerprint())));
}

// EntropyGuard: a rerun whose inputs changed must not silently mix with the old run.
TEST_F(EngineJobsTest, ChangedFingerprintFailsNamingBothFingerprints) {
  CreateJob(
      R"pb(job_id: "entropy-guard" config: "{\"threshold\": 0.5}" fingerprint: "eg:6a1f0c2e")pb");
  Add(R"pb(job_id: "entropy-guard" names: "doc-1" names: "doc-2")pb");
  EXPECT_THAT(Create(R"pb(job_id: "entropy-guard"
                          config: "{\"threshold\": 0.7}"
                          fingerprint: "eg:93bd44a0")pb"),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr("entropy-guard"), HasSubstr("eg:6a1f0c2e"),
                             HasSubstr("eg:93bd44a0"))));
  // Nothing changed.
  const v1::Job job = Job("entropy-guard");
  EXPECT_EQ(job.fingerprint(), "eg:6a1f0c2e");
  EXPECT_EQ(job.config(), "{\"threshold\": 0.5}");
  EXPECT_EQ(job.progress().total(), 2u);
}

TEST_F(EngineJobsTest, ResetOnFingerprintChangeStartsOverOnTheNewDefinition) {
  CreateJob(R"pb(job_id: "j"
                 config: "{\"v\": 1}"
                 fingerprint: "v1"
                 display_name: "old"
                 labels { key: "gen" value: "1" }
                 steps: "a"
                 steps: "b"
                 lease_timeout { seconds: 30 }
                 max_attempts: 2)pb");
  Add(R"pb(job_id: "j"
           step: "a"
           ranges { begin: 0 end: 20 }
           names: "x")pb");
  Add(R"pb(job_id: "j" step: "b" names: "y")pb");
  CKPT_ASSERT_OK(Complete(R"pb(job_id: "j"
                               step: "a"
                               items { key { index: 0 } })pb"));
  CKPT_ASSERT_OK(Fail(R"pb(job_id: "j"
                           step: "a"
                           items {
                             key { name: "x" }
                             error { message: "bad" }
                           })pb"));
  const std::string w = Register("j");
  auto lease = Lease("j", w, 2, "a");
  CKPT_ASSERT_OK(lease);
  ASSERT_EQ(lease->leases_size(), 2);
  CKPT_ASSERT_OK(Put("j", "cursor", "41"));
  const v1::Job old = Job("j");

  h_.clock().Advance(absl::Minutes(5));
  auto reset = Create(R"pb(job_id: "j"
                           config: "{\"v\": 2}"
                           fingerprint: "v2"
                           display_name: "new"
                           steps: "a"
                           reset_on_fingerprint_change: true)pb");
  CKPT_ASSERT_OK(reset);
  EXPECT_TRUE(reset->reset());
  EXPECT_FALSE(reset->created());
  EXPECT_FALSE(reset->resumed());

  auto check = [&]() {
    const v1::Job job = Job("j");
    EXPECT_EQ(job.status(), v1::JOB_STATUS_RUNNING);
    EXPECT_EQ(job.config(), "{\"v\": 2}");
    EXPECT_EQ(job.fingerprint(), "v2");
    EXPECT_EQ(job.display_name(), "new");
    EXPECT_TRUE(job.labels().empty());
    EXPECT_THAT(job.steps(), ElementsAre("a"));
    EXPECT_EQ(job.lease_timeout().seconds(), 60);
    EXPECT_EQ(job.max_attempts(), 3u);
    EXPECT_FALSE(job.sealed());
    const v1::Progress& p = job.progress();
    EXPECT_EQ(p.total(), 0u);
    EXPECT_EQ(p.pending(), 0u);
    EXPECT_EQ(p.leased(), 0u);
    EXPECT_EQ(p.completed(), 0u);
    EXPECT_EQ(p.failed(), 0u);
    ASSERT_EQ(job.step_progress_size(), 1);
    EXPECT_EQ(job.step_progress(0).progress().total(), 0u);
    EXPECT_THAT(Items("j", "a"), IsEmpty());
    EXPECT_THAT(States("j", true), IsEmpty());
    EXPECT_THAT(GetItem(R"pb(job_id: "j"
                             step: "a"
                             key { index: 0 })pb"),
                StatusIs(absl::StatusCode::kNotFound, HasSubstr("index 0")));
    EXPECT_THAT(GetState("j", "cursor"),
                StatusIs(absl::StatusCode::kNotFound, HasSubstr("cursor")));
    v1::ListItemsRequest groups;
    groups.set_job_id("j");
    groups.set_error_groups(10);
    auto listed = h_.Read(&Engine::ListItems, groups);
    CKPT_ASSERT_OK(listed);
    EXPECT_EQ(listed->error_groups_size(), 0);
    testutil::ExpectCountersMatchRecount(h_, "j");
  };
  check();
  // The old run's lease is gone with its item.
  EXPECT_THAT(Complete(absl::StrCat(R"pb(job_id: "j"
                                         step: "a"
                                         items { key { index: 1 }
                                                 lease_token:)pb",
                                    lease->leases(0).lease_token(), "}")),
              StatusIs(absl::StatusCode::kNotFound, _));
  h_.Reopen();
  check();
  // Resubmitting the new definition resumes it.
  auto resumed = Create(R"pb(job_id: "j" config: "{\"v\": 2}" fingerprint: "v2")pb");
  CKPT_ASSERT_OK(resumed);
  EXPECT_TRUE(resumed->resumed());
  Add(R"pb(job_id: "j"
           ranges { begin: 0 end: 3 })pb");
  EXPECT_EQ(Job("j").progress().pending(), 3u);
  testutil::ExpectCountersMatchRecount(h_, "j");
  EXPECT_THAT(old.steps(), ElementsAre("a", "b"));  // the old definition really differed
}

TEST_F(EngineJobsTest, EmptyJobIdGetsAFreshGeneratedId) {
  auto a = Create(R"pb(config: "{}")pb");
  auto b = Create(R"pb(config: "{}")pb");
  CKPT_ASSERT_OK(a);
  CKPT_ASSERT_OK(b);
  EXPECT_TRUE(a->created());
  EXPECT_TRUE(b->created());
  EXPECT_THAT(a->job().job_id(), StartsWith("job-"));
  EXPECT_THAT(b->job().job_id(), StartsWith("job-"));
  EXPECT_NE(a->job().job_id(), b->job().job_id());
  h_.Reopen();
  EXPECT_EQ(Job(a->job().job_id()).job_id(), a->job().job_id());
  EXPECT_EQ(Job(b->job().job_id()).job_id(), b->job().job_id());
}

TEST_F(EngineJobsTest, DefaultsAreOneMainStepSixtySecondsAndThreeAttempts) {
  auto created = Create(R"pb(job_id: "d")pb");
  CKPT_ASSERT_OK(created);
  for (const v1::Job& job : {created->job(), Job("d")}) {
    EXPECT_THAT(job.steps(), ElementsAre("main"));
    EXPECT_EQ(job.lease_timeout().seconds(), 60);
    EXPECT_EQ(job.lease_timeout().nanos(), 0);
    EXPECT_EQ(job.max_attempts(), 3u);
    EXPECT_FALSE(job.has_max_run_time());
    EXPECT_EQ(job.status(), v1::JOB_STATUS_RUNNING);
    EXPECT_FALSE(job.sealed());
    EXPECT_TRUE(ProtoEq(ToProtoTime(Now()), job.create_time()));
    ASSERT_EQ(job.step_progress_size(), 1);
    EXPECT_EQ(job.step_progress(0).step(), "main");
  }
  auto worker = h_.Call(&Engine::RegisterWorker,
                        Parse<v1::RegisterWorkerRequest>(R"pb(job_id: "d" hostname: "h")pb"));
  CKPT_ASSERT_OK(worker);
  EXPECT_EQ(worker->lease_timeout().seconds(), 60);
  EXPECT_EQ(worker->heartbeat_interval().seconds(), 20);
  h_.Reopen();
  EXPECT_THAT(Job("d").steps(), ElementsAre("main"));
  EXPECT_EQ(Job("d").max_attempts(), 3u);
}

// ---------------------------------------------------------------- steps

TEST_F(EngineJobsTest, EachStepHasItsOwnProgressAndTheJobSumsThem) {
  CreateJob(R"pb(job_id: "etl" steps: "extract" steps: "load")pb");
  Add(R"pb(job_id: "etl"
           ranges { begin: 0 end: 10 })pb");  // empty step: the first
  Add(R"pb(job_id: "etl" step: "load" names: "a" names: "b" names: "c")pb");
  CKPT_ASSERT_OK(Complete(R"pb(job_id: "etl"
                               step: "extract"
                               items { key { index: 0 } }
                               items { key { index: 1 } })pb"));
  CKPT_ASSERT_OK(Fail(R"pb(job_id: "etl"
                           step: "load"
                           items {
                             key { name: "c" }
                             error { message: "no table" }
                           })pb"));
  const std::string w = Register("etl");
  auto lease = Lease("etl", w, 1, "load");
  CKPT_ASSERT_OK(lease);
  ASSERT_EQ(lease->leases_size(), 1);
  EXPECT_EQ(lease->leases(0).step(), "load");
  EXPECT_EQ(lease->leases(0).key().name(), "a");

  auto check = [&]() {
    const v1::Job job = Job("etl");
    ASSERT_EQ(job.step_progress_size(), 2);
    EXPECT_EQ(job.step_progress(0).step(), "extract");
    EXPECT_EQ(job.step_progress(1).step(), "load");
    const v1::Progress& extract = job.step_progress(0).progress();
    const v1::Progress& load = job.step_progress(1).progress();
    EXPECT_EQ(extract.total(), 10u);
    EXPECT_EQ(extract.completed(), 2u);
    EXPECT_EQ(extract.pending(), 8u);
    EXPECT_EQ(extract.leased(), 0u);
    EXPECT_EQ(extract.failed(), 0u);
    EXPECT_EQ(load.total(), 3u);
    EXPECT_EQ(load.pending(), 1u);
    EXPECT_EQ(load.leased(), 1u);
    EXPECT_EQ(load.failed(), 1u);
    EXPECT_EQ(load.completed(), 0u);
    const v1::Progress& p = job.progress();
    EXPECT_EQ(p.total(), extract.total() + load.total());
    EXPECT_EQ(p.pending(), extract.pending() + load.pending());
    EXPECT_EQ(p.leased(), extract.leased() + load.leased());
    EXPECT_EQ(p.completed(), extract.completed() + load.completed());
    EXPECT_EQ(p.failed(), extract.failed() + load.failed());
    EXPECT_EQ(p.remaining(), 10u);
    testutil::ExpectCountersMatchRecount(h_, "etl");
  };
  check();
  h_.Reopen();
  check();
  // Items of one step are not items of the other.
  EXPECT_THAT(GetItem(R"pb(job_id: "etl"
                           step: "load"
                           key { index: 3 })pb"),
              StatusIs(absl::StatusCode::kNotFound, _));
  EXPECT_THAT(GetItem(R"pb(job_id: "etl"
                           key { name: "a" })pb"),
              StatusIs(absl::StatusCode::kNotFound, _));
}

TEST_F(EngineJobsTest, UnknownStepIsInvalidArgumentNamingItAndListingTheSteps) {
  CreateJob(R"pb(job_id: "etl" steps: "extract" steps: "load")pb");
  auto named = AllOf(HasSubstr("job \"etl\" has no step \"transform\""),
                     HasSubstr("(its steps: extract, load)"));
  EXPECT_THAT(h_.Call(&Engine::AddItems, Parse<v1::AddItemsRequest>(R"pb(job_id: "etl"
                                                                         step: "transform"
                                                                         names: "a")pb")),
              StatusIs(absl::StatusCode::kInvalidArgument, named));
  const std::string w = Register("etl");
  EXPECT_THAT(Lease("etl", w, 1, "transform"), StatusIs(absl::StatusCode::kInvalidArgument, named));
  EXPECT_THAT(Complete(R"pb(job_id: "etl"
                            step: "transform"
                            items { key { index: 0 } })pb"),
              StatusIs(absl::StatusCode::kInvalidArgument, named));
  EXPECT_THAT(GetItem(R"pb(job_id: "etl"
                           step: "transform"
                           key { index: 0 })pb"),
              StatusIs(absl::StatusCode::kInvalidArgument, named));
  EXPECT_THAT(h_.Read(&Engine::ListItems, Parse<v1::ListItemsRequest>(R"pb(job_id: "etl"
                                                                           step: "transform")pb")),
              StatusIs(absl::StatusCode::kInvalidArgument, named));
  EXPECT_EQ(Job("etl").progress().total(), 0u);
}

// ---------------------------------------------------------------- UpdateJob

TEST_F(EngineJobsTest, UpdateJobSetsStageLabelsAndParamsAndSealCompletes) {
  CreateJob(R"pb(job_id: "u"
                 labels { key: "team" value: "data" }
                 labels { key: "tmp" value: "1" }
                 params { key: "lr" value: "0.1" }
                 params { key: "old" value: "x" })pb");
  Add(R"pb(job_id: "u" names: "a" names: "b")pb");
  h_.clock().Advance(absl::Seconds(3));
  auto updated = h_.Call(&Engine::UpdateJob, Parse<v1::UpdateJobRequest>(R"pb(
    job_id: "u"
    stage: "embedding"
    set_labels { key: "team" value: "ml" }
    set_labels { key: "owner" value: "ana" }
    remove_labels: "tmp"
    remove_labels: "never-there"
    set_params { key: "epochs" value: "4" }
    remove_params: "old"
  )pb"));
  CKPT_ASSERT_OK(updated);
  EXPECT_EQ(updated->job().stage(), "embedding");
  EXPECT_THAT(updated->job().labels(),
              UnorderedElementsAre(Pair("team", "ml"), Pair("owner", "ana")));
  EXPECT_THAT(updated->job().params(),
              UnorderedElementsAre(Pair("lr", "0.1"), Pair("epochs", "4")));
  EXPECT_TRUE(ProtoEq(ToProtoTime(Now()), updated->job().update_time()));
  EXPECT_FALSE(updated->job().sealed());

  // An absent stage is kept.
  updated = h_.Call(&Engine::UpdateJob,
                    Parse<v1::UpdateJobRequest>(R"pb(job_id: "u" remove_labels: "owner")pb"));
  CKPT_ASSERT_OK(updated);
  EXPECT_EQ(updated->job().stage(), "embedding");
  EXPECT_THAT(updated->job().labels(), UnorderedElementsAre(Pair("team", "ml")));

  CKPT_ASSERT_OK(Complete(R"pb(job_id: "u"
                               items { key { name: "a" } }
                               items { key { name: "b" } })pb"));
  EXPECT_EQ(Job("u").status(), v1::JOB_STATUS_RUNNING);  // not sealed: more may come
  h_.clock().Advance(absl::Seconds(3));
  updated =
      h_.Call(&Engine::UpdateJob, Parse<v1::UpdateJobRequest>(R"pb(job_id: "u" seal: true)pb"));
  CKPT_ASSERT_OK(updated);
  EXPECT_TRUE(updated->job().sealed());
  EXPECT_EQ(updated->job().status(), v1::JOB_STATUS_COMPLETED);
  EXPECT_TRUE(ProtoEq(ToProtoTime(Now()), updated->job().finish_time()));

  h_.Reopen();
  const v1::Job job = Job("u");
  EXPECT_EQ(job.status(), v1::JOB_STATUS_COMPLETED);
  EXPECT_TRUE(job.sealed());
  EXPECT_EQ(job.stage(), "embedding");
  EXPECT_THAT(job.labels(), UnorderedElementsAre(Pair("team", "ml")));
  EXPECT_THAT(job.params(), UnorderedElementsAre(Pair("lr", "0.1"), Pair("epochs", "4")));
  EXPECT_THAT(
      h_.Call(&Engine::UpdateJob, Parse<v1::UpdateJobRequest>(R"pb(job_id: "none" seal: true)pb")),
      StatusIs(absl::StatusCode::kNotFound, HasSubstr("\"none\"")));
}

TEST_F(EngineJobsTest, SealWithItemsLeftCompletesWhenTheLastFinishes) {
  CreateJob(R"pb(job_id: "s")pb");
  Add(R"pb(job_id: "s"
           ranges { begin: 0 end: 2 })pb");
  auto updated =
      h_.Call(&Engine::UpdateJob, Parse<v1::UpdateJobRequest>(R"pb(job_id: "s" seal: true)pb"));
  CKPT_ASSERT_OK(updated);
  EXPECT_EQ(updated->job().status(), v1::JOB_STATUS_RUNNING);
  EXPECT_TRUE(updated->job().sealed());
  h_.Reopen();
  CKPT_ASSERT_OK(Complete(R"pb(job_id: "s"
                               items { key { index: 0 } }
                               items { key { index: 1 } })pb"));
  EXPECT_EQ(Job("s").status(), v1::JOB_STATUS_COMPLETED);
}

// ---------------------------------------------------------------- transitions

TEST_F(EngineJobsTest, PauseResumeAndStopAreIdempotentAndStopIsFinal) {
  CreateJob(R"pb(job_id: "p")pb");
  v1::PauseJobRequest pause =
      Parse<v1::PauseJobRequest>(R"pb(job_id: "p" reason: "maintenance")pb");
  v1::ResumeJobRequest resume = Parse<v1::ResumeJobRequest>(R"pb(job_id: "p")pb");
  v1::StopJobRequest stop =
      Parse<v1::StopJobRequest>(R"pb(job_id: "p" reason: "cancelled by ana")pb");
  for (int i = 0; i < 2; ++i) {
    auto paused = h_.Call(&Engine::PauseJob, pause);
    CKPT_ASSERT_OK(paused);
    EXPECT_EQ(paused->job().status(), v1::JOB_STATUS_PAUSED);
    EXPECT_EQ(paused->job().status_reason(), "maintenance");
    EXPECT_FALSE(paused->job().has_finish_time());
  }
  h_.Reopen();
  EXPECT_EQ(Job("p").status(), v1::JOB_STATUS_PAUSED);
  for (int i = 0; i < 2; ++i) {
    auto resumed = h_.Call(&Engine::ResumeJob, resume);
    CKPT_ASSERT_OK(resumed);
    EXPECT_EQ(resumed->job().status(), v1::JOB_STATUS_RUNNING);
    EXPECT_EQ(resumed->job().status_reason(), "");
  }
  CKPT_ASSERT_OK(h_.Call(&Engine::PauseJob, pause));
  h_.clock().Advance(absl::Seconds(7));
  const auto stop_time = ToProtoTime(Now());
  for (int i = 0; i < 2; ++i) {  // PAUSED -> STOPPED, then a repeat that changes nothing
    auto stopped = h_.Call(&Engine::StopJob, stop);
    CKPT_ASSERT_OK(stopped);
    EXPECT_EQ(stopped->job().status(), v1::JOB_STATUS_STOPPED);
    EXPECT_EQ(stopped->job().status_reason(), "cancelled by ana");
    EXPECT_TRUE(ProtoEq(stop_time, stopped->job().finish_time()));
    h_.clock().Advance(absl::Seconds(1));
  }
  h_.Reopen();
  EXPECT_EQ(Job("p").status(), v1::JOB_STATUS_STOPPED);
  EXPECT_EQ(Job("p").status_reason(), "cancelled by ana");
  EXPECT_THAT(h_.Call(&Engine::ResumeJob, resume),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr("\"p\""), HasSubstr("STOPPED -> RUNNING"))));
  EXPECT_THAT(h_.Call(&Engine::PauseJob, pause),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("STOPPED -> PAUSED")));
  EXPECT_THAT(h_.Call(&Engine::FinishJob, Parse<v1::FinishJobRequest>(
                                              R"pb(job_id: "p" status: JOB_STATUS_COMPLETED)pb")),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("STOPPED -> COMPLETED")));
  EXPECT_EQ(Job("p").status(), v1::JOB_STATUS_STOPPED);
  EXPECT_THAT(h_.Call(&Engine::PauseJob, Parse<v1::PauseJobRequest>(R"pb(job_id: "nope")pb")),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("\"nope\"")));
}

TEST_F(EngineJobsTest, FinishJobEndsAJobWithItsReason) {
  CreateJob(R"pb(job_id: "f")pb");
  CreateJob(R"pb(job_id: "c")pb");
  Add(R"pb(job_id: "f"
           ranges { begin: 0 end: 5 })pb");
  h_.clock().Advance(absl::Seconds(30));
  auto failed = h_.Call(&Engine::FinishJob,
                        Parse<v1::FinishJobRequest>(R"pb(job_id: "f"
                                                         status: JOB_STATUS_FAILED
                                                         reason: "upstream bucket deleted")pb"));
  CKPT_ASSERT_OK(failed);
  EXPECT_EQ(failed->job().status(), v1::JOB_STATUS_FAILED);
  EXPECT_EQ(failed->job().status_reason(), "upstream bucket deleted");
  EXPECT_TRUE(ProtoEq(ToProtoTime(Now()), failed->job().finish_time()));
  // A repeat is a no-op that keeps the first answer.
  h_.clock().Advance(absl::Seconds(1));
  auto again =
      h_.Call(&Engine::FinishJob, Parse<v1::FinishJobRequest>(R"pb(job_id: "f"
                                                                   status: JOB_STATUS_FAILED
                                                                   reason: "retry")pb"));
  CKPT_ASSERT_OK(again);
  EXPECT_EQ(again->job().status_reason(), "upstream bucket deleted");
  EXPECT_TRUE(ProtoEq(failed->job().finish_time(), again->job().finish_time()));
  EXPECT_THAT(h_.Call(&Engine::FinishJob, Parse<v1::FinishJobRequest>(
                                              R"pb(job_id: "f" status: JOB_STATUS_COMPLETED)pb")),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("FAILED -> COMPLETED")));
  // Leasing stops; the reason says why.
  const std::string w = Register("f");
  auto lease = Lease("f", w, 1);
  CKPT_ASSERT_OK(lease);
  EXPECT_EQ(lease->leases_size(), 0);
  EXPECT_EQ(lease->shortfall(), v1::LEASE_SHORTFALL_JOB_FINISHED);

  CKPT_ASSERT_OK(h_.Call(&Engine::PauseJob, Parse<v1::PauseJobRequest>(R"pb(job_id: "c")pb")));
  auto completed =
      h_.Call(&Engine::FinishJob, Parse<v1::FinishJobRequest>(R"pb(job_id: "c"
                                                                   status: JOB_STATUS_COMPLETED
                                                                   reason: "done by hand")pb"));
  CKPT_ASSERT_OK(completed);
  EXPECT_EQ(completed->job().status(), v1::JOB_STATUS_COMPLETED);

  h_.Reopen();
  const v1::Job f = Job("f");
  EXPECT_EQ(f.status(), v1::JOB_STATUS_FAILED);
  EXPECT_EQ(f.status_reason(), "upstream bucket deleted");
  EXPECT_TRUE(ProtoEq(failed->job().finish_time(), f.finish_time()));
  EXPECT_EQ(f.progress().elapsed().seconds(), 30);  // frozen at the finish
  EXPECT_EQ(Job("c").status(), v1::JOB_STATUS_COMPLETED);
  EXPECT_EQ(Job("c").status_reason(), "done by hand");
}

// ---------------------------------------------------------------- ListJobs

TEST_F(EngineJobsTest, ListJobsNewestFirstFilteredAndPaged) {
  // Created one second apart, except two ties (ordered by id).
  CreateJob(R"pb(job_id: "etl-a"
                 display_name: "Nightly ETL"
                 labels { key: "team" value: "data" })pb");
  h_.clock().Advance(absl::Seconds(1));
  CreateJob(R"pb(job_id: "etl-b"
                 display_name: "Nightly ETL (b)"
                 labels { key: "team" value: "data" })pb");
  h_.clock().Advance(absl::Seconds(1));
  CreateJob(R"pb(job_id: "train-1"
                 labels { key: "team" value: "ml" }
                 labels { key: "env" value: "dev" })pb");
  h_.clock().Advance(absl::Seconds(1));
  CreateJob(R"pb(job_id: "x-42"
                 display_name: "train extra"
                 labels { key: "team" value: "ml" })pb");
  h_.clock().Advance(absl::Seconds(1));
  CreateJob(R"pb(job_id: "tie-b"
                 labels { key: "team" value: "ml" }
                 labels { key: "env" value: "prod" })pb");
  CreateJob(R"pb(job_id: "tie-a")pb");
  h_.clock().Advance(absl::Seconds(1));
  CreateJob(R"pb(job_id: "eval"
                 labels { key: "team" value: "ml" }
                 labels { key: "env" value: "prod" })pb");
  CKPT_ASSERT_OK(h_.Call(&Engine::PauseJob, Parse<v1::PauseJobRequest>(R"pb(job_id: "etl-b")pb")));
  CKPT_ASSERT_OK(h_.Call(&Engine::StopJob, Parse<v1::StopJobRequest>(R"pb(job_id: "train-1")pb")));
  CKPT_ASSERT_OK(h_.Call(&Engine::PauseJob, Parse<v1::PauseJobRequest>(R"pb(job_id: "eval")pb")));

  const std::vector<std::string> all = {"eval",    "tie-a", "tie-b", "x-42",
                                        "train-1", "etl-b", "etl-a"};
  auto check = [&]() {
    EXPECT_EQ(ListJobIds(""), all);
    EXPECT_EQ(ListJobIds(R"pb(status: JOB_STATUS_PAUSED)pb"),
              (std::vector<std::string>{"eval", "etl-b"}));
    EXPECT_EQ(ListJobIds(R"pb(status: JOB_STATUS_STOPPED)pb"),
              (std::vector<std::string>{"train-1"}));
    EXPECT_THAT(ListJobIds(R"pb(status: JOB_STATUS_COMPLETED)pb"), IsEmpty());
    EXPECT_EQ(ListJobIds(R"pb(labels { key: "team" value: "ml" })pb"),
              (std::vector<std::string>{"eval", "tie-b", "x-42", "train-1"}));
    EXPECT_EQ(ListJobIds(R"pb(labels { key: "team" value: "ml" }
                              labels { key: "env" value: "prod" })pb"),
              (std::vector<std::string>{"eval", "tie-b"}));
    EXPECT_EQ(ListJobIds(R"pb(labels { key: "env" value: "prod" }
                              status: JOB_STATUS_RUNNING)pb"),
              (std::vector<std::string>{"tie-b"}));
    // name_prefix matches the job_id or the display name.
    EXPECT_EQ(ListJobIds(R"pb(name_prefix: "train")pb"),
              (std::vector<std::string>{"x-42", "train-1"}));
    EXPECT_EQ(ListJobIds(R"pb(name_prefix: "Nightly")pb"),
              (std::vector<std::string>{"etl-b", "etl-a"}));
    EXPECT_EQ(ListJobIds(R"pb(name_prefix: "etl-a")pb"), (std::vector<std::string>{"etl-a"}));
    EXPECT_THAT(ListJobIds(R"pb(name_prefix: "zzz")pb"), IsEmpty());

    // Pages of every size cover every job exactly once, in order.
    for (uint32_t limit = 1; limit <= 8; ++limit) {
      std::vector<std::string> seen;
      v1::ListJobsRequest request;
      request.set_limit(limit);
      int pages = 0;
      for (; pages < 20; ++pages) {
        auto page = h_.Read(&Engine::ListJobs, request);
        CKPT_ASSERT_OK(page);
        EXPECT_LE(page->jobs_size(), static_cast<int>(limit));
        for (const auto& job : page->jobs()) seen.push_back(job.job_id());
        if (page->next_page_token().empty()) break;
        request.set_page_token(page->next_page_token());
      }
      EXPECT_EQ(seen, all) << "limit " << limit;
      EXPECT_EQ(pages + 1, static_cast<int>((all.size() + limit - 1) / limit)) << "limit " << limit;
    }
    // Paging a filtered list.
    std::vector<std::string> seen;
    v1::ListJobsRequest request = Parse<v1::ListJobsRequest>(R"pb(labels { key: "team" value: "ml" }
                                                                  limit: 3)pb");
    for (int guard = 0; guard < 10; ++guard) {
      auto page = h_.Read(&Engine::ListJobs, request);
      CKPT_ASSERT_OK(page);
      for (const auto& job : page->jobs()) seen.push_back(job.job_id());
      if (page->next_page_token().empty()) break;
      request.set_page_token(page->next_page_token());
    }
    EXPECT_EQ(seen, (std::vector<std::string>{"eval", "tie-b", "x-42", "train-1"}));
  };
  check();
  h_.Reopen();
  check();
  EXPECT_THAT(
      h_.Read(&Engine::ListJobs, Parse<v1::ListJobsRequest>(R"pb(page_token: "garbage")pb")),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("page_token")));
}

// ---------------------------------------------------------------- ResetJob, DeleteJob

TEST_F(EngineJobsTest, ResetJobReturnsEveryItemToPendingAndClearsProgress) {
  CreateJob(R"pb(job_id: "r"
                 lease_timeout { seconds: 30 }
                 max_attempts: 3)pb");
  Add(R"pb(job_id: "r"
           names: "a"
           names: "b"
           names: "c"
           names: "d"
           ranges { begin: 0 end: 20 })pb");
  CKPT_ASSERT_OK(Complete(R"pb(job_id: "r"
                               items {
                                 key { name: "a" }
                                 result { output_paths: "out/a" payload: "p" }
                               })pb"));
  for (int i = 0; i < 5; ++i) {
    CKPT_ASSERT_OK(
        Complete(absl::StrCat(R"pb(job_id: "r"
                                   items { key { index:)pb",
                              i, R"pb(}
                                      result { metrics { wall_time { seconds: 3 } } } })pb")));
  }
  const std::string w = Register("r");
  auto lease = Lease("r", w, 3);  // 5, 6, 7
  CKPT_ASSERT_OK(lease);
  ASSERT_EQ(lease->leases_size(), 3);
  CKPT_ASSERT_OK(Fail(absl::StrFormat(R"pb(job_id: "r"
                                           items {
                                             key { index: 5 }
                                             lease_token: %d
                                             error { message: "flaky" retryable: true }
                                           })pb",
                                      lease->leases(0).lease_token())));
  CKPT_ASSERT_OK(Fail(R"pb(job_id: "r"
                           items {
                             key { name: "b" }
                             error { message: "bad" }
                           }
                           items {
                             key { index: 8 }
                             error { message: "bad" }
                           })pb"));
  CKPT_ASSERT_OK(h_.Call(&Engine::UpdateJob, Parse<v1::UpdateJobRequest>(R"pb(job_id: "r"
                                                                              stage: "s2")pb")));
  CKPT_ASSERT_OK(Put("r", "cursor", "123"));
  CKPT_ASSERT_OK(h_.Call(&Engine::StopJob, Parse<v1::StopJobRequest>(R"pb(job_id: "r")pb")));
  v1::Progress before = Job("r").progress();
  ASSERT_EQ(before.completed(), 6u);
  ASSERT_EQ(before.failed(), 2u);
  ASSERT_EQ(before.leased(), 2u);

  h_.clock().Advance(absl::Minutes(2));
  auto reset = h_.Call(&Engine::ResetJob, Parse<v1::ResetJobRequest>(R"pb(job_id: "r")pb"));
  CKPT_ASSERT_OK(reset);
  EXPECT_EQ(reset->job().status(), v1::JOB_STATUS_RUNNING);

  auto check = [&]() {
    const v1::Job job = Job("r");
    EXPECT_EQ(job.status(), v1::JOB_STATUS_RUNNING);
    EXPECT_EQ(job.status_reason(), "");
    EXPECT_FALSE(job.has_finish_time());
    const v1::Progress& p = job.progress();
    EXPECT_EQ(p.total(), 24u);
    EXPECT_EQ(p.pending(), 24u);
    EXPECT_EQ(p.leased(), 0u);
    EXPECT_EQ(p.completed(), 0u);
    EXPECT_EQ(p.failed(), 0u);
    EXPECT_EQ(p.item_time_avg().seconds(), 0);
    EXPECT_EQ(p.elapsed().seconds(), 0);  // elapsed counts from the reset
    const std::vector<v1::Item> items = Items("r");
    ASSERT_EQ(items.size(), 24u);
    int names = 0;
    for (const v1::Item& item : items) {
      EXPECT_EQ(item.state(), v1::ITEM_STATE_PENDING) << item.ShortDebugString();
      EXPECT_EQ(item.attempts(), 0u) << item.ShortDebugString();
      EXPECT_TRUE(ProtoEq(v1::ItemResult(), item.result())) << item.ShortDebugString();
      EXPECT_TRUE(ProtoEq(v1::ItemError(), item.last_error())) << item.ShortDebugString();
      EXPECT_EQ(item.lease_token(), 0u) << item.ShortDebugString();
      if (item.key().has_name()) ++names;
    }
    EXPECT_EQ(names, 4);
    auto a = GetItem(R"pb(job_id: "r"
                          key { name: "a" })pb");
    CKPT_ASSERT_OK(a);
    EXPECT_EQ(a->item().state(), v1::ITEM_STATE_PENDING);
    EXPECT_TRUE(ProtoEq(v1::ItemResult(), a->item().result()));
    v1::FindOutputRequest find;
    find.set_output_path("out/a");
    EXPECT_THAT(h_.Read(&Engine::FindOutput, find), StatusIs(absl::StatusCode::kNotFound, _));
    EXPECT_THAT(States("r", true), IsEmpty());
    v1::ListItemsRequest groups;
    groups.set_job_id("r");
    groups.set_error_groups(10);
    auto listed = h_.Read(&Engine::ListItems, groups);
    CKPT_ASSERT_OK(listed);
    EXPECT_EQ(listed->error_groups_size(), 0);
    // The worker stays registered but holds nothing.
    const std::vector<v1::Worker> workers = Workers("r");
    ASSERT_EQ(workers.size(), 1u);
    EXPECT_EQ(workers[0].current_items_size(), 0);
    testutil::ExpectCountersMatchRecount(h_, "r");
  };
  check();
  // The old leases are fenced off.
  EXPECT_THAT(Complete(absl::StrCat(R"pb(job_id: "r"
                                         items { key { index: 6 }
                                                 lease_token:)pb",
                                    lease->leases(1).lease_token(), "}")),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("lease lost")));
  h_.Reopen();
  check();
  // Everything is leasable again, as first tries.
  const std::string w2 = Register("r");
  auto all = Lease("r", w2, 30);
  CKPT_ASSERT_OK(all);
  ASSERT_EQ(all->leases_size(), 24);
  for (const v1::Lease& l : all->leases()) {
    EXPECT_EQ(l.attempt(), 1u) << l.ShortDebugString();
    EXPECT_EQ(l.cursor(), "") << l.ShortDebugString();
  }
  testutil::ExpectCountersMatchRecount(h_, "r");
}

TEST_F(EngineJobsTest, ResetJobWithRemoveItemsEmptiesAndUnsealsTheJob) {
  CreateJob(R"pb(job_id: "r")pb");
  Add(R"pb(job_id: "r"
           names: "a"
           ranges { begin: 0 end: 1000 }
           seal: true)pb");
  CKPT_ASSERT_OK(Complete(R"pb(job_id: "r"
                               items { key { name: "a" } })pb"));
  ASSERT_TRUE(Job("r").sealed());
  auto reset = h_.Call(&Engine::ResetJob, Parse<v1::ResetJobRequest>(R"pb(job_id: "r"
                                                                          remove_items: true)pb"));
  CKPT_ASSERT_OK(reset);
  EXPECT_EQ(reset->job().progress().total(), 0u);
  EXPECT_FALSE(reset->job().sealed());
  h_.Reopen();
  EXPECT_EQ(Job("r").progress().total(), 0u);
  EXPECT_FALSE(Job("r").sealed());
  EXPECT_THAT(Items("r"), IsEmpty());
  EXPECT_THAT(GetItem(R"pb(job_id: "r"
                           key { index: 3 })pb"),
              StatusIs(absl::StatusCode::kNotFound, _));
  Add(R"pb(job_id: "r"
           names: "a"
           ranges { begin: 0 end: 5 })pb");
  EXPECT_EQ(Job("r").progress().pending(), 6u);
  testutil::ExpectCountersMatchRecount(h_, "r");
}

TEST_F(EngineJobsTest, DeleteJobRemovesEverythingAndTheIdCanBeReused) {
  CreateJob(R"pb(job_id: "del"
                 lease_timeout { seconds: 10 })pb");
  Add(R"pb(job_id: "del"
           names: "a"
           ranges { begin: 0 end: 10 })pb");
  CKPT_ASSERT_OK(Complete(R"pb(job_id: "del"
                               items {
                                 key { name: "a" }
                                 result { output_paths: "out/del-a" }
                               })pb"));
  CKPT_ASSERT_OK(Fail(R"pb(job_id: "del"
                           items {
                             key { index: 9 }
                             error { message: "bad" }
                           })pb"));
  const std::string w = Register("del");
  CKPT_ASSERT_OK(Lease("del", w, 3));
  CKPT_ASSERT_OK(Put("del", "cursor", "7"));
  // A neighbour whose id extends the deleted one keeps everything.
  CreateJob(R"pb(job_id: "del2")pb");
  Add(R"pb(job_id: "del2"
           names: "a"
           ranges { begin: 0 end: 10 })pb");
  CKPT_ASSERT_OK(Complete(R"pb(job_id: "del2"
                               items { key { index: 3 } })pb"));
  CKPT_ASSERT_OK(Put("del2", "cursor", "8"));
  Register("del2");

  CKPT_ASSERT_OK(h_.Call(&Engine::DeleteJob, Parse<v1::DeleteJobRequest>(R"pb(job_id: "del")pb")));
  auto gone = [&]() {
    EXPECT_THAT(h_.Read(&Engine::GetJob, Parse<v1::GetJobRequest>(R"pb(job_id: "del")pb")),
                StatusIs(absl::StatusCode::kNotFound, HasSubstr("\"del\"")));
    EXPECT_THAT(GetItem(R"pb(job_id: "del"
                             key { name: "a" })pb"),
                StatusIs(absl::StatusCode::kNotFound, _));
    EXPECT_THAT(h_.Read(&Engine::ListItems, Parse<v1::ListItemsRequest>(R"pb(job_id: "del")pb")),
                StatusIs(absl::StatusCode::kNotFound, _));
    EXPECT_THAT(GetState("del", "cursor"), StatusIs(absl::StatusCode::kNotFound, _));
    EXPECT_THAT(ListJobIds(""), ::testing::Contains("del2"));
    EXPECT_THAT(ListJobIds(""), ::testing::Not(::testing::Contains("del")));
    EXPECT_EQ(Job("del2").progress().total(), 11u);
    EXPECT_EQ(Job("del2").progress().completed(), 1u);
    EXPECT_EQ(Items("del2").size(), 11u);
    EXPECT_EQ(States("del2", true).size(), 1u);
    EXPECT_EQ(Workers("del2").size(), 1u);
    testutil::ExpectCountersMatchRecount(h_, "del2");
    v1::FindOutputRequest find;
    find.set_output_path("out/del-a");
    EXPECT_THAT(h_.Read(&Engine::FindOutput, find), StatusIs(absl::StatusCode::kNotFound, _));
  };
  gone();
  // Its leases expiring later is harmless.
  h_.clock().Advance(absl::Seconds(11));
  CKPT_ASSERT_OK(h_.Expire());
  h_.Reopen();
  gone();
  EXPECT_THAT(h_.Call(&Engine::DeleteJob, Parse<v1::DeleteJobRequest>(R"pb(job_id: "del")pb")),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("\"del\"")));
  EXPECT_THAT(h_.Call(&Engine::DeleteJob, Parse<v1::DeleteJobRequest>(R"pb(job_id: "never")pb")),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("\"never\"")));

  auto fresh = Create(R"pb(job_id: "del")pb");
  CKPT_ASSERT_OK(fresh);
  EXPECT_TRUE(fresh->created());
  auto empty = [&]() {
    EXPECT_EQ(Job("del").progress().total(), 0u);
    EXPECT_THAT(Items("del"), IsEmpty());
    EXPECT_THAT(States("del", true), IsEmpty());
    EXPECT_THAT(Workers("del", /*include_exited=*/true), IsEmpty());
    EXPECT_THAT(GetItem(R"pb(job_id: "del"
                             key { name: "a" })pb"),
                StatusIs(absl::StatusCode::kNotFound, _));
    EXPECT_THAT(GetItem(R"pb(job_id: "del"
                             key { index: 0 })pb"),
                StatusIs(absl::StatusCode::kNotFound, _));
    testutil::ExpectCountersMatchRecount(h_, "del");
  };
  empty();
  h_.Reopen();
  empty();
}

// ---------------------------------------------------------------- state blobs

// PATAS: a message-clustering pipeline keeps its last processed message id and a large
// intermediate result as state, and its stage on the job; a restart keeps all three.
TEST_F(EngineJobsTest, PatasCursorIntermediateAndStageSurviveRestart) {
  CreateJob(R"pb(job_id: "patas-2025-12-14" config: "{\"source\": \"kafka://logs\"}")pb");
  std::string intermediate = "{\"clusters\": [";
  for (int i = 0; intermediate.size() < 100 * 1024; ++i) {
    absl::StrAppend(&intermediate, i == 0 ? "" : ", ",
                    absl::StrFormat(R"({"id": %d, "pattern": "user <*> logged in from <*>", )"
                                    R"("count": %d, "examples": ["msg-%08d", "msg-%08d"]})",
                                    i, i * 37 % 1000, i, i + 1));
  }
  absl::StrAppend(&intermediate, "]}");
  ASSERT_GE(intermediate.size(), 100u * 1024);

  const std::vector<std::string> cursors = {"1734200000.000100", "1734200000.004200",
                                            "1734200001.000017"};
  for (size_t i = 0; i < cursors.size(); ++i) {
    auto put = Put("patas-2025-12-14", "cursor", cursors[i]);
    CKPT_ASSERT_OK(put);
    EXPECT_EQ(put->version(), i + 1);
  }
  auto put = Put("patas-2025-12-14", "intermediate", intermediate);
  CKPT_ASSERT_OK(put);
  EXPECT_EQ(put->version(), 1u);
  CKPT_ASSERT_OK(
      h_.Call(&Engine::UpdateJob, Parse<v1::UpdateJobRequest>(R"pb(job_id: "patas-2025-12-14"
                                                                   stage: "clustering")pb")));
  const absl::Time written = Now();
  h_.clock().Advance(absl::Hours(1));

  h_.Reopen();
  auto cursor = GetState("patas-2025-12-14", "cursor");
  CKPT_ASSERT_OK(cursor);
  EXPECT_EQ(cursor->state().name(), "cursor");
  EXPECT_EQ(cursor->state().value(), "1734200001.000017");
  EXPECT_EQ(cursor->state().version(), 3u);
  EXPECT_TRUE(ProtoEq(ToProtoTime(written), cursor->state().update_time()));
  auto blob = GetState("patas-2025-12-14", "intermediate");
  CKPT_ASSERT_OK(blob);
  EXPECT_EQ(blob->state().value(), intermediate);
  EXPECT_EQ(blob->state().version(), 1u);
  EXPECT_EQ(Job("patas-2025-12-14").stage(), "clustering");
  // The resumed run carries on from the cursor with compare-and-set.
  auto next = PutIf("patas-2025-12-14", "cursor", "1734200001.000999", 3);
  CKPT_ASSERT_OK(next);
  EXPECT_EQ(next->version(), 4u);
}

TEST_F(EngineJobsTest, PutStateCompareAndSet) {
  CreateJob(R"pb(job_id: "cas")pb");
  auto first = PutIf("cas", "chunk_index", "0", 0);  // must not exist yet: it does not
  CKPT_ASSERT_OK(first);
  EXPECT_EQ(first->version(), 1u);
  auto second = PutIf("cas", "chunk_index", "1", 1);
  CKPT_ASSERT_OK(second);
  EXPECT_EQ(second->version(), 2u);
  auto third = PutIf("cas", "chunk_index", "2", 2);
  CKPT_ASSERT_OK(third);
  EXPECT_EQ(third->version(), 3u);

  EXPECT_THAT(
      PutIf("cas", "chunk_index", "stale", 2),
      StatusIs(absl::StatusCode::kAborted,
               AllOf(HasSubstr("chunk_index"), HasSubstr("version 3"), HasSubstr("re-read"))));
  EXPECT_THAT(PutIf("cas", "chunk_index", "new?", 0),
              StatusIs(absl::StatusCode::kAborted, HasSubstr("re-read")));
  EXPECT_THAT(PutIf("cas", "chunk_index", "future", 9),
              StatusIs(absl::StatusCode::kAborted, HasSubstr("re-read")));
  auto state = GetState("cas", "chunk_index");
  CKPT_ASSERT_OK(state);
  EXPECT_EQ(state->state().value(), "2");  // the rejected writes left no trace
  EXPECT_EQ(state->state().version(), 3u);

  auto fresh = PutIf("cas", "other", "x", 0);
  CKPT_ASSERT_OK(fresh);
  EXPECT_EQ(fresh->version(), 1u);
  EXPECT_THAT(PutIf("cas", "other", "y", 0), StatusIs(absl::StatusCode::kAborted, _));

  h_.Reopen();
  EXPECT_THAT(PutIf("cas", "chunk_index", "stale", 2), StatusIs(absl::StatusCode::kAborted, _));
  auto fourth = PutIf("cas", "chunk_index", "3", 3);
  CKPT_ASSERT_OK(fourth);
  EXPECT_EQ(fourth->version(), 4u);
  auto unconditional = Put("cas", "chunk_index", "4");
  CKPT_ASSERT_OK(unconditional);
  EXPECT_EQ(unconditional->version(), 5u);
  EXPECT_THAT(Put("missing-job", "x", "y"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("missing-job")));
}

TEST_F(EngineJobsTest, ListStatesByNameWithOrWithoutValues) {
  CreateJob(R"pb(job_id: "ls")pb");
  CKPT_ASSERT_OK(Put("ls", "b", "bee"));
  CKPT_ASSERT_OK(Put("ls", "a", "ay"));
  CKPT_ASSERT_OK(Put("ls", "a", "ay2"));
  CKPT_ASSERT_OK(Put("ls", "c/d", ""));
  CreateJob(R"pb(job_id: "ls2")pb");
  CKPT_ASSERT_OK(Put("ls2", "a", "other job"));

  auto check = [&]() {
    const std::vector<v1::State> names = States("ls", /*include_values=*/false);
    ASSERT_EQ(names.size(), 3u);
    EXPECT_EQ(names[0].name(), "a");
    EXPECT_EQ(names[0].version(), 2u);
    EXPECT_EQ(names[1].name(), "b");
    EXPECT_EQ(names[1].version(), 1u);
    EXPECT_EQ(names[2].name(), "c/d");
    for (const v1::State& s : names) {
      EXPECT_EQ(s.value(), "") << s.name();
      EXPECT_TRUE(s.has_update_time()) << s.name();
    }
    const std::vector<v1::State> values = States("ls", /*include_values=*/true);
    ASSERT_EQ(values.size(), 3u);
    EXPECT_EQ(values[0].value(), "ay2");
    EXPECT_EQ(values[1].value(), "bee");
    EXPECT_EQ(values[2].value(), "");
    EXPECT_THAT(GetState("ls", "zzz"), StatusIs(absl::StatusCode::kNotFound,
                                                AllOf(HasSubstr("\"zzz\""), HasSubstr("\"ls\""))));
    EXPECT_THAT(GetState("nope", "a"),
                StatusIs(absl::StatusCode::kNotFound, HasSubstr("\"nope\"")));
  };
  check();
  h_.Reopen();
  check();
}

// ---------------------------------------------------------------- persistence

// One of every kind of record, then a restart: nothing is lost or changed.
TEST_F(EngineJobsTest, EveryRecordTypeSurvivesCloseAndReopen) {
  CreateJob(R"pb(
    job_id: "all"
    display_name: "Everything"
    config: "{\"k\": [1, 2]}"
    fingerprint: "fp"
    labels { key: "team" value: "data" }
    params { key: "batch" value: "64" }
    steps: "a"
    steps: "b"
    lease_timeout { seconds: 120 }
    max_attempts: 4
    max_run_time { seconds: 3600 }
    failure_budget { max_failed_items: 100 max_failed_fraction: 0.5 }
  )pb");
  CKPT_ASSERT_OK(h_.Call(&Engine::UpdateJob,
                         Parse<v1::UpdateJobRequest>(R"pb(job_id: "all" stage: "loading")pb")));
  Add(R"pb(job_id: "all"
           step: "a"
           names: "pending-name"
           names: "done.csv"
           names: "bad.csv"
           names: "dead.csv"
           ranges { begin: 0 end: 100 }
           ranges { begin: 1000 end: 1010 })pb");
  Add(R"pb(job_id: "all"
           step: "b"
           names: "b-1"
           ranges { begin: 5 end: 8 })pb");
  auto worker = h_.Call(&Engine::RegisterWorker, Parse<v1::RegisterWorkerRequest>(R"pb(
    job_id: "all"
    hostname: "gpu-node-7"
    pid: 4242
    invocation_id: "launch-1"
    labels { key: "gpu" value: "a100" }
  )pb"));
  CKPT_ASSERT_OK(worker);
  const std::string w = worker->worker_id();
  const std::string gone = Register("all", "gone-host");

  // Leased with a cursor: index 0; pending retry: index 1; leased by the worker that
  // unregisters: index 2 (back to pending).
  auto lease = Lease("all", w, 2, "a");
  CKPT_ASSERT_OK(lease);
  ASSERT_EQ(lease->leases_size(), 2);
  CKPT_ASSERT_OK(Lease("all", gone, 1, "a"));
  h_.clock().Advance(absl::Seconds(5));
  CKPT_ASSERT_OK(h_.Call(&Engine::Heartbeat, Parse<v1::HeartbeatRequest>(absl::StrFormat(
                                                 R"pb(job_id: "all"
                                                      worker_id: "%s"
                                                      leases {
                                                        step: "a"
                                                        key { index: 0 }
                                                        lease_token: %d
                                                        cursor: "row 41000"
                                                      })pb",
                                                 w, lease->leases(0).lease_token()))));
  CKPT_ASSERT_OK(Fail(absl::StrFormat(R"pb(job_id: "all"
                                           step: "a"
                                           worker_id: "%s"
                                           items {
                                             key { index: 1 }
                                             lease_token: %d
                                             error { message: "timeout" retryable: true }
                                           })pb",
                                      w, lease->leases(1).lease_token())));
  CKPT_ASSERT_OK(
      h_.Call(&Engine::UnregisterWorker, Parse<v1::UnregisterWorkerRequest>(absl::StrCat(
                                             R"pb(job_id: "all" worker_id: ")pb", gone, "\""))));
  // Completed with a full result, by the worker.
  CKPT_ASSERT_OK(Complete(absl::StrCat(R"pb(job_id: "all" step: "a" worker_id: ")pb", w,
                                       R"pb("
                                            items {
                                              key { name: "done.csv" }
                                              result {
                                                output_paths: "s3://out/done.parquet"
                                                output_paths: "s3://out/done.idx"
                                                payload: "\001\002"
                                                metrics {
                                                  wall_time { seconds: 12 nanos: 500000000 }
                                                  peak_memory_bytes: 1073741824
                                                  gpu_memory_bytes: 4096
                                                  stage_times {
                                                    key: "read"
                                                    value { seconds: 2 }
                                                  }
                                                  stage_times {
                                                    key: "embed"
                                                    value { seconds: 10 }
                                                  }
                                                }
                                              }
                                            }
                                            items { key { index: 50 } }
                                       )pb")));
  // Failed: recorded twice, and a claimed item failed non-retryably.
  CKPT_ASSERT_OK(Fail(R"pb(job_id: "all"
                           step: "a"
                           items {
                             key { name: "bad.csv" }
                             error { message: "corrupt header" }
                           })pb"));
  CKPT_ASSERT_OK(Fail(R"pb(job_id: "all"
                           step: "a"
                           items {
                             key { name: "bad.csv" }
                             error { message: "corrupt header" }
                           })pb"));
  CKPT_ASSERT_OK(Fail(R"pb(job_id: "all"
                           step: "a"
                           items {
                             key { index: 1005 }
                             error { message: "oom" }
                           })pb"));
  auto claim = h_.Call(&Engine::LeaseItems,
                       Parse<v1::LeaseItemsRequest>(R"pb(job_id: "all"
                                                         step: "a"
                                                         keys { name: "dead.csv" })pb"));
  CKPT_ASSERT_OK(claim);
  CKPT_ASSERT_OK(Fail(absl::StrFormat(R"pb(job_id: "all"
                                           step: "a"
                                           items {
                                             key { name: "dead.csv" }
                                             lease_token: %d
                                             error { message: "schema mismatch" retryable: false }
                                           })pb",
                                      claim->leases(0).lease_token())));
  // Step b: a leased name and a completed index.
  CKPT_ASSERT_OK(Lease("all", w, 1, "b"));
  CKPT_ASSERT_OK(Complete(R"pb(job_id: "all"
                               step: "b"
                               items { key { index: 6 } })pb"));
  CKPT_ASSERT_OK(Put("all", "cursor", "c1"));
  CKPT_ASSERT_OK(Put("all", "cursor", "c2"));
  CKPT_ASSERT_OK(Put("all", "blob", std::string(5000, 'x')));
  h_.clock().Advance(absl::Seconds(5));

  struct Snapshot {
    v1::Job job;
    std::vector<v1::Item> a, b;
    std::vector<v1::Worker> workers;
    std::vector<v1::State> states;
    v1::ListItemsResponse groups;
  };
  auto take = [&]() {
    Snapshot s;
    s.job = Job("all");
    s.a = Items("all", "a");
    s.b = Items("all", "b");
    s.workers = Workers("all", /*include_exited=*/true);
    for (v1::Worker& worker : s.workers) worker.clear_last_heartbeat();  // not persisted
    s.states = States("all", /*include_values=*/true);
    v1::ListItemsRequest groups;
    groups.set_job_id("all");
    groups.set_state(v1::ITEM_STATE_FAILED);
    groups.set_error_groups(10);
    s.groups = *h_.Read(&Engine::ListItems, groups);
    return s;
  };
  const Snapshot before = take();
  // What the snapshot holds, so the comparison below means something.
  ASSERT_EQ(before.a.size(), 114u);
  ASSERT_EQ(before.b.size(), 4u);
  ASSERT_EQ(before.workers.size(), 2u);
  ASSERT_EQ(before.states.size(), 2u);
  ASSERT_EQ(before.groups.error_groups_size(), 3);
  EXPECT_EQ(before.job.progress().leased(), 2u);
  EXPECT_EQ(before.job.progress().completed(), 3u);
  EXPECT_EQ(before.job.progress().failed(), 3u);
  testutil::ExpectCountersMatchRecount(h_, "all");

  h_.Reopen();
  const Snapshot after = take();
  // The definition and the counts; rates are not persisted, so compare the rest.
  auto definition = [](v1::Job job) {
    job.clear_progress();
    job.clear_step_progress();
    return job;
  };
  EXPECT_TRUE(ProtoEq(definition(before.job), definition(after.job)));
  EXPECT_EQ(after.job.stage(), "loading");
  EXPECT_EQ(after.job.failure_budget().max_failed_items(), 100u);
  EXPECT_EQ(after.job.max_run_time().seconds(), 3600);
  auto counts = [](v1::Progress p) {
    p.clear_recent_rate();
    p.clear_eta();
    p.clear_active_workers();
    return p;
  };
  EXPECT_TRUE(ProtoEq(counts(before.job.progress()), counts(after.job.progress())));
  ASSERT_EQ(after.job.step_progress_size(), 2);
  for (int i = 0; i < 2; ++i) {
    EXPECT_TRUE(ProtoEq(counts(before.job.step_progress(i).progress()),
                        counts(after.job.step_progress(i).progress())));
  }
  ASSERT_EQ(after.a.size(), before.a.size());
  for (size_t i = 0; i < before.a.size(); ++i) EXPECT_TRUE(ProtoEq(before.a[i], after.a[i])) << i;
  ASSERT_EQ(after.b.size(), before.b.size());
  for (size_t i = 0; i < before.b.size(); ++i) EXPECT_TRUE(ProtoEq(before.b[i], after.b[i])) << i;
  ASSERT_EQ(after.workers.size(), before.workers.size());
  for (size_t i = 0; i < before.workers.size(); ++i) {
    EXPECT_TRUE(ProtoEq(before.workers[i], after.workers[i])) << i;
  }
  ASSERT_EQ(after.states.size(), before.states.size());
  for (size_t i = 0; i < before.states.size(); ++i) {
    EXPECT_TRUE(ProtoEq(before.states[i], after.states[i])) << i;
  }
  EXPECT_TRUE(ProtoEq(before.groups, after.groups));
  testutil::ExpectCountersMatchRecount(h_, "all");

  // Spot checks that the compared records hold what they should.
  auto leased = GetItem(R"pb(job_id: "all"
                             step: "a"
                             key { index: 0 })pb");
  CKPT_ASSERT_OK(leased);
  EXPECT_EQ(leased->item().state(), v1::ITEM_STATE_LEASED);
  EXPECT_EQ(leased->item().lease_token(), lease->leases(0).lease_token());
  EXPECT_EQ(leased->item().worker_id(), w);
  EXPECT_EQ(leased->item().cursor(), "row 41000");
  auto retry = GetItem(R"pb(job_id: "all"
                            step: "a"
                            key { index: 1 })pb");
  CKPT_ASSERT_OK(retry);
  EXPECT_EQ(retry->item().state(), v1::ITEM_STATE_PENDING);
  EXPECT_EQ(retry->item().attempts(), 1u);
  EXPECT_EQ(retry->item().last_error().message(), "timeout");
  auto untouched = GetItem(R"pb(job_id: "all"
                                step: "a"
                                key { index: 1009 })pb");
  CKPT_ASSERT_OK(untouched);
  EXPECT_EQ(untouched->item().state(), v1::ITEM_STATE_PENDING);
  auto pending_name = GetItem(R"pb(job_id: "all"
                                   step: "a"
                                   key { name: "pending-name" })pb");
  CKPT_ASSERT_OK(pending_name);
  EXPECT_EQ(pending_name->item().state(), v1::ITEM_STATE_PENDING);
  auto done = GetItem(R"pb(job_id: "all"
                           step: "a"
                           key { name: "done.csv" })pb");
  CKPT_ASSERT_OK(done);
  EXPECT_EQ(done->item().state(), v1::ITEM_STATE_COMPLETED);
  EXPECT_THAT(done->item().result().output_paths(),
              ElementsAre("s3://out/done.parquet", "s3://out/done.idx"));
  EXPECT_EQ(done->item().result().payload(), "\001\002");
  EXPECT_EQ(done->item().result().metrics().wall_time().seconds(), 12);
  EXPECT_EQ(done->item().result().metrics().peak_memory_bytes(), 1073741824u);
  EXPECT_EQ(done->item().result().metrics().stage_times().at("embed").seconds(), 10);
  v1::FindOutputRequest find;
  find.set_output_path("s3://out/done.idx");
  auto found = h_.Read(&Engine::FindOutput, find);
  CKPT_ASSERT_OK(found);
  EXPECT_EQ(found->item().key().name(), "done.csv");
  auto bad = GetItem(R"pb(job_id: "all"
                          step: "a"
                          key { name: "bad.csv" })pb");
  CKPT_ASSERT_OK(bad);
  EXPECT_EQ(bad->item().state(), v1::ITEM_STATE_FAILED);
  EXPECT_EQ(bad->item().attempts(), 2u);
  EXPECT_EQ(bad->item().last_error().message(), "corrupt header");
  EXPECT_EQ(before.groups.error_groups(0).message(), "corrupt header");
  EXPECT_EQ(before.groups.error_groups(0).count(), 1u);
  const v1::Worker& kept = after.workers[0].worker_id() == w ? after.workers[0] : after.workers[1];
  EXPECT_EQ(kept.hostname(), "gpu-node-7");
  EXPECT_EQ(kept.pid(), 4242u);
  EXPECT_EQ(kept.invocation_id(), "launch-1");
  EXPECT_THAT(kept.labels(), UnorderedElementsAre(Pair("gpu", "a100")));
  EXPECT_EQ(kept.state(), v1::WORKER_STATE_ACTIVE);
  EXPECT_EQ(kept.completed(), 2u);
  EXPECT_EQ(kept.failed(), 1u);
  EXPECT_EQ(kept.current_items_size(), 2);
  const v1::Worker& exited =
      after.workers[0].worker_id() == w ? after.workers[1] : after.workers[0];
  EXPECT_EQ(exited.state(), v1::WORKER_STATE_EXITED);

  // The held lease still completes with its token after the restart; new tokens are new.
  CKPT_ASSERT_OK(Complete(absl::StrCat(R"pb(job_id: "all"
                                            step: "a"
                                            items { key { index: 0 }
                                                    lease_token:)pb",
                                       lease->leases(0).lease_token(), "}")));
  auto next = Lease("all", w, 1, "a");
  CKPT_ASSERT_OK(next);
  ASSERT_EQ(next->leases_size(), 1);
  EXPECT_GT(next->leases(0).lease_token(), claim->leases(0).lease_token());
  testutil::ExpectCountersMatchRecount(h_, "all");
}

// ---------------------------------------------------------------- workers

TEST_F(EngineJobsTest, WorkersAreListedWithTheirLeasesAndCounts) {
  CreateJob(R"pb(job_id: "wk"
                 lease_timeout { seconds: 30 })pb");
  Add(R"pb(job_id: "wk"
           ranges { begin: 0 end: 20 })pb");
  auto registered = h_.Call(&Engine::RegisterWorker, Parse<v1::RegisterWorkerRequest>(R"pb(
    job_id: "wk"
    hostname: "node-1"
    pid: 11
    invocation_id: "inv-1"
    labels { key: "zone" value: "a" }
  )pb"));
  CKPT_ASSERT_OK(registered);
  EXPECT_EQ(registered->lease_timeout().seconds(), 30);
  EXPECT_EQ(registered->heartbeat_interval().seconds(), 10);
  const std::string a = registered->worker_id();
  const std::string b = Register("wk", "node-2");
  const std::string c = Register("wk", "node-3");
  EXPECT_EQ((std::set<std::string>{a, b, c}).size(), 3u);

  auto la = Lease("wk", a, 3);  // 0, 1, 2
  auto lb = Lease("wk", b, 2);  // 3, 4
  CKPT_ASSERT_OK(la);
  CKPT_ASSERT_OK(lb);
  auto by_id = [&](const std::vector<v1::Worker>& workers, const std::string& id) {
    for (const v1::Worker& worker : workers) {
      if (worker.worker_id() == id) return worker;
    }
    ADD_FAILURE() << "no worker " << id;
    return v1::Worker();
  };
  auto indices = [](const v1::Worker& worker) {
    std::vector<uint64_t> out;
    for (const auto& key : worker.current_items()) out.push_back(key.index());
    return out;
  };
  std::vector<v1::Worker> workers = Workers("wk");
  ASSERT_EQ(workers.size(), 3u);
  v1::Worker wa = by_id(workers, a);
  EXPECT_EQ(wa.state(), v1::WORKER_STATE_ACTIVE);
  EXPECT_EQ(wa.job_id(), "wk");
  EXPECT_EQ(wa.hostname(), "node-1");
  EXPECT_EQ(wa.pid(), 11u);
  EXPECT_EQ(wa.invocation_id(), "inv-1");
  EXPECT_THAT(wa.labels(), UnorderedElementsAre(Pair("zone", "a")));
  EXPECT_TRUE(ProtoEq(ToProtoTime(Now()), wa.register_time()));
  EXPECT_THAT(indices(wa), ElementsAre(0, 1, 2));
  EXPECT_EQ(wa.current_step(), "main");
  EXPECT_THAT(indices(by_id(workers, b)), ElementsAre(3, 4));
  EXPECT_THAT(indices(by_id(workers, c)), IsEmpty());
  EXPECT_EQ(Job("wk").progress().active_workers(), 3u);

  CKPT_ASSERT_OK(Complete(absl::StrFormat(
      R"pb(job_id: "wk"
           worker_id: "%s"
           items {
             key { index: 0 }
             lease_token: %d
           }
           items {
             key { index: 1 }
             lease_token: %d
           })pb",
      a, la->leases(0).lease_token(), la->leases(1).lease_token())));
  CKPT_ASSERT_OK(Fail(absl::StrFormat(
      R"pb(job_id: "wk"
           worker_id: "%s"
           items {
             key { index: 2 }
             lease_token: %d
             error { message: "flaky" retryable: true }
           })pb",
      a, la->leases(2).lease_token())));
  CKPT_ASSERT_OK(Complete(absl::StrFormat(R"pb(job_id: "wk"
                                               worker_id: "%s"
                                               items { key { index: 10 } })pb",
                                          b)));
  // Without a worker_id nobody is credited.
  CKPT_ASSERT_OK(Complete(R"pb(job_id: "wk"
                               items { key { index: 11 } })pb"));

  auto check = [&]() {
    std::vector<v1::Worker> now = Workers("wk");
    ASSERT_EQ(now.size(), 3u);
    v1::Worker wa = by_id(now, a);
    EXPECT_EQ(wa.completed(), 2u);
    EXPECT_EQ(wa.failed(), 1u);
    EXPECT_THAT(indices(wa), IsEmpty());
    v1::Worker wb = by_id(now, b);
    EXPECT_EQ(wb.completed(), 1u);
    EXPECT_EQ(wb.failed(), 0u);
    EXPECT_THAT(indices(wb), ElementsAre(3, 4));
    v1::Worker wc = by_id(now, c);
    EXPECT_EQ(wc.completed(), 0u);
    EXPECT_EQ(wc.state(), v1::WORKER_STATE_ACTIVE);
  };
  check();
  h_.Reopen();
  check();
}

TEST_F(EngineJobsTest, AWorkerSilentPastTheLeaseTimeoutIsLost) {
  CreateJob(R"pb(job_id: "lost"
                 lease_timeout { seconds: 30 })pb");
  Add(R"pb(job_id: "lost"
           ranges { begin: 0 end: 4 })pb");
  const std::string alive = Register("lost");
  const std::string silent = Register("lost");
  CKPT_ASSERT_OK(Lease("lost", alive, 1));   // 0
  CKPT_ASSERT_OK(Lease("lost", silent, 1));  // 1
  h_.clock().Advance(absl::Seconds(20));
  CKPT_ASSERT_OK(Heartbeat("lost", alive));
  h_.clock().Advance(absl::Seconds(10));
  CKPT_ASSERT_OK(h_.Expire());
  // Exactly the timeout is not yet silent "for longer than" it.
  for (const v1::Worker& worker : Workers("lost")) {
    EXPECT_EQ(worker.state(), v1::WORKER_STATE_ACTIVE) << worker.worker_id();
  }
  h_.clock().Advance(absl::Seconds(1));
  CKPT_ASSERT_OK(h_.Expire());
  std::vector<v1::Worker> workers = Workers("lost");
  ASSERT_EQ(workers.size(), 2u);
  for (const v1::Worker& worker : workers) {
    const bool is_silent = worker.worker_id() == silent;
    EXPECT_EQ(worker.state(), is_silent ? v1::WORKER_STATE_LOST : v1::WORKER_STATE_ACTIVE)
        << worker.worker_id();
    // The silent worker's lease went back; the other's was extended by its heartbeat.
    EXPECT_EQ(worker.current_items_size(), is_silent ? 0 : 1) << worker.worker_id();
  }
  EXPECT_THAT(Heartbeat("lost", silent),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("declared lost")));
  EXPECT_THAT(Lease("lost", silent, 1),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("declared lost")));
  auto item = GetItem(R"pb(job_id: "lost"
                           key { index: 1 })pb");
  CKPT_ASSERT_OK(item);
  EXPECT_EQ(item->item().state(), v1::ITEM_STATE_PENDING);
  EXPECT_EQ(item->item().attempts(), 1u);
  EXPECT_THAT(item->item().last_error().message(), HasSubstr(silent));
  testutil::ExpectCountersMatchRecount(h_, "lost");
  // A restart is not the worker's silence: both are active again, and the lost one
  // can heartbeat.
  h_.Reopen();
  for (const v1::Worker& worker : Workers("lost")) {
    EXPECT_EQ(worker.state(), v1::WORKER_STATE_ACTIVE) << worker.worker_id();
  }
  CKPT_EXPECT_OK(Heartbeat("lost", silent));
}

// active_workers is counted when GetJob reads the snapshot, not when it was published:
// a worker that falls silent stops counting without any write touching the job.
TEST_F(EngineJobsTest, ActiveWorkersDropsAWorkerSilentPastTheLeaseTimeout) {
  CreateJob(R"pb(job_id: "aw"
                 lease_timeout { seconds: 30 })pb");
  const std::string alive = Register("aw");
  const std::string silent = Register("aw");
  EXPECT_EQ(Job("aw").progress().active_workers(), 2u);
  h_.clock().Advance(absl::Seconds(20));
  CKPT_ASSERT_OK(Heartbeat("aw", alive));
  h_.clock().Advance(absl::Seconds(11));
  CKPT_ASSERT_OK(h_.Expire());
  int lost = 0;
  for (const v1::Worker& worker : Workers("aw")) lost += worker.state() == v1::WORKER_STATE_LOST;
  EXPECT_EQ(lost, 1);
  // GetJob agrees with ListWorkers.
  EXPECT_EQ(Job("aw").progress().active_workers(), 1u);
}

TEST_F(EngineJobsTest, UnregisterReturnsLeasesWithoutCountingAnAttempt) {
  CreateJob(R"pb(job_id: "un" max_attempts: 2)pb");
  Add(R"pb(job_id: "un"
           ranges { begin: 0 end: 3 }
           names: "n")pb");
  const std::string a = Register("un");
  auto held = Lease("un", a, 4);
  CKPT_ASSERT_OK(held);
  ASSERT_EQ(held->leases_size(), 4);
  auto released =
      h_.Call(&Engine::UnregisterWorker, Parse<v1::UnregisterWorkerRequest>(absl::StrCat(
                                             R"pb(job_id: "un" worker_id: ")pb", a, "\"")));
  CKPT_ASSERT_OK(released);
  EXPECT_EQ(released->released(), 4u);
  EXPECT_EQ(Job("un").progress().pending(), 4u);
  EXPECT_EQ(Job("un").progress().leased(), 0u);
  for (const v1::Item& item : Items("un")) {
    EXPECT_EQ(item.state(), v1::ITEM_STATE_PENDING) << item.ShortDebugString();
    EXPECT_EQ(item.attempts(), 0u) << item.ShortDebugString();
  }
  testutil::ExpectCountersMatchRecount(h_, "un");

  auto check_exited = [&]() {
    EXPECT_THAT(Workers("un"), IsEmpty());
    std::vector<v1::Worker> all = Workers("un", /*include_exited=*/true);
    ASSERT_EQ(all.size(), 1u);
    EXPECT_EQ(all[0].worker_id(), a);
    EXPECT_EQ(all[0].state(), v1::WORKER_STATE_EXITED);
    EXPECT_EQ(all[0].current_items_size(), 0);
    EXPECT_THAT(Lease("un", a, 1),
                StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("unregistered")));
    EXPECT_THAT(Heartbeat("un", a),
                StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("unregistered")));
  };
  check_exited();
  // The old tokens are fenced off.
  EXPECT_THAT(Complete(absl::StrCat(R"pb(job_id: "un"
                                         items { key { index: 0 }
                                                 lease_token:)pb",
                                    held->leases(0).lease_token(), "}")),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("lease lost")));
  // Unregistering again is a no-op.
  auto again =
      h_.Call(&Engine::UnregisterWorker, Parse<v1::UnregisterWorkerRequest>(absl::StrCat(
                                             R"pb(job_id: "un" worker_id: ")pb", a, "\"")));
  CKPT_ASSERT_OK(again);
  EXPECT_EQ(again->released(), 0u);
  h_.Reopen();
  check_exited();

  const std::string b = Register("un");
  EXPECT_NE(b, a);
  auto next = Lease("un", b, 4);
  CKPT_ASSERT_OK(next);
  ASSERT_EQ(next->leases_size(), 4);
  for (const v1::Lease& l : next->leases()) {
    EXPECT_EQ(l.attempt(), 1u) << l.ShortDebugString();
    for (const v1::Lease& old : held->leases()) EXPECT_NE(l.lease_token(), old.lease_token());
  }
  testutil::ExpectCountersMatchRecount(h_, "un");
}

TEST_F(EngineJobsTest, UnknownWorkersAreNotFound) {
  CreateJob(R"pb(job_id: "x")pb");
  CreateJob(R"pb(job_id: "y")pb");
  Add(R"pb(job_id: "x"
           ranges { begin: 0 end: 3 })pb");
  const std::string of_y = Register("y");
  for (const std::string& id : {std::string("w-999"), of_y}) {
    EXPECT_THAT(Lease("x", id, 1), StatusIs(absl::StatusCode::kNotFound, HasSubstr(id))) << id;
    EXPECT_THAT(Heartbeat("x", id), StatusIs(absl::StatusCode::kNotFound, HasSubstr(id))) << id;
    EXPECT_THAT(
        h_.Call(&Engine::UnregisterWorker, Parse<v1::UnregisterWorkerRequest>(absl::StrCat(
                                               R"pb(job_id: "x" worker_id: ")pb", id, "\""))),
        StatusIs(absl::StatusCode::kNotFound, HasSubstr(id)))
        << id;
  }
  EXPECT_THAT(
      h_.Call(&Engine::RegisterWorker, Parse<v1::RegisterWorkerRequest>(R"pb(job_id: "z")pb")),
      StatusIs(absl::StatusCode::kNotFound, HasSubstr("\"z\"")));
  EXPECT_THAT(h_.Call(&Engine::ListWorkers, Parse<v1::ListWorkersRequest>(R"pb(job_id: "z")pb")),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("\"z\"")));
  EXPECT_EQ(Job("x").progress().leased(), 0u);
}

// Ops queued together are decided as one group and written as one batch. A job deleted
// (or reset) by one op of a group must read as gone to the later ops of the same group,
// although the store holds its records until the batch is written.
TEST_F(EngineJobsTest, OpsInTheSameGroupSeeAnEarlierDeleteOfTheJob) {
  CreateJob(R"pb(job_id: "again")pb");
  Add(R"pb(job_id: "again" names: "a" names: "b")pb");
  CKPT_ASSERT_OK(Put("again", "cursor", "7"));

  WriterHold hold(h_.engine(), "again");

  const auto del = Parse<v1::DeleteJobRequest>(R"pb(job_id: "again")pb");
  const auto create = Parse<v1::CreateJobRequest>(R"pb(job_id: "again")pb");
  const auto add = Parse<v1::AddItemsRequest>(R"pb(job_id: "again" names: "a" names: "c")pb");
  v1::PutStateRequest put;
  put.set_job_id("again");
  put.set_name("cursor");
  put.set_value("1");
  put.set_expected_version(0);  // new in the new job
  v1::DeleteJobResponse del_out;
  v1::CreateJobResponse create_out;
  v1::AddItemsResponse add_out;
  v1::PutStateResponse put_out;
  std::vector<absl::Status> results(4);
  absl::BlockingCounter answered(4);
  auto record = [&](int i) {
    return [&, i](absl::Status status) {
      results[i] = status;
      answered.DecrementCount();
    };
  };
  h_.engine().DeleteJob(del, &del_out, record(0));
  h_.engine().CreateJob(create, &create_out, record(1));
  h_.engine().AddItems(add, &add_out, record(2));
  h_.engine().PutState(put, &put_out, record(3));
  hold.Release();
  answered.Wait();

  for (const absl::Status& status : results) CKPT_EXPECT_OK(status);
  // Both names are new in the new job: "a" is not a duplicate of the deleted job's "a".
  EXPECT_EQ(add_out.added(), 2);
  EXPECT_EQ(add_out.duplicates(), 0);
  EXPECT_EQ(put_out.version(), 1);
  EXPECT_EQ(Job("again").progress().total(), 2);
}

// A failed write makes the engine rebuild its memory from the store. If the store
// cannot be read either, memory may be missing jobs: deciding on it could overwrite
// what was acknowledged (a CreateJob would not see the job it replaces). Every write is
// refused until the rebuild works, and then the state is exactly what was written.
TEST_F(EngineJobsTest, WritesAreRefusedUntilStateIsRebuiltAfterAFailedWrite) {
  CreateJob(R"pb(job_id: "kept")pb");
  Add(R"pb(job_id: "kept" names: "a" names: "b")pb");

  h_.faults().fail_writes = true;
  h_.faults().fail_reads = true;
  EXPECT_THAT(
      // An index: deciding reads nothing, so the write is what fails.
      h_.Call(&Engine::AddItems, Parse<v1::AddItemsRequest>(R"pb(job_id: "kept" indices: 5)pb")),
      StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("no space")));
  h_.faults().fail_writes = false;  // the disk takes writes again, but reads still fail
  EXPECT_THAT(Create(R"pb(job_id: "kept")pb"),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("refuses writes")));
  EXPECT_THAT(
      h_.Call(&Engine::AddItems, Parse<v1::AddItemsRequest>(R"pb(job_id: "kept" names: "d")pb")),
      StatusIs(absl::StatusCode::kUnavailable, HasSubstr("injected: read error")));

  h_.faults().fail_reads = false;
  auto added = h_.Call(&Engine::AddItems,
                       Parse<v1::AddItemsRequest>(R"pb(job_id: "kept" names: "a" names: "e")pb"));
  CKPT_ASSERT_OK(added);
  EXPECT_EQ(added->added(), 1u);  // "a" was kept; index 5 and "d" never went in
  EXPECT_EQ(added->duplicates(), 1u);
  EXPECT_EQ(Job("kept").progress().total(), 3u);
  h_.Reopen();
  EXPECT_EQ(Job("kept").progress().total(), 3u);
}

// ResetItems of COMPLETED items scans the store; an item completed by an earlier op of
// the same group is not there yet, and must be reset (and counted) all the same.
TEST_F(EngineJobsTest, ResetOfCompletedItemsSeesCompletionsEarlierInTheSameGroup) {
  CreateJob(R"pb(job_id: "redo")pb");
  Add(R"pb(job_id: "redo"
           ranges { begin: 0 end: 4 })pb");
  CKPT_ASSERT_OK(Complete(R"pb(job_id: "redo"
                               items { key { index: 0 } })pb"));

  WriterHold hold(h_.engine(), "redo");
  const auto complete = Parse<v1::CompleteItemsRequest>(R"pb(job_id: "redo"
                                                             items { key { index: 2 } })pb");
  const auto reset =
      Parse<v1::ResetItemsRequest>(R"pb(job_id: "redo" state: ITEM_STATE_COMPLETED)pb");
  v1::CompleteItemsResponse complete_out;
  v1::ResetItemsResponse reset_out;
  std::vector<absl::Status> results(2);
  absl::BlockingCounter answered(2);
  h_.engine().CompleteItems(complete, &complete_out, [&](absl::Status status) {
    results[0] = status;
    answered.DecrementCount();
  });
  h_.engine().ResetItems(reset, &reset_out, [&](absl::Status status) {
    results[1] = status;
    answered.DecrementCount();
  });
  hold.Release();
  answered.Wait();

  for (const absl::Status& status : results) CKPT_EXPECT_OK(status);
  EXPECT_EQ(reset_out.matched(), 2u);  // index 0 from the store, index 2 from this group
  EXPECT_EQ(Job("redo").progress().completed(), 0u);
  EXPECT_EQ(Job("redo").progress().pending(), 4u);
  testutil::ExpectCountersMatchRecount(h_, "redo");
}

}  // namespace
}  // namespace ckpt
