// CompleteItems with lease_next: a worker's completions and its next lease in one op and
// one group commit, answered as LeaseItems would answer right after the completions;
// all or nothing; and a repeat after a lost answer gets the first call's leases back
// instead of a second set, across a restart too.
#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/engine/engine_test_base.h"
#include "tests/engine/recount.h"
#include "tests/testing/engine_harness.h"
#include "tests/testing/status_matchers.h"

namespace ckpt {
namespace {

using ::ckpt::testutil::Parse;
using ::ckpt::testutil::StatusIs;
using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

class EngineLeaseNextTest : public testutil::EngineTest {
 protected:
  // Creates `job` with indices [0, count) (sealed if asked) and a 30 s lease timeout,
  // registers a worker and leases `n` to it.
  v1::LeaseItemsResponse JobWithLeases(const std::string& job, uint64_t count, int n,
                                       bool seal = false) {
    CreateJob(absl::StrFormat(R"pb(job_id: "%s"
                                   lease_timeout { seconds: 30 })pb",
                              job));
    Add(absl::StrFormat(R"pb(job_id: "%s"
                             ranges { begin: 0 end: %d }
                             seal: %s)pb",
                        job, count, seal ? "true" : "false"));
    worker_ = Register(job);
    auto leased = Lease(job, worker_, n);
    EXPECT_TRUE(leased.ok()) << leased.status();
    return leased.ok() ? *leased : v1::LeaseItemsResponse();
  }
  // CompleteItems of `leases` (each with its token) by `worker`, asking for `next` more.
  static v1::CompleteItemsRequest CompleteAndLease(const std::string& job,
                                                   const std::string& worker,
                                                   const v1::LeaseItemsResponse& leases,
                                                   uint32_t next) {
    v1::CompleteItemsRequest r;
    r.set_job_id(job);
    r.set_worker_id(worker);
    r.set_skip_lost_leases(true);
    for (const v1::Lease& lease : leases.leases()) {
      v1::Completion* item = r.add_items();
      *item->mutable_key() = lease.key();
      item->set_lease_token(lease.lease_token());
      item->mutable_result()->add_output_paths(absl::StrCat("/out/", lease.key().index()));
    }
    r.mutable_lease_next()->set_max_items(next);
    return r;
  }
  absl::StatusOr<v1::CompleteItemsResponse> Call(const v1::CompleteItemsRequest& r) {
    return h_.Call(&Engine::CompleteItems, r);
  }
  static std::vector<uint64_t> Indices(const v1::LeaseItemsResponse& leased) {
    std::vector<uint64_t> out;
    for (const v1::Lease& lease : leased.leases()) out.push_back(lease.key().index());
    return out;
  }
  static std::vector<uint64_t> Tokens(const v1::LeaseItemsResponse& leased) {
    std::vector<uint64_t> out;
    for (const v1::Lease& lease : leased.leases()) out.push_back(lease.lease_token());
    return out;
  }
  v1::Item Item(const std::string& job, uint64_t index) {
    auto item = GetItem(absl::StrFormat(R"pb(job_id: "%s"
                                             key { index: %d })pb",
                                        job, index));
    EXPECT_TRUE(item.ok()) << item.status();
    return item.ok() ? item->item() : v1::Item();
  }

  std::string worker_;
};

