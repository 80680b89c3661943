// Items, leases and progress through the engine, on a real store with a fake clock.
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "ckpt/storage/v1/records.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/engine/item_reads.h"
#include "service/store/keys.h"
#include "service/store/store.h"
#include "tests/engine/engine_test_base.h"
#include "tests/engine/recount.h"
#include "tests/testing/engine_harness.h"
#include "tests/testing/status_matchers.h"

namespace ckpt {
namespace {

using ::ckpt::testutil::EngineHarness;
using ::ckpt::testutil::Parse;
using ::ckpt::testutil::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

// The sched records under the step's prefix with `tag`, as (key suffix, value).
std::vector<std::pair<std::string, std::string>> SchedRecords(Store& store, const std::string& job,
                                                              keys::SchedTag tag) {
  std::vector<std::pair<std::string, std::string>> out;
  auto it = store.Scan(Cf::kSched, keys::SchedPrefix(job, "main", tag));
  for (; it->Valid(); it->Next()) out.emplace_back(it->suffix(), it->value());
  EXPECT_TRUE(it->status().ok()) << it->status();
  return out;
}

class EngineItemsTest : public testutil::EngineTest {
 protected:
  absl::StatusOr<v1::LeaseItemsResponse> Lease(const std::string& text) {
    return h_.Call(&Engine::LeaseItems, Parse<v1::LeaseItemsRequest>(text));
  }
  // Every item of the step in the given state, by paging ListItems.
  std::vector<v1::Item> List(const std::string& job, v1::ItemState state, uint32_t page = 7) {
    return testutil::ListAll(h_, job, "", state, page);
  }
  // Creates `job` with indices [0, count) and a 30 s lease timeout, registers a worker
  // and leases up to `n` items to it: the worker's id and the LeaseItems answer.
  std::pair<std::string, absl::StatusOr<v1::LeaseItemsResponse>> JobWithLeases(
      const std::string& job, uint64_t count, int n) {
    CreateJob(absl::StrFormat(R"pb(job_id: "%s"
                                   lease_timeout { seconds: 30 })pb",
                              job));
    Add(absl::StrFormat(R"pb(job_id: "%s"
                             ranges { begin: 0 end: %d })pb",
                        job, count));
    std::string worker = Register(job);
    auto lease =
        Lease(absl::StrFormat(R"pb(job_id: "%s" max_items: %d worker_id: "%s")pb", job, n, worker));
    return {std::move(worker), std::move(lease)};
  }
  // Rewrites the job's one grant record as a schema-1 store holds its leases: one
  // LeaseRecord each, with the cursor "old-cursor". Takes effect at the next Reopen.
  void StoreGrantAsSchemaOne(const std::string& job) {
    auto grants = SchedRecords(h_.store(), job, keys::SchedTag::kGrant);
    ASSERT_EQ(grants.size(), 1u);
    storage::v1::LeaseGrantRecord grant;
    ASSERT_TRUE(grant.ParseFromString(grants[0].second));
    CKPT_ASSERT_OK(ExpandGrantRuns(job, &grant));
    auto batch = h_.store().NewBatch();
    const Cf sched = Cf::kSched;
    batch->Delete(sched, keys::SchedPrefix(job, "main", keys::SchedTag::kGrant) + grants[0].first);
    for (const auto& entry : grant.leases()) {
      storage::v1::LeaseRecord record;
      record.set_worker_id(grant.worker_id());
      record.set_token(entry.token());
      record.set_attempts(entry.attempts());
      record.set_cursor("old-cursor");
      record.set_grant_time_micros(grant.grant_time_micros());
      batch->Put(sched, keys::Leased(job, "main", entry.key()), record.SerializeAsString());
    }
    CKPT_ASSERT_OK(h_.store().Write(batch.get()));
  }
  static std::vector<uint64_t> Indices(const std::vector<v1::Item>& items) {
    std::vector<uint64_t> out;
    for (const auto& item : items) out.push_back(item.key().index());
    return out;
  }
};

