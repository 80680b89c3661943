// What the engine rebuilds from the store on reopen (job_loader.cc): every record type.
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
using ::testing::_;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Pair;
using ::testing::StartsWith;
using ::testing::UnorderedElementsAre;

class EngineLoadTest : public testutil::EngineTest {};

// ---------------------------------------------------------------- persistence

// One of every kind of record, then a restart: nothing is lost or changed.
TEST_P(EngineLoadTest, EveryRecordTypeSurvivesCloseAndReopen) {
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

INSTANTIATE_TEST_SUITE_P(Stores, EngineLoadTest, CKPT_ENGINE_STORE_KINDS);

}  // namespace
}  // namespace ckpt