// The worker loop's round: one call completes the batch in hand and leases the next,
// and the store sees one write (one WAL sync), where LeaseItems + CompleteItems are two.
TEST_P(EngineLeaseNextTest, CompletesAndLeasesTheNextBatchInOneWrite) {
  const v1::LeaseItemsResponse first = JobWithLeases("j", 10, 4);
  ASSERT_THAT(Indices(first), ElementsAre(0, 1, 2, 3));
  const uint64_t writes = h_.faults().writes;
  auto answer = Call(CompleteAndLease("j", worker_, first, 4));
  CKPT_ASSERT_OK(answer);
  EXPECT_EQ(h_.faults().writes, writes + 1);
  EXPECT_THAT(answer->outcomes(),
              ElementsAre(v1::COMPLETION_OUTCOME_COMPLETED, v1::COMPLETION_OUTCOME_COMPLETED,
                          v1::COMPLETION_OUTCOME_COMPLETED, v1::COMPLETION_OUTCOME_COMPLETED));
  ASSERT_TRUE(answer->has_leased());
  const v1::LeaseItemsResponse& next = answer->leased();
  EXPECT_THAT(Indices(next), ElementsAre(4, 5, 6, 7));
  EXPECT_EQ(next.shortfall(), v1::LEASE_SHORTFALL_UNSPECIFIED);
  EXPECT_EQ(next.control(), v1::CONTROL_WORD_RUN);
  for (const v1::Lease& lease : next.leases()) {
    EXPECT_GT(lease.lease_token(), first.leases(3).lease_token());
    EXPECT_EQ(lease.attempt(), 1u);
    EXPECT_EQ(lease.step(), "main");
  }
  EXPECT_EQ(Job("j").progress().completed(), 4u);
  EXPECT_EQ(Job("j").progress().leased(), 4u);
  const v1::Item held = Item("j", 5);
  EXPECT_EQ(held.state(), v1::ITEM_STATE_LEASED);
  EXPECT_EQ(held.worker_id(), worker_);
  EXPECT_EQ(held.lease_token(), next.leases(1).lease_token());

  // The next round completes those and gets the last two, one short: NONE_PENDING.
  answer = Call(CompleteAndLease("j", worker_, next, 4));
  CKPT_ASSERT_OK(answer);
  EXPECT_THAT(Indices(answer->leased()), ElementsAre(8, 9));
  EXPECT_EQ(answer->leased().shortfall(), v1::LEASE_SHORTFALL_NONE_PENDING);
  EXPECT_EQ(h_.faults().writes, writes + 2);
  h_.Reopen();
  EXPECT_EQ(Job("j").progress().completed(), 8u);
  EXPECT_EQ(Item("j", 9).lease_token(), answer->leased().leases(1).lease_token());
  testutil::ExpectCountersMatchRecount(h_, "j");
}

// Without lease_next the answer has no lease part, and nothing more is leased.
TEST_P(EngineLeaseNextTest, WithoutLeaseNextNothingMoreIsLeased) {
  const v1::LeaseItemsResponse first = JobWithLeases("j", 10, 2);
  v1::CompleteItemsRequest plain = CompleteAndLease("j", worker_, first, 1);
  plain.clear_lease_next();
  auto answer = Call(plain);
  CKPT_ASSERT_OK(answer);
  EXPECT_FALSE(answer->has_leased());
  EXPECT_EQ(Job("j").progress().leased(), 0u);
}

// Retries come first and keep their attempts and cursors, as with LeaseItems.
TEST_P(EngineLeaseNextTest, RetriesComeFirstWithTheirAttempts) {
  const v1::LeaseItemsResponse first = JobWithLeases("j", 10, 3);
  CKPT_ASSERT_OK(FailRetryable("j", 2, first.leases(2).lease_token(), "flaky"));
  v1::LeaseItemsResponse two;
  *two.add_leases() = first.leases(0);
  *two.add_leases() = first.leases(1);
  auto answer = Call(CompleteAndLease("j", worker_, two, 3));
  CKPT_ASSERT_OK(answer);
  EXPECT_THAT(Indices(answer->leased()), ElementsAre(2, 3, 4));
  EXPECT_EQ(answer->leased().leases(0).attempt(), 2u);
  EXPECT_EQ(answer->leased().leases(1).attempt(), 1u);
}

