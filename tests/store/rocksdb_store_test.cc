#include "service/store/rocksdb_store.h"

#include <algorithm>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "ckpt/storage/v1/records.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "rocksdb/db.h"
#include "service/store/keys.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"

namespace ckpt {
namespace {

using ::ckpt::testutil::StatusIs;
using ::testing::HasSubstr;

RocksDbStoreOptions OptionsFor(const std::string& path) {
  RocksDbStoreOptions options;
  options.path = path;
  return options;
}

// Runs `write` on a new store, then `check` on it, and again after reopening it (the
// WAL's replay builds the memtables anew).
void CheckLiveAndReplayed(const std::function<void(Store&)>& write,
                          const std::function<void(Store&)>& check) {
  const std::string dir = testutil::NewTempDir("store");
  {
    auto store = RocksDbStore::Open(OptionsFor(dir));
    CKPT_ASSERT_OK(store);
    write(**store);
    check(**store);
  }
  auto reopened = RocksDbStore::Open(OptionsFor(dir));
  CKPT_ASSERT_OK(reopened);
  check(**reopened);
}

TEST(RocksDbStoreTest, CreatesThenReopensWithSchemaAndData) {
  const std::string dir = testutil::NewTempDir("store");
  {
    auto store = RocksDbStore::Open(OptionsFor(dir));
    CKPT_ASSERT_OK(store);
    EXPECT_EQ((*store)->schema_version(), kSchemaVersion);
    auto batch = (*store)->NewBatch();
    batch->Put(Cf::kJobs, "job-1", "record");
    CKPT_ASSERT_OK((*store)->Write(batch.get()));
  }
  auto reopened = RocksDbStore::Open(OptionsFor(dir));
  CKPT_ASSERT_OK(reopened);
  auto value = (*reopened)->Get(Cf::kJobs, "job-1");
  CKPT_ASSERT_OK(value);
  ASSERT_TRUE(value->has_value());
  EXPECT_EQ(**value, "record");
}

// Flushed memtables (L0) are written uncompressed, and compacted deeper they are
// compressed.
TEST(RocksDbStoreTest, LevelZeroIsUncompressedAndDeeperLevelsAreCompressed) {
  const std::string dir = testutil::NewTempDir("store");
  auto store = RocksDbStore::Open(OptionsFor(dir));
  CKPT_ASSERT_OK(store);
  auto batch = (*store)->NewBatch();
  for (uint64_t i = 0; i < 1000; ++i) {
    batch->Put(Cf::kItems, keys::Item("job", "s", keys::EncodeIndex(i)), std::string(100, 'x'));
  }
  CKPT_ASSERT_OK((*store)->Write(batch.get()));
  rocksdb::DB* db = (*store)->db();
  rocksdb::ColumnFamilyHandle* items = (*store)->handle(Cf::kItems);
  auto compressions = [&] {
    rocksdb::TablePropertiesCollection tables;
    EXPECT_TRUE(db->GetPropertiesOfAllTables(items, &tables).ok());
    std::vector<std::string> names;
    for (const auto& [file, properties] : tables) names.push_back(properties->compression_name);
    return names;
  };
  ASSERT_TRUE(db->Flush(rocksdb::FlushOptions(), items).ok());
  EXPECT_THAT(compressions(), ::testing::ElementsAre("NoCompression"));
  rocksdb::CompactRangeOptions deeper;
  deeper.change_level = true;
  deeper.target_level = 2;
  deeper.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForce;
  ASSERT_TRUE(db->CompactRange(deeper, items, nullptr, nullptr).ok());
  EXPECT_THAT(compressions(), ::testing::ElementsAre("Snappy"));
}

// A family's memtable flushes alone when it fills. The memtable budget across families
// is only a backstop: reached, it flushes the family with the oldest memtable, a small
// one (here meta, which holds the schema record, and jobs) that frees nothing, and then
// the next, so every flush of items came with a string of tiny ones.
TEST(RocksDbStoreTest, AFamilyFlushesAloneWhenItsMemtableFills) {
  const std::string dir = testutil::NewTempDir("store");
  auto store = RocksDbStore::Open(OptionsFor(dir));
  CKPT_ASSERT_OK(store);
  rocksdb::DB* db = (*store)->db();
  auto entries_in_memtable = [&](Cf cf) {
    uint64_t n = 0;
    EXPECT_TRUE(
        db->GetIntProperty((*store)->handle(cf), "rocksdb.num-entries-active-mem-table", &n));
    return n;
  };
  auto job = (*store)->NewBatch();
  job->Put(Cf::kJobs, "job", "record");
  CKPT_ASSERT_OK((*store)->Write(job.get()));
  // Items' memtable is now newer than jobs' and meta's.
  ASSERT_TRUE(db->Flush(rocksdb::FlushOptions(), (*store)->handle(Cf::kItems)).ok());
  const uint64_t meta_entries = entries_in_memtable(Cf::kMeta);
  ASSERT_GT(meta_entries, 0u);
  ASSERT_EQ(entries_in_memtable(Cf::kJobs), 1u);
  // 20 MiB of items: more than the whole budget (16 MiB), less than the WAL limit (32 MiB).
  uint64_t index = 0;
  for (int b = 0; b < 80; ++b) {
    auto batch = (*store)->NewBatch();
    for (int i = 0; i < 64; ++i) {
      batch->Put(Cf::kItems, keys::Item("job", "s", keys::EncodeIndex(index++)),
                 std::string(4096, 'x'));
    }
    CKPT_ASSERT_OK((*store)->Write(batch.get()));
  }
  EXPECT_LT(entries_in_memtable(Cf::kItems), index);  // items flushed
  EXPECT_EQ(entries_in_memtable(Cf::kJobs), 1u);      // the small families did not
  EXPECT_EQ(entries_in_memtable(Cf::kMeta), meta_entries);
}

TEST(RocksDbStoreTest, SecondOpenOfTheSameDirIsRefusedClearly) {
  const std::string dir = testutil::NewTempDir("store");
  auto first = RocksDbStore::Open(OptionsFor(dir));
  CKPT_ASSERT_OK(first);
  EXPECT_THAT(RocksDbStore::Open(OptionsFor(dir)), StatusIs(absl::StatusCode::kFailedPrecondition,
                                                            HasSubstr("in use by another ckptd")));
}

TEST(RocksDbStoreTest, NewerSchemaIsRefusedAndLeftUntouched) {
  const std::string dir = testutil::NewTempDir("store");
  {
    auto store = RocksDbStore::Open(OptionsFor(dir));
    CKPT_ASSERT_OK(store);
    storage::v1::SchemaRecord newer;
    newer.set_version(kSchemaVersion + 1);
    auto batch = (*store)->NewBatch();
    batch->Put(Cf::kMeta, keys::kSchemaKey, newer.SerializeAsString());
    CKPT_ASSERT_OK((*store)->Write(batch.get()));
  }
  EXPECT_THAT(RocksDbStore::Open(OptionsFor(dir)),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("newer than this ckptd understands")));
  // Still refused the same way: nothing was rewritten.
  EXPECT_THAT(RocksDbStore::Open(OptionsFor(dir)),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr(absl::StrCat("schema version ", kSchemaVersion + 1))));
}

