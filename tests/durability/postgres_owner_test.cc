// One ckptd per PostgreSQL store, with real processes: a second ckptd is refused with
// one line while the first runs; a frozen first one (SIGSTOP) is taken over once its
// lease runs out, and when it thaws it never commits again.
#include <signal.h>
#include <sys/wait.h>

#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "ckpt/v1/checkpoint.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/durability/ckptd_process.h"
#include "tests/durability/wire.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/test_stores.h"

namespace ckpt {
namespace {

using ::ckpt::testutil::CkptdProcess;
using ::ckpt::testutil::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;
using Stub = v1::Checkpoint::Stub;

std::string NewStore() {
  return testutil::StoreLocation::New(testutil::StoreKind::kPostgres).address();
}

absl::Status PutState(Stub& stub, const std::string& job, const std::string& name) {
  v1::PutStateRequest put;
  put.set_job_id(job);
  put.set_name(name);
  put.set_value(name);
  return testutil::WireCall(stub, &Stub::PutState, put).status();
}

absl::Status CreateJob(Stub& stub, const std::string& job) {
  v1::CreateJobRequest create;
  create.set_job_id(job);
  return testutil::WireCall(stub, &Stub::CreateJob, create).status();
}

TEST(PostgresOwnerTest, ASecondCkptdIsRefusedWithOneLineWhileTheFirstRuns) {
  const std::string store = NewStore();
  auto first = CkptdProcess::Start(store, {});
  ASSERT_TRUE(first.ok()) << first.status();
  const testutil::CkptdExit second = testutil::RunCkptdExpectingExit(store, {});
  EXPECT_TRUE(WIFEXITED(second.wait_status) && WEXITSTATUS(second.wait_status) == 1)
      << second.wait_status << " " << second.stderr_text;
  EXPECT_THAT(second.stderr_text,
              AllOf(HasSubstr("cannot start: store at postgresql://ckpt@127.0.0.1:"),
                    HasSubstr("is in use by another ckptd (ckptd on "),
                    HasSubstr(absl::StrCat("pid ", (*first)->pid(), ", serving 127.0.0.1:0")),
                    Not(HasSubstr(testutil::TestPostgres().password()))));
  EXPECT_EQ(std::count(second.stderr_text.begin(), second.stderr_text.end(), '\n'), 1)
      << second.stderr_text;
  auto stub = (*first)->NewStub();
  CKPT_EXPECT_OK(CreateJob(*stub, "still-served"));
}

TEST(PostgresOwnerTest, AFrozenCkptdIsTakenOverAfterItsLeaseAndNeverCommitsAgain) {
  const std::string store = NewStore();
  const std::vector<std::string> flags = {"--store_lease=1s"};
  auto frozen = CkptdProcess::Start(store, flags);
  ASSERT_TRUE(frozen.ok()) << frozen.status();
  auto frozen_stub = (*frozen)->NewStub();
  ASSERT_TRUE(CreateJob(*frozen_stub, "j").ok());
  ASSERT_TRUE(PutState(*frozen_stub, "j", "before the freeze").ok());
  ASSERT_EQ(::kill((*frozen)->pid(), SIGSTOP), 0);

  // Refused while the frozen one's lease runs (its session still holds the lock), taken
  // over once it has run out. Each refusal waits for the lock, so this is no busy loop.
  absl::StatusOr<std::unique_ptr<CkptdProcess>> successor;
  for (int attempt = 0; attempt < 30; ++attempt) {
    successor = CkptdProcess::Start(store, flags);
    if (successor.ok()) break;
    ASSERT_THAT(successor.status().message(), HasSubstr("in use by another ckptd"));
  }
  ASSERT_TRUE(successor.ok()) << successor.status();
  EXPECT_THAT((*successor)->Stderr(), HasSubstr("whose lease had expired"));
  auto stub = (*successor)->NewStub();
  CKPT_ASSERT_OK(PutState(*stub, "j", "by the successor"));

  ASSERT_EQ(::kill((*frozen)->pid(), SIGCONT), 0);
  EXPECT_THAT(PutState(*frozen_stub, "j", "after the thaw"),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("no longer owns the store")));
  v1::ListStatesRequest list;
  list.set_job_id("j");
  auto states = testutil::WireCall(*stub, &Stub::ListStates, list);
  CKPT_ASSERT_OK(states);
  std::vector<std::string> names;
  for (const v1::State& state : states->states()) names.push_back(state.name());
  EXPECT_THAT(names, ::testing::ElementsAre("before the freeze", "by the successor"));
}

}  // namespace
}  // namespace ckpt
