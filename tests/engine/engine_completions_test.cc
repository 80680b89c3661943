// Recent progress that survives a restart: the completion-time index behind GetJob's
// recent completions and ListItems' completion orders, on a real store.
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/common/proto_time.h"
#include "service/engine/completion_index.h"
#include "tests/engine/engine_test_base.h"
#include "tests/engine/recount.h"
#include "tests/testing/engine_harness.h"
#include "tests/testing/status_matchers.h"

namespace ckpt {
namespace {

using ::ckpt::testutil::Parse;
using ::ckpt::testutil::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

class EngineCompletionsTest : public testutil::EngineTest {
 protected:
  // Completes `index` of `step` in record mode at the clock's time, then moves it on.
  void CompleteAt(const std::string& job, const std::string& step, uint64_t index,
                  const std::string& worker = "") {
    CKPT_ASSERT_OK(Complete(absl::StrFormat(R"pb(job_id: "%s"
                                                 step: "%s"
                                                 worker_id: "%s"
                                                 items { key { index: %d } })pb",
                                            job, step, worker, index)));
    h_.clock().Advance(absl::Seconds(1));
  }
  absl::StatusOr<v1::ListItemsResponse> List(const std::string& text) {
    return h_.Read(&Engine::ListItems, Parse<v1::ListItemsRequest>(text));
  }
  // Every page of a listing, as "index" strings.
  std::vector<uint64_t> ListAllPages(v1::ListItemsRequest r) {
    std::vector<uint64_t> out;
    for (int pages = 0; pages < 100; ++pages) {
      auto page = h_.Read(&Engine::ListItems, r);
      EXPECT_TRUE(page.ok()) << page.status();
      if (!page.ok()) break;
      for (const v1::Item& item : page->items()) out.push_back(item.key().index());
      if (page->next_page_token().empty()) break;
      r.set_page_token(page->next_page_token());
    }
    return out;
  }
  std::vector<std::string> Recent(const std::string& job) {
    v1::GetJobRequest r;
    r.set_job_id(job);
    auto out = h_.Read(&Engine::GetJob, r);
    EXPECT_TRUE(out.ok()) << out.status();
    std::vector<std::string> recent;
    if (!out.ok()) return recent;
    for (const auto& c : out->recent_completions()) {
      recent.push_back(absl::StrCat(c.step(), "/", c.key().index(), "@", c.worker_id()));
    }
    return recent;
  }
};

// The progressive-saving status view: "the last 10 processed documents" and "what
// finished since my last look", across a ckptd restart, without a scan.
TEST_P(EngineCompletionsTest, CompletedItemsListNewestFirstOrAfterATimeAcrossARestart) {
  CreateJob(R"pb(job_id: "docs" steps: "parse" steps: "embed")pb");
  Add(R"pb(job_id: "docs"
           step: "parse"
           ranges { begin: 0 end: 20 })pb");
  Add(R"pb(job_id: "docs"
           step: "embed"
           ranges { begin: 0 end: 20 })pb");
  // parse: 5, 3, 9 (in that order, a second apart); embed: 1; parse: 7.
  CompleteAt("docs", "parse", 5, "w-a");
  CompleteAt("docs", "parse", 3);
  const absl::Time before_nine = h_.clock().Now() - absl::Milliseconds(500);
  CompleteAt("docs", "parse", 9, "w-b");
  CompleteAt("docs", "embed", 1, "w-c");
  CompleteAt("docs", "parse", 7, "w-a");

  auto check = [&] {
    v1::ListItemsRequest newest = Parse<v1::ListItemsRequest>(
        R"pb(job_id: "docs" step: "parse" order: ITEM_ORDER_COMPLETED_NEWEST_FIRST limit: 2)pb");
    EXPECT_THAT(ListAllPages(newest), ElementsAre(7, 9, 3, 5));
    v1::ListItemsRequest oldest = newest;
    oldest.set_order(v1::ITEM_ORDER_COMPLETED_OLDEST_FIRST);
    EXPECT_THAT(ListAllPages(oldest), ElementsAre(5, 3, 9, 7));
    // A monitor's "since my last look": strictly after the time, oldest first.
    v1::ListItemsRequest since = Parse<v1::ListItemsRequest>(R"pb(job_id: "docs" step: "parse")pb");
    *since.mutable_completed_after() = ToProtoTime(before_nine);
    EXPECT_THAT(ListAllPages(since), ElementsAre(9, 7));
    since.set_order(v1::ITEM_ORDER_COMPLETED_NEWEST_FIRST);
    EXPECT_THAT(ListAllPages(since), ElementsAre(7, 9));
    *since.mutable_completed_after() = ToProtoTime(h_.clock().Now());
    EXPECT_THAT(ListAllPages(since), IsEmpty());
    // Each item as GetItem has it, with when and by whom.
    auto page = List(
        R"pb(job_id: "docs" step: "parse" order: ITEM_ORDER_COMPLETED_NEWEST_FIRST limit: 1)pb");
    CKPT_ASSERT_OK(page);
    ASSERT_EQ(page->items_size(), 1);
    EXPECT_EQ(page->items(0).state(), v1::ITEM_STATE_COMPLETED);
    EXPECT_EQ(page->items(0).worker_id(), "w-a");
    EXPECT_FALSE(page->next_page_token().empty());
    // GetJob's recent completions, over every step, newest first.
    EXPECT_THAT(Recent("docs"), ElementsAre("parse/7@w-a", "embed/1@w-c", "parse/9@w-b", "parse/3@",
                                            "parse/5@w-a"));
  };
  check();
  h_.Reopen();
  check();
}

TEST_P(EngineCompletionsTest, ResetItemsLeaveTheIndexAndResetJobEmptiesIt) {
  CreateJob(R"pb(job_id: "r")pb");
  Add(R"pb(job_id: "r"
           ranges { begin: 0 end: 5 }
           names: "a.pdf")pb");
  for (uint64_t i : {0, 1, 2}) CompleteAt("r", "main", i);
  CKPT_ASSERT_OK(Complete(R"pb(job_id: "r"
                               items { key { name: "a.pdf" } })pb"));
  CKPT_ASSERT_OK(h_.Call(&Engine::ResetItems, Parse<v1::ResetItemsRequest>(
                                                  R"pb(job_id: "r"
                                                       step: "main"
                                                       keys { index: 1 }
                                                       keys { name: "a.pdf" })pb")));
  auto listed = List(R"pb(job_id: "r" order: ITEM_ORDER_COMPLETED_OLDEST_FIRST)pb");
  CKPT_ASSERT_OK(listed);
  ASSERT_EQ(listed->items_size(), 2);
  EXPECT_EQ(listed->items(0).key().index(), 0u);
  EXPECT_EQ(listed->items(1).key().index(), 2u);
  EXPECT_THAT(Recent("r"), ElementsAre("main/2@", "main/0@"));
  // Completed again later: listed once, at its new time.
  CompleteAt("r", "main", 1);
  v1::ListItemsRequest newest =
      Parse<v1::ListItemsRequest>(R"pb(job_id: "r" order: ITEM_ORDER_COMPLETED_NEWEST_FIRST)pb");
  EXPECT_THAT(ListAllPages(newest), ElementsAre(1, 2, 0));
  h_.Reopen();
  EXPECT_THAT(ListAllPages(newest), ElementsAre(1, 2, 0));
  EXPECT_THAT(Recent("r"), ElementsAre("main/1@", "main/2@", "main/0@"));

  CKPT_ASSERT_OK(h_.Call(&Engine::ResetJob, Parse<v1::ResetJobRequest>(R"pb(job_id: "r")pb")));
  EXPECT_THAT(ListAllPages(newest), IsEmpty());
  h_.Reopen();
  EXPECT_THAT(Recent("r"), IsEmpty());
  testutil::ExpectCountersMatchRecount(h_, "r");
}

TEST_P(EngineCompletionsTest, TokensAndFiltersOfTheWrongOrderAreRefused) {
  CreateJob(R"pb(job_id: "t")pb");
  Add(R"pb(job_id: "t"
           ranges { begin: 0 end: 5 })pb");
  for (uint64_t i : {0, 1, 2}) CompleteAt("t", "main", i);
  auto by_key = List(R"pb(job_id: "t" limit: 1)pb");
  CKPT_ASSERT_OK(by_key);
  auto by_time = List(R"pb(job_id: "t" limit: 1 order: ITEM_ORDER_COMPLETED_NEWEST_FIRST)pb");
  CKPT_ASSERT_OK(by_time);
  v1::ListItemsRequest r = Parse<v1::ListItemsRequest>(R"pb(job_id: "t")pb");
  r.set_page_token(by_time->next_page_token());
  EXPECT_THAT(h_.Read(&Engine::ListItems, r),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("page_token")));
  r.set_order(v1::ITEM_ORDER_COMPLETED_OLDEST_FIRST);
  r.set_page_token(by_key->next_page_token());
  EXPECT_THAT(h_.Read(&Engine::ListItems, r),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("completion-order")));
}

// Counts what a reader is asked to do: point reads, floors and iterator steps.
class CountingReader : public StoreReader {
 public:
  explicit CountingReader(const StoreReader& reader) : reader_(reader) {}
  absl::StatusOr<std::optional<std::string>> Get(Cf cf, absl::string_view key) const override {
    ++reads_;
    return reader_.Get(cf, key);
  }
  std::unique_ptr<StoreIterator> Scan(Cf cf, absl::string_view prefix,
                                      absl::string_view start) const override {
    ++reads_;
    return std::make_unique<Counted>(reader_.Scan(cf, prefix, start), prefix.size(), &reads_);
  }
  absl::StatusOr<std::optional<std::pair<std::string, std::string>>> Floor(
      Cf cf, absl::string_view prefix, absl::string_view key) const override {
    ++reads_;
    return reader_.Floor(cf, prefix, key);
  }
  int reads() const { return reads_; }

 private:
  class Counted : public StoreIterator {
   public:
    Counted(std::unique_ptr<StoreIterator> it, size_t prefix_size, int* reads)
        : StoreIterator(prefix_size), it_(std::move(it)), reads_(reads) {}
    bool Valid() const override { return it_->Valid(); }
    void Next() override {
      ++*reads_;
      it_->Next();
    }
    absl::string_view key() const override { return it_->key(); }
    absl::string_view value() const override { return it_->value(); }
    absl::Status status() const override { return it_->status(); }

   private:
    std::unique_ptr<StoreIterator> it_;
    int* reads_;
  };
  const StoreReader& reader_;
  mutable int reads_ = 0;
};

// "No scan of all items": a page of 10 out of 20 000 completions reads about 10
// entries and 10 items, in either order.
TEST_P(EngineCompletionsTest, APageReadsOnlyItsOwnEntries) {
  CreateJob(R"pb(job_id: "big")pb");
  Add(R"pb(job_id: "big"
           ranges { begin: 0 end: 20000 })pb");
  for (int batch = 0; batch < 20; ++batch) {
    v1::CompleteItemsRequest r;
    r.set_job_id("big");
    for (int i = 0; i < 1000; ++i) r.add_items()->mutable_key()->set_index(batch * 1000 + i);
    CKPT_ASSERT_OK(h_.Call(&Engine::CompleteItems, r));
    h_.clock().Advance(absl::Seconds(1));
  }
  auto view = h_.store().NewReadView();
  CKPT_ASSERT_OK(view);
  for (v1::ItemOrder order :
       {v1::ITEM_ORDER_COMPLETED_NEWEST_FIRST, v1::ITEM_ORDER_COMPLETED_OLDEST_FIRST}) {
    CountingReader counting(**view);
    v1::ListItemsRequest r;
    r.set_job_id("big");
    r.set_order(order);
    r.set_limit(10);
    *r.mutable_completed_after() = ToProtoTime(h_.clock().Now() - absl::Seconds(12));
    v1::ListItemsResponse page;
    CKPT_ASSERT_OK(ListCompletedItems(counting, r, "main", kDefaultMaxPageBytes, &page));
    ASSERT_EQ(page.items_size(), 10);
    EXPECT_LE(counting.reads(), 3 * 10 + 5) << v1::ItemOrder_Name(order);
    const uint64_t first = page.items(0).key().index();
    EXPECT_EQ(first, order == v1::ITEM_ORDER_COMPLETED_NEWEST_FIRST ? 19999u : 9000u);
  }
}

INSTANTIATE_TEST_SUITE_P(Stores, EngineCompletionsTest, CKPT_ENGINE_STORE_KINDS);

}  // namespace
}  // namespace ckpt
