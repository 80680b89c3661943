// The run directory cache over a real RocksDB store: reads fill it, the writer's
// write-throughs replace entries, a fill that raced a write-through is dropped, forgets
// drop what they name, and it never holds more than its capacity.
#include "service/engine/run_directories.h"

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/engine/item_runs.h"
#include "service/store/keys.h"
#include "service/store/store.h"
#include "tests/testing/observed_reader.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/test_stores.h"

namespace ckpt {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

class RunDirectoriesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = testutil::StoreLocation::New(testutil::StoreKind::kRocksDb).Open();
    CKPT_ASSERT_OK(store);
    store_ = std::move(*store);
    reader_ = std::make_unique<testutil::ObservedReader>(*store_);
  }
  void Put(const std::string& key, const std::vector<uint64_t>& firsts) {
    std::unique_ptr<WriteBatch> batch = store_->NewBatch();
    batch->Put(kRunDirectoryFamily, key, SerializeRunDirectory(firsts));
    CKPT_ASSERT_OK(store_->Write(batch.get()));
  }
  std::vector<uint64_t> Read(const RunDirectories& directories, const std::string& key) {
    auto firsts = directories.Read(key);
    EXPECT_TRUE(firsts.ok()) << firsts.status();
    return firsts.ok() ? *firsts : std::vector<uint64_t>{99999};
  }
  std::unique_ptr<Store> store_;
  std::unique_ptr<testutil::ObservedReader> reader_;
  const std::string a_ = keys::RunDirectory("a", "s", 0);
  const std::string b_ = keys::RunDirectory("b", "s", 0);
};

TEST_F(RunDirectoriesTest, AReadFillsTheCacheAndAWriteThroughReplacesTheEntry) {
  RunDirectories directories(*reader_, 64);
  Put(a_, {3, 100});
  EXPECT_THAT(Read(directories, a_), ElementsAre(3, 100));
  EXPECT_THAT(Read(directories, b_), IsEmpty());  // none stored: cached as none
  EXPECT_EQ(reader_->gets, 2);
  EXPECT_THAT(Read(directories, a_), ElementsAre(3, 100));
  EXPECT_THAT(Read(directories, b_), IsEmpty());
  EXPECT_EQ(reader_->gets, 2);  // both from the cache
  directories.Committed(a_, {3, 50, 100});
  EXPECT_THAT(Read(directories, a_), ElementsAre(3, 50, 100));
  EXPECT_EQ(reader_->gets, 2);
}

// A reader that missed, read the store, and fills after the writer wrote the block
// through must not put back what it read: the write-through is newer.
TEST_F(RunDirectoriesTest, AFillThatRacedAWriteThroughIsDropped) {
  RunDirectories directories(*reader_, 64);
  Put(a_, {3});
  reader_->during_next_get = [&] {
    Put(a_, {3, 7});
    directories.Committed(a_, {3, 7});
  };
  EXPECT_THAT(Read(directories, a_), ElementsAre(3));  // what this reader read
  EXPECT_THAT(Read(directories, a_), ElementsAre(3, 7));
  EXPECT_EQ(reader_->gets, 1);  // the write-through's entry, not the racing fill's
}

TEST_F(RunDirectoriesTest, ForgetsDropWhatTheyNameAndADamagedBlockIsDataLoss) {
  RunDirectories directories(*reader_, 64);
  directories.Committed(a_, {1});
  directories.Committed(b_, {2});
  directories.ForgetPrefixes({keys::RunDirectoryPrefix("a")});
  EXPECT_EQ(directories.size(), 1u);
  EXPECT_THAT(Read(directories, a_), IsEmpty());  // read again: the store has none
  directories.ForgetAll();
  EXPECT_EQ(directories.size(), 0u);
  std::unique_ptr<WriteBatch> batch = store_->NewBatch();
  batch->Put(kRunDirectoryFamily, b_, "\xff");
  CKPT_ASSERT_OK(store_->Write(batch.get()));
  EXPECT_THAT(directories.Read(b_), testutil::StatusIs(absl::StatusCode::kDataLoss,
                                                       ::testing::HasSubstr("run directory")));
}

TEST_F(RunDirectoriesTest, HoldsAtMostItsCapacity) {
  RunDirectories directories(*reader_, 32);
  for (uint64_t block = 0; block < 1000; ++block) {
    directories.Committed(keys::RunDirectory("a", "s", block), {block * 128});
  }
  EXPECT_LE(directories.size(), 32u);
  EXPECT_GT(directories.size(), 0u);
  // An evicted block is read from the store again.
  Put(keys::RunDirectory("a", "s", 0), {5});
  const int gets = reader_->gets;
  std::vector<uint64_t> first = Read(directories, keys::RunDirectory("a", "s", 0));
  EXPECT_TRUE(first == std::vector<uint64_t>{5} || first == std::vector<uint64_t>{0});
  EXPECT_EQ(reader_->gets - gets, first == std::vector<uint64_t>{5} ? 1 : 0);
}

}  // namespace
}  // namespace ckpt
