// State blobs through the engine: versions, compare-and-set, listing, restarts.
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

class EngineStatesTest : public testutil::EngineTest {};

// ---------------------------------------------------------------- state blobs

// PATAS: a message-clustering pipeline keeps its last processed message id and a large
// intermediate result as state, and its stage on the job; a restart keeps all three.
TEST_P(EngineStatesTest, PatasCursorIntermediateAndStageSurviveRestart) {
  CreateJob(R"pb(job_id: "patas-2025-12-14" config: "{\"source\": \"kafka://logs\"}")pb");
  std::string intermediate = "{\"clusters\": [";
  for (int i = 0; intermediate.size() < 100 * 1024; ++i) {
    absl::StrAppend(&intermediate, i == 0 ? "" : ", ",
                    absl::StrFormat(R"({"id": %d, "pattern": "user <*> logged in from <*>", )"
                                    R"("count": %d, "examples": ["msg-%08d", "msg-%08d"]})",
                                    i, i * 37 % 1000, i, i + 1));
  }
  absl::StrAppend(&intermediate, "]}");
  ASSERT_GE(intermediate.size(), 100u * 1024);

  const std::vector<std::string> cursors = {"1734200000.000100", "1734200000.004200",
                                            "1734200001.000017"};
  for (size_t i = 0; i < cursors.size(); ++i) {
    auto put = Put("patas-2025-12-14", "cursor", cursors[i]);
    CKPT_ASSERT_OK(put);
    EXPECT_EQ(put->version(), i + 1);
  }
  auto put = Put("patas-2025-12-14", "intermediate", intermediate);
  CKPT_ASSERT_OK(put);
  EXPECT_EQ(put->version(), 1u);
  CKPT_ASSERT_OK(
      h_.Call(&Engine::UpdateJob, Parse<v1::UpdateJobRequest>(R"pb(job_id: "patas-2025-12-14"
                                                                   stage: "clustering")pb")));
  const absl::Time written = Now();
  h_.clock().Advance(absl::Hours(1));

  h_.Reopen();
  auto cursor = GetState("patas-2025-12-14", "cursor");
  CKPT_ASSERT_OK(cursor);
  EXPECT_EQ(cursor->state().name(), "cursor");
  EXPECT_EQ(cursor->state().value(), "1734200001.000017");
  EXPECT_EQ(cursor->state().version(), 3u);
  EXPECT_TRUE(ProtoEq(ToProtoTime(written), cursor->state().update_time()));
  auto blob = GetState("patas-2025-12-14", "intermediate");
  CKPT_ASSERT_OK(blob);
  EXPECT_EQ(blob->state().value(), intermediate);
  EXPECT_EQ(blob->state().version(), 1u);
  EXPECT_EQ(Job("patas-2025-12-14").stage(), "clustering");
  // The resumed run carries on from the cursor with compare-and-set.
  auto next = PutIf("patas-2025-12-14", "cursor", "1734200001.000999", 3);
  CKPT_ASSERT_OK(next);
  EXPECT_EQ(next->version(), 4u);
}

TEST_P(EngineStatesTest, PutStateCompareAndSet) {
  CreateJob(R"pb(job_id: "cas")pb");
  auto first = PutIf("cas", "chunk_index", "0", 0);  // must not exist yet: it does not
  CKPT_ASSERT_OK(first);
  EXPECT_EQ(first->version(), 1u);
  auto second = PutIf("cas", "chunk_index", "1", 1);
  CKPT_ASSERT_OK(second);
  EXPECT_EQ(second->version(), 2u);
  auto third = PutIf("cas", "chunk_index", "2", 2);
  CKPT_ASSERT_OK(third);
  EXPECT_EQ(third->version(), 3u);

  EXPECT_THAT(
      PutIf("cas", "chunk_index", "stale", 2),
      StatusIs(absl::StatusCode::kAborted,
               AllOf(HasSubstr("chunk_index"), HasSubstr("version 3"), HasSubstr("re-read"))));
  EXPECT_THAT(PutIf("cas", "chunk_index", "new?", 0),
              StatusIs(absl::StatusCode::kAborted, HasSubstr("re-read")));
  EXPECT_THAT(PutIf("cas", "chunk_index", "future", 9),
              StatusIs(absl::StatusCode::kAborted, HasSubstr("re-read")));
  auto state = GetState("cas", "chunk_index");
  CKPT_ASSERT_OK(state);
  EXPECT_EQ(state->state().value(), "2");  // the rejected writes left no trace
  EXPECT_EQ(state->state().version(), 3u);

  auto fresh = PutIf("cas", "other", "x", 0);
  CKPT_ASSERT_OK(fresh);
  EXPECT_EQ(fresh->version(), 1u);
  EXPECT_THAT(PutIf("cas", "other", "y", 0), StatusIs(absl::StatusCode::kAborted, _));

  h_.Reopen();
  EXPECT_THAT(PutIf("cas", "chunk_index", "stale", 2), StatusIs(absl::StatusCode::kAborted, _));
  auto fourth = PutIf("cas", "chunk_index", "3", 3);
  CKPT_ASSERT_OK(fourth);
  EXPECT_EQ(fourth->version(), 4u);
  auto unconditional = Put("cas", "chunk_index", "4");
  CKPT_ASSERT_OK(unconditional);
  EXPECT_EQ(unconditional->version(), 5u);
  EXPECT_THAT(Put("missing-job", "x", "y"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("missing-job")));
}

TEST_P(EngineStatesTest, ListStatesByNameWithOrWithoutValues) {
  CreateJob(R"pb(job_id: "ls")pb");
  CKPT_ASSERT_OK(Put("ls", "b", "bee"));
  CKPT_ASSERT_OK(Put("ls", "a", "ay"));
  CKPT_ASSERT_OK(Put("ls", "a", "ay2"));
  CKPT_ASSERT_OK(Put("ls", "c/d", ""));
  CreateJob(R"pb(job_id: "ls2")pb");
  CKPT_ASSERT_OK(Put("ls2", "a", "other job"));

  auto check = [&]() {
    const std::vector<v1::State> names = States("ls", /*include_values=*/false);
    ASSERT_EQ(names.size(), 3u);
    EXPECT_EQ(names[0].name(), "a");
    EXPECT_EQ(names[0].version(), 2u);
    EXPECT_EQ(names[1].name(), "b");
    EXPECT_EQ(names[1].version(), 1u);
    EXPECT_EQ(names[2].name(), "c/d");
    for (const v1::State& s : names) {
      EXPECT_EQ(s.value(), "") << s.name();
      EXPECT_TRUE(s.has_update_time()) << s.name();
    }
    const std::vector<v1::State> values = States("ls", /*include_values=*/true);
    ASSERT_EQ(values.size(), 3u);
    EXPECT_EQ(values[0].value(), "ay2");
    EXPECT_EQ(values[1].value(), "bee");
    EXPECT_EQ(values[2].value(), "");
    EXPECT_THAT(GetState("ls", "zzz"), StatusIs(absl::StatusCode::kNotFound,
                                                AllOf(HasSubstr("\"zzz\""), HasSubstr("\"ls\""))));
    EXPECT_THAT(GetState("nope", "a"),
                StatusIs(absl::StatusCode::kNotFound, HasSubstr("\"nope\"")));
  };
  check();
  h_.Reopen();
  check();
}

INSTANTIATE_TEST_SUITE_P(Stores, EngineStatesTest, CKPT_ENGINE_STORE_KINDS);

}  // namespace
}  // namespace ckpt