TEST(RocksDbStoreTest, DirectoryWithFilesButNoStoreIsRefused) {
  const std::string dir = testutil::NewTempDir("store");
  std::ofstream(dir + "/notes.txt") << "not a store";
  EXPECT_THAT(RocksDbStore::Open(OptionsFor(dir)),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("but no store")));
  std::ifstream still(dir + "/notes.txt");
  EXPECT_TRUE(still.good());
}

TEST(RocksDbStoreTest, DataDirThatIsAFileIsRefused) {
  const std::string dir = testutil::NewTempDir("store");
  std::ofstream(dir + "/file") << "x";
  EXPECT_THAT(RocksDbStore::Open(OptionsFor(dir + "/file")),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("data dir")));
}

// The items family inserts with a per-prefix hint and the outputs family keeps its
// memtable as a hash table (store.cc): keys written out of order, interleaved across
// steps, and paths that prefix each other must read back the same from the memtable,
// after a flush (the hash memtable sorted into an SST file) and after a reopen.
TEST(RocksDbStoreTest, OutOfOrderKeysReadBackFromMemtableFlushAndReopen) {
  const std::string dir = testutil::NewTempDir("store");
  constexpr uint64_t kItems = 3000;
  auto path_of = [](uint64_t i) { return absl::StrCat("/out/shard-", i % 7, "/item-", i); };
  auto check = [&](Store& store) {
    for (uint64_t i = 0; i < kItems; ++i) {
      auto output = store.Get(Cf::kOutputs, keys::Output(path_of(i)));
      CKPT_ASSERT_OK(output);
      ASSERT_TRUE(output->has_value()) << path_of(i);
      EXPECT_EQ(**output, absl::StrCat(i));
    }
    auto missing = store.Get(Cf::kOutputs, keys::Output("/out/shard-1"));
    CKPT_ASSERT_OK(missing);
    EXPECT_FALSE(missing->has_value());
    for (const char* step : {"s", "t"}) {
      uint64_t expected = 0;
      auto it = store.Scan(Cf::kItems, keys::StepPrefix("job", step));
      for (; it->Valid(); it->Next()) {
        EXPECT_EQ(it->value(), absl::StrCat(step, expected));
        ++expected;
      }
      CKPT_ASSERT_OK(it->status());
      EXPECT_EQ(expected, kItems);
    }
  };
  {
    auto store = RocksDbStore::Open(OptionsFor(dir));
    CKPT_ASSERT_OK(store);
    // Batches of consecutive indices, the batches in a shuffled order, both steps
    // interleaved: what several workers' completions look like.
    std::vector<uint64_t> starts;
    for (uint64_t begin = 0; begin < kItems; begin += 100) starts.push_back(begin);
    std::reverse(starts.begin() + 3, starts.end());
    std::swap(starts[0], starts[5]);
    for (uint64_t begin : starts) {
      auto batch = (*store)->NewBatch();
      for (uint64_t i = begin; i < begin + 100; ++i) {
        for (const char* step : {"t", "s"}) {
          batch->Put(Cf::kItems, keys::Item("job", step, keys::EncodeIndex(i)),
                     absl::StrCat(step, i));
        }
        batch->Put(Cf::kOutputs, keys::Output(path_of(i)), absl::StrCat(i));
      }
      CKPT_ASSERT_OK((*store)->Write(batch.get()));
    }
    check(**store);
    for (Cf cf : {Cf::kItems, Cf::kOutputs}) {
      ASSERT_TRUE((*store)->db()->Flush(rocksdb::FlushOptions(), (*store)->handle(cf)).ok());
    }
    check(**store);
  }
  auto reopened = RocksDbStore::Open(OptionsFor(dir));
  CKPT_ASSERT_OK(reopened);
  check(**reopened);
}