// The lease part answers a job that is not RUNNING as LeaseItems does (nothing, the
// shortfall, the control word), while the completions are applied: a leased item always
// completes.
TEST_P(EngineLeaseNextTest, APausedOrStoppedJobCompletesButLeasesNothing) {
  const v1::LeaseItemsResponse first = JobWithLeases("j", 10, 4);
  v1::PauseJobRequest pause;
  pause.set_job_id("j");
  CKPT_ASSERT_OK(h_.Call(&Engine::PauseJob, pause));
  v1::LeaseItemsResponse half;
  *half.add_leases() = first.leases(0);
  *half.add_leases() = first.leases(1);
  auto answer = Call(CompleteAndLease("j", worker_, half, 4));
  CKPT_ASSERT_OK(answer);
  EXPECT_THAT(answer->outcomes(),
              ElementsAre(v1::COMPLETION_OUTCOME_COMPLETED, v1::COMPLETION_OUTCOME_COMPLETED));
  auto plain = Lease("j", worker_, 4);
  CKPT_ASSERT_OK(plain);
  EXPECT_THAT(answer->leased().leases(), IsEmpty());
  EXPECT_EQ(answer->leased().shortfall(), v1::LEASE_SHORTFALL_JOB_PAUSED);
  EXPECT_EQ(answer->leased().control(), v1::CONTROL_WORD_PAUSE);
  EXPECT_EQ(answer->leased().message(), plain->message());
  EXPECT_EQ(Job("j").progress().completed(), 2u);

  v1::StopJobRequest stop;
  stop.set_job_id("j");
  CKPT_ASSERT_OK(h_.Call(&Engine::StopJob, stop));
  half.clear_leases();
  *half.add_leases() = first.leases(2);
  answer = Call(CompleteAndLease("j", worker_, half, 4));
  CKPT_ASSERT_OK(answer);
  EXPECT_THAT(answer->leased().leases(), IsEmpty());
  EXPECT_EQ(answer->leased().shortfall(), v1::LEASE_SHORTFALL_JOB_STOPPED);
  EXPECT_EQ(answer->leased().control(), v1::CONTROL_WORD_STOP);
  EXPECT_EQ(Job("j").progress().completed(), 3u);
  EXPECT_EQ(Job("j").progress().leased(), 1u);
}

// The lease part is decided after the completions: completing a sealed job's last items
// answers JOB_FINISHED, and a drained step of a job with more steps STEP_DRAINED.
TEST_P(EngineLeaseNextTest, CompletingTheLastItemsAnswersFinishedOrDrained) {
  const v1::LeaseItemsResponse all = JobWithLeases("j", 3, 3, /*seal=*/true);
  auto answer = Call(CompleteAndLease("j", worker_, all, 3));
  CKPT_ASSERT_OK(answer);
  EXPECT_EQ(Job("j").status(), v1::JOB_STATUS_COMPLETED);
  EXPECT_THAT(answer->leased().leases(), IsEmpty());
  EXPECT_EQ(answer->leased().shortfall(), v1::LEASE_SHORTFALL_JOB_FINISHED);
  EXPECT_EQ(answer->leased().control(), v1::CONTROL_WORD_STOP);

  CreateJob(R"pb(job_id: "two" steps: "a" steps: "b")pb");
  Add(R"pb(job_id: "two" step: "a" indices: 0)pb");
  Add(R"pb(job_id: "two" step: "b" indices: 0 seal: true)pb");
  const std::string w = Register("two");
  auto leased = Lease("two", w, 1, "a");
  CKPT_ASSERT_OK(leased);
  v1::CompleteItemsRequest r = CompleteAndLease("two", w, *leased, 1);
  r.set_step("a");
  answer = Call(r);
  CKPT_ASSERT_OK(answer);
  EXPECT_THAT(answer->leased().leases(), IsEmpty());
  EXPECT_EQ(answer->leased().shortfall(), v1::LEASE_SHORTFALL_STEP_DRAINED);
  EXPECT_EQ(answer->leased().control(), v1::CONTROL_WORD_RUN);
}

