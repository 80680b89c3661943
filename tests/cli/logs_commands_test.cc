// ckpt logs: the newest entries or all of them, filtered, as text or JSON lines, and
// --follow printing what is written next.
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/cli/cli_test_base.h"
#include "tests/testing/status_matchers.h"

namespace ckpt {
namespace cli {
namespace {

using ::ckpt::testutil::StatusIs;
using ::testing::ContainsRegex;
using ::testing::HasSubstr;

class LogsCommandsTest : public CliTest {
 protected:
  // "docs": names a.pdf and b.pdf; `n` entries of a.pdf (its messages "a1".."an", every
  // third a warning, from w-ops) and one job-level error.
  void MakeLoggedJob(int n) {
    v1::CreateJobRequest create;
    create.set_job_id("docs");
    CKPT_ASSERT_OK(client_->CreateJob(create));
    v1::AddItemsRequest add;
    add.set_job_id("docs");
    add.add_names("a.pdf");
    add.add_names("b.pdf");
    CKPT_ASSERT_OK(client_->AddItems(add));
    Write("a.pdf", 1, n);
    v1::WriteLogsRequest own;
    own.set_job_id("docs");
    v1::LogEntry* e = own.add_items()->add_entries();
    e->set_level(v1::LOG_LEVEL_ERROR);
    e->set_message("disk almost full");
    CKPT_ASSERT_OK(client_->WriteLogs(own));
  }
  void Write(const std::string& name, int first, int last) {
    v1::WriteLogsRequest r;
    r.set_job_id("docs");
    r.set_worker_id("w-ops");
    v1::ItemLogs* item = r.add_items();
    item->mutable_key()->set_name(name);
    for (int i = first; i <= last; ++i) {
      v1::LogEntry* e = item->add_entries();
      e->set_message(absl::StrCat(name.substr(0, 1), i));
      e->set_logger("pipeline");
      e->set_level(i % 3 == 0 ? v1::LOG_LEVEL_WARNING : v1::LOG_LEVEL_INFO);
    }
    CKPT_ASSERT_OK(client_->WriteLogs(r));
  }
  static std::vector<std::string> Lines(const std::string& text) {
    return absl::StrSplit(text, '\n', absl::SkipEmpty());
  }
};

TEST_F(LogsCommandsTest, PrintsTheNewestOldestFirstOrAllFiltered) {
  MakeLoggedJob(5);
  auto newest = Run({"logs", "docs", "--limit", "2"});
  CKPT_ASSERT_OK(newest);
  ASSERT_EQ(Lines(*newest).size(), 2u) << *newest;
  EXPECT_THAT(Lines(*newest)[0],
              ContainsRegex("^[0-9-]+ [0-9:.]+Z INFO +main/a.pdf w-ops pipeline: a5$"));
  EXPECT_THAT(Lines(*newest)[1], ContainsRegex("ERROR +- - disk almost full$"));
  auto all = Run({"logs", "docs", "--all", "--item", "a.pdf"});
  CKPT_ASSERT_OK(all);
  EXPECT_EQ(Lines(*all).size(), 5u);
  EXPECT_THAT(Lines(*all)[0], HasSubstr(": a1"));
  auto warnings = Run({"logs", "docs", "--level", "warning", "--all"});
  CKPT_ASSERT_OK(warnings);
  EXPECT_THAT(Lines(*warnings), ::testing::SizeIs(2));  // a3, and the error
  auto json = Run({"logs", "docs", "--worker", "w-ops", "--limit", "1", "--json"});
  CKPT_ASSERT_OK(json);
  const auto line = FromJson<v1::LogLine>(Lines(*json)[0]);
  EXPECT_EQ(line.entry().message(), "a5");
  EXPECT_EQ(line.key().name(), "a.pdf");
  EXPECT_EQ(line.sequence(), 5u);

  EXPECT_TRUE(IsUsageError(Run({"logs", "docs", "--level", "loud"}).status()));
  EXPECT_THAT(Run({"logs", "docs", "--item", "c.pdf", "--step", "nope"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("its steps: main")));
  EXPECT_THAT(Run({"logs", "nope"}), StatusIs(absl::StatusCode::kNotFound, ::testing::_));
}

TEST_F(LogsCommandsTest, SaysHowManyEntriesTheBoundsDropped) {
  MakeLoggedJob(1001);  // one over an item's default bound of 1000
  auto text = Run({"logs", "docs", "--item", "a.pdf", "--limit", "1"});
  CKPT_ASSERT_OK(text);
  EXPECT_THAT(*text, HasSubstr("(1 older entries were dropped by the log's bounds)"));
  EXPECT_THAT(*text, HasSubstr(": a1001"));
}

TEST_F(LogsCommandsTest, FollowPrintsWhatIsWrittenNext) {
  MakeLoggedJob(2);
  int polls = 0;
  keep_following_ = [&] {
    ++polls;
    if (polls == 1) Write("b.pdf", 1, 2);  // written while ckpt logs --follow waits
    return polls <= 2;
  };
  auto text = Run({"logs", "docs", "--follow", "--interval", "100"});
  CKPT_ASSERT_OK(text);
  const std::vector<std::string> lines = Lines(*text);
  ASSERT_EQ(lines.size(), 5u) << *text;
  EXPECT_THAT(lines[2], HasSubstr("disk almost full"));
  EXPECT_THAT(lines[3], HasSubstr("main/b.pdf w-ops pipeline: b1"));
  EXPECT_THAT(lines[4], HasSubstr(": b2"));
}

}  // namespace
}  // namespace cli
}  // namespace ckpt
