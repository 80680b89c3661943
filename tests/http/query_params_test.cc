// Query parameters as request fields: every kind of field the gateway's reads use, and
// a clear INVALID_ARGUMENT for what does not fit.
#include "service/http/query_params.h"

#include "ckpt/v1/checkpoint.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace ckpt {
namespace {

using ::ckpt::testutil::StatusIs;
using ::testing::HasSubstr;
using Params = std::multimap<std::string, std::string>;

TEST(QueryParamsTest, ScalarsEnumsMapsAndNestedFields) {
  v1::ListJobsRequest jobs;
  CKPT_ASSERT_OK(FillFromQuery({{"status", "JOB_STATUS_PAUSED"},
                                {"labels.team", "search"},
                                {"labels.tier", "gold"},
                                {"name_prefix", "crawl-"},
                                {"limit", "20"}},
                               &jobs));
  EXPECT_EQ(jobs.status(), v1::JOB_STATUS_PAUSED);
  EXPECT_EQ(jobs.labels().at("team"), "search");
  EXPECT_EQ(jobs.labels().at("tier"), "gold");
  EXPECT_EQ(jobs.name_prefix(), "crawl-");  // the proto name works as well as namePrefix
  EXPECT_EQ(jobs.limit(), 20u);

  v1::GetItemRequest item;
  CKPT_ASSERT_OK(FillFromQuery({{"key.name", "a/b c"}, {"step", "extract"}}, &item));
  EXPECT_EQ(item.key().name(), "a/b c");
  EXPECT_EQ(item.step(), "extract");

  v1::ListItemsRequest items;
  CKPT_ASSERT_OK(FillFromQuery(
      {{"state", "4"}, {"keysOnly", "true"}, {"errorGroups", "5"}, {"pageToken", "x"}}, &items));
  EXPECT_EQ(items.state(), v1::ITEM_STATE_FAILED);
  EXPECT_TRUE(items.keys_only());
  EXPECT_EQ(items.error_groups(), 5u);

  v1::WatchJobRequest watch;
  CKPT_ASSERT_OK(FillFromQuery({{"minInterval", "1.5s"}}, &watch));
  EXPECT_EQ(watch.min_interval().seconds(), 1);
  EXPECT_EQ(watch.min_interval().nanos(), 500000000);

  v1::UpdateJobRequest update;  // a repeated field: one parameter per element
  CKPT_ASSERT_OK(FillFromQuery({{"removeLabels", "a"}, {"removeLabels", "b"}}, &update));
  EXPECT_THAT(update.remove_labels(), ::testing::ElementsAre("a", "b"));
}

TEST(QueryParamsTest, WhatDoesNotFitIsRefusedNamingTheParameter) {
  v1::ListItemsRequest items;
  EXPECT_THAT(FillFromQuery({{"bogus", "1"}}, &items),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("query parameter bogus: no field \"bogus\"")));
  EXPECT_THAT(FillFromQuery({{"limit", "-1"}}, &items),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("query parameter limit: \"-1\" is not a valid uint32")));
  EXPECT_THAT(FillFromQuery({{"state", "ITEM_STATE_NOPE"}}, &items),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("ckpt.v1.ItemState")));
  EXPECT_THAT(FillFromQuery({{"keysOnly", "maybe"}}, &items),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("keysOnly")));
  v1::GetItemRequest item;
  EXPECT_THAT(FillFromQuery({{"key", "3"}}, &item),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("key.FIELD")));
  EXPECT_THAT(FillFromQuery({{"step.x", "3"}}, &item),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("no fields")));
  v1::ListJobsRequest jobs;
  EXPECT_THAT(FillFromQuery({{"labels", "team=search"}}, &jobs),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("labels.KEY")));
  v1::WatchJobRequest watch;
  EXPECT_THAT(FillFromQuery({{"minInterval", "soon"}}, &watch),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("minInterval")));
}

}  // namespace
}  // namespace ckpt
