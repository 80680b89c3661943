// Runs (schema 4): consecutive indices completed together are stored as one item record
// and one completion entry. Every read sees each item as if it had its own record, a
// reset splits the run around the item, and a restart keeps which leases can join one.
#include <malloc.h>

#include <algorithm>
#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "ckpt/storage/v1/records.pb.h"
#include "gmock/gmock.h"
#include "google/protobuf/arena.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "service/engine/item_reads.h"
#include "service/engine/item_runs.h"
#include "service/store/keys.h"
#include "service/store/store.h"
#include "tests/engine/engine_test_base.h"
#include "tests/engine/recount.h"
#include "tests/testing/engine_harness.h"
#include "tests/testing/observed_reader.h"
#include "tests/testing/status_matchers.h"

namespace ckpt {
namespace {

using ::ckpt::testutil::Parse;
using ::ckpt::testutil::StatusIs;
using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;

class EngineRunsTest : public testutil::EngineTest {
 protected:
  void SetUp() override {
    CreateJob(R"pb(job_id: "j" steps: "s")pb");
    Add(R"pb(job_id: "j"
             step: "s"
             ranges { begin: 0 end: 12 })pb");
    worker_ = Register("j");
  }
  // Leases n items; returns index -> token.
  std::vector<uint64_t> LeaseTokens(uint32_t n) {
    auto leased = Lease("j", worker_, n, "s");
    EXPECT_TRUE(leased.ok()) << leased.status();
    std::vector<uint64_t> tokens(12, 0);
    if (leased.ok()) {
      for (const v1::Lease& l : leased->leases()) tokens[l.key().index()] = l.lease_token();
    }
    return tokens;
  }
  // Completes `indices` in one call, each with payload "r<index>".
  v1::CompleteItemsResponse CompleteIndices(const std::vector<uint64_t>& indices,
                                            const std::vector<uint64_t>& tokens) {
    v1::CompleteItemsRequest r;
    r.set_job_id("j");
    r.set_step("s");
    r.set_worker_id(worker_);
    for (uint64_t i : indices) {
      v1::Completion* c = r.add_items();
      c->mutable_key()->set_index(i);
      c->set_lease_token(tokens[i]);
      c->mutable_result()->set_payload(absl::StrCat("r", i));
      c->mutable_result()->add_output_paths(absl::StrCat("/out/", i));
    }
    auto out = h_.Call(&Engine::CompleteItems, r);
    EXPECT_TRUE(out.ok()) << out.status();
    return out.ok() ? *out : v1::CompleteItemsResponse();
  }
  v1::Item Get(uint64_t index) { return GetIn("j", index); }
  // Item `index` of step "s" of `job`, read with GetItem.
  v1::Item GetIn(const std::string& job, uint64_t index) {
    auto out = GetItem(absl::StrFormat(R"pb(job_id: "%s"
                                            step: "s"
                                            key { index: %d })pb",
                                       job, index));
    EXPECT_TRUE(out.ok()) << out.status();
    return out.ok() ? out->item() : v1::Item();
  }
  // Item records stored for the step: how many keys, whatever they cover.
  int StoredItemRecords() {
    int n = 0;
    auto it = h_.store().Scan(Cf::kItems, keys::StepPrefix("j", "s"));
    for (; it->Valid(); it->Next()) ++n;
    EXPECT_TRUE(it->status().ok());
    return n;
  }
  std::vector<std::string> Summary(v1::ItemState state = v1::ITEM_STATE_UNSPECIFIED) {
    std::vector<std::string> out;
    for (const v1::Item& item : ListAll(h_, "j", "s", state, 3)) {
      out.push_back(absl::StrCat(item.key().index(), ":", v1::ItemState_Name(item.state()), ":",
                                 item.result().payload()));
    }
    return out;
  }
  std::vector<uint64_t> ByCompletion(v1::ItemOrder order, uint32_t limit) {
    v1::ListItemsRequest r;
    r.set_job_id("j");
    r.set_step("s");
    r.set_order(order);
    r.set_limit(limit);
    std::vector<uint64_t> out;
    for (int pages = 0; pages < 50; ++pages) {
      auto page = h_.Read(&Engine::ListItems, r);
      EXPECT_TRUE(page.ok()) << page.status();
      if (!page.ok()) break;
      for (const v1::Item& item : page->items()) out.push_back(item.key().index());
      if (page->next_page_token().empty()) break;
      r.set_page_token(page->next_page_token());
    }
    return out;
  }
  // Resets `indices` of step "s" of `job` in one call.
  absl::Status ResetIndices(const std::string& job, const std::vector<uint64_t>& indices) {
    v1::ResetItemsRequest r;
    r.set_job_id(job);
    r.set_step("s");
    for (uint64_t index : indices) r.add_keys()->set_index(index);
    return h_.Call(&Engine::ResetItems, r).status();
  }
  // Creates job `id` with one step "s" of the indices [0, 300); returns the id.
  std::string NewJobOf300(const std::string& id) {
    CreateJob(absl::StrFormat(R"pb(job_id: "%s" steps: "s")pb", id));
    Add(absl::StrFormat(R"pb(job_id: "%s"
                             step: "s"
                             ranges { begin: 0 end: 300 })pb",
                        id));
    return id;
  }
  std::string worker_;
};

