// RocksDbStore::Checkpoint: the copy opens as a store with everything written, is
// private, and every unusable directory is refused naming what is wrong, leaving
// nothing behind.
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "rocksdb/db.h"
#include "service/store/rocksdb_store.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"

namespace ckpt {
namespace {

namespace fs = std::filesystem;
using ::ckpt::testutil::StatusIs;
using ::testing::HasSubstr;

RocksDbStoreOptions OptionsFor(const std::string& path) {
  RocksDbStoreOptions options;
  options.path = path;
  return options;
}

mode_t ModeOf(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return st.st_mode & 07777;
}

class RocksDbCheckpointTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = RocksDbStore::Open(OptionsFor(data_dir_));
    CKPT_ASSERT_OK(store);
    store_ = std::move(*store);
  }

  void Put(const std::string& key, const std::string& value) {
    auto batch = store_->NewBatch();
    batch->Put(Cf::kJobs, key, value);
    batch->Put(Cf::kItems, key, value + "-item");
    CKPT_ASSERT_OK(store_->Write(batch.get()));
  }

  const std::string data_dir_ = testutil::NewTempDir("store");
  const std::string backups_ = testutil::NewTempDir("backups");
  std::unique_ptr<RocksDbStore> store_;
};

TEST_F(RocksDbCheckpointTest, CopyOpensWithEverythingWrittenAndIsPrivate) {
  Put("job-1", "flushed");
  ASSERT_TRUE(store_->db()
                  ->Flush(rocksdb::FlushOptions(), store_->handle(Cf::kJobs))
                  .ok());  // some in SST files, some only in the WAL
  Put("job-2", "in the memtable");
  const std::string copy_dir = backups_ + "/copy";
  auto copy = store_->Checkpoint(copy_dir);
  CKPT_ASSERT_OK(copy);
  EXPECT_GT(copy->files, 0u);
  EXPECT_GT(copy->bytes, 0u);
  EXPECT_FALSE(fs::exists(copy_dir + ".tmp"));
  EXPECT_EQ(ModeOf(copy_dir), 0700u);
  uint64_t files = 0;
  for (const auto& entry : fs::directory_iterator(copy_dir)) {
    EXPECT_EQ(ModeOf(entry.path().string()), 0600u) << entry.path();
    ++files;
  }
  EXPECT_EQ(files, copy->files);
  Put("job-3", "after the copy");

  auto copied = RocksDbStore::Open(OptionsFor(copy_dir));
  CKPT_ASSERT_OK(copied);
  for (const std::string key : {"job-1", "job-2"}) {
    auto job = (*copied)->Get(Cf::kJobs, key);
    CKPT_ASSERT_OK(job);
    EXPECT_TRUE(job->has_value()) << key;
    auto item = (*copied)->Get(Cf::kItems, key);
    CKPT_ASSERT_OK(item);
    EXPECT_TRUE(item->has_value()) << key;
  }
  auto later = (*copied)->Get(Cf::kJobs, "job-3");
  CKPT_ASSERT_OK(later);
  EXPECT_FALSE(later->has_value());
  // The copy is a store of its own: writing to it leaves the original alone.
  auto batch = (*copied)->NewBatch();
  batch->Put(Cf::kJobs, "job-1", "changed in the copy");
  CKPT_ASSERT_OK((*copied)->Write(batch.get()));
  auto original = store_->Get(Cf::kJobs, "job-1");
  CKPT_ASSERT_OK(original);
  EXPECT_EQ(original->value_or(""), "flushed");
}

TEST_F(RocksDbCheckpointTest, UnusableDirectoriesAreRefusedNamingWhyAndLeftAsTheyWere) {
  Put("job-1", "x");
  const std::string exists = backups_ + "/exists";
  fs::create_directory(exists);
  std::ofstream(exists + "/mine") << "keep me";
  const std::string staged = backups_ + "/staged";
  fs::create_directory(staged + ".tmp");
  std::ofstream(staged + ".tmp/mine") << "keep me";
  const std::string file = backups_ + "/file";
  std::ofstream(file) << "a file";
  struct Case {
    std::string dir;
    std::string why;
  };
  for (const Case& c :
       {Case{exists, "already exists"}, Case{file, "already exists"}, Case{staged, ".tmp exists"},
        Case{backups_ + "/missing/copy", "is not an existing directory"},
        Case{file + "/copy", "is not an existing directory"},
        Case{data_dir_ + "/copy", "inside the data dir"},
        Case{"relative/copy", "not an absolute path"}}) {
    SCOPED_TRACE(c.dir);
    EXPECT_THAT(store_->Checkpoint(c.dir),
                StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr(c.why)));
  }
  EXPECT_TRUE(fs::exists(exists + "/mine"));
  EXPECT_TRUE(fs::exists(staged + ".tmp/mine"));
  EXPECT_FALSE(fs::exists(data_dir_ + "/copy"));
  EXPECT_FALSE(fs::exists(backups_ + "/missing"));
  // The store still copies once given a new path.
  CKPT_EXPECT_OK(store_->Checkpoint(backups_ + "/fresh").status());
}

}  // namespace
}  // namespace ckpt
