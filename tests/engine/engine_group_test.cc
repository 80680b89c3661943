// Group commit (engine.cc): ops decided together see each other, and a failed write
// leaves memory rebuilt from the store.
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

class EngineGroupTest : public testutil::EngineTest {};

// Ops queued together are decided as one group and written as one batch. A job deleted
// (or reset) by one op of a group must read as gone to the later ops of the same group,
// although the store holds its records until the batch is written.
TEST_P(EngineGroupTest, OpsInTheSameGroupSeeAnEarlierDeleteOfTheJob) {
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
TEST_P(EngineGroupTest, WritesAreRefusedUntilStateIsRebuiltAfterAFailedWrite) {
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

// A store that comes back (a database restarted) is noticed without waiting for a
// write: the writer retries the rebuild by itself and republishes what the store holds.
TEST_P(EngineGroupTest, TheStateIsRebuiltByItselfOnceTheStoreIsBackWithoutAWrite) {
  CreateJob(R"pb(job_id: "kept")pb");
  h_.faults().fail_writes = true;
  h_.faults().fail_reads = true;
  EXPECT_THAT(
      h_.Call(&Engine::AddItems, Parse<v1::AddItemsRequest>(R"pb(job_id: "kept" indices: 5)pb")),
      StatusIs(absl::StatusCode::kResourceExhausted, _));
  const uint64_t before = h_.engine().AwaitPublish(0, absl::InfinitePast());
  h_.faults().fail_writes = false;
  h_.faults().fail_reads = false;
  // No write is sent. (The deadline bounds a hang; it is no timing assertion.)
  EXPECT_GT(h_.engine().AwaitPublish(before, absl::Now() + absl::Seconds(60)), before);
  EXPECT_EQ(Job("kept").progress().total(), 0u);
  CKPT_EXPECT_OK(Create(R"pb(job_id: "kept")pb"));
}

// ResetItems of COMPLETED items scans the store; an item completed by an earlier op of
// the same group is not there yet, and must be reset (and counted) all the same.
TEST_P(EngineGroupTest, ResetOfCompletedItemsSeesCompletionsEarlierInTheSameGroup) {
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

INSTANTIATE_TEST_SUITE_P(Stores, EngineGroupTest, CKPT_ENGINE_STORE_KINDS);

}  // namespace
}  // namespace ckpt