TEST_P(EngineRunsTest, ARunReadsAsItsItemsAndTakesOneRecord) {
  const std::vector<uint64_t> tokens = LeaseTokens(10);
  CompleteIndices({0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, tokens);
  EXPECT_EQ(StoredItemRecords(), 1);
  auto check = [&] {
    for (uint64_t i = 0; i < 10; ++i) {
      const v1::Item item = Get(i);
      EXPECT_EQ(item.state(), v1::ITEM_STATE_COMPLETED) << i;
      EXPECT_EQ(item.result().payload(), absl::StrCat("r", i));
      EXPECT_EQ(item.worker_id(), worker_);
      EXPECT_EQ(item.attempts(), 0u);
    }
    EXPECT_EQ(Get(10).state(), v1::ITEM_STATE_PENDING);
    // Pages of 3 start inside the run.
    std::vector<std::string> expected;
    for (int i = 0; i < 10; ++i) expected.push_back(absl::StrCat(i, ":ITEM_STATE_COMPLETED:r", i));
    expected.push_back("10:ITEM_STATE_PENDING:");
    expected.push_back("11:ITEM_STATE_PENDING:");
    EXPECT_THAT(Summary(), ElementsAreArray(expected));
    expected.resize(10);
    EXPECT_THAT(Summary(v1::ITEM_STATE_COMPLETED), ElementsAreArray(expected));
    // One completion time: ties in key order, both ways, with page tokens inside the run.
    EXPECT_THAT(ByCompletion(v1::ITEM_ORDER_COMPLETED_OLDEST_FIRST, 3),
                ElementsAre(0, 1, 2, 3, 4, 5, 6, 7, 8, 9));
    EXPECT_THAT(ByCompletion(v1::ITEM_ORDER_COMPLETED_NEWEST_FIRST, 4),
                ElementsAre(9, 8, 7, 6, 5, 4, 3, 2, 1, 0));
    // FindOutput checks the item through its run.
    v1::FindOutputRequest find;
    find.set_output_path("/out/7");
    auto found = h_.Read(&Engine::FindOutput, find);
    CKPT_ASSERT_OK(found);
    EXPECT_EQ(found->item().key().index(), 7u);
    EXPECT_EQ(found->item().result().payload(), "r7");
    testutil::ExpectCountersMatchRecount(h_, "j");
  };
  check();
  // A repeated completion is told apart by its token, inside the run too.
  auto again = CompleteIndices({4}, tokens);
  EXPECT_THAT(again.outcomes(), ElementsAre(v1::COMPLETION_OUTCOME_ALREADY_COMPLETED));
  std::vector<uint64_t> stale = tokens;
  stale[5] += 1000;
  auto lost = Complete(absl::StrFormat(R"pb(job_id: "j"
                                            step: "s"
                                            items {
                                              key { index: 5 }
                                              lease_token: %d
                                            })pb",
                                       stale[5]));
  EXPECT_THAT(lost, StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("lease lost")));
  h_.Reopen();
  check();
}

// `method`'s answer to `r` built on an arena, as the gRPC service builds its answers,
// equals its answer built on the heap.
template <typename Request, typename Response>
void ExpectTheSameOnAnArena(const Engine& engine,
                            absl::Status (Engine::*method)(const Request&, Response*) const,
                            const Request& r) {
  Response on_heap;
  CKPT_ASSERT_OK((engine.*method)(r, &on_heap));
  google::protobuf::Arena arena;
  auto* on_arena = google::protobuf::Arena::CreateMessage<Response>(&arena);
  CKPT_ASSERT_OK((engine.*method)(r, on_arena));
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(on_heap, *on_arena))
      << on_heap.DebugString() << "\non an arena:\n"
      << on_arena->DebugString();
}