// RocksDB 7.8 shares a memtable's insert hints (memtable_insert_with_hint_prefix_extractor)
// between its point keys and its range deletions (facebook/rocksdb#12558, fixed in 9.2):
// a range deletion whose begin key had a point key's hint prefix was linked into the
// point keys' skiplist, so the range deleted nothing in memory, and replaying the WAL
// later tripped skiplist assertions. Here the job "expiring-10" is deleted right after
// a key of the job "expiring-1" that has its begin's hint prefix ("expi", all but 8
// bytes) and sorts just before it, as a retention sweep does.
TEST(RocksDbStoreTest, ARangeDeletionSharingAHintPrefixWithAPointKeyDeletesItsRange) {
  const std::string deleted = keys::JobPrefix("expiring-10");
  const std::string kept = keys::JobPrefix("expiring-1");
  auto check = [&](Store& store) {
    for (Cf cf : {Cf::kLogs, Cf::kStates}) {
      auto gone = store.Get(cf, deleted + "J");
      CKPT_ASSERT_OK(gone);
      EXPECT_FALSE(gone->has_value()) << "the deleted job's key is still there";
      auto there = store.Get(cf, kept + "J");
      CKPT_ASSERT_OK(there);
      EXPECT_TRUE(there->has_value()) << "the other job's key is gone";
      int keys = 0;
      for (auto it = store.Scan(cf, ""); it->Valid(); it->Next()) ++keys;
      EXPECT_EQ(keys, 1);
    }
  };
  CheckLiveAndReplayed(
      [&](Store& store) {
        for (const std::string& prefix : {deleted, kept}) {
          auto batch = store.NewBatch();
          batch->Put(Cf::kLogs, prefix + "J", "stats");
          batch->Put(Cf::kStates, prefix + "J", "state");
          CKPT_ASSERT_OK(store.Write(batch.get()));
        }
        auto batch = store.NewBatch();
        batch->DeleteRange(Cf::kLogs, deleted, keys::PrefixSuccessor(deleted));
        batch->DeleteRange(Cf::kStates, deleted, keys::PrefixSuccessor(deleted));
        CKPT_ASSERT_OK(store.Write(batch.get()));
      },
      check);
}

