// What the engine relies on from a Store (service/store/store.h), checked against each
// implementation through the interface only.
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/store/keys.h"
#include "service/store/rocksdb_store.h"
#include "service/store/store.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"

namespace ckpt {
namespace {

using ::testing::ElementsAre;
using ::testing::Optional;
using ::testing::Pair;

// Opens a fresh, empty store.
struct StoreKind {
  std::string name;
  std::function<std::unique_ptr<Store>()> open;
};

std::vector<StoreKind> Kinds() {
  return {{"RocksDb", [] {
             RocksDbStoreOptions options;
             options.path = testutil::NewTempDir("store");
             auto store = RocksDbStore::Open(options);
             if (!store.ok()) std::abort();
             return std::unique_ptr<Store>(std::move(*store));
           }}};
}

class StoreContractTest : public ::testing::TestWithParam<StoreKind> {
 protected:
  void SetUp() override { store_ = GetParam().open(); }

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

TEST_P(StoreContractTest, SchemaVersionIsThisBuilds) {
  EXPECT_EQ(store_->schema_version(), kSchemaVersion);
}

INSTANTIATE_TEST_SUITE_P(Stores, StoreContractTest, ::testing::ValuesIn(Kinds()),
                         [](const ::testing::TestParamInfo<StoreKind>& info) {
                           return info.param.name;
                         });

}  // namespace
}  // namespace ckpt
