// What the engine relies on from a Store (service/store/store.h), checked against each
// implementation through the interface only.
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/store/keys.h"
#include "service/store/store.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/test_stores.h"

namespace ckpt {
namespace {

using ::testing::ElementsAre;
using ::testing::Optional;
using ::testing::Pair;

using testutil::StoreKind;
using testutil::StoreLocation;

class StoreContractTest : public ::testing::TestWithParam<StoreKind> {
 protected:
  void SetUp() override {
    auto store = location_.Open();
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
  }

  void Write(const std::function<void(WriteBatch&)>& fill) {
    auto batch = store_->NewBatch();
    fill(*batch);
    CKPT_ASSERT_OK(store_->Write(batch.get()));
  }

  // The values under `prefix`, in order.
  static std::vector<std::string> Values(const StoreReader& reader, Cf cf,
                                         const std::string& prefix, const std::string& start = "") {
    std::vector<std::string> values;
    auto it = reader.Scan(cf, prefix, start);
    for (; it->Valid(); it->Next()) values.emplace_back(it->value());
    EXPECT_TRUE(it->status().ok()) << it->status();
    return values;
  }

  const StoreLocation location_ = StoreLocation::New(GetParam());
  std::unique_ptr<Store> store_;
};

TEST_P(StoreContractTest, ScanStaysInsideItsPrefixInKeyOrderFromItsStart) {
  Write([](WriteBatch& b) {
    b.Put(Cf::kItems, keys::Item("a", "s", keys::EncodeIndex(2)), "2");
    b.Put(Cf::kItems, keys::Item("a", "s", keys::EncodeIndex(1)), "1");
    b.Put(Cf::kItems, keys::Item("a", "s", keys::EncodeName("x")), "x");
    b.Put(Cf::kItems, keys::Item("a.b", "s", keys::EncodeIndex(0)), "other job");
    b.Put(Cf::kItems, keys::Item("a", "t", keys::EncodeIndex(0)), "other step");
    b.Put(Cf::kSched, keys::Item("a", "s", keys::EncodeIndex(1)), "other family");
  });
  const std::string prefix = keys::StepPrefix("a", "s");
  EXPECT_THAT(Values(*store_, Cf::kItems, prefix), ElementsAre("1", "2", "x"));
  EXPECT_THAT(Values(*store_, Cf::kItems, prefix, keys::Item("a", "s", keys::EncodeIndex(2))),
              ElementsAre("2", "x"));
  auto it = store_->Scan(Cf::kItems, prefix);
  ASSERT_TRUE(it->Valid());
  EXPECT_EQ(it->suffix(), keys::EncodeIndex(1));
}

TEST_P(StoreContractTest, KeysAreBytesIncludingNulAndHighBytes) {
  const std::string key("k\0\xff\x01", 4);
  const std::string value("v\0\xfe", 3);
  Write([&](WriteBatch& b) { b.Put(Cf::kMeta, key, value); });
  auto got = store_->Get(Cf::kMeta, key);
  CKPT_ASSERT_OK(got);
  EXPECT_THAT(*got, Optional(value));
  auto missing = store_->Get(Cf::kMeta, std::string("k\0", 2));
  CKPT_ASSERT_OK(missing);
  EXPECT_FALSE(missing->has_value());
}

TEST_P(StoreContractTest, ChangesApplyInBatchOrder) {
  const std::string job = keys::JobPrefix("j");
  Write([&](WriteBatch& b) {
    b.Put(Cf::kStates, job + "a", "old a");
    b.Put(Cf::kStates, job + "b", "old b");
  });
  Write([&](WriteBatch& b) {
    b.DeleteRange(Cf::kStates, job, keys::PrefixSuccessor(job));
    b.Put(Cf::kStates, job + "b", "new b");  // after the range delete: stands
    b.Put(Cf::kStates, job + "c", "c");
    b.Delete(Cf::kStates, job + "c");  // after its put: gone
    EXPECT_EQ(b.Count(), 4u);
  });
  EXPECT_THAT(Values(*store_, Cf::kStates, job), ElementsAre("new b"));
}

TEST_P(StoreContractTest, FloorFindsTheGreatestKeyAtOrBelowInsideThePrefix) {
  const std::string prefix = keys::SchedPrefix("j", "s", keys::SchedTag::kUntouched);
  Write([&](WriteBatch& b) {
    b.Put(Cf::kSched, keys::RangeStart("j", "s", keys::SchedTag::kUntouched, 10), "a");
    b.Put(Cf::kSched, keys::RangeStart("j", "s", keys::SchedTag::kUntouched, 20), "b");
    b.Put(Cf::kSched, keys::Counters("j", "s"), "before the prefix");
  });
  auto floor = [&](uint64_t index) {
    return store_->Floor(Cf::kSched, prefix,
                         keys::RangeStart("j", "s", keys::SchedTag::kUntouched, index));
  };
  auto at15 = floor(15);
  CKPT_ASSERT_OK(at15);
  EXPECT_THAT(*at15,
              Optional(Pair(keys::RangeStart("j", "s", keys::SchedTag::kUntouched, 10), "a")));
  auto at20 = floor(20);
  CKPT_ASSERT_OK(at20);
  EXPECT_THAT(*at20, Optional(Pair(::testing::_, "b")));
  auto at5 = floor(5);  // nothing at or below inside the prefix
  CKPT_ASSERT_OK(at5);
  EXPECT_FALSE(at5->has_value());
}

TEST_P(StoreContractTest, ReadViewSeesOneMoment) {
  Write([](WriteBatch& b) { b.Put(Cf::kJobs, "j", "1"); });
  auto view = store_->NewReadView();
  CKPT_ASSERT_OK(view);
  Write([](WriteBatch& b) {
    b.Put(Cf::kJobs, "j", "2");
    b.Put(Cf::kJobs, "k", "new");
  });
  auto old = (*view)->Get(Cf::kJobs, "j");
  CKPT_ASSERT_OK(old);
  EXPECT_THAT(*old, Optional(std::string("1")));
  EXPECT_THAT(Values(**view, Cf::kJobs, ""), ElementsAre("1"));
  EXPECT_THAT(Values(*store_, Cf::kJobs, ""), ElementsAre("2", "new"));
}

TEST_P(StoreContractTest, ScansOfManyKeysStayInOrderAndComplete) {
  // More keys than one page of any implementation, with values of every size.
  const std::string prefix = keys::StepPrefix("big", "s");
  constexpr uint64_t kKeys = 5000;
  Write([&](WriteBatch& b) {
    for (uint64_t i = 0; i < kKeys; ++i) {
      b.Put(Cf::kItems, prefix + keys::EncodeIndex(i), std::string(i % 700, 'v'));
    }
    b.Put(Cf::kItems, keys::StepPrefix("big", "t"), "after the prefix");
  });
  auto check = [&](const StoreReader& reader, uint64_t from) {
    auto it = reader.Scan(Cf::kItems, prefix, prefix + keys::EncodeIndex(from));
    uint64_t next = from;
    for (; it->Valid(); it->Next(), ++next) {
      ASSERT_EQ(it->suffix(), keys::EncodeIndex(next));
      ASSERT_EQ(it->value().size(), next % 700);
    }
    CKPT_ASSERT_OK(it->status());
    EXPECT_EQ(next, kKeys);
  };
  check(*store_, 0);
  check(*store_, 4321);
  auto view = store_->NewReadView();
  CKPT_ASSERT_OK(view);
  // Writes between the view's pages are not seen by it.
  auto it = (*view)->Scan(Cf::kItems, prefix);
  Write([&](WriteBatch& b) {
    b.DeleteRange(Cf::kItems, prefix, keys::PrefixSuccessor(prefix));
    b.Put(Cf::kItems, prefix + keys::EncodeIndex(kKeys), "new");
  });
  uint64_t seen = 0;
  for (; it->Valid(); it->Next()) ++seen;
  CKPT_EXPECT_OK(it->status());
  EXPECT_EQ(seen, kKeys);
  it.reset();
  EXPECT_THAT(Values(*store_, Cf::kItems, prefix), ElementsAre("new"));
}

TEST_P(StoreContractTest, OfSeveralChangesToOneKeyInABatchTheLastWins) {
  Write([](WriteBatch& b) {
    b.Put(Cf::kJobs, "a", "1");
    b.Put(Cf::kJobs, "a", "2");
    b.Put(Cf::kJobs, "b", "1");
    b.Delete(Cf::kJobs, "b");
    b.Delete(Cf::kJobs, "c");
    b.Put(Cf::kJobs, "c", "3");
    b.Put(Cf::kSched, "a", "other family");
  });
  EXPECT_THAT(Values(*store_, Cf::kJobs, ""), ElementsAre("2", "3"));
  // A range, puts under it, another range over them, and a put after that.
  Write([](WriteBatch& b) {
    b.DeleteRange(Cf::kJobs, "a", "z");
    b.Put(Cf::kJobs, "b", "gone again");
    b.DeleteRange(Cf::kJobs, "b", "c");
    b.Put(Cf::kJobs, "a", "stays");
    b.Delete(Cf::kSched, "a");
  });
  EXPECT_THAT(Values(*store_, Cf::kJobs, ""), ElementsAre("stays"));
  EXPECT_THAT(Values(*store_, Cf::kSched, ""), ::testing::IsEmpty());
}

TEST_P(StoreContractTest, LargeAndEmptyValuesRoundTrip) {
  std::string large(4 << 20, '\0');
  for (size_t i = 0; i < large.size(); ++i) large[i] = static_cast<char>(i * 7919 >> 3);
  Write([&](WriteBatch& b) {
    b.Put(Cf::kStates, "large", large);
    b.Put(Cf::kStates, "empty", "");
  });
  auto got = store_->Get(Cf::kStates, "large");
  CKPT_ASSERT_OK(got);
  ASSERT_TRUE(got->has_value());
  EXPECT_TRUE(**got == large);
  got = store_->Get(Cf::kStates, "empty");
  CKPT_ASSERT_OK(got);
  EXPECT_THAT(*got, Optional(std::string()));
}

TEST_P(StoreContractTest, EverythingWrittenIsThereAfterAReopen) {
  Write([](WriteBatch& b) {
    b.Put(Cf::kMeta, "m", "1");
    b.Put(Cf::kOutputs, "/out/x", "o");
  });
  store_.reset();
  auto reopened = location_.Open();
  CKPT_ASSERT_OK(reopened);
  store_ = std::move(*reopened);
  EXPECT_THAT(Values(*store_, Cf::kMeta, "m"), ElementsAre("1"));
  auto output = store_->Get(Cf::kOutputs, "/out/x");  // outputs are only read by key
  CKPT_ASSERT_OK(output);
  EXPECT_THAT(*output, Optional(std::string("o")));
  Write([](WriteBatch& b) { b.Delete(Cf::kMeta, "m"); });
  EXPECT_THAT(Values(*store_, Cf::kMeta, "m"), ::testing::IsEmpty());
}

// GetPinned reads what Get does, from the store and from a view, whether the value is
// in memory or (after a reopen) in a file; a value read stays as read while later
// writes replace it.
TEST_P(StoreContractTest, APinnedValueIsTheValueAndStaysAsRead) {
  const std::string run(13 << 10, 'r');
  Write([&](WriteBatch& b) {
    b.Put(Cf::kItems, "in file", run);
    b.Put(Cf::kItems, "small", "s");
  });
  store_.reset();
  auto reopened = location_.Open();
  CKPT_ASSERT_OK(reopened);
  store_ = std::move(*reopened);
  Write([](WriteBatch& b) { b.Put(Cf::kItems, "in memory", "m"); });
  auto view = store_->NewReadView();
  CKPT_ASSERT_OK(view);
  for (const StoreReader* reader : {static_cast<const StoreReader*>(store_.get()),
                                    static_cast<const StoreReader*>(view->get())}) {
    for (const std::string key : {"in file", "small", "in memory"}) {
      auto pinned = reader->GetPinned(Cf::kItems, key);
      CKPT_ASSERT_OK(pinned);
      ASSERT_NE(*pinned, nullptr) << key;
      auto copied = reader->Get(Cf::kItems, key);
      CKPT_ASSERT_OK(copied);
      EXPECT_THAT(*copied, Optional(std::string((*pinned)->view()))) << key;
    }
    auto absent = reader->GetPinned(Cf::kItems, "absent");
    CKPT_ASSERT_OK(absent);
    EXPECT_EQ(*absent, nullptr);
  }
  auto held = store_->GetPinned(Cf::kItems, "in file");
  CKPT_ASSERT_OK(held);
  ASSERT_NE(*held, nullptr);
  Write([](WriteBatch& b) { b.Put(Cf::kItems, "in file", "replaced"); });
  EXPECT_TRUE((*held)->view() == run);
}

TEST_P(StoreContractTest, SchemaVersionIsThisBuilds) {
  EXPECT_EQ(store_->schema_version(), kSchemaVersion);
}

// RocksDB copies itself (rocksdb_checkpoint_test.cc has the details); PostgreSQL says
// which of its own tools to use, and creates nothing.
TEST_P(StoreContractTest, CheckpointCopiesTheStoreOrSaysWhatToUseInstead) {
  Write([](WriteBatch& b) { b.Put(Cf::kMeta, "m", "1"); });
  const std::string dir = testutil::NewTempDir("backup") + "/copy";
  absl::StatusOr<StoreCopy> copy = store_->Checkpoint(dir);
  if (GetParam() == StoreKind::kPostgres) {
    EXPECT_THAT(copy, testutil::StatusIs(absl::StatusCode::kFailedPrecondition,
                                         ::testing::HasSubstr("pg_basebackup")));
    EXPECT_FALSE(std::filesystem::exists(dir));
    return;
  }
  CKPT_ASSERT_OK(copy);
  EXPECT_TRUE(std::filesystem::exists(dir + "/CURRENT"));
}

INSTANTIATE_TEST_SUITE_P(Stores, StoreContractTest, ::testing::ValuesIn(testutil::AllStoreKinds()),
                         testutil::StoreKindTestName);

}  // namespace
}  // namespace ckpt