TEST_P(EngineItemsTest, RangeOfAHundredMillionIsRegisteredAtOnce) {
  CreateJob("job_id: \"big\"");
  auto added = h_.Call(&Engine::AddItems,
                       Parse<v1::AddItemsRequest>(R"pb(job_id: "big"
                                                       ranges { begin: 0 end: 100000000 })pb"));
  CKPT_ASSERT_OK(added);
  EXPECT_EQ(added->added(), 100000000u);
  EXPECT_EQ(Job("big").progress().total(), 100000000u);
  EXPECT_EQ(Job("big").progress().pending(), 100000000u);
  // Overlaps and repeats are counted, not registered twice.
  added = h_.Call(&Engine::AddItems, Parse<v1::AddItemsRequest>(R"pb(
    job_id: "big"
    ranges { begin: 99999990 end: 100000010 }
    indices: 5
    indices: 100000020
  )pb"));
  CKPT_ASSERT_OK(added);
  EXPECT_EQ(added->added(), 11u);
  EXPECT_EQ(added->duplicates(), 11u);
  EXPECT_EQ(Job("big").progress().total(), 100000011u);
}

TEST_P(EngineItemsTest, NamesAndRangesMixInKeyOrder) {
  CreateJob("job_id: \"mix\"");
  Add(R"pb(job_id: "mix"
           names: "b.txt"
           names: "a.txt"
           names: "a.txt"
           ranges { begin: 3 end: 5 })pb");
  auto items = List("mix", v1::ITEM_STATE_UNSPECIFIED, 2);
  ASSERT_EQ(items.size(), 4u);
  EXPECT_EQ(items[0].key().index(), 3u);
  EXPECT_EQ(items[1].key().index(), 4u);
  EXPECT_EQ(items[2].key().name(), "a.txt");
  EXPECT_EQ(items[3].key().name(), "b.txt");
  for (const auto& item : items) EXPECT_EQ(item.state(), v1::ITEM_STATE_PENDING);
  testutil::ExpectCountersMatchRecount(h_, "mix");
}

// physicsnemo-curator: 80 indices, index 42 fails, a resumed run retries only 42.
TEST_P(EngineItemsTest, CuratorResumeRetriesOnlyTheFailedIndex) {
  CreateJob("job_id: \"curate\" config: \"{\\\"input\\\": \\\"raw/\\\"}\"");
  Add(R"pb(job_id: "curate"
           ranges { begin: 0 end: 80 })pb");
  for (int i = 0; i < 80; ++i) {
    if (i == 42) {
      CKPT_ASSERT_OK(Fail(R"pb(job_id: "curate"
                               items {
                                 key { index: 42 }
                                 error { message: "corrupt header" }
                               })pb"));
      continue;
    }
    CKPT_ASSERT_OK(Complete(absl::StrCat(
        "job_id: \"curate\" items { key { index: ", i, " } result { output_paths: \"/out/", i,
        R"pb(.parquet " metrics { wall_time { seconds: 2 } } } })pb")));
  }
  v1::Progress p = Job("curate").progress();
  EXPECT_EQ(p.total(), 80u);
  EXPECT_EQ(p.completed(), 79u);
  EXPECT_EQ(p.failed(), 1u);
  EXPECT_EQ(p.remaining(), 0u);
  EXPECT_EQ(p.item_time_avg().seconds(), 2);

  h_.Reopen();  // the pipeline crashed; a new run resumes
  auto resumed = h_.Call(
      &Engine::CreateJob,
      Parse<v1::CreateJobRequest>("job_id: \"curate\" config: \"{\\\"input\\\": \\\"raw/\\\"}\""));
  CKPT_ASSERT_OK(resumed);
  EXPECT_TRUE(resumed->resumed());
  auto failed = List("curate", v1::ITEM_STATE_FAILED);
  ASSERT_EQ(failed.size(), 1u);
  EXPECT_EQ(failed[0].key().index(), 42u);
  EXPECT_EQ(failed[0].last_error().message(), "corrupt header");
  EXPECT_TRUE(List("curate", v1::ITEM_STATE_PENDING).empty());
  EXPECT_EQ(List("curate", v1::ITEM_STATE_COMPLETED).size(), 79u);

  CKPT_ASSERT_OK(Complete(R"pb(job_id: "curate"
                               items { key { index: 42 } })pb"));
  p = Job("curate").progress();
  EXPECT_EQ(p.completed(), 80u);
  EXPECT_EQ(p.failed(), 0u);
  testutil::ExpectCountersMatchRecount(h_, "curate");
}

// The document batch pipeline: 253 documents, paused after 136; resubmitted with the
// same id, it skips the 136.
TEST_P(EngineItemsTest, ProgressiveSavingResubmissionSkipsFinishedDocuments) {
  CreateJob("job_id: \"batch_20251214_204300\" fingerprint: \"docs-v1\"");
  v1::AddItemsRequest add;
  add.set_job_id("batch_20251214_204300");
  for (int i = 0; i < 253; ++i) add.add_names(absl::StrFormat("doc-%03d.pdf", i));
  CKPT_ASSERT_OK(h_.Call(&Engine::AddItems, add));
  for (int i = 0; i < 136; ++i) {
    CKPT_ASSERT_OK(Complete(absl::StrFormat(R"pb(job_id: "batch_20251214_204300"
                                                 items { key { name: "doc-%03d.pdf" } })pb",
                                            i)));
  }
  v1::PauseJobRequest pause;
  pause.set_job_id("batch_20251214_204300");
  CKPT_ASSERT_OK(h_.Call(&Engine::PauseJob, pause));
  h_.Reopen();

  auto again = h_.Call(
      &Engine::CreateJob,
      Parse<v1::CreateJobRequest>("job_id: \"batch_20251214_204300\" fingerprint: \"docs-v1\""));
  CKPT_ASSERT_OK(again);
  EXPECT_TRUE(again->resumed());
  EXPECT_EQ(again->job().status(), v1::JOB_STATUS_PAUSED);
  // Creating twice never duplicates items.
  CKPT_ASSERT_OK(h_.Call(&Engine::AddItems, add));
  EXPECT_EQ(Job("batch_20251214_204300").progress().total(), 253u);
  auto todo = List("batch_20251214_204300", v1::ITEM_STATE_PENDING, 50);
  ASSERT_EQ(todo.size(), 117u);
  EXPECT_EQ(todo.front().key().name(), "doc-136.pdf");
  EXPECT_EQ(todo.back().key().name(), "doc-252.pdf");
  testutil::ExpectCountersMatchRecount(h_, "batch_20251214_204300");
}

TEST_P(EngineItemsTest, LeasesAreFencedByTokens) {
  auto [w, lease] = JobWithLeases("j", 10, 4);
  CKPT_ASSERT_OK(lease);
  ASSERT_EQ(lease->leases_size(), 4);
  std::set<uint64_t> tokens;
  for (const auto& l : lease->leases()) tokens.insert(l.lease_token());
  EXPECT_EQ(tokens.size(), 4u);
  EXPECT_EQ(lease->leases(0).key().index(), 0u);
  EXPECT_EQ(lease->leases(0).attempt(), 1u);
  const uint64_t token0 = lease->leases(0).lease_token();

  // A wrong token fails the whole batch and changes nothing.
  EXPECT_THAT(Complete(absl::StrCat("job_id: \"j\" items { key { index: 1 } lease_token: ",
                                    lease->leases(1).lease_token(),
                                    " } items { key { index: 0 } lease_token: 999 }")),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("lease lost for index 0")));
  EXPECT_EQ(Job("j").progress().completed(), 0u);

  auto done = Complete(absl::StrCat("job_id: \"j\" items { key { index: 0 } lease_token: ", token0,
                                    " result { payload: \"x\" } }"));
  CKPT_ASSERT_OK(done);
  EXPECT_THAT(done->outcomes(), ElementsAre(v1::COMPLETION_OUTCOME_COMPLETED));
  // Retrying the same write is OK and says so; the first result stands.
  done = Complete(absl::StrCat("job_id: \"j\" items { key { index: 0 } lease_token: ", token0,
                               " result { payload: \"y\" } }"));
  CKPT_ASSERT_OK(done);
  EXPECT_THAT(done->outcomes(), ElementsAre(v1::COMPLETION_OUTCOME_ALREADY_COMPLETED));
  v1::GetItemRequest get;
  get.set_job_id("j");
  get.mutable_key()->set_index(0);
  EXPECT_EQ(h_.Read(&Engine::GetItem, get)->item().result().payload(), "x");

  // With skip_lost_leases, a lost item is reported and the rest applied.
  done = Complete(absl::StrCat(
      "job_id: \"j\" skip_lost_leases: true items { key { index: 1 } lease_token: ",
      lease->leases(1).lease_token(), " } items { key { index: 2 } lease_token: 12345 }"));
  CKPT_ASSERT_OK(done);
  EXPECT_THAT(done->outcomes(),
              ElementsAre(v1::COMPLETION_OUTCOME_COMPLETED, v1::COMPLETION_OUTCOME_LEASE_LOST));
  EXPECT_EQ(Job("j").progress().completed(), 2u);
  EXPECT_EQ(Job("j").progress().leased(), 2u);
  testutil::ExpectCountersMatchRecount(h_, "j");
}

TEST_P(EngineItemsTest, ExpiredLeasesComeBackWithAttemptsThenFail) {
  CreateJob(R"pb(job_id: "j"
                 lease_timeout { seconds: 10 }
                 max_attempts: 2)pb");
  Add(R"pb(job_id: "j" indices: 7)pb");
  const std::string w = Register("j");
  const std::string lease_text = absl::StrCat("job_id: \"j\" max_items: 1 worker_id: \"", w, "\"");
  auto first = Lease(lease_text);
  CKPT_ASSERT_OK(first);
  ASSERT_EQ(first->leases_size(), 1);

  h_.clock().Advance(absl::Seconds(11));
  CKPT_ASSERT_OK(h_.Expire());
  EXPECT_EQ(Job("j").progress().pending(), 1u);
  // The old holder is fenced off.
  EXPECT_THAT(Complete(absl::StrCat("job_id: \"j\" items { key { index: 7 } lease_token: ",
                                    first->leases(0).lease_token(), "}")),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("lease lost")));

  const std::string w2 = Register("j");
  auto second = Lease(absl::StrCat("job_id: \"j\" max_items: 1 worker_id: \"", w2, "\""));
  CKPT_ASSERT_OK(second);
  ASSERT_EQ(second->leases_size(), 1);
  EXPECT_EQ(second->leases(0).attempt(), 2u);
  EXPECT_NE(second->leases(0).lease_token(), first->leases(0).lease_token());

  h_.clock().Advance(absl::Seconds(11));
  CKPT_ASSERT_OK(h_.Expire());
  auto failed = List("j", v1::ITEM_STATE_FAILED);
  ASSERT_EQ(failed.size(), 1u);
  EXPECT_EQ(failed[0].attempts(), 2u);
  EXPECT_THAT(failed[0].last_error().message(),
              HasSubstr(absl::StrCat("worker ", w2, " was silent")));
  testutil::ExpectCountersMatchRecount(h_, "j");
}

TEST_P(EngineItemsTest, HeartbeatsKeepALeaseAcrossManyTimeouts) {
  CreateJob(R"pb(job_id: "j"
                 lease_timeout { seconds: 10 })pb");
  Add(R"pb(job_id: "j" indices: 1)pb");
  const std::string w = Register("j");
  auto lease = Lease(absl::StrCat("job_id: \"j\" max_items: 1 worker_id: \"", w, "\""));
  CKPT_ASSERT_OK(lease);
  const uint64_t token = lease->leases(0).lease_token();
  for (int i = 0; i < 20; ++i) {
    h_.clock().Advance(absl::Seconds(8));
    auto beat = h_.Call(&Engine::Heartbeat, Parse<v1::HeartbeatRequest>(absl::StrCat(
                                                "job_id: \"j\" worker_id: \"", w,
                                                "\" leases { key { index: 1 } lease_token: ", token,
                                                " cursor: \"row ", i, "\" }")));
    CKPT_ASSERT_OK(beat);
    EXPECT_EQ(beat->control(), v1::CONTROL_WORD_RUN);
    EXPECT_EQ(beat->lost_size(), 0);
    CKPT_ASSERT_OK(h_.Expire());
  }
  EXPECT_EQ(Job("j").progress().leased(), 1u);
  v1::GetItemRequest get;
  get.set_job_id("j");
  get.mutable_key()->set_index(1);
  EXPECT_EQ(h_.Read(&Engine::GetItem, get)->item().cursor(), "row 19");
  // Silent past the timeout: the lease goes, the cursor stays for the next holder.
  h_.clock().Advance(absl::Seconds(11));
  CKPT_ASSERT_OK(h_.Expire());
  EXPECT_THAT(h_.Call(&Engine::Heartbeat, Parse<v1::HeartbeatRequest>(absl::StrCat(
                                              "job_id: \"j\" worker_id: \"", w, "\""))),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("declared lost")));
  const std::string w2 = Register("j");
  auto next = Lease(absl::StrCat("job_id: \"j\" max_items: 1 worker_id: \"", w2, "\""));
  CKPT_ASSERT_OK(next);
  ASSERT_EQ(next->leases_size(), 1);
  EXPECT_EQ(next->leases(0).cursor(), "row 19");
}