// A range may begin at a key that gets hints itself (no ckpt caller does that today):
// the store deletes that key and the range after it, so the range never takes a hint.
TEST(RocksDbStoreTest, ARangeBeginningAtAHintedKeyDeletesFromThatKeyOn) {
  const std::string job = keys::JobPrefix("expiring-1");
  auto check = [&](Store& store) {
    std::vector<std::string> left;
    for (auto it = store.Scan(Cf::kStates, job); it->Valid(); it->Next()) {
      left.push_back(std::string(it->key()));
    }
    EXPECT_THAT(left, ::testing::ElementsAre(job + "I", job + "K"));
  };
  CheckLiveAndReplayed(
      [&](Store& store) {
        // "I" last: the hint of their shared prefix then sits just before "J".
        for (const char* name : {"J", "K", "I"}) {
          auto batch = store.NewBatch();
          batch->Put(Cf::kStates, job + name, name);
          CKPT_ASSERT_OK(store.Write(batch.get()));
        }
        auto batch = store.NewBatch();
        batch->DeleteRange(Cf::kStates, job + "K", job + "J");  // empty: deletes nothing
        batch->DeleteRange(Cf::kStates, job + "J", job + "K");
        CKPT_ASSERT_OK(store.Write(batch.get()));
      },
      check);
}

// Schema 1 is a subset of schema 2 (and 3): it opens, and is marked as this version
// so that a schema-1 ckptd refuses it once it may hold grant records.
TEST(RocksDbStoreTest, SchemaOneStoreIsOpenedAndMarkedAsCurrent) {
  const std::string dir = testutil::NewTempDir("store");
  {
    auto store = RocksDbStore::Open(OptionsFor(dir));
    CKPT_ASSERT_OK(store);
    storage::v1::SchemaRecord old;
    old.set_version(1);
    old.set_created_by("ckptd");
    auto batch = (*store)->NewBatch();
    batch->Put(Cf::kMeta, keys::kSchemaKey, old.SerializeAsString());
    CKPT_ASSERT_OK((*store)->Write(batch.get()));
  }
  auto store = RocksDbStore::Open(OptionsFor(dir));
  CKPT_ASSERT_OK(store);
  EXPECT_EQ((*store)->schema_version(), kSchemaVersion);
  auto bytes = (*store)->Get(Cf::kMeta, keys::kSchemaKey);
  CKPT_ASSERT_OK(bytes);
  ASSERT_TRUE(bytes->has_value());
  storage::v1::SchemaRecord schema;
  ASSERT_TRUE(schema.ParseFromString(**bytes));
  EXPECT_EQ(schema.version(), kSchemaVersion);
  EXPECT_EQ(schema.created_by(), "ckptd");
}

