// Per-item logs through the engine, on a real store with a fake clock: entries riding
// along with heartbeats, completions and failures, WriteLogs, ListLogs' filters and
// order, the bounds, and what resets and deletes do to them.
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/blocking_counter.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/common/proto_time.h"
#include "tests/engine/engine_test_base.h"
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

// "sequence step/key worker LEVEL message", or "sequence - worker ..." for the job's own.
std::string Describe(const v1::LogLine& line) {
  const std::string where =
      line.has_key() ? absl::StrCat(line.step(), "/",
                                    line.key().has_index() ? absl::StrCat(line.key().index())
                                                           : line.key().name())
                     : "-";
  return absl::StrCat(line.sequence(), " ", where, " ", line.worker_id(), " ",
                      v1::LogLevel_Name(line.entry().level()).substr(10), " ",
                      line.entry().message());
}

// Every page of a listing, described.
std::vector<std::string> ListAll(EngineHarness& h, v1::ListLogsRequest r) {
  std::vector<std::string> out;
  for (int pages = 0; pages < 1000; ++pages) {
    auto page = h.Read(&Engine::ListLogs, r);
    EXPECT_TRUE(page.ok()) << page.status();
    if (!page.ok()) break;
    for (const v1::LogLine& line : page->entries()) out.push_back(Describe(line));
    if (page->next_page_token().empty()) break;
    r.set_page_token(page->next_page_token());
  }
  return out;
}

std::vector<std::string> ListAll(EngineHarness& h, const std::string& text) {
  return ListAll(h, Parse<v1::ListLogsRequest>(text));
}

class EngineLogsTest : public testutil::EngineTest {
 protected:
  absl::StatusOr<v1::WriteLogsResponse> Write(const std::string& text) {
    return h_.Call(&Engine::WriteLogs, Parse<v1::WriteLogsRequest>(text));
  }
};

