// Workers through the engine: registration, heartbeats, loss, unregistering.
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

class EngineWorkersTest : public testutil::EngineTest {};

// ---------------------------------------------------------------- workers

TEST_P(EngineWorkersTest, WorkersAreListedWithTheirLeasesAndCounts) {
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

TEST_P(EngineWorkersTest, AWorkerSilentPastTheLeaseTimeoutIsLost) {
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
TEST_P(EngineWorkersTest, ActiveWorkersDropsAWorkerSilentPastTheLeaseTimeout) {
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

TEST_P(EngineWorkersTest, UnregisterReturnsLeasesWithoutCountingAnAttempt) {
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

TEST_P(EngineWorkersTest, UnknownWorkersAreNotFound) {
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

INSTANTIATE_TEST_SUITE_P(Stores, EngineWorkersTest, CKPT_ENGINE_STORE_KINDS);

}  // namespace
}  // namespace ckpt
