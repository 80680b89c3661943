// ckpt resume of a failed run (raising its budget), and who did what in ckpt item/items.
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/cli/cli_test_base.h"
#include "tests/testing/status_matchers.h"

namespace ckpt {
namespace cli {
namespace {

using ::ckpt::testutil::StatusIs;
using ::testing::AllOf;
using ::testing::ContainsRegex;
using ::testing::HasSubstr;

class HistoryCommandsTest : public CliTest {
 protected:
  // "scan": indices 0..9, a budget of 1 failed item; 0 completed by "host-a", 1 and 2
  // failed by "host-b", which fails the job.
  void MakeBudgetFailedJob() {
    v1::CreateJobRequest create;
    create.set_job_id("scan");
    create.mutable_failure_budget()->set_max_failed_items(1);
    CKPT_ASSERT_OK(client_->CreateJob(create));
    v1::AddItemsRequest add;
    add.set_job_id("scan");
    add.add_ranges()->set_end(10);
    CKPT_ASSERT_OK(client_->AddItems(add));
    v1::CompleteItemsRequest complete;
    complete.set_job_id("scan");
    complete.set_worker_id("host-a");
    *complete.add_items()->mutable_key() = IndexKey(0);
    CKPT_ASSERT_OK(client_->CompleteItems(complete));
    v1::FailItemsRequest fail;
    fail.set_job_id("scan");
    fail.set_worker_id("host-b");
    for (uint64_t i : {1, 2}) {
      v1::Failure* f = fail.add_items();
      *f->mutable_key() = IndexKey(i);
      f->mutable_error()->set_message("bad block");
    }
    CKPT_ASSERT_OK(client_->FailItems(fail));
  }
};

TEST_F(HistoryCommandsTest, ResumeOfABudgetFailedRunSaysWhatToDoAndRaisesTheBudget) {
  MakeBudgetFailedJob();
  EXPECT_THAT(Run({"resume", "scan"}),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr("failure budget exceeded"), HasSubstr("--max-failed-items"),
                             HasSubstr("ckpt retry"))));
  EXPECT_TRUE(IsUsageError(Run({"resume", "scan", "--max-failed-fraction", "2"}).status()));
  EXPECT_TRUE(IsUsageError(Run({"resume", "scan", "--max-failed-items", "many"}).status()));
  auto resumed = Run({"resume", "scan", "--max-failed-items", "5"});
  CKPT_ASSERT_OK(resumed);
  EXPECT_EQ(*resumed, "job scan resumed: RUNNING\n");
  auto status = Run({"status", "scan", "--json"});
  CKPT_ASSERT_OK(status);
  EXPECT_THAT(*status, HasSubstr("\"max_failed_items\":\"5\""));
  EXPECT_THAT(*status, HasSubstr("\"failed\":\"2\""));  // failed items stay failed
}

TEST_F(HistoryCommandsTest, ItemsAndItemSayWhoCompletedOrFailedThem) {
  MakeBudgetFailedJob();
  auto items = Run({"items", "scan", "--limit", "3"});
  CKPT_ASSERT_OK(items);
  EXPECT_THAT(*items, ContainsRegex("0 +COMPLETED +0 .* host-a"));
  EXPECT_THAT(*items, ContainsRegex("1 +FAILED +1 .* host-b +bad block"));
  auto done = Run({"item", "scan", "0"});
  CKPT_ASSERT_OK(done);
  EXPECT_THAT(*done, ContainsRegex("Done by +host-a"));
  auto failed = Run({"item", "scan", "1"});
  CKPT_ASSERT_OK(failed);
  EXPECT_THAT(*failed, AllOf(ContainsRegex("Worker +host-b"), ContainsRegex("Failed on +host-b")));
  auto json = Run({"item", "scan", "0", "--json"});
  CKPT_ASSERT_OK(json);
  EXPECT_EQ(FromJson<v1::Item>(*json).worker_id(), "host-a");
}

TEST_F(HistoryCommandsTest, ItemsListCompletionsNewestFirstOrSinceATime) {
  v1::CreateJobRequest create;
  create.set_job_id("feed");
  CKPT_ASSERT_OK(client_->CreateJob(create));
  v1::AddItemsRequest add;
  add.set_job_id("feed");
  add.add_ranges()->set_end(5);
  CKPT_ASSERT_OK(client_->AddItems(add));
  for (uint64_t i : {3, 1, 4}) {
    v1::CompleteItemsRequest complete;
    complete.set_job_id("feed");
    *complete.add_items()->mutable_key() = IndexKey(i);
    CKPT_ASSERT_OK(client_->CompleteItems(complete));
  }
  auto newest = Run({"items", "feed", "--newest-first", "--json"});
  CKPT_ASSERT_OK(newest);
  const auto listed = FromJson<v1::ListItemsResponse>(*newest);
  ASSERT_EQ(listed.items_size(), 3);
  EXPECT_EQ(listed.items(0).key().index(), 4u);
  EXPECT_EQ(listed.items(2).key().index(), 3u);
  auto recent = Run({"items", "feed", "--completed-after", "1h"});
  CKPT_ASSERT_OK(recent);
  EXPECT_THAT(*recent, ContainsRegex("3 +COMPLETED[^\n]*\n1 +COMPLETED[^\n]*\n4 +COMPLETED"));
  auto future = Run({"items", "feed", "--completed-after", "2099-01-01T00:00:00Z"});
  CKPT_ASSERT_OK(future);
  EXPECT_EQ(*future, "no items\n");
  EXPECT_TRUE(IsUsageError(Run({"items", "feed", "--completed-after", "yesterday"}).status()));
  EXPECT_THAT(Run({"items", "feed", "--newest-first", "--state", "failed"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("completion order")));
}

}  // namespace
}  // namespace cli
}  // namespace ckpt