// Writes a store the way a ckptd of `version` would have: its families only, and its
// schema record.
void WriteOldStore(const std::string& dir, uint32_t version,
                   const std::vector<std::string>& families) {
  rocksdb::DBOptions options;
  options.create_if_missing = true;
  options.create_missing_column_families = true;
  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors = {
      {rocksdb::kDefaultColumnFamilyName, rocksdb::ColumnFamilyOptions()}};
  for (const std::string& name : families)
    descriptors.emplace_back(name, rocksdb::ColumnFamilyOptions());
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  ASSERT_TRUE(rocksdb::DB::Open(options, dir, descriptors, &handles, &raw).ok());
  std::unique_ptr<rocksdb::DB> db(raw);
  storage::v1::SchemaRecord schema;
  schema.set_version(version);
  schema.set_created_by("ckptd");
  ASSERT_TRUE(
      db->Put(rocksdb::WriteOptions(), handles[1], keys::kSchemaKey, schema.SerializeAsString())
          .ok());
  ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), handles[2], "job-1", "record").ok());
  for (auto* h : handles) db->DestroyColumnFamilyHandle(h);
}

const std::vector<std::string> kSchemaTwoFamilies = {
    keys::kMetaCf,    keys::kJobsCf,   keys::kItemsCf,  keys::kSchedCf,
    keys::kWorkersCf, keys::kStatesCf, keys::kOutputsCf};

// Opens the older store at `dir`, which must come up marked as this version with its
// job record; nullptr if it does not open.
std::unique_ptr<RocksDbStore> OpenUpgraded(const std::string& dir) {
  auto store = RocksDbStore::Open(OptionsFor(dir));
  EXPECT_TRUE(store.ok()) << store.status();
  if (!store.ok()) return nullptr;
  EXPECT_EQ((*store)->schema_version(), kSchemaVersion);
  auto job = (*store)->Get(Cf::kJobs, "job-1");
  EXPECT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job.ok() ? job->value_or("") : "", "record");
  return std::move(*store);
}

// Schema 3 added the logs and completions families: a schema-2 store gets them, empty,
// keeps its data, and is marked as this version (4 only added runs, in existing families).
TEST(RocksDbStoreTest, SchemaTwoStoreGetsTheNewFamiliesAndIsMarkedCurrent) {
  const std::string dir = testutil::NewTempDir("store");
  WriteOldStore(dir, 2, kSchemaTwoFamilies);
  {
    std::unique_ptr<RocksDbStore> store = OpenUpgraded(dir);
    ASSERT_NE(store, nullptr);
    for (Cf cf : {Cf::kLogs, Cf::kCompletions}) {
      auto it = store->Scan(cf, "");
      EXPECT_FALSE(it->Valid());
      auto batch = store->NewBatch();
      batch->Put(cf, "k", "v");
      CKPT_ASSERT_OK(store->Write(batch.get()));
    }
  }
  auto reopened = RocksDbStore::Open(OptionsFor(dir));
  CKPT_ASSERT_OK(reopened);
  auto log = (*reopened)->Get(Cf::kLogs, "k");
  CKPT_ASSERT_OK(log);
  EXPECT_EQ(log->value_or(""), "v");
}

// Schema 3 to 4 only adds runs of items (item records and completion entries that
// cover several indices), 4 to 5 runs of leases in grant records: a schema-3 or -4 store
// opens as it is and is marked current.
TEST(RocksDbStoreTest, SchemaThreeAndFourStoresAreMarkedCurrent) {
  for (uint32_t version : {3u, 4u}) {
    SCOPED_TRACE(version);
    const std::string dir = testutil::NewTempDir("store");
    std::vector<std::string> families = kSchemaTwoFamilies;
    families.push_back(keys::kLogsCf);
    families.push_back(keys::kCompletionsCf);
    WriteOldStore(dir, version, families);
    EXPECT_NE(OpenUpgraded(dir), nullptr);
  }
}

// A store that says it is schema 3 must have the schema-3 families.
TEST(RocksDbStoreTest, ASchemaThreeStoreWithoutItsFamiliesIsRefused) {
  const std::string dir = testutil::NewTempDir("store");
  std::vector<std::string> families = kSchemaTwoFamilies;
  families.push_back(keys::kLogsCf);
  WriteOldStore(dir, 3, families);
  EXPECT_THAT(RocksDbStore::Open(OptionsFor(dir)),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("without ckpt's column family \"completions\"")));
}

}  // namespace
}  // namespace ckpt
