#include "service/store/keys.h"

#include <algorithm>
#include <limits>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace ckpt {
namespace {

using ::ckpt::testutil::StatusIs;
using ::testing::HasSubstr;

TEST(KeysTest, IndexRoundTrips) {
  for (uint64_t index : {uint64_t{0}, uint64_t{1}, uint64_t{255}, uint64_t{256}, uint64_t{1} << 40,
                         std::numeric_limits<uint64_t>::max()}) {
    v1::ItemKey key;
    key.set_index(index);
    const std::string encoded = keys::EncodeItemKey(key);
    ASSERT_TRUE(keys::IsIndexKey(encoded));
    EXPECT_EQ(keys::IndexOf(encoded), index);
    auto decoded = keys::DecodeItemKey(encoded);
    ASSERT_TRUE(decoded.ok());
    EXPECT_EQ(decoded->index(), index);
  }
}

TEST(KeysTest, NameRoundTrips) {
  for (const std::string& name : {std::string("a"), std::string("doc-0001.pdf"),
                                  std::string("\xff\xfe", 2), std::string(1024, 'x')}) {
    v1::ItemKey key;
    key.set_name(name);
    const std::string encoded = keys::EncodeItemKey(key);
    EXPECT_FALSE(keys::IsIndexKey(encoded));
    auto decoded = keys::DecodeItemKey(encoded);
    ASSERT_TRUE(decoded.ok());
    EXPECT_EQ(decoded->name(), name);
  }
}

TEST(KeysTest, DecodeRejectsGarbage) {
  EXPECT_THAT(keys::DecodeItemKey(""),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not an encoded item key")));
  EXPECT_THAT(keys::DecodeItemKey(std::string("\x01\x00", 2)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("item key")));
  EXPECT_THAT(keys::DecodeItemKey("\x02"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("item key")));
}

TEST(KeysTest, IndicesSortNumericallyThenNamesBytewise) {
  std::vector<std::string> encoded = {
      keys::EncodeName("b"),         keys::EncodeIndex(256), keys::EncodeName("a"),
      keys::EncodeIndex(1),          keys::EncodeName("ab"), keys::EncodeIndex(0),
      keys::EncodeIndex(1ULL << 63), keys::EncodeIndex(255),
  };
  std::sort(encoded.begin(), encoded.end());
  std::vector<std::string> described;
  for (const auto& e : encoded) described.push_back(keys::DescribeItemKey(e));
  EXPECT_THAT(described, ::testing::ElementsAre("index 0", "index 1", "index 255", "index 256",
                                                "index 9223372036854775808", "name \"a\"",
                                                "name \"ab\"", "name \"b\""));
}

TEST(KeysTest, JobPrefixesDoNotCaptureOtherJobs) {
  // "a" must not see "a.b"'s items, nor "a"'s step "s" see step "s2".
  const std::string item_a = keys::Item("a", "s", keys::EncodeIndex(1));
  const std::string item_ab = keys::Item("a.b", "s", keys::EncodeIndex(1));
  const std::string item_s2 = keys::Item("a", "s2", keys::EncodeIndex(1));
  EXPECT_EQ(item_a.rfind(keys::JobPrefix("a"), 0), 0u);
  EXPECT_NE(item_ab.rfind(keys::JobPrefix("a"), 0), 0u);
  EXPECT_NE(item_s2.rfind(keys::StepPrefix("a", "s"), 0), 0u);
  // Job-level records never collide with a step's.
  EXPECT_NE(keys::ErrorGroup("a", 7).rfind(keys::StepPrefix("a", "s"), 0), 0u);
  EXPECT_EQ(keys::ErrorGroup("a", 7).rfind(keys::JobPrefix("a"), 0), 0u);
}

TEST(KeysTest, RangeKeysSortByBegin) {
  EXPECT_LT(keys::RangeStart("j", "s", keys::SchedTag::kUntouched, 9),
            keys::RangeStart("j", "s", keys::SchedTag::kUntouched, 10));
  EXPECT_LT(keys::RangeStart("j", "s", keys::SchedTag::kUntouched, 255),
            keys::RangeStart("j", "s", keys::SchedTag::kUntouched, 256));
}

TEST(KeysTest, PendingRetriesSortBeforeFreshItems) {
  EXPECT_LT(keys::Pending("j", "s", keys::kPendingRetry, keys::EncodeName("z")),
            keys::Pending("j", "s", keys::kPendingFresh, keys::EncodeIndex(0)));
}

TEST(KeysTest, PrefixSuccessorBoundsThePrefix) {
  const std::string prefix = keys::JobPrefix("job");
  const std::string next = keys::PrefixSuccessor(prefix);
  EXPECT_LT(keys::Item("job", "zzz", keys::EncodeName(std::string(100, '\xff'))), next);
  EXPECT_GT(keys::JobPrefix("job0"), next);  // '0' > '\x01'
  EXPECT_EQ(keys::PrefixSuccessor("a\xff\xff"), "b");
  EXPECT_EQ(keys::PrefixSuccessor("\xff"), "");
}

TEST(KeysTest, BigEndianRoundTrips) {
  std::string out;
  keys::AppendBigEndian64(&out, 0x0102030405060708ULL);
  EXPECT_EQ(out, std::string("\x01\x02\x03\x04\x05\x06\x07\x08", 8));
  EXPECT_EQ(keys::ReadBigEndian64(out), 0x0102030405060708ULL);
}

TEST(KeysTest, Fnv1aIsStable) {
  // Error group keys are on disk: this value must never change.
  EXPECT_EQ(keys::Fnv1a64(""), 0xcbf29ce484222325ULL);
  EXPECT_EQ(keys::Fnv1a64("a"), 0xaf63dc4c8601ec8cULL);
}

TEST(KeysTest, SchedKeysParseBackToWhatBuiltThem) {
  const std::string job = keys::JobPrefix("j");
  std::vector<std::string> built;  // parsed keys view into these
  auto parse = [&](std::string key) {
    built.push_back(std::move(key));
    return keys::ParseSchedKey("j", absl::string_view(built.back()).substr(job.size()));
  };
  built.reserve(8);
  auto range = parse(keys::RangeStart("j", "s", keys::SchedTag::kUntouched, 42));
  CKPT_ASSERT_OK(range);
  EXPECT_FALSE(range->error_group);
  EXPECT_EQ(range->step, "s");
  EXPECT_EQ(range->tag, keys::SchedTag::kUntouched);
  EXPECT_EQ(range->number, 42u);
  auto pending = parse(keys::Pending("j", "s", keys::kPendingRetry, keys::EncodeName("a")));
  CKPT_ASSERT_OK(pending);
  EXPECT_EQ(pending->tag, keys::SchedTag::kPending);
  EXPECT_EQ(pending->rest, std::string(1, keys::kPendingRetry) + keys::EncodeName("a"));
  auto failed = parse(keys::Failed("j", "s", keys::EncodeIndex(7)));
  CKPT_ASSERT_OK(failed);
  EXPECT_EQ(failed->rest, keys::EncodeIndex(7));
  auto counters = parse(keys::Counters("j", "s"));
  CKPT_ASSERT_OK(counters);
  EXPECT_EQ(counters->tag, keys::SchedTag::kCounters);
  auto group = parse(keys::ErrorGroup("j", 99));
  CKPT_ASSERT_OK(group);
  EXPECT_TRUE(group->error_group);
  EXPECT_EQ(group->error_hash, 99u);
}

TEST(KeysTest, DamagedSchedKeysAreDataLossNamingTheJob) {
  const std::string step_prefix = std::string("s\0", 2);
  for (const std::string& suffix :
       {std::string(), std::string("s"), step_prefix, step_prefix + "U" + "short",
        step_prefix + "Z", step_prefix + "F" + "\x03bad", step_prefix + "P" + "\x07" + "x",
        step_prefix + "C" + "extra", std::string("\0E123", 5)}) {
    EXPECT_THAT(keys::ParseSchedKey("job-7", suffix),
                StatusIs(absl::StatusCode::kDataLoss, HasSubstr("job \"job-7\"")))
        << absl::CHexEscape(suffix);
  }
  EXPECT_THAT(keys::ParseRangeEnd("1234567"),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("corrupt")));
  EXPECT_THAT(keys::ParseStoredItemKey("\x05x"),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("corrupt")));
}

