// The job state machine of docs/api.md, as a table over every (from, to, by_reset).
#include "service/engine/job_state_machine.h"

#include <string>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace ckpt {
namespace {

using ::ckpt::testutil::IsOk;
using ::ckpt::testutil::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;

constexpr v1::JobStatus kStatuses[] = {
    v1::JOB_STATUS_RUNNING,   v1::JOB_STATUS_PAUSED, v1::JOB_STATUS_STOPPED,
    v1::JOB_STATUS_COMPLETED, v1::JOB_STATUS_FAILED,
};

// The header's contract, written out by hand rather than recomputed: rows are `from`,
// columns `to`, both in kStatuses order.
//   RUNNING <-> PAUSED; RUNNING|PAUSED -> STOPPED, COMPLETED, FAILED; a repeat of the
//   same state is a no-op (StopJob and FinishJob are idempotent too); FAILED -> RUNNING
//   (ResumeJob); nothing else leaves STOPPED, COMPLETED or FAILED without a reset.
constexpr bool kLegal[5][5] = {
    //         RUNNING PAUSED STOPPED COMPLETED FAILED
    /* RUN */ {true, true, true, true, true},
    /* PAU */ {true, true, true, true, true},
    /* STO */ {false, false, true, false, false},
    /* COM */ {false, false, false, true, false},
    /* FAI */ {true, false, false, false, true},
};
// A reset brings any job back to RUNNING, and only there.
constexpr bool kLegalByReset[5][5] = {
    {true, false, false, false, false}, {true, false, false, false, false},
    {true, false, false, false, false}, {true, false, false, false, false},
    {true, false, false, false, false},
};

using Transition = std::tuple<int, int, bool>;  // from index, to index, by_reset

class JobStateMachineTest : public ::testing::TestWithParam<Transition> {};

TEST_P(JobStateMachineTest, LegalExactlyAsTheTableSays) {
  const auto [from_index, to_index, by_reset] = GetParam();
  const v1::JobStatus from = kStatuses[from_index];
  const v1::JobStatus to = kStatuses[to_index];
  const bool legal = (by_reset ? kLegalByReset : kLegal)[from_index][to_index];
  const absl::Status status = CheckTransition("batch_20251214_204300", from, to, by_reset);
  if (legal) {
    EXPECT_THAT(status, IsOk());
    return;
  }
  EXPECT_THAT(
      status,
      StatusIs(absl::StatusCode::kFailedPrecondition,
               AllOf(HasSubstr("\"batch_20251214_204300\""),
                     HasSubstr(absl::StrCat(JobStatusName(from), " -> ", JobStatusName(to))))));
}

std::string TransitionName(const ::testing::TestParamInfo<Transition>& info) {
  return absl::StrCat(JobStatusName(kStatuses[std::get<0>(info.param)]), "_to_",
                      JobStatusName(kStatuses[std::get<1>(info.param)]),
                      std::get<2>(info.param) ? "_by_reset" : "");
}

INSTANTIATE_TEST_SUITE_P(AllPairs, JobStateMachineTest,
                         ::testing::Combine(::testing::Range(0, 5), ::testing::Range(0, 5),
                                            ::testing::Bool()),
                         TransitionName);

TEST(JobStateMachineMessageTest, NamesJobFromAndTo) {
  EXPECT_THAT(CheckTransition("j-1", v1::JOB_STATUS_STOPPED, v1::JOB_STATUS_RUNNING),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr("job \"j-1\""), HasSubstr("STOPPED -> RUNNING"),
                             HasSubstr("ResetJob"))));
  EXPECT_THAT(CheckTransition("j-2", v1::JOB_STATUS_COMPLETED, v1::JOB_STATUS_PAUSED),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr("job \"j-2\""), HasSubstr("COMPLETED -> PAUSED"))));
}

TEST(JobStateMachineNamesTest, NamesAndFinishedStates) {
  EXPECT_EQ(JobStatusName(v1::JOB_STATUS_RUNNING), "RUNNING");
  EXPECT_EQ(JobStatusName(v1::JOB_STATUS_PAUSED), "PAUSED");
  EXPECT_EQ(JobStatusName(v1::JOB_STATUS_STOPPED), "STOPPED");
  EXPECT_EQ(JobStatusName(v1::JOB_STATUS_COMPLETED), "COMPLETED");
  EXPECT_EQ(JobStatusName(v1::JOB_STATUS_FAILED), "FAILED");
  for (v1::JobStatus status : kStatuses) {
    EXPECT_EQ(IsFinished(status),
              status == v1::JOB_STATUS_COMPLETED || status == v1::JOB_STATUS_FAILED)
        << JobStatusName(status);
  }
}

}  // namespace
}  // namespace ckpt
