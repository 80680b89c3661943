// DeleteJobs' answers from several shards merged into one: a dry run pages as one engine
// holding every job would, and a delete reports every job it deleted and resumes where
// the slowest shard stopped.
#include "service/rpc/fanout.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"

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

}  // namespace
}  // namespace ckpt