// A worker's entries reach the item they were logged under, whichever call carries
// them, and read back in the order they were written, filtered as asked.
TEST_P(EngineLogsTest, EntriesRideWithEachWriteAndListInWriteOrder) {
  CreateJob(R"pb(job_id: "etl" steps: "parse" steps: "load")pb");
  Add(R"pb(job_id: "etl"
           step: "parse"
           ranges { begin: 0 end: 5 })pb");
  const std::string w = Register("etl");
  auto leases = Lease("etl", w, 2, "parse");  // 0 and 1
  CKPT_ASSERT_OK(leases);
  ASSERT_EQ(leases->leases_size(), 2);
  const uint64_t t0 = leases->leases(0).lease_token(), t1 = leases->leases(1).lease_token();
  CKPT_ASSERT_OK(h_.Call(&Engine::Heartbeat, Parse<v1::HeartbeatRequest>(absl::StrFormat(
                                                 R"pb(job_id: "etl"
                                                      worker_id: "%s"
                                                      leases {
                                                        step: "parse"
                                                        key { index: 0 }
                                                        lease_token: %d
                                                        logs { message: "page 1 of 3" }
                                                      }
                                                      leases {
                                                        step: "parse"
                                                        key { index: 1 }
                                                        lease_token: %d
                                                        logs {
                                                          level: LOG_LEVEL_WARNING
                                                          logger: "parse.pdf"
                                                          message: "slow page"
                                                          time { seconds: 1600000000 }
                                                        }
                                                      })pb",
                                                 w, t0, t1))));
  CKPT_ASSERT_OK(Complete(absl::StrFormat(R"pb(job_id: "etl"
                                               step: "parse"
                                               worker_id: "%s"
                                               items {
                                                 key { index: 0 }
                                                 lease_token: %d
                                                 logs { message: "done" }
                                               })pb",
                                          w, t0)));
  CKPT_ASSERT_OK(Fail(absl::StrFormat(R"pb(job_id: "etl"
                                           step: "parse"
                                           worker_id: "%s"
                                           items {
                                             key { index: 1 }
                                             lease_token: %d
                                             error { message: "bad font" }
                                             logs { level: LOG_LEVEL_ERROR message: "boom" }
                                           })pb",
                                      w, t1)));
  // Record mode, and the job's own entries.
  auto written = Write(R"pb(job_id: "etl"
                            worker_id: "host-9"
                            items {
                              step: "parse"
                              key { index: 4 }
                              entries { level: LOG_LEVEL_DEBUG message: "opening" }
                              entries { message: "read 12 rows" }
                            }
                            items { entries { message: "run started" } })pb");
  CKPT_ASSERT_OK(written);
  EXPECT_EQ(written->written(), 3u);
  // A repeated completion (its answer lost) stores nothing again.
  CKPT_ASSERT_OK(Complete(absl::StrFormat(R"pb(job_id: "etl"
                                               step: "parse"
                                               worker_id: "%s"
                                               items {
                                                 key { index: 0 }
                                                 lease_token: %d
                                                 logs { message: "done" }
                                               })pb",
                                          w, t0)));

  const std::vector<std::string> all = {absl::StrCat("1 parse/0 ", w, " INFO page 1 of 3"),
                                        absl::StrCat("2 parse/1 ", w, " WARNING slow page"),
                                        absl::StrCat("3 parse/0 ", w, " INFO done"),
                                        absl::StrCat("4 parse/1 ", w, " ERROR boom"),
                                        "5 parse/4 host-9 DEBUG opening",
                                        "6 parse/4 host-9 INFO read 12 rows",
                                        "7 - host-9 INFO run started"};
  auto check = [&] {
    EXPECT_EQ(ListAll(h_, R"pb(job_id: "etl" limit: 2)pb"), all);
    EXPECT_THAT(ListAll(h_, R"pb(job_id: "etl" newest_first: true limit: 3)pb"),
                ElementsAre(all[6], all[5], all[4], all[3], all[2], all[1], all[0]));
    EXPECT_THAT(ListAll(h_, R"pb(job_id: "etl"
                                 step: "parse"
                                 key { index: 1 })pb"),
                ElementsAre(all[1], all[3]));
    EXPECT_THAT(ListAll(h_, R"pb(job_id: "etl"
                                 key { index: 0 }
                                 newest_first: true)pb"),
                ElementsAre(all[2], all[0]));
    EXPECT_THAT(ListAll(h_, R"pb(job_id: "etl" min_level: LOG_LEVEL_WARNING)pb"),
                ElementsAre(all[1], all[3]));
    EXPECT_THAT(ListAll(h_, R"pb(job_id: "etl" worker_id: "host-9")pb"),
                ElementsAre(all[4], all[5], all[6]));
    EXPECT_EQ(ListAll(h_, R"pb(job_id: "etl" step: "parse")pb").size(), 6u);
    EXPECT_THAT(ListAll(h_, R"pb(job_id: "etl" step: "load")pb"), IsEmpty());
    // Times: the worker's when given, else when ckptd received the entry.
    auto first = h_.Read(&Engine::ListLogs, Parse<v1::ListLogsRequest>(R"pb(job_id: "etl"
                                                                            key { index: 1 }
                                                                            limit: 1)pb"));
    CKPT_ASSERT_OK(first);
    ASSERT_EQ(first->entries_size(), 1);
    EXPECT_EQ(first->entries(0).entry().time().seconds(), 1600000000);
    EXPECT_EQ(first->entries(0).entry().logger(), "parse.pdf");
  };
  check();
  h_.Reopen();
  check();
}