// The worker the lease goes to is checked before anything changes, with LeaseItems'
// codes; a refused call applies nothing, its completions included.
TEST_P(EngineLeaseNextTest, AnUnknownOrGoneWorkerRefusesTheWholeCall) {
  const v1::LeaseItemsResponse first = JobWithLeases("j", 10, 2);
  const uint64_t writes = h_.faults().writes;
  EXPECT_THAT(Call(CompleteAndLease("j", "w-999", first, 2)),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("w-999")));
  EXPECT_EQ(h_.faults().writes, writes);
  const std::string gone = Register("j");
  v1::UnregisterWorkerRequest unregister;
  unregister.set_job_id("j");
  unregister.set_worker_id(gone);
  CKPT_ASSERT_OK(h_.Call(&Engine::UnregisterWorker, unregister));
  const uint64_t unregistered = h_.faults().writes;
  EXPECT_THAT(Call(CompleteAndLease("j", gone, first, 2)),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("unregistered")));
  EXPECT_EQ(h_.faults().writes, unregistered);
  EXPECT_EQ(Job("j").progress().completed(), 0u);
  EXPECT_EQ(Job("j").progress().leased(), 2u);
  EXPECT_EQ(Item("j", 0).state(), v1::ITEM_STATE_LEASED);

  // A stale token without skip_lost_leases refuses the call as CompleteItems does: no
  // lease either.
  v1::CompleteItemsRequest stale = CompleteAndLease("j", worker_, first, 2);
  stale.set_skip_lost_leases(false);
  stale.mutable_items(1)->set_lease_token(first.leases(1).lease_token() + 1000);
  EXPECT_THAT(Call(stale),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("lease lost")));
  EXPECT_EQ(Job("j").progress().completed(), 0u);
  EXPECT_EQ(Job("j").progress().leased(), 2u);
}

// A worker declared lost (silent past the lease timeout) is refused as LeaseItems
// refuses it: register again.
TEST_P(EngineLeaseNextTest, ALostWorkerIsRefused) {
  const v1::LeaseItemsResponse first = JobWithLeases("j", 10, 2);
  h_.clock().Advance(absl::Seconds(31));
  CKPT_ASSERT_OK(h_.Expire());
  EXPECT_THAT(Call(CompleteAndLease("j", worker_, first, 2)),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("declared lost")));
  EXPECT_EQ(Job("j").progress().completed(), 0u);
  EXPECT_EQ(Job("j").progress().leased(), 0u);
}

// A repeat of the call after a lost answer (same worker, same completions) grants no
// second set: it answers the first call's leases, with their tokens, across a restart
// too; and once some of them ended it tops the answer up with new ones.
TEST_P(EngineLeaseNextTest, ARepeatAnswersTheFirstCallsLeasesInsteadOfASecondSet) {
  const v1::LeaseItemsResponse first = JobWithLeases("j", 20, 3);
  const v1::CompleteItemsRequest request = CompleteAndLease("j", worker_, first, 4);
  auto answer = Call(request);
  CKPT_ASSERT_OK(answer);
  const std::vector<uint64_t> tokens = Tokens(answer->leased());
  ASSERT_THAT(Indices(answer->leased()), ElementsAre(3, 4, 5, 6));

  auto repeat = Call(request);
  CKPT_ASSERT_OK(repeat);
  EXPECT_THAT(repeat->outcomes(), ElementsAre(v1::COMPLETION_OUTCOME_ALREADY_COMPLETED,
                                              v1::COMPLETION_OUTCOME_ALREADY_COMPLETED,
                                              v1::COMPLETION_OUTCOME_ALREADY_COMPLETED));
  EXPECT_THAT(Tokens(repeat->leased()), ElementsAreArray(tokens));
  EXPECT_EQ(repeat->leased().shortfall(), v1::LEASE_SHORTFALL_UNSPECIFIED);
  EXPECT_EQ(Job("j").progress().leased(), 4u);

  h_.Reopen();
  repeat = Call(request);
  CKPT_ASSERT_OK(repeat);
  EXPECT_THAT(Tokens(repeat->leased()), ElementsAreArray(tokens));
  EXPECT_EQ(Job("j").progress().leased(), 4u);

  // One of those leases ends (here: completed by token); the repeat answers the other
  // three and one new lease, which a further repeat answers too.
  CKPT_ASSERT_OK(Complete(absl::StrFormat(R"pb(job_id: "j"
                                               items {
                                                 key { index: 4 }
                                                 lease_token: %d
                                               })pb",
                                          tokens[1])));
  repeat = Call(request);
  CKPT_ASSERT_OK(repeat);
  EXPECT_THAT(Indices(repeat->leased()), ElementsAre(3, 5, 6, 7));
  EXPECT_EQ(repeat->leased().leases(0).lease_token(), tokens[0]);
  const uint64_t topped_up = repeat->leased().leases(3).lease_token();
  EXPECT_GT(topped_up, tokens[3]);
  repeat = Call(request);
  CKPT_ASSERT_OK(repeat);
  EXPECT_THAT(Indices(repeat->leased()), ElementsAre(3, 5, 6, 7));
  EXPECT_EQ(repeat->leased().leases(3).lease_token(), topped_up);
  EXPECT_EQ(Job("j").progress().leased(), 4u);

  // The worker's next real round is no repeat: it leases the items after these.
  v1::LeaseItemsResponse held = repeat->leased();
  answer = Call(CompleteAndLease("j", worker_, held, 2));
  CKPT_ASSERT_OK(answer);
  EXPECT_THAT(Indices(answer->leased()), ElementsAre(8, 9));
  EXPECT_EQ(Job("j").progress().completed(), 8u);
  testutil::ExpectCountersMatchRecount(h_, "j");
}

