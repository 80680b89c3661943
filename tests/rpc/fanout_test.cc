// DeleteJobs' answers from several shards merged into one: a dry run pages as one engine
// holding every job would, and a delete reports every job it deleted and resumes where
// the slowest shard stopped.
#include "service/rpc/fanout.h"

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/cord.h"
#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"
#include "service/engine/write_queue.h"
#include "tests/testing/status_matchers.h"

namespace ckpt {
namespace {

using ::testing::ElementsAre;

v1::DeleteJobsResponse Part(const std::string& text) {
  v1::DeleteJobsResponse part;
  if (!google::protobuf::TextFormat::ParseFromString(text, &part)) std::abort();
  return part;
}

std::vector<std::string> Ids(const v1::DeleteJobsResponse& response) {
  std::vector<std::string> ids;
  for (const v1::DeletedJob& job : response.jobs()) ids.push_back(job.job_id());
  return ids;
}

// Two shards' first pages of 2: shard A finished at 10 and 30 (and has more), shard B at
// 20 (all it has).
std::vector<v1::DeleteJobsResponse> TwoShards() {
  return {Part(R"pb(jobs {
                      job_id: "a1"
                      finish_time { seconds: 10 }
                    }
                    jobs {
                      job_id: "a3"
                      finish_time { seconds: 30 }
                    }
                    matched: 3
                    next_page_token: "30000000:a3")pb"),
          Part(R"pb(jobs {
                      job_id: "b2"
                      finish_time { seconds: 20 }
                    }
                    matched: 1)pb")};
}

TEST(MergeDeleteJobsTest, ADryRunKeepsTheFirstPageOfThemAll) {
  v1::DeleteJobsRequest request;
  request.set_dry_run(true);
  request.set_limit(2);
  const v1::DeleteJobsResponse merged = MergeDeleteJobs(request, TwoShards());
  EXPECT_THAT(Ids(merged), ElementsAre("a1", "b2"));
  EXPECT_EQ(merged.matched(), 4u);
  EXPECT_EQ(merged.next_page_token(), "20000000:b2");  // a3 comes on the next page
}

TEST(MergeDeleteJobsTest, ADeleteTellsEveryJobItDeletedAndResumesAtTheEarliestToken) {
  v1::DeleteJobsRequest request;
  request.set_limit(2);
  std::vector<v1::DeleteJobsResponse> parts = TwoShards();
  parts.push_back(Part(R"pb(jobs {
                              job_id: "c0"
                              finish_time { seconds: 5 }
                            }
                            matched: 9
                            next_page_token: "5000000:c0")pb"));
  const v1::DeleteJobsResponse merged = MergeDeleteJobs(request, std::move(parts));
  EXPECT_THAT(Ids(merged), ElementsAre("c0", "a1", "b2", "a3"));  // gone, so all told
  EXPECT_EQ(merged.matched(), 13u);
  EXPECT_EQ(merged.next_page_token(), "5000000:c0");
}

TEST(MergeDeleteJobsTest, NoTokenWhenEveryShardIsDone) {
  v1::DeleteJobsRequest request;
  std::vector<v1::DeleteJobsResponse> parts = {Part(R"pb(matched: 0)pb"),
                                               Part(R"pb(jobs { job_id: "x" }
                                                         matched: 1)pb")};
  const v1::DeleteJobsResponse merged = MergeDeleteJobs(request, std::move(parts));
  EXPECT_THAT(Ids(merged), ElementsAre("x"));
  EXPECT_TRUE(merged.next_page_token().empty());
}

TEST(MergeDeleteJobsTest, AFailedShardAfterOthersDeletedSaysHowManyWithoutARetryHint) {
  v1::DeleteJobsRequest request;
  std::vector<absl::StatusOr<v1::DeleteJobsResponse>> parts;
  for (v1::DeleteJobsResponse& part : TwoShards()) parts.push_back(std::move(part));
  absl::Status full = absl::ResourceExhaustedError("ckptd's write queue is full");
  full.SetPayload(kRetryAfterPayload, absl::Cord("100"));
  parts.push_back(full);
  const absl::StatusOr<v1::DeleteJobsResponse> merged =
      MergeDeleteJobsParts(request, std::move(parts));
  EXPECT_EQ(merged.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(merged.status().message(),
            "DeleteJobs deleted 3 jobs on other shards, then a shard answered: ckptd's write "
            "queue is full");
  EXPECT_FALSE(merged.status().GetPayload(kRetryAfterPayload).has_value());

  // Nothing deleted (a dry run, or no other part): the failure as it came.
  request.set_dry_run(true);
  std::vector<absl::StatusOr<v1::DeleteJobsResponse>> listed = {TwoShards().front(), full};
  EXPECT_EQ(MergeDeleteJobsParts(request, std::move(listed)).status(), full);
  // None failed: merged as MergeDeleteJobs does.
  std::vector<absl::StatusOr<v1::DeleteJobsResponse>> fine = {TwoShards().front(),
                                                              TwoShards().back()};
  auto ok = MergeDeleteJobsParts(request, std::move(fine));
  CKPT_ASSERT_OK(ok);
  EXPECT_THAT(Ids(*ok), ElementsAre("a1", "b2", "a3"));
}

TEST(ShardDeleteLimitTest, ADeleteSpreadsItsLimitOverTheShardsADryRunKeepsIt) {
  v1::DeleteJobsRequest request;
  request.set_limit(100);
  EXPECT_EQ(ShardDeleteLimit(request, 1), 100u);
  EXPECT_EQ(ShardDeleteLimit(request, 16), 7u);  // 112 at most in all
  EXPECT_EQ(ShardDeleteLimit(request, 256), 1u);
  request.set_limit(0);  // the default, 100
  EXPECT_EQ(ShardDeleteLimit(request, 3), 34u);
  request.set_dry_run(true);
  EXPECT_EQ(ShardDeleteLimit(request, 3), 100u);
}

}  // namespace
}  // namespace ckpt