TEST_P(EngineItemsTest, MaxRunTimeEndsALeaseHoweverOftenItIsHeartbeated) {
  CreateJob(R"pb(job_id: "j"
                 lease_timeout { seconds: 10 }
                 max_run_time { seconds: 30 })pb");
  Add(R"pb(job_id: "j" indices: 1)pb");
  const std::string w = Register("j");
  auto lease = Lease(absl::StrCat("job_id: \"j\" max_items: 1 worker_id: \"", w, "\""));
  CKPT_ASSERT_OK(lease);
  ASSERT_EQ(lease->leases_size(), 1);
  const v1::HeartbeatRequest beat =
      Parse<v1::HeartbeatRequest>(absl::StrCat("job_id: \"j\" worker_id: \"", w, "\""));
  for (int i = 0; i < 3; ++i) {  // 24 s, all within the run time
    h_.clock().Advance(absl::Seconds(8));
    CKPT_ASSERT_OK(h_.Call(&Engine::Heartbeat, beat));
    CKPT_ASSERT_OK(h_.Expire());
    EXPECT_EQ(Job("j").progress().leased(), 1u) << "after " << (i + 1) * 8 << " s";
  }
  h_.clock().Advance(absl::Seconds(7));  // 31 s: past max_run_time, the worker alive
  CKPT_ASSERT_OK(h_.Call(&Engine::Heartbeat, beat));
  CKPT_ASSERT_OK(h_.Expire());
  EXPECT_EQ(Job("j").progress().leased(), 0u);
  v1::GetItemRequest get;
  get.set_job_id("j");
  get.mutable_key()->set_index(1);
  auto item = h_.Read(&Engine::GetItem, get);
  CKPT_ASSERT_OK(item);
  EXPECT_EQ(item->item().state(), v1::ITEM_STATE_PENDING);
  EXPECT_EQ(item->item().attempts(), 1u);
  EXPECT_THAT(item->item().last_error().message(), HasSubstr("max_run_time"));
  testutil::ExpectCountersMatchRecount(h_, "j");
}

TEST_P(EngineItemsTest, PauseStopsLeasingButLeasedItemsStillComplete) {
  CreateJob("job_id: \"j\"");
  Add(R"pb(job_id: "j"
           ranges { begin: 0 end: 5 }
           seal: true)pb");
  const std::string w = Register("j");
  auto lease = Lease(absl::StrCat("job_id: \"j\" max_items: 1 worker_id: \"", w, "\""));
  CKPT_ASSERT_OK(lease);
  v1::PauseJobRequest pause;
  pause.set_job_id("j");
  CKPT_ASSERT_OK(h_.Call(&Engine::PauseJob, pause));
  auto none = Lease(absl::StrCat("job_id: \"j\" max_items: 5 worker_id: \"", w, "\""));
  CKPT_ASSERT_OK(none);
  EXPECT_EQ(none->leases_size(), 0);
  EXPECT_EQ(none->shortfall(), v1::LEASE_SHORTFALL_JOB_PAUSED);
  EXPECT_EQ(none->control(), v1::CONTROL_WORD_PAUSE);
  CKPT_ASSERT_OK(Complete(absl::StrCat("job_id: \"j\" items { key { index: 0 } lease_token: ",
                                       lease->leases(0).lease_token(), "}")));
  v1::StopJobRequest stop;
  stop.set_job_id("j");
  CKPT_ASSERT_OK(h_.Call(&Engine::StopJob, stop));
  EXPECT_THAT(Complete(R"pb(job_id: "j"
                            items { key { index: 1 } })pb"),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("STOPPED")));
  v1::ResumeJobRequest resume;
  resume.set_job_id("j");
  EXPECT_THAT(h_.Call(&Engine::ResumeJob, resume),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("STOPPED -> RUNNING")));
  EXPECT_EQ(Job("j").progress().completed(), 1u);
}