// The first call's leases are this worker's: another worker presenting the same first
// token (a misbehaving client) gets leases of its own, and the first call's stay put.
TEST_P(EngineLeaseNextTest, ARepeatFromAnotherWorkerIsNoRepeat) {
  const v1::LeaseItemsResponse first = JobWithLeases("j", 20, 2);
  auto answer = Call(CompleteAndLease("j", worker_, first, 2));
  CKPT_ASSERT_OK(answer);
  const std::string other = Register("j");
  auto others = Call(CompleteAndLease("j", other, first, 2));
  CKPT_ASSERT_OK(others);
  EXPECT_THAT(Indices(others->leased()), ElementsAre(4, 5));
  EXPECT_EQ(Item("j", 2).worker_id(), worker_);
  EXPECT_EQ(Item("j", 4).worker_id(), other);
}

// Completing items leased by lease_next still writes runs, and grants of more than 128
// leases are split as LeaseItems' are; their leases all come back on a repeat.
TEST_P(EngineLeaseNextTest, BigLeasesSplitIntoGrantsAndARepeatFindsThemAll) {
  const v1::LeaseItemsResponse first = JobWithLeases("j", 1000, 1);
  const v1::CompleteItemsRequest request = CompleteAndLease("j", worker_, first, 300);
  auto answer = Call(request);
  CKPT_ASSERT_OK(answer);
  ASSERT_EQ(answer->leased().leases_size(), 300);
  h_.Reopen();
  auto repeat = Call(request);
  CKPT_ASSERT_OK(repeat);
  EXPECT_THAT(Tokens(repeat->leased()), ElementsAreArray(Tokens(answer->leased())));
  answer = Call(CompleteAndLease("j", worker_, repeat->leased(), 300));
  CKPT_ASSERT_OK(answer);
  EXPECT_EQ(answer->leased().leases(0).key().index(), 301u);
  EXPECT_EQ(Job("j").progress().completed(), 301u);
  EXPECT_EQ(Job("j").progress().leased(), 300u);
  testutil::ExpectCountersMatchRecount(h_, "j");
}

// The leases of a LeaseRun, as Leases.
std::vector<v1::Lease> RunLeases(const v1::LeaseRun& run) {
  std::vector<v1::Lease> leases(run.count());
  for (uint32_t i = 0; i < run.count(); ++i) {
    leases[i].mutable_key()->set_index(run.first_index() + i);
    leases[i].set_step(run.step());
    leases[i].set_lease_token(run.first_lease_token() + i);
    leases[i].set_attempt(run.attempt());
    *leases[i].mutable_expire_time() = run.expire_time();
  }
  return leases;
}

