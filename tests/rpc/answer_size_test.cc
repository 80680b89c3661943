// Answers that can always be sent: a job's record stays bounded whatever UpdateJob
// adds, and ListJobs, ListItems and ListStates end a page before it could pass the
// message limit. The server runs with --max_message_bytes of 1 MiB (pages of at most
// 512 KiB), so a few entries of a few hundred KiB show it.
#include <algorithm>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "ckpt/v1/checkpoint.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/test_server.h"

namespace ckpt {
namespace {

using ::ckpt::testutil::Call;
using ::ckpt::testutil::StatusIs;
using ::ckpt::testutil::TestServer;
using ::testing::HasSubstr;
using Stub = v1::Checkpoint::Stub;

constexpr size_t kEntryBytes = 400 << 10;  // three do not fit in one answer

class AnswerSizeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ServerOptions options;
    options.max_message_bytes = 1 << 20;
    auto server = TestServer::Start(options);
    CKPT_ASSERT_OK(server);
    server_ = std::move(*server);
  }
  Stub& stub() { return server_->stub(); }

  void CreateJob(const std::string& id, const std::string& config = "") {
    v1::CreateJobRequest request;
    request.set_job_id(id);
    request.set_config(config);
    CKPT_ASSERT_OK(Call(stub(), &Stub::CreateJob, request));
  }

  std::unique_ptr<TestServer> server_;
};

v1::UpdateJobRequest AddParams(int first, int n) {
  v1::UpdateJobRequest request;
  request.set_job_id("grow");
  for (int i = first; i < first + n; ++i) {
    (*request.mutable_set_params())[absl::StrCat("p", i)] = std::string(4000, 'v');
  }
  return request;
}

// UpdateJob checks the job's totals after the merge: past them nothing is applied and
// the answer says so (before, every call was applied until the job could no longer be
// read by anyone).
TEST_F(AnswerSizeTest, UpdateJobPastTheJobsTotalsIsRefusedAndAppliesNothing) {
  CreateJob("grow");
  CKPT_ASSERT_OK(Call(stub(), &Stub::UpdateJob, AddParams(0, 200)));
  EXPECT_THAT(Call(stub(), &Stub::UpdateJob, AddParams(200, 200)),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("the job would have 400 params, over the limit of 256")));
  v1::GetJobRequest get;
  get.set_job_id("grow");
  auto job = Call(stub(), &Stub::GetJob, get);
  CKPT_ASSERT_OK(job);
  EXPECT_EQ(job->job().params_size(), 200);
  // Replacing and removing within the totals still works.
  v1::UpdateJobRequest swap = AddParams(100, 200);
  for (int i = 0; i < 100; ++i) swap.add_remove_params(absl::StrCat("p", i));
  CKPT_EXPECT_OK(Call(stub(), &Stub::UpdateJob, swap));
}

TEST_F(AnswerSizeTest, ListJobsPagesByBytes) {
  for (int i = 0; i < 3; ++i) CreateJob(absl::StrCat("big", i), std::string(kEntryBytes, 'c'));
  std::vector<std::string> seen;
  v1::ListJobsRequest request;
  do {
    auto page = Call(stub(), &Stub::ListJobs, request);
    CKPT_ASSERT_OK(page);
    ASSERT_GE(page->jobs_size(), 1);
    for (const v1::Job& job : page->jobs()) seen.push_back(job.job_id());
    request.set_page_token(page->next_page_token());
  } while (!request.page_token().empty());
  EXPECT_THAT(seen, ::testing::UnorderedElementsAre("big0", "big1", "big2"));
}

TEST_F(AnswerSizeTest, ListStatesWithValuesPagesByBytes) {
  CreateJob("states");
  for (int i = 0; i < 3; ++i) {
    v1::PutStateRequest put;
    put.set_job_id("states");
    put.set_name(absl::StrCat("s", i));
    put.set_value(std::string(kEntryBytes, 'x'));
    CKPT_ASSERT_OK(Call(stub(), &Stub::PutState, put));
  }
  std::vector<std::string> seen;
  v1::ListStatesRequest request;
  request.set_job_id("states");
  request.set_include_values(true);
  do {
    auto page = Call(stub(), &Stub::ListStates, request);
    CKPT_ASSERT_OK(page);
    ASSERT_GE(page->states_size(), 1);
    for (const v1::State& state : page->states()) {
      EXPECT_EQ(state.value().size(), kEntryBytes);
      seen.push_back(state.name());
    }
    request.set_page_token(page->next_page_token());
  } while (!request.page_token().empty());
  EXPECT_THAT(seen, ::testing::ElementsAre("s0", "s1", "s2"));
}

TEST_F(AnswerSizeTest, ListItemsPagesByBytes) {
  CreateJob("items");
  v1::AddItemsRequest add;
  add.set_job_id("items");
  auto* range = add.add_ranges();
  range->set_begin(0);
  range->set_end(30);
  CKPT_ASSERT_OK(Call(stub(), &Stub::AddItems, add));
  for (int i = 0; i < 30; i += 10) {  // 30 results of 60 KB: 1.8 MB in all
    v1::CompleteItemsRequest complete;
    complete.set_job_id("items");
    for (int k = i; k < i + 10; ++k) {
      auto* item = complete.add_items();
      item->mutable_key()->set_index(k);
      item->mutable_result()->set_payload(std::string(60000, 'p'));
    }
    CKPT_ASSERT_OK(Call(stub(), &Stub::CompleteItems, complete));
  }
  for (auto order : {v1::ITEM_ORDER_UNSPECIFIED, v1::ITEM_ORDER_COMPLETED_NEWEST_FIRST}) {
    SCOPED_TRACE(v1::ItemOrder_Name(order));
    std::vector<uint64_t> seen;
    v1::ListItemsRequest request;
    request.set_job_id("items");
    request.set_limit(100);
    request.set_order(order);
    do {
      auto page = Call(stub(), &Stub::ListItems, request);
      CKPT_ASSERT_OK(page);
      ASSERT_GE(page->items_size(), 1);
      for (const v1::Item& item : page->items()) seen.push_back(item.key().index());
      request.set_page_token(page->next_page_token());
    } while (!request.page_token().empty());
    std::sort(seen.begin(), seen.end());
    ASSERT_EQ(seen.size(), 30u);
    for (uint64_t i = 0; i < 30; ++i) EXPECT_EQ(seen[i], i);
  }
}

}  // namespace
}  // namespace ckpt