TEST_P(EngineLogsTest, AFollowTokenListsOnlyWhatIsWrittenLater) {
  CreateJob(R"pb(job_id: "f")pb");
  Add(R"pb(job_id: "f" names: "a")pb");
  auto empty = h_.Read(&Engine::ListLogs, Parse<v1::ListLogsRequest>(R"pb(job_id: "f")pb"));
  CKPT_ASSERT_OK(empty);
  EXPECT_THAT(empty->entries(), IsEmpty());
  EXPECT_TRUE(empty->next_page_token().empty());
  v1::ListLogsRequest follow = Parse<v1::ListLogsRequest>(R"pb(job_id: "f")pb");
  follow.set_page_token(empty->follow_token());
  for (int round = 1; round <= 3; ++round) {
    CKPT_ASSERT_OK(Write(absl::StrFormat(R"pb(job_id: "f"
                                              items {
                                                key { name: "a" }
                                                entries { message: "round %d" }
                                              })pb",
                                         round)));
    auto page = h_.Read(&Engine::ListLogs, follow);
    CKPT_ASSERT_OK(page);
    ASSERT_EQ(page->entries_size(), 1) << "round " << round;
    EXPECT_EQ(page->entries(0).entry().message(), absl::StrCat("round ", round));
    follow.set_page_token(page->follow_token());
  }
  // Nothing new: nothing listed, the token stays where it is.
  auto quiet = h_.Read(&Engine::ListLogs, follow);
  CKPT_ASSERT_OK(quiet);
  EXPECT_THAT(quiet->entries(), IsEmpty());
  EXPECT_EQ(quiet->follow_token(), follow.page_token());
  // Newest first: the follow token is the newest entry.
  auto newest = h_.Read(&Engine::ListLogs, Parse<v1::ListLogsRequest>(R"pb(job_id: "f"
                                                                           newest_first: true
                                                                           limit: 1)pb"));
  CKPT_ASSERT_OK(newest);
  EXPECT_EQ(newest->follow_token(), "3");
}