// Asked for packed, LeaseItems and lease_next answer a batch of fresh indices as one
// run; its tokens complete the items, a repeat after a lost answer gets the same run
// back, and a retry (a lease with a cursor) stays a Lease beside the run.
TEST_P(EngineLeaseNextTest, PackedAnswersGiveRunsOfTheSameLeases) {
  CreateJob(R"pb(job_id: "p"
                 lease_timeout { seconds: 30 })pb");
  Add(R"pb(job_id: "p"
           ranges { begin: 0 end: 12 })pb");
  const std::string worker = Register("p");
  auto first =
      h_.Call(&Engine::LeaseItems,
              Parse<v1::LeaseItemsRequest>(absl::StrFormat(
                  R"pb(job_id: "p" worker_id: "%s" max_items: 4 packed: true)pb", worker)));
  CKPT_ASSERT_OK(first);
  EXPECT_EQ(first->leases_size(), 0);
  ASSERT_EQ(first->lease_runs_size(), 1);
  EXPECT_EQ(first->lease_runs(0).first_index(), 0u);
  EXPECT_EQ(first->lease_runs(0).count(), 4u);
  EXPECT_EQ(first->lease_runs(0).step(), "main");
  EXPECT_EQ(first->lease_runs(0).attempt(), 1u);
  EXPECT_EQ(first->shortfall(), v1::LEASE_SHORTFALL_UNSPECIFIED);
  // Index 0 is failed back with a cursor saved: it comes back first, as a Lease.
  std::vector<v1::Lease> held = RunLeases(first->lease_runs(0));
  CKPT_ASSERT_OK(h_.Call(&Engine::Heartbeat, Parse<v1::HeartbeatRequest>(absl::StrFormat(
                                                 R"pb(job_id: "p"
                                                      worker_id: "%s"
                                                      leases {
                                                        key { index: 0 }
                                                        lease_token: %d
                                                        cursor: "row-7"
                                                      })pb",
                                                 worker, held[0].lease_token()))));
  CKPT_ASSERT_OK(FailRetryable("p", 0, held[0].lease_token(), "x"));
  held.erase(held.begin());
  v1::LeaseItemsResponse rest;
  for (const v1::Lease& lease : held) *rest.add_leases() = lease;
  v1::CompleteItemsRequest request = CompleteAndLease("p", worker, rest, 5);
  request.mutable_lease_next()->set_packed(true);
  auto next = Call(request);
  CKPT_ASSERT_OK(next);
  EXPECT_THAT(next->outcomes(), ::testing::Each(v1::COMPLETION_OUTCOME_COMPLETED));
  const v1::LeaseItemsResponse& leased = next->leased();
  ASSERT_EQ(leased.leases_size(), 1);
  EXPECT_EQ(leased.leases(0).key().index(), 0u);
  EXPECT_EQ(leased.leases(0).attempt(), 2u);
  EXPECT_EQ(leased.leases(0).cursor(), "row-7");
  ASSERT_EQ(leased.lease_runs_size(), 1);
  EXPECT_EQ(leased.lease_runs(0).first_index(), 4u);
  EXPECT_EQ(leased.lease_runs(0).count(), 4u);
  EXPECT_EQ(leased.shortfall(), v1::LEASE_SHORTFALL_UNSPECIFIED);
  // The answer was lost: the repeat is answered the same leases, packed the same way.
  auto again = Call(request);
  CKPT_ASSERT_OK(again);
  EXPECT_EQ(again->leased().SerializeAsString(), leased.SerializeAsString());
  // The run's tokens are the leases': they complete the items.
  v1::LeaseItemsResponse run;
  for (const v1::Lease& lease : RunLeases(leased.lease_runs(0))) *run.add_leases() = lease;
  v1::CompleteItemsRequest last = CompleteAndLease("p", worker, run, 1);
  last.set_skip_lost_leases(false);
  auto done = Call(last);
  CKPT_ASSERT_OK(done);
  EXPECT_THAT(done->outcomes(), ::testing::Each(v1::COMPLETION_OUTCOME_COMPLETED));
  EXPECT_EQ(Job("p").progress().completed(), 7u);
  testutil::ExpectCountersMatchRecount(h_, "p");
}

INSTANTIATE_TEST_SUITE_P(Stores, EngineLeaseNextTest, CKPT_ENGINE_STORE_KINDS);

}  // namespace
}  // namespace ckpt
