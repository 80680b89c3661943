#include "service/store/store.h"

#include <fstream>
#include <string>

#include "ckpt/storage/v1/records.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/store/keys.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"

namespace ckpt {
namespace {

using ::ckpt::testing::StatusIs;
using ::testing::HasSubstr;

StoreOptions OptionsFor(const std::string& path) {
  StoreOptions options;
  options.path = path;
  return options;
}

TEST(StoreTest, CreatesThenReopensWithSchemaAndData) {
  const std::string dir = testing::NewTempDir("store");
  {
    auto store = Store::Open(OptionsFor(dir));
    CKPT_ASSERT_OK(store);
    EXPECT_EQ((*store)->schema_version(), kSchemaVersion);
    rocksdb::WriteBatch batch;
    batch.Put((*store)->handle(Cf::kJobs), "job-1", "record");
    CKPT_ASSERT_OK((*store)->Write(&batch));
  }
  auto reopened = Store::Open(OptionsFor(dir));
  CKPT_ASSERT_OK(reopened);
  auto value = (*reopened)->Get(Cf::kJobs, "job-1");
  CKPT_ASSERT_OK(value);
  ASSERT_TRUE(value->has_value());
  EXPECT_EQ(**value, "record");
}

TEST(StoreTest, SecondOpenOfTheSameDirIsRefusedClearly) {
  const std::string dir = testing::NewTempDir("store");
  auto first = Store::Open(OptionsFor(dir));
  CKPT_ASSERT_OK(first);
  EXPECT_THAT(Store::Open(OptionsFor(dir)), StatusIs(absl::StatusCode::kFailedPrecondition,
                                                     HasSubstr("in use by another ckptd")));
}

TEST(StoreTest, NewerSchemaIsRefusedAndLeftUntouched) {
  const std::string dir = testing::NewTempDir("store");
  {
    auto store = Store::Open(OptionsFor(dir));
    CKPT_ASSERT_OK(store);
    storage::v1::SchemaRecord newer;
    newer.set_version(kSchemaVersion + 1);
    rocksdb::WriteBatch batch;
    batch.Put((*store)->handle(Cf::kMeta), keys::kSchemaKey, newer.SerializeAsString());
    CKPT_ASSERT_OK((*store)->Write(&batch));
  }
  EXPECT_THAT(Store::Open(OptionsFor(dir)),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("newer than this ckptd understands")));
  // Still refused the same way: nothing was rewritten.
  EXPECT_THAT(Store::Open(OptionsFor(dir)),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("schema version 2")));
}

TEST(StoreTest, DirectoryWithFilesButNoStoreIsRefused) {
  const std::string dir = testing::NewTempDir("store");
  std::ofstream(dir + "/notes.txt") << "not a store";
  EXPECT_THAT(Store::Open(OptionsFor(dir)),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("but no store")));
  std::ifstream still(dir + "/notes.txt");
  EXPECT_TRUE(still.good());
}

TEST(StoreTest, DataDirThatIsAFileIsRefused) {
  const std::string dir = testing::NewTempDir("store");
  std::ofstream(dir + "/file") << "x";
  EXPECT_THAT(Store::Open(OptionsFor(dir + "/file")),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("data dir")));
}

TEST(StoreTest, ScanStaysInsideItsPrefix) {
  auto store = Store::Open(OptionsFor(testing::NewTempDir("store")));
  CKPT_ASSERT_OK(store);
  rocksdb::WriteBatch batch;
  auto* items = (*store)->handle(Cf::kItems);
  batch.Put(items, keys::Item("a", "s", keys::EncodeIndex(2)), "2");
  batch.Put(items, keys::Item("a", "s", keys::EncodeIndex(1)), "1");
  batch.Put(items, keys::Item("a.b", "s", keys::EncodeIndex(0)), "other job");
  batch.Put(items, keys::Item("a", "t", keys::EncodeIndex(0)), "other step");
  CKPT_ASSERT_OK((*store)->Write(&batch));
  std::vector<std::string> seen;
  auto it = (*store)->Scan(Cf::kItems, keys::StepPrefix("a", "s"));
  for (; it->Valid(); it->Next()) seen.push_back(std::string(it->value()));
  CKPT_ASSERT_OK(it->status());
  EXPECT_THAT(seen, ::testing::ElementsAre("1", "2"));
}

}  // namespace
}  // namespace ckpt