TEST_P(EngineLogsTest, ResetAndDeleteRemoveTheLogsButSequencesGoOn) {
  CreateJob(R"pb(job_id: "r")pb");
  Add(R"pb(job_id: "r" indices: 1)pb");
  CKPT_ASSERT_OK(Write(R"pb(job_id: "r"
                            items {
                              key { index: 1 }
                              entries { message: "a" }
                              entries { message: "b" }
                            })pb"));
  CKPT_ASSERT_OK(h_.Call(&Engine::ResetJob, Parse<v1::ResetJobRequest>(R"pb(job_id: "r")pb")));
  EXPECT_THAT(ListAll(h_, R"pb(job_id: "r")pb"), IsEmpty());
  EXPECT_THAT(ListAll(h_, R"pb(job_id: "r"
                               key { index: 1 })pb"),
              IsEmpty());
  CKPT_ASSERT_OK(Write(R"pb(job_id: "r"
                            items {
                              key { index: 1 }
                              entries { message: "c" }
                            })pb"));
  h_.Reopen();
  EXPECT_THAT(ListAll(h_, R"pb(job_id: "r")pb"), ElementsAre("3 main/1  INFO c"));
  CKPT_ASSERT_OK(h_.Call(&Engine::DeleteJob, Parse<v1::DeleteJobRequest>(R"pb(job_id: "r")pb")));
  EXPECT_THAT(h_.Read(&Engine::ListLogs, Parse<v1::ListLogsRequest>(R"pb(job_id: "r")pb")),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("\"r\"")));
  CreateJob(R"pb(job_id: "r")pb");
  EXPECT_THAT(ListAll(h_, R"pb(job_id: "r")pb"), IsEmpty());
}

TEST_P(EngineLogsTest, UnknownItemsAndStepsAreRefusedWithNothingWritten) {
  CreateJob(R"pb(job_id: "u" steps: "a" steps: "b")pb");
  Add(R"pb(job_id: "u" step: "a" indices: 1)pb");
  EXPECT_THAT(Write(R"pb(job_id: "u"
                         items {
                           key { index: 1 }
                           entries { message: "fine" }
                         }
                         items {
                           key { index: 2 }
                           entries { message: "ghost" }
                         })pb"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("items[1].key: index 2")));
  EXPECT_THAT(Write(R"pb(job_id: "u"
                         items {
                           step: "c"
                           key { index: 1 }
                           entries { message: "x" }
                         })pb"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("(its steps: a, b)")));
  EXPECT_THAT(
      h_.Read(&Engine::ListLogs, Parse<v1::ListLogsRequest>(R"pb(job_id: "u" step: "c")pb")),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("(its steps: a, b)")));
  EXPECT_THAT(
      h_.Read(&Engine::ListLogs, Parse<v1::ListLogsRequest>(R"pb(job_id: "u" page_token: "x")pb")),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("page_token")));
  EXPECT_THAT(ListAll(h_, R"pb(job_id: "u")pb"), IsEmpty());
}

// One call looks at 10 000 entries at most, whatever its filters skip: a page can be
// empty and still have a next page.
TEST_P(EngineLogsTest, AFilteredListingExaminesABoundedNumberOfEntriesPerCall) {
  CreateJob(R"pb(job_id: "big")pb");
  for (int call = 0; call < 2; ++call) {
    v1::WriteLogsRequest r;
    r.set_job_id("big");
    r.set_worker_id("chatty");
    v1::ItemLogs* job_own = r.add_items();
    for (int i = 0; i < 6000; ++i) job_own->add_entries()->set_message(absl::StrCat(call, "/", i));
    CKPT_ASSERT_OK(h_.Call(&Engine::WriteLogs, r));
  }
  auto page = h_.Read(&Engine::ListLogs, Parse<v1::ListLogsRequest>(R"pb(job_id: "big"
                                                                         worker_id: "quiet")pb"));
  CKPT_ASSERT_OK(page);
  EXPECT_THAT(page->entries(), IsEmpty());
  EXPECT_EQ(page->next_page_token(), "10000");
  v1::ListLogsRequest rest = Parse<v1::ListLogsRequest>(R"pb(job_id: "big" worker_id: "quiet")pb");
  rest.set_page_token(page->next_page_token());
  auto last = h_.Read(&Engine::ListLogs, rest);
  CKPT_ASSERT_OK(last);
  EXPECT_THAT(last->entries(), IsEmpty());
  EXPECT_TRUE(last->next_page_token().empty());
  EXPECT_EQ(last->follow_token(), "12000");
}

INSTANTIATE_TEST_SUITE_P(Stores, EngineLogsTest, CKPT_ENGINE_STORE_KINDS);

// The bounds, with small limits: an item keeps its newest entries, the job too, and
// what was dropped is counted, across a restart.
class EngineLogBoundsTest : public ::testing::Test {
 protected:
  static EngineOptions Options() {
    EngineOptions options;
    options.log_limits.max_entries_per_item = 4;
    options.log_limits.max_bytes_per_item = 1 << 20;
    options.log_limits.max_entries_per_job = 10;
    options.log_limits.max_bytes_per_job = 1 << 20;
    return options;
  }
  void SetUp() override {
    CKPT_ASSERT_OK(h_.Call(&Engine::CreateJob, Parse<v1::CreateJobRequest>(R"pb(job_id: "b")pb")));
    CKPT_ASSERT_OK(h_.Call(&Engine::AddItems, Parse<v1::AddItemsRequest>(R"pb(job_id: "b"
                                                                              names: "x"
                                                                              names: "y")pb")));
  }
  // Writes messages first..last to `item` in one call.
  void Log(const std::string& item, int first, int last) {
    v1::WriteLogsRequest r;
    r.set_job_id("b");
    v1::ItemLogs* logs = r.add_items();
    logs->mutable_key()->set_name(item);
    for (int i = first; i <= last; ++i) logs->add_entries()->set_message(absl::StrCat("m", i));
    CKPT_ASSERT_OK(h_.Call(&Engine::WriteLogs, r));
  }
  std::vector<std::string> Messages(const std::string& text) {
    std::vector<std::string> out;
    for (const std::string& line : ListAll(h_, text))
      out.push_back(line.substr(line.rfind(' ') + 1));
    return out;
  }
  uint64_t Dropped(const std::string& text) {
    auto page = h_.Read(&Engine::ListLogs, Parse<v1::ListLogsRequest>(text));
    EXPECT_TRUE(page.ok()) << page.status();
    return page.ok() ? page->dropped() : 0;
  }

  EngineHarness h_{testutil::StoreKind::kRocksDb, Options()};
};

TEST_F(EngineLogBoundsTest, AnItemKeepsItsNewestEntriesAndCountsTheRest) {
  Log("x", 1, 6);  // more than the bound in one call: the newest 4
  EXPECT_THAT(Messages(R"pb(job_id: "b"
                            key { name: "x" })pb"),
              ElementsAre("m3", "m4", "m5", "m6"));
  Log("x", 7, 8);  // the oldest stored ones make room
  EXPECT_THAT(Messages(R"pb(job_id: "b"
                            key { name: "x" })pb"),
              ElementsAre("m5", "m6", "m7", "m8"));
  EXPECT_EQ(Dropped(R"pb(job_id: "b"
                         key { name: "x" })pb"),
            4u);
  Log("y", 1, 1);
  EXPECT_EQ(Dropped(R"pb(job_id: "b"
                         key { name: "y" })pb"),
            0u);
  h_.Reopen();
  EXPECT_THAT(Messages(R"pb(job_id: "b"
                            key { name: "x" })pb"),
              ElementsAre("m5", "m6", "m7", "m8"));
  EXPECT_EQ(Dropped(R"pb(job_id: "b")pb"), 4u);
}

TEST_F(EngineLogBoundsTest, TheJobKeepsItsNewestEntriesAcrossItems) {
  Log("x", 1, 4);
  Log("y", 1, 4);
  Log("x", 5, 5);  // x: m2..m5, its bound dropped m1
  EXPECT_EQ(Dropped(R"pb(job_id: "b")pb"), 1u);
  Log("y", 5, 7);  // y: m4..m7
  EXPECT_THAT(Messages(R"pb(job_id: "b")pb"),
              ElementsAre("m2", "m3", "m4", "m4", "m5", "m5", "m6", "m7"));
  EXPECT_EQ(Dropped(R"pb(job_id: "b"
                         key { name: "y" })pb"),
            3u);
  EXPECT_EQ(Dropped(R"pb(job_id: "b")pb"), 4u);
  // The job's own entries make 12, over the job's bound of 10: its two oldest go, x's
  // m2 and m3, and x counts them.
  CKPT_ASSERT_OK(h_.Call(&Engine::WriteLogs, Parse<v1::WriteLogsRequest>(R"pb(
    job_id: "b"
    items {
      entries { message: "j1" }
      entries { message: "j2" }
      entries { message: "j3" }
      entries { message: "j4" }
    })pb")));
  const auto kept = ElementsAre("m4", "m4", "m5", "m5", "m6", "m7", "j1", "j2", "j3", "j4");
  EXPECT_THAT(Messages(R"pb(job_id: "b")pb"), kept);
  EXPECT_THAT(Messages(R"pb(job_id: "b"
                            key { name: "x" })pb"),
              ElementsAre("m4", "m5"));
  EXPECT_EQ(Dropped(R"pb(job_id: "b"
                         key { name: "x" })pb"),
            3u);
  EXPECT_EQ(Dropped(R"pb(job_id: "b")pb"), 6u);
  h_.Reopen();
  EXPECT_THAT(Messages(R"pb(job_id: "b")pb"), kept);
  EXPECT_THAT(Messages(R"pb(job_id: "b"
                            key { name: "y" })pb"),
              ElementsAre("m4", "m5", "m6", "m7"));
}

// Writes in one group commit cannot drop each other's entries (the store has not got
// them yet): the item is over its bound until the next group writes to it.
TEST_F(EngineLogBoundsTest, OneGroupMayOvershootTheBoundUntilTheNextWrite) {
  std::vector<v1::WriteLogsRequest> requests(2);
  std::vector<v1::WriteLogsResponse> responses(2);
  absl::BlockingCounter answered(2);
  {
    testutil::WriterHold hold(h_.engine(), "b");
    for (int i = 0; i < 2; ++i) {
      requests[i].set_job_id("b");
      v1::ItemLogs* logs = requests[i].add_items();
      logs->mutable_key()->set_name("x");
      for (int m = 1; m <= 3; ++m) logs->add_entries()->set_message(absl::StrCat("g", i, m));
      h_.engine().WriteLogs(requests[i], &responses[i], [&](absl::Status s) {
        EXPECT_TRUE(s.ok()) << s;
        answered.DecrementCount();
      });
    }
    hold.Release();
  }
  answered.Wait();
  EXPECT_EQ(Messages(R"pb(job_id: "b"
                          key { name: "x" })pb")
                .size(),
            6u);
  Log("x", 1, 1);
  EXPECT_THAT(Messages(R"pb(job_id: "b"
                            key { name: "x" })pb"),
              ElementsAre("g11", "g12", "g13", "m1"));
}

}  // namespace
}  // namespace ckpt