// Floor(CompletionKeyBefore(k)) must be the key just below k, whatever the item keys:
// checked against a sorted set of completions keys, as the store would hold them.
TEST(KeysTest, CompletionKeyBeforeFindsExactlyThePreviousKey) {
  std::vector<std::string> all;
  for (int64_t micros : {int64_t{0}, int64_t{1}, int64_t{255}, int64_t{256}, int64_t{1} << 40}) {
    for (uint64_t index : {uint64_t{0}, uint64_t{255}, uint64_t{256}, uint64_t{1} << 62}) {
      all.push_back(keys::Completion("j", "s", micros, keys::EncodeIndex(index)));
    }
    for (const char* name : {"a", "a\x01", "ab", "b", "\xc3\xa9t\xc3\xa9", "z\x7f"}) {
      all.push_back(keys::Completion("j", "s", micros, keys::EncodeName(name)));
    }
  }
  std::sort(all.begin(), all.end());
  for (size_t i = 0; i < all.size(); ++i) {
    const std::string before = keys::CompletionKeyBefore(all[i]);
    // The greatest key <= before, as Floor would find it.
    auto floor = std::upper_bound(all.begin(), all.end(), before);
    ASSERT_TRUE(before < all[i]) << absl::CHexEscape(all[i]);
    if (i == 0) {
      EXPECT_EQ(floor, all.begin()) << absl::CHexEscape(all[i]);
    } else {
      ASSERT_NE(floor, all.begin());
      EXPECT_EQ(*std::prev(floor), all[i - 1]) << absl::CHexEscape(all[i]);
    }
    auto parsed = keys::ParseCompletionSuffix(absl::string_view(all[i]).substr(4));
    CKPT_ASSERT_OK(parsed);
  }
  EXPECT_THAT(keys::ParseCompletionSuffix("short"),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("completions key")));
}

}  // namespace
}  // namespace ckpt