// A run's results are read straight into the answer (RecordItems::Item), which lives on
// the call's arena in the service: every read answers there as on the heap, and with
// keys_only no result is read into it.
TEST_P(EngineRunsTest, ReadsOfARunAnswerOnAnArenaAsOnTheHeap) {
  CompleteIndices({0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, LeaseTokens(11));  // 10 leased, 11 not
  const Engine& engine = h_.engine();
  for (uint64_t i : {0, 5, 9, 10, 11}) {
    v1::GetItemRequest get;
    get.set_job_id("j");
    get.set_step("s");
    get.mutable_key()->set_index(i);
    ExpectTheSameOnAnArena(engine, &Engine::GetItem, get);
  }
  v1::FindOutputRequest find;
  find.set_output_path("/out/7");
  ExpectTheSameOnAnArena(engine, &Engine::FindOutput, find);
  for (auto order : {v1::ITEM_ORDER_UNSPECIFIED, v1::ITEM_ORDER_COMPLETED_NEWEST_FIRST}) {
    for (auto state : {v1::ITEM_STATE_UNSPECIFIED, v1::ITEM_STATE_COMPLETED}) {
      for (bool keys_only : {false, true}) {
        SCOPED_TRACE(absl::StrCat(v1::ItemOrder_Name(order), " ", v1::ItemState_Name(state),
                                  " keys_only=", keys_only));
        v1::ListItemsRequest list;
        list.set_job_id("j");
        list.set_step("s");
        list.set_order(order);
        if (order == v1::ITEM_ORDER_UNSPECIFIED) list.set_state(state);
        list.set_keys_only(keys_only);
        list.set_limit(20);
        ExpectTheSameOnAnArena(engine, &Engine::ListItems, list);
        auto page = h_.Read(&Engine::ListItems, list);
        CKPT_ASSERT_OK(page);
        ASSERT_GE(page->items_size(), 10);
        for (const v1::Item& item : page->items()) {
          const bool completed = item.state() == v1::ITEM_STATE_COMPLETED;
          EXPECT_EQ(item.has_result(), completed && !keys_only) << item.key().index();
          if (item.has_result()) {
            EXPECT_EQ(item.result().payload(), absl::StrCat("r", item.key().index()));
          }
        }
      }
    }
  }
}

// A page's arena frees nothing until the call ends, so a read must not build there what
// it does not answer: not the results of a keys_only page, not the records a state
// filter passes over.
TEST_P(EngineRunsTest, APageHoldsOnItsArenaOnlyWhatItAnswers) {
  CreateJob(R"pb(job_id: "big" steps: "s")pb");
  Add(R"pb(job_id: "big"
           step: "s"
           ranges { begin: 0 end: 210 })pb");
  v1::FailItemsRequest fail;  // 200 failed items with 4 KB errors: 800 KB of records
  fail.set_job_id("big");
  fail.set_step("s");
  for (uint64_t i = 0; i < 200; ++i) {
    v1::Failure* f = fail.add_items();
    f->mutable_key()->set_index(i);
    f->mutable_error()->set_message(std::string(4000, 'e'));
  }
  CKPT_ASSERT_OK(h_.Call(&Engine::FailItems, fail));
  v1::CompleteItemsRequest complete;  // then 10 completed with 16 KB results: 160 KB
  complete.set_job_id("big");
  complete.set_step("s");
  for (uint64_t i = 200; i < 210; ++i) {
    v1::Completion* c = complete.add_items();
    c->mutable_key()->set_index(i);
    c->mutable_result()->set_payload(std::string(16000, 'r'));
  }
  CKPT_ASSERT_OK(h_.Call(&Engine::CompleteItems, complete));
  // Heap bytes held while the page is alive: its arena's blocks and the strings it owns
  // (their buffers come from the heap, so Arena::SpaceUsed does not count them). Read
  // once before, so that the store's own buffers (libpq's grow to the largest answer)
  // are not counted.
  auto held_bytes = [&](const v1::ListItemsRequest& r) -> int64_t {
    CKPT_EXPECT_OK(h_.Read(&Engine::ListItems, r));
    google::protobuf::Arena arena;
    const auto before = static_cast<int64_t>(mallinfo2().uordblks);
    auto* page = google::protobuf::Arena::CreateMessage<v1::ListItemsResponse>(&arena);
    CKPT_EXPECT_OK(h_.engine().ListItems(r, page));
    EXPECT_EQ(page->items_size(), 10);
    return static_cast<int64_t>(mallinfo2().uordblks) - before;
  };
  v1::ListItemsRequest completed;
  completed.set_job_id("big");
  completed.set_step("s");
  completed.set_state(v1::ITEM_STATE_COMPLETED);
  EXPECT_LT(held_bytes(completed), 400 << 10);  // the 160 KB answered, not 800 passed over
  v1::ListItemsRequest newest = completed;
  newest.clear_state();
  newest.set_order(v1::ITEM_ORDER_COMPLETED_NEWEST_FIRST);
  newest.set_keys_only(true);
  EXPECT_LT(held_bytes(newest), 64 << 10);  // no results: not the 160 KB
}

TEST_P(EngineRunsTest, AResetSplitsTheRunAroundItsItems) {
  CompleteIndices({0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, LeaseTokens(10));
  CKPT_ASSERT_OK(ResetIndices("j", {0, 9, 4}));
  auto check = [&] {
    for (uint64_t i = 0; i < 10; ++i) {
      const bool reset = i == 0 || i == 4 || i == 9;
      EXPECT_EQ(Get(i).state(), reset ? v1::ITEM_STATE_PENDING : v1::ITEM_STATE_COMPLETED) << i;
      if (!reset) {
        EXPECT_EQ(Get(i).result().payload(), absl::StrCat("r", i));
      }
    }
    EXPECT_THAT(ByCompletion(v1::ITEM_ORDER_COMPLETED_OLDEST_FIRST, 2),
                ElementsAre(1, 2, 3, 5, 6, 7, 8));
    EXPECT_THAT(ByCompletion(v1::ITEM_ORDER_COMPLETED_NEWEST_FIRST, 2),
                ElementsAre(8, 7, 6, 5, 3, 2, 1));
    testutil::ExpectCountersMatchRecount(h_, "j");
  };
  check();
  EXPECT_EQ(StoredItemRecords(), 2);  // [1, 4) and [5, 9)
  h_.Reopen();
  check();
  // The reset items run again (0 first: retries and untouched indices in key order).
  auto tokens = LeaseTokens(12);
  CompleteIndices({0, 4, 9, 10, 11}, tokens);
  EXPECT_EQ(Job("j").progress().completed(), 12u);
  // Resetting every completed item, then all of them complete again as one run.
  CKPT_ASSERT_OK(
      h_.Call(&Engine::ResetItems,
              Parse<v1::ResetItemsRequest>(R"pb(job_id: "j" state: ITEM_STATE_COMPLETED)pb")));
  EXPECT_EQ(StoredItemRecords(), 0);
  EXPECT_EQ(Job("j").progress().completed(), 0u);
  CompleteIndices({0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}, LeaseTokens(12));
  EXPECT_EQ(StoredItemRecords(), 1);
  testutil::ExpectCountersMatchRecount(h_, "j");
}

// Items that have a record of their own (a failed try) break a run; leases granted
// before a restart still join one.
TEST_P(EngineRunsTest, ItemsWithRecordsStandAloneAndLeasesJoinRunsAfterARestart) {
  auto first = LeaseTokens(12);
  CKPT_ASSERT_OK(Fail(absl::StrFormat(R"pb(job_id: "j"
                                           step: "s"
                                           worker_id: "%s"
                                           items {
                                             key { index: 3 }
                                             lease_token: %d
                                             error { message: "boom" retryable: true }
                                           })pb",
                                      worker_, first[3])));
  h_.Reopen();
  std::vector<uint64_t> tokens = first;
  auto retry = LeaseTokens(1);
  tokens[3] = retry[3];
  ASSERT_NE(tokens[3], 0u);
  CompleteIndices({0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}, tokens);
  EXPECT_EQ(StoredItemRecords(), 3);  // [0, 3), 3, [4, 12)
  EXPECT_EQ(Get(3).attempts(), 1u);
  EXPECT_EQ(Get(3).result().payload(), "r3");
  EXPECT_EQ(Get(2).result().payload(), "r2");
  EXPECT_EQ(Get(11).result().payload(), "r11");
  testutil::ExpectCountersMatchRecount(h_, "j");
}

// Reads and resets inside one group see a run written earlier in the same group.
TEST_P(EngineRunsTest, AResetInTheSameGroupAsTheRunSplitsIt) {
  const std::vector<uint64_t> tokens = LeaseTokens(10);
  testutil::WriterHold hold(h_.engine(), "j");
  v1::CompleteItemsRequest complete;
  complete.set_job_id("j");
  complete.set_step("s");
  for (uint64_t i = 0; i < 10; ++i) {
    v1::Completion* c = complete.add_items();
    c->mutable_key()->set_index(i);
    c->set_lease_token(tokens[i]);
    c->mutable_result()->set_payload(absl::StrCat("r", i));
  }
  v1::ResetItemsRequest reset = Parse<v1::ResetItemsRequest>(R"pb(job_id: "j"
                                                                  step: "s"
                                                                  keys { index: 6 })pb");
  v1::CompleteItemsResponse completed;
  v1::ResetItemsResponse was_reset;
  absl::Notification both;
  std::atomic<int> left{2};
  absl::Status complete_status, reset_status;
  h_.engine().CompleteItems(complete, &completed, [&](absl::Status s) {
    complete_status = s;
    if (--left == 0) both.Notify();
  });
  h_.engine().ResetItems(reset, &was_reset, [&](absl::Status s) {
    reset_status = s;
    if (--left == 0) both.Notify();
  });
  hold.Release();
  both.WaitForNotification();
  CKPT_ASSERT_OK(complete_status);
  CKPT_ASSERT_OK(reset_status);
  EXPECT_EQ(was_reset.matched(), 1u);
  EXPECT_EQ(Get(6).state(), v1::ITEM_STATE_PENDING);
  EXPECT_EQ(Get(7).result().payload(), "r7");
  EXPECT_EQ(StoredItemRecords(), 2);
  testutil::ExpectCountersMatchRecount(h_, "j");
}

// A damaged run is DATA_LOSS for every read of its items, never a wrong item.
TEST_P(EngineRunsTest, ADamagedRunIsDataLoss) {
  CompleteIndices({0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, LeaseTokens(10));
  const std::string key = keys::Item("j", "s", keys::EncodeIndex(0));
  auto stored = h_.store().Get(Cf::kItems, key);
  CKPT_ASSERT_OK(stored);
  ASSERT_TRUE(stored->has_value());
  std::unique_ptr<WriteBatch> batch = h_.store().NewBatch();
  batch->Put(Cf::kItems, key, (*stored)->substr(0, (*stored)->size() - 3));  // cut short
  CKPT_ASSERT_OK(h_.store().Write(batch.get()));
  EXPECT_THAT(GetItem(R"pb(job_id: "j"
                           step: "s"
                           key { index: 5 })pb"),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("corrupt")));
  for (v1::ItemOrder order : {v1::ITEM_ORDER_UNSPECIFIED, v1::ITEM_ORDER_COMPLETED_NEWEST_FIRST}) {
    v1::ListItemsRequest r;
    r.set_job_id("j");
    r.set_step("s");
    r.set_order(order);
    EXPECT_THAT(h_.Read(&Engine::ListItems, r),
                StatusIs(absl::StatusCode::kDataLoss, HasSubstr("corrupt")));
  }
}

// A store written by a schema-3 ckptd: items completed one per record, and grants
// whose leases do not say `no_record`. Rewrites the stored grants and the schema record
// so, as that ckptd left them.
void MakeSchemaThree(Store& store) {
  std::unique_ptr<WriteBatch> batch = store.NewBatch();
  auto it = store.Scan(Cf::kSched, keys::SchedPrefix("j", "s", keys::SchedTag::kGrant));
  int grants = 0;
  for (; it->Valid(); it->Next()) {
    storage::v1::LeaseGrantRecord grant;
    ASSERT_TRUE(grant.ParseFromString(std::string(it->value())));
    CKPT_ASSERT_OK(ExpandGrantRuns("j", &grant));  // schema 3 had no runs of leases
    for (auto& lease : *grant.mutable_leases()) lease.clear_no_record();
    batch->Put(Cf::kSched, it->key(), grant.SerializeAsString());
    ++grants;
  }
  CKPT_ASSERT_OK(it->status());
  EXPECT_GT(grants, 0);
  storage::v1::SchemaRecord schema;
  schema.set_version(3);
  schema.set_created_by("ckptd");
  batch->Put(Cf::kMeta, keys::kSchemaKey, schema.SerializeAsString());
  CKPT_ASSERT_OK(store.Write(batch.get()));
}

// A schema-3 store is read as it is and marked current: its items read as before, its
// leases complete alone (their grants cannot say the items had no record), and new
// leases complete as runs next to them.
TEST_P(EngineRunsTest, ASchemaThreeStoreIsReadAsItIsAndGetsRunsFromThenOn) {
  std::vector<uint64_t> tokens = LeaseTokens(6);  // 0..5, held across the upgrade
  for (uint64_t i : {8, 9}) {                     // one record each, as schema 3 wrote
    CKPT_ASSERT_OK(Complete(absl::StrFormat(R"pb(job_id: "j"
                                                 step: "s"
                                                 items {
                                                   key { index: %d }
                                                   result { payload: "r%d" }
                                                 })pb",
                                            i, i)));
  }
  h_.clock().Advance(absl::Seconds(1));  // completion order: 8, 9, then 0..5, then 6, 7
  ASSERT_NO_FATAL_FAILURE(MakeSchemaThree(h_.store()));
  h_.Reopen();
  EXPECT_EQ(h_.store().schema_version(), kSchemaVersion);
  auto stored = h_.store().Get(Cf::kMeta, keys::kSchemaKey);
  CKPT_ASSERT_OK(stored);
  ASSERT_TRUE(stored->has_value());
  storage::v1::SchemaRecord schema;
  ASSERT_TRUE(schema.ParseFromString(**stored));
  EXPECT_EQ(schema.version(), kSchemaVersion);
  EXPECT_EQ(Get(8).result().payload(), "r8");

  CompleteIndices({0, 1, 2, 3, 4, 5}, tokens);
  EXPECT_EQ(StoredItemRecords(), 8);  // 0..5 alone, 8, 9
  h_.clock().Advance(absl::Seconds(1));
  auto more = LeaseTokens(2);  // 6, 7: granted by this build
  tokens[6] = more[6];
  tokens[7] = more[7];
  CompleteIndices({6, 7}, tokens);
  EXPECT_EQ(StoredItemRecords(), 9);  // and the run [6, 8)
  auto check = [&] {
    std::vector<std::string> expected;
    for (int i = 0; i < 10; ++i) expected.push_back(absl::StrCat(i, ":ITEM_STATE_COMPLETED:r", i));
    expected.push_back("10:ITEM_STATE_PENDING:");
    expected.push_back("11:ITEM_STATE_PENDING:");
    EXPECT_THAT(Summary(), ElementsAreArray(expected));
    EXPECT_THAT(ByCompletion(v1::ITEM_ORDER_COMPLETED_OLDEST_FIRST, 3),
                ElementsAre(8, 9, 0, 1, 2, 3, 4, 5, 6, 7));
    EXPECT_EQ(Get(7).worker_id(), worker_);
    testutil::ExpectCountersMatchRecount(h_, "j");
  };
  check();
  h_.Reopen();
  check();
  CKPT_ASSERT_OK(ResetIndices("j", {7, 9, 2}));
  EXPECT_EQ(Get(6).result().payload(), "r6");
  EXPECT_EQ(Get(7).state(), v1::ITEM_STATE_PENDING);
  EXPECT_THAT(ByCompletion(v1::ITEM_ORDER_COMPLETED_NEWEST_FIRST, 2),
              ElementsAre(6, 5, 4, 3, 1, 0, 8));
  EXPECT_EQ(StoredItemRecords(), 7);  // 0, 1, 3, 4, 5, 6, 8
  testutil::ExpectCountersMatchRecount(h_, "j");
}

// A run covers at most kMaxRunItems indices, so what a resent call reads to answer
// ALREADY_COMPLETED is bounded by the run's size, not the call's: 300 leased indices
// completed in one call are three runs (128, 128, 44), each read back whole.
TEST_P(EngineRunsTest, ARunCoversAtMostKMaxRunItemsIndices) {
  const std::string worker = Register(NewJobOf300("big"));
  auto leased = Lease("big", worker, 300, "s");
  CKPT_ASSERT_OK(leased);
  ASSERT_EQ(leased->leases_size(), 300);
  v1::CompleteItemsRequest r;
  r.set_job_id("big");
  r.set_step("s");
  r.set_worker_id(worker);
  for (const v1::Lease& l : leased->leases()) {
    v1::Completion* c = r.add_items();
    *c->mutable_key() = l.key();
    c->set_lease_token(l.lease_token());
    c->mutable_result()->set_payload(absl::StrCat("r", l.key().index()));
  }
  CKPT_ASSERT_OK(h_.Call(&Engine::CompleteItems, r));

  std::vector<uint64_t> firsts;
  auto it = h_.store().Scan(Cf::kItems, keys::StepPrefix("big", "s"));
  for (; it->Valid(); it->Next()) {
    storage::v1::ItemRecord record;
    ASSERT_TRUE(record.ParseFromString(std::string(it->value())));
    EXPECT_LE(RecordSpan(record), kMaxRunItems);
    firsts.push_back(RecordSpan(record));
  }
  CKPT_ASSERT_OK(it->status());
  EXPECT_THAT(firsts, ElementsAre(128, 128, 44));

  auto again = h_.Call(&Engine::CompleteItems, r);  // the answer was lost: sent again
  CKPT_ASSERT_OK(again);
  for (int i = 0; i < again->outcomes_size(); ++i) {
    EXPECT_EQ(again->outcomes(i), v1::COMPLETION_OUTCOME_ALREADY_COMPLETED) << i;
  }
  for (uint64_t index : {0, 127, 128, 255, 256, 299}) {
    const v1::Item item = GetIn("big", index);
    EXPECT_EQ(item.state(), v1::ITEM_STATE_COMPLETED);
    EXPECT_EQ(item.result().payload(), absl::StrCat("r", index));
  }
  EXPECT_EQ(Job("big").progress().completed(), 300u);
}

class EngineRunDirectoryTest : public EngineRunsTest {
 protected:
  // RocksDB keeps a run directory; PostgreSQL, whose Floor costs what a Get does,
  // keeps none and seeks.
  bool Kept() { return !h_.store().FloorIsCheap(); }
  // A job "d" of 300 indices, completed in three calls of 100: the runs [0, 100),
  // [100, 200) and [200, 300), crossing the directory's blocks of 128.
  void CompleteThreeRuns() {
    const std::string worker = Register(NewJobOf300("d"));
    auto leased = Lease("d", worker, 300, "s");
    CKPT_ASSERT_OK(leased);
    ASSERT_EQ(leased->leases_size(), 300);
    for (int call = 0; call < 3; ++call) {
      v1::CompleteItemsRequest r;
      r.set_job_id("d");
      r.set_step("s");
      r.set_worker_id(worker);
      for (int i = call * 100; i < (call + 1) * 100; ++i) {
        const v1::Lease& l = leased->leases(i);
        v1::Completion* c = r.add_items();
        *c->mutable_key() = l.key();
        c->set_lease_token(l.lease_token());
        c->mutable_result()->set_payload(absl::StrCat("r", l.key().index()));
      }
      CKPT_ASSERT_OK(h_.Call(&Engine::CompleteItems, r));
    }
  }
  // The stored run directory of job "d", block by block.
  std::vector<std::vector<uint64_t>> Directory() {
    std::vector<std::vector<uint64_t>> out;
    for (uint64_t block = 0; block < 3; ++block) {
      auto bytes = h_.store().Get(kRunDirectoryFamily, keys::RunDirectory("d", "s", block));
      EXPECT_TRUE(bytes.ok()) << bytes.status();
      std::vector<uint64_t> firsts;
      if (bytes.ok() && bytes->has_value()) {
        auto parsed = ParseRunDirectory(**bytes);
        EXPECT_TRUE(parsed.ok()) << parsed.status();
        if (parsed.ok()) firsts = *parsed;
      }
      out.push_back(firsts);
    }
    return out;
  }
  // Reads every index of job "d" with a fresh finder each (no run cached): the payload
  // of each completed one, "-" for one without a record; counts the seeks.
  std::vector<std::string> ReadAll(int* seeks) {
    testutil::ObservedReader reader(h_.store());
    std::vector<std::string> out;
    for (uint64_t i = 0; i < 300; ++i) {
      ItemRecordFinder finder(reader, "d", "s");
      auto found = finder.Find(keys::EncodeIndex(i));
      EXPECT_TRUE(found.ok()) << found.status();
      out.push_back(found.ok() && found->has_value() ? (*found)->result().payload() : "-");
    }
    *seeks = reader.floors;
    return out;
  }
  static std::vector<std::string> Payloads(const std::vector<uint64_t>& reset) {
    std::vector<std::string> out;
    for (uint64_t i = 0; i < 300; ++i) {
      const bool gone = std::find(reset.begin(), reset.end(), i) != reset.end();
      out.push_back(gone ? "-" : absl::StrCat("r", i));
    }
    return out;
  }
};

// Every item of a run is found with point reads, no seek: the directory names each
// run in every block it covers, and stays exact when a reset splits runs.
TEST_P(EngineRunDirectoryTest, EveryRunItemIsFoundWithoutASeek) {
  CompleteThreeRuns();
  using Firsts = std::vector<uint64_t>;
  const std::vector<Firsts> none(3);
  const std::vector<Firsts> three_runs = {{0, 100}, {100, 200}, {200}};
  EXPECT_EQ(Directory(), Kept() ? three_runs : none);
  int seeks = -1;
  EXPECT_EQ(ReadAll(&seeks), Payloads({}));
  EXPECT_EQ(seeks, Kept() ? 0 : 300);

  CKPT_ASSERT_OK(ResetIndices("d", {0, 150, 201}));
  // [1, 100), [100, 150), [151, 200); 200 alone (its own record); [202, 300).
  const std::vector<Firsts> split = {{1, 100}, {100, 151, 202}, {202}};
  EXPECT_EQ(Directory(), Kept() ? split : none);
  h_.Reopen();
  EXPECT_EQ(ReadAll(&seeks), Payloads({0, 150, 201}));
  EXPECT_EQ(seeks, Kept() ? 3 : 300);  // only the reset indices, which have no record
  EXPECT_EQ(Job("d").progress().completed(), 297u);
}

// The directory is a hint: without it (a store written before it) or with a stale
// entry, every read gives the same answer, through the seek.
TEST_P(EngineRunDirectoryTest, ReadsDoNotDependOnTheDirectory) {
  CompleteThreeRuns();
  if (Kept()) {  // PostgreSQL has none to spoil
    std::unique_ptr<WriteBatch> batch = h_.store().NewBatch();
    batch->Delete(kRunDirectoryFamily, keys::RunDirectory("d", "s", 0));
    batch->Put(kRunDirectoryFamily, keys::RunDirectory("d", "s", 1), SerializeRunDirectory({130}));
    batch->Put(kRunDirectoryFamily, keys::RunDirectory("d", "s", 2), "\xff damaged");
    CKPT_ASSERT_OK(h_.store().Write(batch.get()));
  }
  h_.Reopen();  // a ckptd starting on such a store, with nothing cached
  int seeks = 0;
  EXPECT_EQ(ReadAll(&seeks), Payloads({}));
  EXPECT_GT(seeks, 0);
  for (uint64_t index : {5, 129, 131, 255, 256, 299}) {
    EXPECT_EQ(GetIn("d", index).result().payload(), absl::StrCat("r", index));
  }
  // A reset rewrites the blocks it touches: the split runs' pieces are named, the stale
  // entry inside one of them is dropped, and the damaged block is written afresh.
  CKPT_ASSERT_OK(ResetIndices("d", {150, 250}));
  EXPECT_EQ(ReadAll(&seeks), Payloads({150, 250}));
  using Firsts = std::vector<uint64_t>;
  if (Kept()) {
    EXPECT_THAT(Directory(), ElementsAre(Firsts{100}, Firsts{100, 151, 200, 251}, Firsts{251}));
  }
  // Deleting the job deletes its directory.
  CKPT_ASSERT_OK(h_.Call(&Engine::DeleteJob, Parse<v1::DeleteJobRequest>(R"pb(job_id: "d")pb")));
  auto left = h_.store().Scan(Cf::kItems, keys::JobPrefix("d"));
  EXPECT_FALSE(left->Valid());
  left = h_.store().Scan(kRunDirectoryFamily, keys::RunDirectoryPrefix("d"));
  EXPECT_FALSE(left->Valid());
}

INSTANTIATE_TEST_SUITE_P(Stores, EngineRunsTest, CKPT_ENGINE_STORE_KINDS);
INSTANTIATE_TEST_SUITE_P(Stores, EngineRunDirectoryTest, CKPT_ENGINE_STORE_KINDS);

}  // namespace
}  // namespace ckpt
