// Jobs through the engine: create, steps, update, transitions, list, reset and delete.
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
using ::ckpt::testutil::ProtoEq;
using ::ckpt::testutil::StatusIs;
using ::ckpt::testutil::WriterHold;
using ::testing::_;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Pair;
using ::testing::StartsWith;
using ::testing::UnorderedElementsAre;

class EngineJobsTest : public testutil::EngineTest {};

// ---------------------------------------------------------------- CreateJob

TEST_P(EngineJobsTest, CreateThenResubmitWithTheSameFingerprintResumesAndChangesNothing) {
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

TEST_P(EngineJobsTest, EmptyFingerprintIsTheSha256OfTheConfig) {
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
TEST_P(EngineJobsTest, ChangedFingerprintFailsNamingBothFingerprints) {
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

TEST_P(EngineJobsTest, ResetOnFingerprintChangeStartsOverOnTheNewDefinition) {
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

TEST_P(EngineJobsTest, EmptyJobIdGetsAFreshGeneratedId) {
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

TEST_P(EngineJobsTest, DefaultsAreOneMainStepSixtySecondsAndThreeAttempts) {
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

TEST_P(EngineJobsTest, EachStepHasItsOwnProgressAndTheJobSumsThem) {
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

TEST_P(EngineJobsTest, UnknownStepIsInvalidArgumentNamingItAndListingTheSteps) {
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

TEST_P(EngineJobsTest, UpdateJobSetsStageLabelsAndParamsAndSealCompletes) {
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

TEST_P(EngineJobsTest, SealWithItemsLeftCompletesWhenTheLastFinishes) {
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

TEST_P(EngineJobsTest, PauseResumeAndStopAreIdempotentAndStopIsFinal) {
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

TEST_P(EngineJobsTest, FinishJobEndsAJobWithItsReason) {
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

TEST_P(EngineJobsTest, ListJobsNewestFirstFilteredAndPaged) {
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

// A principal confined to "etl-" lists only those jobs, whatever the request's filters,
// and its pages stay within them (a display name or name_prefix match does not widen it).
TEST_P(EngineJobsTest, ListJobsWithinAJobIdPrefix) {
  CreateJob(R"pb(job_id: "etl-a")pb");
  h_.clock().Advance(absl::Seconds(1));
  CreateJob(R"pb(job_id: "train-1" display_name: "etl-look-alike")pb");
  h_.clock().Advance(absl::Seconds(1));
  CreateJob(R"pb(job_id: "etl-b")pb");
  auto ids = [&](const v1::ListJobsRequest& request) {
    auto out = h_.Read(&Engine::ListJobsWithPrefix, request, "etl-");
    EXPECT_TRUE(out.ok()) << out.status();
    std::vector<std::string> listed;
    if (out.ok()) {
      for (const auto& job : out->jobs()) listed.push_back(job.job_id());
      if (!out->next_page_token().empty()) listed.push_back("next:" + out->next_page_token());
    }
    return listed;
  };
  EXPECT_EQ(ids(v1::ListJobsRequest()), (std::vector<std::string>{"etl-b", "etl-a"}));
  EXPECT_EQ(ids(Parse<v1::ListJobsRequest>(R"pb(name_prefix: "etl-look")pb")),
            std::vector<std::string>{});
  v1::ListJobsRequest page = Parse<v1::ListJobsRequest>(R"pb(limit: 1)pb");
  const std::vector<std::string> first = ids(page);
  ASSERT_EQ(first.size(), 2u);
  EXPECT_EQ(first[0], "etl-b");
  page.set_page_token(first[1].substr(5));
  EXPECT_EQ(ids(page), std::vector<std::string>{"etl-a"});
  EXPECT_EQ(ListJobIds(""), (std::vector<std::string>{"etl-b", "train-1", "etl-a"}));
}

// ---------------------------------------------------------------- ResetJob, DeleteJob

TEST_P(EngineJobsTest, ResetJobReturnsEveryItemToPendingAndClearsProgress) {
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
  CKPT_ASSERT_OK(FailRetryable("r", 5, lease->leases(0).lease_token(), "flaky"));
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

TEST_P(EngineJobsTest, ResetJobWithRemoveItemsEmptiesAndUnsealsTheJob) {
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

TEST_P(EngineJobsTest, DeleteJobRemovesEverythingAndTheIdCanBeReused) {
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

INSTANTIATE_TEST_SUITE_P(Stores, EngineJobsTest, CKPT_ENGINE_STORE_KINDS);

}  // namespace
}  // namespace ckpt