TEST_P(EngineItemsTest, SealedJobCompletesWhenEveryItemIsDone) {
  CreateJob("job_id: \"j\"");
  Add(R"pb(job_id: "j" names: "a" names: "b" seal: true)pb");
  CKPT_ASSERT_OK(Complete(R"pb(job_id: "j"
                               items { key { name: "a" } })pb"));
  EXPECT_EQ(Job("j").status(), v1::JOB_STATUS_RUNNING);
  CKPT_ASSERT_OK(Complete(R"pb(job_id: "j"
                               items { key { name: "b" } })pb"));
  EXPECT_EQ(Job("j").status(), v1::JOB_STATUS_COMPLETED);
  EXPECT_EQ(Job("j").progress().percent(), 100.0);
  EXPECT_THAT(h_.Call(&Engine::AddItems, Parse<v1::AddItemsRequest>("job_id: \"j\" names: \"c\"")),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("sealed")));
}

TEST_P(EngineItemsTest, GetJobShowsTheTenLatestCompletionsNewestFirst) {
  CreateJob("job_id: \"j\"");
  Add(R"pb(job_id: "j"
           ranges { begin: 0 end: 20 })pb");
  for (int i = 0; i < 12; ++i) {
    CKPT_ASSERT_OK(Complete(absl::StrCat("job_id: \"j\" items { key { index: ", i, " } }")));
  }
  v1::GetJobRequest get;
  get.set_job_id("j");
  auto got = h_.Read(&Engine::GetJob, get);
  CKPT_ASSERT_OK(got);
  ASSERT_EQ(got->recent_completions_size(), 10);
  EXPECT_EQ(got->recent_completions(0).key().index(), 11u);
  EXPECT_EQ(got->recent_completions(9).key().index(), 2u);
  EXPECT_EQ(got->recent_completions(0).step(), "main");

  v1::ResetJobRequest reset;
  reset.set_job_id("j");
  CKPT_ASSERT_OK(h_.Call(&Engine::ResetJob, reset));
  got = h_.Read(&Engine::GetJob, get);
  CKPT_ASSERT_OK(got);
  EXPECT_EQ(got->recent_completions_size(), 0);
}

TEST_P(EngineItemsTest, ReRegisteringTheSameItemsOfASealedJobIsOk) {
  // A resumed pipeline registers its inputs again, and a sealing AddItems may be
  // retried after a lost answer: nothing new is added, so nothing is refused.
  CreateJob("job_id: \"j\"");
  Add(R"pb(job_id: "j"
           names: "a"
           ranges { begin: 0 end: 10 }
           seal: true)pb");
  CKPT_ASSERT_OK(Complete(R"pb(job_id: "j"
                               items { key { name: "a" } })pb"));
  auto again = h_.Call(&Engine::AddItems, Parse<v1::AddItemsRequest>(
                                              R"pb(job_id: "j"
                                                   names: "a"
                                                   indices: 3
                                                   ranges { begin: 0 end: 10 }
                                                   seal: true)pb"));
  CKPT_ASSERT_OK(again);
  EXPECT_EQ(again->added(), 0u);
  EXPECT_EQ(again->duplicates(), 12u);
  EXPECT_EQ(Job("j").progress().total(), 11u);
  EXPECT_EQ(Job("j").progress().completed(), 1u);
  EXPECT_THAT(
      h_.Call(&Engine::AddItems, Parse<v1::AddItemsRequest>(R"pb(job_id: "j"
                                                                 ranges { begin: 5 end: 11 })pb")),
      StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("sealed")));
  EXPECT_EQ(Job("j").progress().total(), 11u);
}

TEST_P(EngineItemsTest, RetryableFailuresAreLeasedFirstAndKeepTheirCursor) {
  CreateJob(R"pb(job_id: "j" max_attempts: 3)pb");
  Add(R"pb(job_id: "j"
           ranges { begin: 0 end: 100 })pb");
  const std::string w = Register("j");
  auto lease = Lease(absl::StrCat("job_id: \"j\" max_items: 2 worker_id: \"", w, "\""));
  CKPT_ASSERT_OK(lease);
  auto failed = Fail(absl::StrCat(
      "job_id: \"j\" items { key { index: 1 } lease_token: ", lease->leases(1).lease_token(),
      " error { message: \"timeout\" retryable: true } }"));
  CKPT_ASSERT_OK(failed);
  EXPECT_THAT(failed->states(), ElementsAre(v1::ITEM_STATE_PENDING));
  auto next = Lease(absl::StrCat("job_id: \"j\" max_items: 2 worker_id: \"", w, "\""));
  CKPT_ASSERT_OK(next);
  ASSERT_EQ(next->leases_size(), 2);
  EXPECT_EQ(next->leases(0).key().index(), 1u);  // the retry first
  EXPECT_EQ(next->leases(0).attempt(), 2u);
  EXPECT_EQ(next->leases(1).key().index(), 2u);
  testutil::ExpectCountersMatchRecount(h_, "j");
}

TEST_P(EngineItemsTest, RestartKeepsLeasesAndNeverReusesTokens) {
  CreateJob(R"pb(job_id: "j"
                 lease_timeout { seconds: 10 })pb");
  Add(R"pb(job_id: "j"
           ranges { begin: 0 end: 10 })pb");
  const std::string w = Register("j");
  auto before = Lease(absl::StrCat("job_id: \"j\" max_items: 3 worker_id: \"", w, "\""));
  CKPT_ASSERT_OK(before);
  h_.clock().Advance(absl::Seconds(9));
  h_.Reopen();
  // Grace: a restart does not expire outstanding leases at once.
  h_.clock().Advance(absl::Seconds(5));
  CKPT_ASSERT_OK(h_.Expire());
  EXPECT_EQ(List("j", v1::ITEM_STATE_LEASED).size(), 3u);
  CKPT_ASSERT_OK(Complete(absl::StrCat("job_id: \"j\" items { key { index: 0 } lease_token: ",
                                       before->leases(0).lease_token(), "}")));
  auto after = Lease(absl::StrCat("job_id: \"j\" max_items: 3 worker_id: \"", w, "\""));
  CKPT_ASSERT_OK(after);
  ASSERT_EQ(after->leases_size(), 3);
  for (const auto& l : after->leases()) {
    for (const auto& old : before->leases()) EXPECT_GT(l.lease_token(), old.lease_token());
  }
  testutil::ExpectCountersMatchRecount(h_, "j");
}

TEST_P(EngineItemsTest, TenMillionIndexJobHalfDoneListsAndLeasesWithoutScanning) {
  CreateJob("job_id: \"huge\"");
  Add(R"pb(job_id: "huge"
           ranges { begin: 0 end: 10000000 })pb");
  // Half done by claims of whole ranges would take 5M records; record a few instead and
  // check paging lands in the right places.
  for (uint64_t i : {0, 1, 2, 5000000}) {
    CKPT_ASSERT_OK(Complete(absl::StrCat("job_id: \"huge\" items { key { index: ", i, "} }")));
  }
  v1::ListItemsRequest list;
  list.set_job_id("huge");
  list.set_state(v1::ITEM_STATE_PENDING);
  list.set_limit(3);
  auto page = h_.Read(&Engine::ListItems, list);
  CKPT_ASSERT_OK(page);
  EXPECT_EQ(Indices({page->items().begin(), page->items().end()}),
            (std::vector<uint64_t>{3, 4, 5}));
  list.set_page_token(page->next_page_token());
  page = h_.Read(&Engine::ListItems, list);
  EXPECT_EQ(Indices({page->items().begin(), page->items().end()}),
            (std::vector<uint64_t>{6, 7, 8}));
  list.set_state(v1::ITEM_STATE_COMPLETED);
  list.clear_page_token();
  list.set_limit(10);
  page = h_.Read(&Engine::ListItems, list);
  EXPECT_EQ(Indices({page->items().begin(), page->items().end()}),
            (std::vector<uint64_t>{0, 1, 2, 5000000}));
  const std::string w = Register("huge");
  auto lease = Lease(absl::StrCat("job_id: \"huge\" max_items: 100 worker_id: \"", w, "\""));
  CKPT_ASSERT_OK(lease);
  EXPECT_EQ(lease->leases(0).key().index(), 3u);
  EXPECT_EQ(lease->leases(99).key().index(), 102u);
  EXPECT_EQ(Job("huge").progress().remaining(), 9999996u);
}

TEST_P(EngineItemsTest, FailedItemsAreGroupedByErrorAndResetOnDemand) {
  CreateJob("job_id: \"j\"");
  Add(R"pb(job_id: "j"
           ranges { begin: 0 end: 10 }
           seal: true)pb");
  for (int i = 0; i < 10; ++i) {
    const char* message = i < 6 ? "corrupt header" : (i < 9 ? "timeout" : "oom");
    if (i == 5) {
      CKPT_ASSERT_OK(Complete(R"pb(job_id: "j"
                                   items { key { index: 5 } })pb"));
      continue;
    }
    CKPT_ASSERT_OK(Fail(absl::StrCat("job_id: \"j\" items { key { index: ", i,
                                     " } error { message: \"", message, "\" } }")));
  }
  EXPECT_EQ(Job("j").status(), v1::JOB_STATUS_FAILED);
  v1::ListItemsRequest list;
  list.set_job_id("j");
  list.set_state(v1::ITEM_STATE_FAILED);
  list.set_error_groups(2);
  auto out = h_.Read(&Engine::ListItems, list);
  CKPT_ASSERT_OK(out);
  ASSERT_EQ(out->error_groups_size(), 2);
  EXPECT_EQ(out->error_groups(0).message(), "corrupt header");
  EXPECT_EQ(out->error_groups(0).count(), 5u);
  EXPECT_EQ(out->error_groups(1).message(), "timeout");
  EXPECT_EQ(out->error_groups(1).count(), 3u);

  auto dry = h_.Call(&Engine::ResetItems, Parse<v1::ResetItemsRequest>(R"pb(job_id: "j"
                                                                            state: ITEM_STATE_FAILED
                                                                            dry_run: true)pb"));
  CKPT_ASSERT_OK(dry);
  EXPECT_EQ(dry->matched(), 9u);
  EXPECT_EQ(Job("j").progress().failed(), 9u);
  auto reset = h_.Call(&Engine::ResetItems,
                       Parse<v1::ResetItemsRequest>(R"pb(job_id: "j" state: ITEM_STATE_FAILED)pb"));
  CKPT_ASSERT_OK(reset);
  EXPECT_EQ(reset->matched(), 9u);
  EXPECT_EQ(Job("j").status(), v1::JOB_STATUS_RUNNING);
  EXPECT_EQ(Job("j").progress().pending(), 9u);
  out = h_.Read(&Engine::ListItems, list);
  EXPECT_EQ(out->error_groups_size(), 0);
  testutil::ExpectCountersMatchRecount(h_, "j");
}

TEST_P(EngineItemsTest, ResetItemsByErrorMessageRetriesExactlyThatGroup) {
  CreateJob("job_id: \"j\"");
  Add(R"pb(job_id: "j"
           ranges { begin: 0 end: 10 })pb");
  for (int i = 0; i < 9; ++i) {
    const char* message = i < 5 ? "corrupt header" : (i < 8 ? "timeout" : "oom");
    CKPT_ASSERT_OK(Fail(absl::StrCat("job_id: \"j\" items { key { index: ", i,
                                     " } error { message: \"", message, "\" } }")));
  }
  auto reset_group = [&](const std::string& message, bool dry_run) {
    v1::ResetItemsRequest request;
    request.set_job_id("j");
    request.set_error_message(message);
    request.set_dry_run(dry_run);
    return h_.Call(&Engine::ResetItems, request);
  };
  auto failed_keys = [&] {
    v1::ListItemsRequest list;
    list.set_job_id("j");
    list.set_state(v1::ITEM_STATE_FAILED);
    list.set_error_groups(10);
    auto out = h_.Read(&Engine::ListItems, list);
    std::vector<uint64_t> keys;
    if (out.ok()) {
      for (const v1::Item& item : out->items()) keys.push_back(item.key().index());
    }
    return std::make_pair(keys, out.ok() ? out->error_groups_size() : -1);
  };

  auto dry = reset_group("timeout", /*dry_run=*/true);
  CKPT_ASSERT_OK(dry);
  EXPECT_EQ(dry->matched(), 3u);
  EXPECT_EQ(Job("j").progress().failed(), 9u);

  auto reset = reset_group("timeout", /*dry_run=*/false);
  CKPT_ASSERT_OK(reset);
  EXPECT_EQ(reset->matched(), 3u);
  EXPECT_EQ(failed_keys(), std::make_pair(std::vector<uint64_t>{0, 1, 2, 3, 4, 8}, 2));
  EXPECT_EQ(Job("j").progress().pending(), 4u);  // the 3 reset and the untouched 9

  auto none = reset_group("no such error", /*dry_run=*/false);
  CKPT_ASSERT_OK(none);
  EXPECT_EQ(none->matched(), 0u);

  // The groups of failed items are rebuilt from the store: after a restart "oom" still
  // matches exactly its one item.
  h_.Reopen();
  auto oom = reset_group("oom", /*dry_run=*/false);
  CKPT_ASSERT_OK(oom);
  EXPECT_EQ(oom->matched(), 1u);
  EXPECT_EQ(failed_keys(), std::make_pair(std::vector<uint64_t>{0, 1, 2, 3, 4}, 1));
  testutil::ExpectCountersMatchRecount(h_, "j");
}

TEST_P(EngineItemsTest, FailureBudgetFailsTheJobAtOnce) {
  CreateJob(R"pb(job_id: "j"
                 failure_budget { max_failed_items: 2 })pb");
  Add(R"pb(job_id: "j"
           ranges { begin: 0 end: 100 })pb");
  for (int i = 0; i < 3; ++i) {
    CKPT_ASSERT_OK(Fail(absl::StrCat("job_id: \"j\" items { key { index: ", i,
                                     " } error { message: \"bad input\" } }")));
  }
  v1::Job job = Job("j");
  EXPECT_EQ(job.status(), v1::JOB_STATUS_FAILED);
  EXPECT_THAT(job.status_reason(), HasSubstr("failure budget exceeded"));
  const std::string w = Register("j");
  auto lease = Lease(absl::StrCat("job_id: \"j\" max_items: 1 worker_id: \"", w, "\""));
  CKPT_ASSERT_OK(lease);
  EXPECT_EQ(lease->leases_size(), 0);
  EXPECT_EQ(lease->shortfall(), v1::LEASE_SHORTFALL_JOB_FINISHED);
}

TEST_P(EngineItemsTest, FindOutputLeadsBackToTheItem) {
  CreateJob("job_id: \"j\"");
  Add("job_id: \"j\" names: \"in/a.csv\"");
  CKPT_ASSERT_OK(Complete(R"pb(job_id: "j"
                               items {
                                 key { name: "in/a.csv" }
                                 result { output_paths: "out/a.parquet" }
                               })pb"));
  v1::FindOutputRequest find;
  find.set_output_path("out/a.parquet");
  auto found = h_.Read(&Engine::FindOutput, find);
  CKPT_ASSERT_OK(found);
  EXPECT_EQ(found->job_id(), "j");
  EXPECT_EQ(found->item().key().name(), "in/a.csv");
  find.set_output_path("out/none");
  EXPECT_THAT(h_.Read(&Engine::FindOutput, find),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("out/none")));
}

// A principal confined to a job-id prefix finds outputs of its own jobs only; another
// job's output reads as absent, with the same answer as one never recorded.
TEST_P(EngineItemsTest, FindOutputWithinAJobIdPrefix) {
  for (const char* job : {"team-a-1", "team-b-1"}) {
    CreateJob(absl::StrCat("job_id: \"", job, "\""));
    Add(absl::StrCat("job_id: \"", job, "\" indices: 0"));
    CKPT_ASSERT_OK(Complete(
        absl::StrCat("job_id: \"", job, "\" items { key { index: 0 } result { output_paths: \"out/",
                     job, "\" } }")));
  }
  v1::FindOutputRequest find;
  find.set_output_path("out/team-a-1");
  auto found = h_.Read(&Engine::FindOutputWithPrefix, find, "team-a-");
  CKPT_ASSERT_OK(found);
  EXPECT_EQ(found->job_id(), "team-a-1");
  find.set_output_path("out/team-b-1");
  EXPECT_THAT(
      h_.Read(&Engine::FindOutputWithPrefix, find, "team-a-"),
      StatusIs(absl::StatusCode::kNotFound, "no completed item recorded output \"out/team-b-1\""));
  CKPT_EXPECT_OK(h_.Read(&Engine::FindOutputWithPrefix, find, ""));
}

TEST_P(EngineItemsTest, UnknownItemsAndJobsAreNotFound) {
  CreateJob("job_id: \"j\"");
  Add(R"pb(job_id: "j" indices: 1)pb");
  EXPECT_THAT(Complete(R"pb(job_id: "j"
                            items { key { index: 2 } })pb"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("index 2 is not registered")));
  EXPECT_THAT(Complete(R"pb(job_id: "nope"
                            items { key { index: 1 } })pb"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("job \"nope\" not found")));
  EXPECT_THAT(Complete(R"pb(job_id: "j"
                            step: "other"
                            items { key { index: 1 } })pb"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("no step \"other\"")));
  // The failed batch changed nothing.
  EXPECT_EQ(Job("j").progress().completed(), 0u);
}

// One LeaseItems call is one grant record (not a record per item), rewritten with the
// leases still live when some end or save a cursor, deleted with the last; across a
// restart, what it lists is exactly what is leased.
TEST_P(EngineItemsTest, OneGrantRecordHoldsACallsLeasesUntilTheLastEnds) {
  auto [w, lease] = JobWithLeases("g", 5, 5);
  CKPT_ASSERT_OK(lease);
  ASSERT_EQ(lease->leases_size(), 5);
  EXPECT_THAT(SchedRecords(h_.store(), "g", keys::SchedTag::kLeased), IsEmpty());
  auto grants = SchedRecords(h_.store(), "g", keys::SchedTag::kGrant);
  ASSERT_EQ(grants.size(), 1u);
  storage::v1::LeaseGrantRecord grant;
  ASSERT_TRUE(grant.ParseFromString(grants[0].second));
  EXPECT_EQ(grant.worker_id(), w);
  // Five fresh indices leased in a row: one run of leases (schema 5), no entry each.
  EXPECT_EQ(grant.leases_size(), 0);
  ASSERT_EQ(grant.runs_size(), 1);
  EXPECT_EQ(grant.runs(0).first_index(), 0u);
  EXPECT_EQ(grant.runs(0).count(), 5u);
  EXPECT_EQ(grant.runs(0).first_token(), lease->leases(0).lease_token());
  EXPECT_EQ(keys::ReadBigEndian64(grants[0].first), lease->leases(0).lease_token());

  // Two complete and one saves a cursor: the record lists the other three.
  CKPT_ASSERT_OK(Complete(absl::StrCat(
      "job_id: \"g\" items { key { index: 0 } lease_token: ", lease->leases(0).lease_token(),
      " } items { key { index: 3 } lease_token: ", lease->leases(3).lease_token(), " }")));
  CKPT_ASSERT_OK(
      h_.Call(&Engine::Heartbeat,
              Parse<v1::HeartbeatRequest>(absl::StrCat(
                  "job_id: \"g\" worker_id: \"", w, "\" leases { key { index: 2 } lease_token: ",
                  lease->leases(2).lease_token(), " cursor: \"page=7\" }"))));
  grants = SchedRecords(h_.store(), "g", keys::SchedTag::kGrant);
  ASSERT_EQ(grants.size(), 1u);
  ASSERT_TRUE(grant.ParseFromString(grants[0].second));
  // 1 and 4 are runs of one; 2, with a cursor, an entry of its own.
  ASSERT_EQ(grant.leases_size(), 1);
  EXPECT_EQ(keys::IndexOf(grant.leases(0).key()), 2u);
  EXPECT_EQ(grant.leases(0).cursor(), "page=7");
  ASSERT_EQ(grant.runs_size(), 2);
  EXPECT_EQ(grant.runs(0).first_index(), 1u);
  EXPECT_EQ(grant.runs(0).first_token(), lease->leases(1).lease_token());
  EXPECT_EQ(grant.runs(1).first_index(), 4u);
  EXPECT_EQ(grant.runs(1).count(), 1u);

  h_.Reopen();
  EXPECT_THAT(Indices(List("g", v1::ITEM_STATE_LEASED)), ElementsAre(1, 2, 4));
  EXPECT_THAT(Indices(List("g", v1::ITEM_STATE_COMPLETED)), ElementsAre(0, 3));
  auto item = h_.Read(&Engine::GetItem, Parse<v1::GetItemRequest>(R"pb(job_id: "g"
                                                                       key { index: 2 })pb"));
  CKPT_ASSERT_OK(item);
  EXPECT_EQ(item->item().state(), v1::ITEM_STATE_LEASED);
  EXPECT_EQ(item->item().lease_token(), lease->leases(2).lease_token());
  EXPECT_EQ(item->item().cursor(), "page=7");
  EXPECT_EQ(item->item().worker_id(), w);
  // The tokens still fence: the old ones complete, and then nothing is left.
  CKPT_ASSERT_OK(Complete(absl::StrCat(
      "job_id: \"g\" items { key { index: 1 } lease_token: ", lease->leases(1).lease_token(),
      " } items { key { index: 2 } lease_token: ", lease->leases(2).lease_token(),
      " } items { key { index: 4 } lease_token: ", lease->leases(4).lease_token(), " }")));
  EXPECT_THAT(SchedRecords(h_.store(), "g", keys::SchedTag::kGrant), IsEmpty());
  EXPECT_EQ(Job("g").progress().completed(), 5u);
  testutil::ExpectCountersMatchRecount(h_, "g");
}

// Schema 1 stored every lease as its own 'L' record. A store holding them opens with
// those leases live, and each record goes when its lease ends.
TEST_P(EngineItemsTest, SchemaOneLeaseRecordsAreStillLeasesAndGoWhenTheyEnd) {
  auto [w, lease] = JobWithLeases("old", 3, 2);
  CKPT_ASSERT_OK(lease);
  ASSERT_EQ(lease->leases_size(), 2);
  StoreGrantAsSchemaOne("old");
  h_.Reopen();
  EXPECT_THAT(Indices(List("old", v1::ITEM_STATE_LEASED)), ElementsAre(0, 1));
  auto item = h_.Read(&Engine::GetItem, Parse<v1::GetItemRequest>(R"pb(job_id: "old"
                                                                       key { index: 1 })pb"));
  CKPT_ASSERT_OK(item);
  EXPECT_EQ(item->item().state(), v1::ITEM_STATE_LEASED);
  EXPECT_EQ(item->item().cursor(), "old-cursor");
  CKPT_ASSERT_OK(Complete(absl::StrCat("job_id: \"old\" items { key { index: 0 } lease_token: ",
                                       lease->leases(0).lease_token(), " }")));
  auto left = SchedRecords(h_.store(), "old", keys::SchedTag::kLeased);
  ASSERT_EQ(left.size(), 1u);
  EXPECT_EQ(keys::IndexOf(left[0].first), 1u);
  // A new lease in the same step is a grant, next to the old record.
  auto more = Lease(absl::StrCat("job_id: \"old\" max_items: 5 worker_id: \"", w, "\""));
  CKPT_ASSERT_OK(more);
  ASSERT_EQ(more->leases_size(), 1);
  EXPECT_EQ(more->leases(0).key().index(), 2u);
  EXPECT_EQ(SchedRecords(h_.store(), "old", keys::SchedTag::kGrant).size(), 1u);
  testutil::ExpectCountersMatchRecount(h_, "old");
  h_.Reopen();
  EXPECT_THAT(Indices(List("old", v1::ITEM_STATE_LEASED)), ElementsAre(1, 2));
  testutil::ExpectCountersMatchRecount(h_, "old");
}

// A grant's leases expire together (one expiry entry per grant), and a heartbeat renews
// every lease its worker holds: leases with records of their own, whole grants, and
// what is left of a partly completed one.
TEST_P(EngineItemsTest, AHeartbeatRenewsEveryHeldLeaseAndSilenceExpiresThemTogether) {
  auto [w, own] = JobWithLeases("mixed", 6, 2);  // 0 and 1, lease timeout 30 s
  CKPT_ASSERT_OK(own);
  StoreGrantAsSchemaOne("mixed");
  h_.Reopen();
  auto grant = Lease(absl::StrCat("job_id: \"mixed\" max_items: 3 worker_id: \"", w, "\""));
  CKPT_ASSERT_OK(grant);  // 2, 3 and 4
  ASSERT_EQ(grant->leases_size(), 3);
  CKPT_ASSERT_OK(Complete(absl::StrCat("job_id: \"mixed\" items { key { index: 3 } lease_token: ",
                                       grant->leases(1).lease_token(), " }")));
  auto held = [&] {
    std::vector<v1::Worker> workers = Workers("mixed");
    std::vector<uint64_t> keys;
    if (workers.size() == 1) {
      for (const v1::ItemKey& key : workers[0].current_items()) keys.push_back(key.index());
    }
    return keys;
  };
  EXPECT_THAT(held(), ElementsAre(0, 1, 2, 4));
  h_.clock().Advance(absl::Seconds(20));
  CKPT_ASSERT_OK(h_.Call(&Engine::Heartbeat, Parse<v1::HeartbeatRequest>(absl::StrCat(
                                                 "job_id: \"mixed\" worker_id: \"", w, "\""))));
  const absl::Time renewed = h_.clock().Now() + absl::Seconds(30);
  h_.clock().Advance(absl::Seconds(29));  // past every lease's first deadline
  CKPT_ASSERT_OK(h_.Expire());
  EXPECT_THAT(Indices(List("mixed", v1::ITEM_STATE_LEASED)), ElementsAre(0, 1, 2, 4));
  EXPECT_THAT(held(), ElementsAre(0, 1, 2, 4));
  h_.clock().Advance(absl::Seconds(1) + absl::Microseconds(1));
  ASSERT_GT(h_.clock().Now(), renewed);
  CKPT_ASSERT_OK(h_.Expire());
  EXPECT_THAT(Indices(List("mixed", v1::ITEM_STATE_LEASED)), ElementsAre());
  EXPECT_THAT(Indices(List("mixed", v1::ITEM_STATE_PENDING)), ElementsAre(0, 1, 2, 4, 5));
  EXPECT_THAT(held(), ElementsAre());
  for (uint64_t index : {0, 1, 2, 4}) {
    auto expired = GetItem(absl::StrCat("job_id: \"mixed\" key { index: ", index, " }"));
    CKPT_ASSERT_OK(expired);
    EXPECT_EQ(expired->item().attempts(), 1u) << index;
  }
  EXPECT_TRUE(SchedRecords(h_.store(), "mixed", keys::SchedTag::kLeased).empty());
  EXPECT_TRUE(SchedRecords(h_.store(), "mixed", keys::SchedTag::kGrant).empty());
  testutil::ExpectCountersMatchRecount(h_, "mixed");
}

// A damaged run of leases is DATA_LOSS to readers (and to the load that would build
// leases from it): a record past 128 leases, a token 0, tokens that wrap around.
TEST_P(EngineItemsTest, ADamagedRunOfLeasesIsDataLoss) {
  auto [w, lease] = JobWithLeases("dmg", 5, 5);
  CKPT_ASSERT_OK(lease);
  auto grants = SchedRecords(h_.store(), "dmg", keys::SchedTag::kGrant);
  ASSERT_EQ(grants.size(), 1u);
  storage::v1::LeaseGrantRecord good;
  ASSERT_TRUE(good.ParseFromString(grants[0].second));
  ASSERT_EQ(good.runs_size(), 1);
  const std::string key =
      keys::SchedPrefix("dmg", "main", keys::SchedTag::kGrant) + grants[0].first;
  for (int damage = 0; damage < 3; ++damage) {
    SCOPED_TRACE(damage);
    storage::v1::LeaseGrantRecord bad = good;
    storage::v1::LeaseGrantRecord::Run* run = bad.mutable_runs(0);
    if (damage == 0) run->set_count(129);
    if (damage == 1) run->set_first_token(0);
    if (damage == 2) run->set_first_token(UINT64_MAX - 1);
    auto batch = h_.store().NewBatch();
    batch->Put(Cf::kSched, key, bad.SerializeAsString());
    CKPT_ASSERT_OK(h_.store().Write(batch.get()));
    EXPECT_THAT(GetItem(R"pb(job_id: "dmg"
                             key { index: 2 })pb"),
                StatusIs(absl::StatusCode::kDataLoss, HasSubstr("bad run of leases")));
  }
}

// Runs of leases are read back in grant order among the record's other leases: by
// token, as they were granted (a repeat of lease_next answers them so after a restart).
TEST(ExpandGrantRunsTest, LeasesComeBackInTokenOrder) {
  storage::v1::LeaseGrantRecord grant;
  auto* retry = grant.add_leases();
  retry->set_key(keys::EncodeIndex(7));
  retry->set_token(10);
  retry->set_attempts(1);
  auto* name = grant.add_leases();
  name->set_key(keys::EncodeName("a.txt"));
  name->set_token(14);
  storage::v1::LeaseGrantRecord::Run* run = grant.add_runs();
  run->set_first_index(20);
  run->set_count(3);
  run->set_first_token(11);
  CKPT_ASSERT_OK(ExpandGrantRuns("j", &grant));
  EXPECT_EQ(grant.runs_size(), 0);
  std::vector<uint64_t> tokens;
  for (const auto& lease : grant.leases()) tokens.push_back(lease.token());
  EXPECT_THAT(tokens, ElementsAre(10, 11, 12, 13, 14));
  EXPECT_EQ(keys::IndexOf(grant.leases(2).key()), 21u);
  EXPECT_TRUE(grant.leases(2).no_record());
  EXPECT_EQ(grant.leases(0).attempts(), 1u);
}

// A big LeaseItems call is split into grant records of at most 128 leases, so ending one
// lease never rewrites more than 127 others.
TEST_P(EngineItemsTest, ABigGrantIsSplitIntoRecordsOfAtMost128Leases) {
  auto [w, lease] = JobWithLeases("big", 300, 300);
  CKPT_ASSERT_OK(lease);
  ASSERT_EQ(lease->leases_size(), 300);
  std::vector<int> sizes;
  for (const auto& [suffix, value] : SchedRecords(h_.store(), "big", keys::SchedTag::kGrant)) {
    storage::v1::LeaseGrantRecord grant;
    ASSERT_TRUE(grant.ParseFromString(value));
    CKPT_ASSERT_OK(ExpandGrantRuns("big", &grant));
    sizes.push_back(grant.leases_size());
  }
  EXPECT_THAT(sizes, ElementsAre(128, 128, 44));
  h_.Reopen();
  EXPECT_EQ(List("big", v1::ITEM_STATE_LEASED).size(), 300u);
  std::string complete = "job_id: \"big\"";
  for (const auto& l : lease->leases()) {
    absl::StrAppend(&complete, " items { key { index: ", l.key().index(),
                    " } lease_token: ", l.lease_token(), " }");
  }
  CKPT_ASSERT_OK(Complete(complete));
  EXPECT_THAT(SchedRecords(h_.store(), "big", keys::SchedTag::kGrant), IsEmpty());
  testutil::ExpectCountersMatchRecount(h_, "big");
}

// A damaged record is DATA_LOSS wherever it is read, never skipped or read past its end.
TEST_P(EngineItemsTest, DamagedSchedRecordsReadAsDataLoss) {
  CKPT_ASSERT_OK(h_.Call(&Engine::CreateJob, Parse<v1::CreateJobRequest>(R"pb(job_id: "d")pb")));
  CKPT_ASSERT_OK(h_.Call(&Engine::AddItems, Parse<v1::AddItemsRequest>(R"pb(
    job_id: "d"
    ranges { begin: 0 end: 10 })pb")));
  auto untouched = SchedRecords(h_.store(), "d", keys::SchedTag::kUntouched);
  ASSERT_EQ(untouched.size(), 1u);
  auto batch = h_.store().NewBatch();
  batch->Put(Cf::kSched,
             keys::SchedPrefix("d", "main", keys::SchedTag::kUntouched) + untouched[0].first,
             "3 by");  // a range end must be 8 bytes
  batch->Put(Cf::kSched, keys::ErrorGroup("d", 1), "\xff\xff not a record");
  CKPT_ASSERT_OK(h_.store().Write(batch.get()));

  EXPECT_THAT(h_.Read(&Engine::ListItems, Parse<v1::ListItemsRequest>(R"pb(
    job_id: "d"
    state: ITEM_STATE_PENDING)pb")),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("range")));
  EXPECT_THAT(h_.Read(&Engine::GetItem, Parse<v1::GetItemRequest>(R"pb(
    job_id: "d"
    key { index: 3 })pb")),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("range")));
  EXPECT_THAT(h_.Read(&Engine::ListItems, Parse<v1::ListItemsRequest>(R"pb(
    job_id: "d"
    state: ITEM_STATE_FAILED
    error_groups: 3)pb")),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("error group")));
}

INSTANTIATE_TEST_SUITE_P(Stores, EngineItemsTest, CKPT_ENGINE_STORE_KINDS);

// A shard of replicas issues every S-th token (EngineOptions::id_stride): a grant's run
// of leases says so, and reads back the same after a restart.
class ShardGrantTest : public testutil::EngineTest {
 protected:
  static EngineOptions ShardOptions() {
    EngineOptions options;
    options.id_first = 2;
    options.id_stride = 3;
    return options;
  }
  ShardGrantTest() : EngineTest(ShardOptions()) {}
};

TEST_P(ShardGrantTest, RunsOfLeasesFollowTheShardsTokenStride) {
  CreateJob(R"pb(job_id: "shard"
                 lease_timeout { seconds: 30 })pb");
  Add(R"pb(job_id: "shard"
           ranges { begin: 0 end: 4 })pb");
  const std::string w = Register("shard");
  auto leased = Lease("shard", w, 4);
  CKPT_ASSERT_OK(leased);
  ASSERT_EQ(leased->leases_size(), 4);
  EXPECT_EQ(leased->leases(1).lease_token(), leased->leases(0).lease_token() + 3);
  auto grants = SchedRecords(h_.store(), "shard", keys::SchedTag::kGrant);
  ASSERT_EQ(grants.size(), 1u);
  storage::v1::LeaseGrantRecord grant;
  ASSERT_TRUE(grant.ParseFromString(grants[0].second));
  ASSERT_EQ(grant.runs_size(), 1);
  EXPECT_EQ(grant.runs(0).count(), 4u);
  EXPECT_EQ(grant.runs(0).token_step(), 3u);
  h_.Reopen();
  v1::CompleteItemsRequest complete;
  complete.set_job_id("shard");
  for (const v1::Lease& lease : leased->leases()) {
    v1::Completion* item = complete.add_items();
    *item->mutable_key() = lease.key();
    item->set_lease_token(lease.lease_token());
  }
  auto done = Complete(complete.ShortDebugString());
  CKPT_ASSERT_OK(done);
  EXPECT_THAT(done->outcomes(), ::testing::Each(v1::COMPLETION_OUTCOME_COMPLETED));
  testutil::ExpectCountersMatchRecount(h_, "shard");
}

INSTANTIATE_TEST_SUITE_P(Stores, ShardGrantTest, CKPT_ENGINE_STORE_KINDS);

}  // namespace
}  // namespace ckpt
