// ckptd started on a damaged, foreign, newer or busy store: it refuses with one clear
// line and exit code 1, and leaves every file of the store byte for byte as it was; or,
// for a torn WAL tail (a crash mid-append), it recovers what came before the tear.
//
// The stores are real: written by ckptd itself (a job, items, results, a state blob),
// restarted once so that RocksDB has flushed them into SST files, then damaged.
#include <sys/wait.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "ckpt/storage/v1/records.pb.h"
#include "ckpt/v1/checkpoint.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "rocksdb/db.h"
#include "service/store/keys.h"
#include "service/store/store.h"
#include "tests/durability/ckptd_process.h"
#include "tests/durability/wire.h"
#include "tests/testing/temp_dir.h"

namespace ckpt {
namespace {

namespace fs = std::filesystem;
using ::ckpt::testutil::CkptdExit;
using ::ckpt::testutil::CkptdProcess;
using ::testing::HasSubstr;
using Stub = v1::Checkpoint::Stub;

constexpr char kJob[] = "base";

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

void WriteFile(const fs::path& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

// Every file of a directory tree and its bytes.
std::map<std::string, std::string> Snapshot(const std::string& dir) {
  std::map<std::string, std::string> files;
  for (const auto& entry : fs::recursive_directory_iterator(dir)) {
    if (entry.is_regular_file()) {
      files[fs::relative(entry.path(), dir).string()] = ReadFile(entry.path());
    }
  }
  return files;
}

// The names of the files that differ between two snapshots.
std::vector<std::string> Changed(const std::map<std::string, std::string>& before,
                                 const std::map<std::string, std::string>& after) {
  std::vector<std::string> changed;
  for (const auto& [name, bytes] : before) {
    auto it = after.find(name);
    if (it == after.end()) {
      changed.push_back(name + " (deleted)");
    } else if (it->second != bytes) {
      changed.push_back(name + " (rewritten)");
    }
  }
  for (const auto& [name, bytes] : after) {
    if (!before.count(name)) changed.push_back(name + " (created)");
  }
  return changed;
}

// Files of the store whose name ends with `suffix`, largest first.
std::vector<fs::path> FilesEndingWith(const std::string& dir, const std::string& suffix) {
  std::vector<fs::path> found;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (absl::EndsWith(entry.path().filename().string(), suffix)) found.push_back(entry.path());
  }
  std::sort(found.begin(), found.end(), [](const fs::path& a, const fs::path& b) {
    return fs::file_size(a) > fs::file_size(b);
  });
  return found;
}

// The WAL written last (RocksDB numbers files in order).
fs::path LatestWal(const std::string& dir) {
  fs::path latest;
  for (const fs::path& wal : FilesEndingWith(dir, ".log")) {
    if (latest.empty() || wal.filename().string() > latest.filename().string()) latest = wal;
  }
  return latest;
}

// Record-mode completions of items [begin, end), one write each.
void CompleteRange(Stub& stub, uint64_t begin, uint64_t end) {
  for (uint64_t i = begin; i < end; ++i) {
    v1::CompleteItemsRequest request;
    request.set_job_id(kJob);
    v1::Completion* item = request.add_items();
    item->mutable_key()->set_index(i);
    item->mutable_result()->set_payload(absl::StrCat("result ", i));
    ASSERT_TRUE(testutil::WireCall(stub, &Stub::CompleteItems, request).ok());
  }
}

class StartupTest : public ::testing::Test {
 protected:
  // One store for the suite: a job of 100 items, 50 completed, a state blob; written,
  // then reopened once so that it sits in SST files.
  static void SetUpTestSuite() {
    base_ = new std::string(testutil::NewTempDir("base"));
    for (int run = 0; run < 2; ++run) {
      auto server = CkptdProcess::Start(*base_, {});
      ASSERT_TRUE(server.ok()) << server.status();
      if (run == 0) {
        std::unique_ptr<Stub> stub = (*server)->NewStub();
        v1::CreateJobRequest create;
        create.set_job_id(kJob);
        ASSERT_TRUE(testutil::WireCall(*stub, &Stub::CreateJob, create).ok());
        v1::AddItemsRequest add;
        add.set_job_id(kJob);
        add.add_ranges()->set_end(100);
        ASSERT_TRUE(testutil::WireCall(*stub, &Stub::AddItems, add).ok());
        CompleteRange(*stub, 0, 50);
        v1::PutStateRequest put;
        put.set_job_id(kJob);
        put.set_name("cursor");
        put.set_value("41000");
        ASSERT_TRUE(testutil::WireCall(*stub, &Stub::PutState, put).ok());
      }
      ASSERT_EQ((*server)->Stop(), 0);
    }
  }
  static void TearDownTestSuite() { delete base_; }

  // A copy of the base store for one test.
  std::string CopyOfBase() {
    const std::string dir = testutil::NewTempDir("store");
    fs::copy(*base_, dir, fs::copy_options::recursive | fs::copy_options::overwrite_existing);
    return dir;
  }

  // ckptd refuses `dir` with exit code 1 and one line containing `message`, and leaves
  // every file as it was.
  void ExpectRefusedUntouched(const std::string& dir, const std::string& message) {
    const auto before = Snapshot(dir);
    const CkptdExit exit = testutil::RunCkptdExpectingExit(dir, {});
    EXPECT_TRUE(WIFEXITED(exit.wait_status) && WEXITSTATUS(exit.wait_status) == 1)
        << exit.wait_status << ": " << exit.stderr_text;
    std::vector<std::string> lines = absl::StrSplit(exit.stderr_text, '\n', absl::SkipEmpty());
    ASSERT_EQ(lines.size(), 1u) << exit.stderr_text;
    std::cerr << "refused: " << lines[0] << "\n";
    EXPECT_THAT(lines[0], HasSubstr("cannot start: "));
    EXPECT_THAT(lines[0], HasSubstr(message));
    EXPECT_THAT(lines[0], HasSubstr(dir));
    EXPECT_THAT(Changed(before, Snapshot(dir)), ::testing::IsEmpty());
  }

  static std::string* base_;
};

std::string* StartupTest::base_ = nullptr;

TEST_F(StartupTest, CurrentNamingAMissingManifestIsRefused) {
  const std::string dir = CopyOfBase();
  WriteFile(fs::path(dir) / "CURRENT", "MANIFEST-999999\n");
  ExpectRefusedUntouched(dir, "is corrupt");
}

TEST_F(StartupTest, GarbledCurrentIsRefused) {
  const std::string dir = CopyOfBase();
  WriteFile(fs::path(dir) / "CURRENT", "\x01\x02 not a file name");
  ExpectRefusedUntouched(dir, "is corrupt");
}

TEST_F(StartupTest, CorruptManifestIsRefused) {
  const std::string dir = CopyOfBase();
  fs::path manifest;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (absl::StartsWith(entry.path().filename().string(), "MANIFEST-")) manifest = entry.path();
  }
  ASSERT_FALSE(manifest.empty());
  std::string bytes = ReadFile(manifest);
  ASSERT_GT(bytes.size(), 64u);
  for (size_t i = bytes.size() / 2; i < bytes.size() / 2 + 16; ++i) bytes[i] ^= 0x5a;
  WriteFile(manifest, bytes);
  ExpectRefusedUntouched(dir, "is corrupt");
}

TEST_F(StartupTest, SstWithACorruptFooterIsRefused) {
  const std::string dir = CopyOfBase();
  const auto ssts = FilesEndingWith(dir, ".sst");
  ASSERT_FALSE(ssts.empty());
  for (const fs::path& sst : ssts) {
    std::string bytes = ReadFile(sst);
    for (size_t i = bytes.size() - 8; i < bytes.size(); ++i) bytes[i] ^= 0xff;  // magic
    WriteFile(sst, bytes);
  }
  ExpectRefusedUntouched(dir, "is corrupt");
}

TEST_F(StartupTest, TruncatedSstIsRefused) {
  const std::string dir = CopyOfBase();
  const auto ssts = FilesEndingWith(dir, ".sst");
  ASSERT_FALSE(ssts.empty());
  fs::resize_file(ssts.front(), fs::file_size(ssts.front()) / 2);
  ExpectRefusedUntouched(dir, "is corrupt");
}

TEST_F(StartupTest, MissingSstIsRefused) {
  const std::string dir = CopyOfBase();
  const auto ssts = FilesEndingWith(dir, ".sst");
  ASSERT_FALSE(ssts.empty());
  fs::remove(ssts.front());
  ExpectRefusedUntouched(dir, "is corrupt");
}

TEST_F(StartupTest, NewerSchemaIsRefused) {
  const std::string dir = CopyOfBase();
  {
    // Written the way a newer ckptd would: through RocksDB, to meta/schema.
    rocksdb::DBOptions options;
    std::vector<std::string> names;
    ASSERT_TRUE(rocksdb::DB::ListColumnFamilies(options, dir, &names).ok());
    std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
    for (const std::string& name : names)
      descriptors.emplace_back(name, rocksdb::ColumnFamilyOptions());
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    rocksdb::DB* db = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(options, dir, descriptors, &handles, &db).ok());
    storage::v1::SchemaRecord newer;
    newer.set_version(kSchemaVersion + 1);
    for (size_t i = 0; i < names.size(); ++i) {
      if (names[i] == keys::kMetaCf) {
        ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), handles[i], keys::kSchemaKey,
                            newer.SerializeAsString())
                        .ok());
      }
    }
    for (auto* h : handles) db->DestroyColumnFamilyHandle(h);
    delete db;
  }
  ExpectRefusedUntouched(dir, absl::StrCat("schema version ", kSchemaVersion + 1));
}

TEST_F(StartupTest, RocksDbStoreThatIsNotCkptsIsRefused) {
  const std::string dir = testutil::NewTempDir("foreign");
  {
    rocksdb::Options options;
    options.create_if_missing = true;
    rocksdb::DB* db = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(options, dir, &db).ok());
    ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), "their", "data").ok());
    delete db;
  }
  ExpectRefusedUntouched(dir, "not a ckpt store");
}

TEST_F(StartupTest, StoreHeldByAnotherCkptdIsRefused) {
  const std::string dir = CopyOfBase();
  auto first = CkptdProcess::Start(dir, {});
  ASSERT_TRUE(first.ok()) << first.status();
  ExpectRefusedUntouched(dir, "in use by another ckptd");
  // The first one is unharmed.
  auto job = testutil::GetJob(*(*first)->NewStub(), kJob);
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->progress().completed(), 50u);
}

// A crash mid-append leaves a torn last record in the WAL: ckptd drops it, as RocksDB's
// point-in-time recovery does, and keeps everything before it.
TEST_F(StartupTest, TornWalTailIsRecovered) {
  const std::string dir = CopyOfBase();
  {
    auto server = CkptdProcess::Start(dir, {});
    ASSERT_TRUE(server.ok()) << server.status();
    CompleteRange(*(*server)->NewStub(), 50, 60);  // ten writes, in the WAL only
    (*server)->Kill();
    (*server)->Wait();
  }
  const fs::path wal = LatestWal(dir);
  ASSERT_FALSE(wal.empty());
  const uintmax_t size = fs::file_size(wal);
  ASSERT_GT(size, 64u);
  fs::resize_file(wal, size - 10);  // tears the last record (item 59)

  auto server = CkptdProcess::Start(dir, {});
  ASSERT_TRUE(server.ok()) << server.status();
  std::unique_ptr<Stub> stub = (*server)->NewStub();
  auto job = testutil::GetJob(*stub, kJob);
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->progress().completed(), 59u);
  EXPECT_EQ(job->progress().pending(), 41u);
  for (uint64_t i = 0; i < 59; ++i) {
    auto item = testutil::GetItem(*stub, kJob, i);
    ASSERT_TRUE(item.ok()) << item.status();
    EXPECT_EQ(item->result().payload(), absl::StrCat("result ", i));
  }
  auto torn = testutil::GetItem(*stub, kJob, 59);
  ASSERT_TRUE(torn.ok()) << torn.status();
  EXPECT_EQ(torn->state(), v1::ITEM_STATE_PENDING);
  // And it writes again.
  CompleteRange(*stub, 59, 60);
}

// Garbage appended after the last whole record (a torn header) is dropped too.
TEST_F(StartupTest, GarbageAfterTheLastWalRecordIsDropped) {
  const std::string dir = CopyOfBase();
  {
    auto server = CkptdProcess::Start(dir, {});
    ASSERT_TRUE(server.ok()) << server.status();
    CompleteRange(*(*server)->NewStub(), 50, 55);
    (*server)->Kill();
    (*server)->Wait();
  }
  const fs::path wal = LatestWal(dir);
  ASSERT_FALSE(wal.empty());
  std::ofstream(wal, std::ios::binary | std::ios::app) << std::string("\x7f\x01\x02", 3);
  auto server = CkptdProcess::Start(dir, {});
  ASSERT_TRUE(server.ok()) << server.status();
  auto job = testutil::GetJob(*(*server)->NewStub(), kJob);
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->progress().completed(), 55u);
}

// Ten completions (items 50..59) that are in the WAL only: ckptd is killed after them.
void WriteTenToTheWal(const std::string& dir) {
  auto server = CkptdProcess::Start(dir, {});
  ASSERT_TRUE(server.ok()) << server.status();
  CompleteRange(*(*server)->NewStub(), 50, 60);
  (*server)->Kill();
  (*server)->Wait();
}

uint64_t CompletedItems(const CkptdProcess& server) {
  auto job = testutil::GetJob(*server.NewStub(), kJob);
  EXPECT_TRUE(job.ok()) << job.status();
  return job.ok() ? job->progress().completed() : 0;
}

// Damage in the WAL's middle (a record's bytes, not a torn tail) is refused, and the
// refusal says how to start anyway; with --accept_wal_loss ckptd keeps what came before
// the damage and says how much it dropped.
TEST_F(StartupTest, WalDamagedBeforeItsTailIsRefused) {
  const std::string dir = CopyOfBase();
  WriteTenToTheWal(dir);
  const fs::path wal = LatestWal(dir);
  std::string bytes = ReadFile(wal);
  const size_t at = bytes.find("result 54");
  ASSERT_NE(at, std::string::npos);
  for (size_t i = at; i < at + 8; ++i) bytes[i] ^= 0x5a;
  WriteFile(wal, bytes);
  ExpectRefusedUntouched(dir, "damaged write-ahead log");
  ExpectRefusedUntouched(dir, "start with --accept_wal_loss");

  auto server = CkptdProcess::Start(dir, {"--accept_wal_loss"});
  ASSERT_TRUE(server.ok()) << server.status();
  EXPECT_EQ(CompletedItems(**server), 54u);
  EXPECT_TRUE((*server)
                  ->AwaitStderrLine("--accept_wal_loss: started without the damaged write-ahead "
                                    "log record and the ",
                                    absl::Seconds(60))
                  .ok())
      << (*server)->Stderr();
  for (uint64_t i = 0; i < 54; ++i) {
    auto item = testutil::GetItem(*(*server)->NewStub(), kJob, i);
    ASSERT_TRUE(item.ok()) << item.status();
    EXPECT_EQ(item->result().payload(), absl::StrCat("result ", i));
  }
}

// A damaged record length that runs past the end of the file reads, to RocksDB, as a
// torn tail, in every recovery mode; whole records after it show it is not one.
TEST_F(StartupTest, WalRecordLengthDamagedBeforeItsTailIsRefused) {
  const std::string dir = CopyOfBase();
  WriteTenToTheWal(dir);
  const fs::path wal = LatestWal(dir);
  std::string bytes = ReadFile(wal);
  // The fifth record's header (7 bytes: checksum, length, type): one write per record.
  size_t at = 0;
  for (int i = 0; i < 4; ++i) {
    ASSERT_LT(at + 7, bytes.size());
    at += 7 + (static_cast<uint8_t>(bytes[at + 4]) | static_cast<uint8_t>(bytes[at + 5]) << 8);
  }
  ASSERT_LT(at + 7, bytes.size());
  bytes[at + 4] = '\xff';
  bytes[at + 5] = '\x7f';
  WriteFile(wal, bytes);
  ExpectRefusedUntouched(dir, "damaged write-ahead log");

  auto server = CkptdProcess::Start(dir, {"--accept_wal_loss"});
  ASSERT_TRUE(server.ok()) << server.status();
  EXPECT_LT(CompletedItems(**server), 60u);
  EXPECT_GE(CompletedItems(**server), 50u);
  EXPECT_TRUE((*server)->AwaitStderrLine("cannot be known", absl::Seconds(60)).ok())
      << (*server)->Stderr();
}

// The newest WAL deleted (RocksDB's MANIFEST tracks only closed ones) is refused too.
TEST_F(StartupTest, MissingNewestWalIsRefused) {
  const std::string dir = CopyOfBase();
  WriteTenToTheWal(dir);
  ASSERT_TRUE(fs::remove(LatestWal(dir)));
  ExpectRefusedUntouched(dir, "missing its newest write-ahead log");

  auto server = CkptdProcess::Start(dir, {"--accept_wal_loss"});
  ASSERT_TRUE(server.ok()) << server.status();
  EXPECT_EQ(CompletedItems(**server), 50u);
  EXPECT_TRUE(
      (*server)
          ->AwaitStderrLine("started without its missing newest write-ahead log", absl::Seconds(60))
          .ok())
      << (*server)->Stderr();
}

// The SST files of column family `family`, from RocksDB's own list.
std::vector<fs::path> FamilySsts(const std::string& dir, const std::string& family) {
  rocksdb::DBOptions options;
  std::vector<std::string> names;
  EXPECT_TRUE(rocksdb::DB::ListColumnFamilies(options, dir, &names).ok());
  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  for (const std::string& name : names)
    descriptors.emplace_back(name, rocksdb::ColumnFamilyOptions());
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* db = nullptr;
  EXPECT_TRUE(rocksdb::DB::OpenForReadOnly(options, dir, descriptors, &handles, &db).ok());
  std::vector<fs::path> ssts;
  if (db == nullptr) return ssts;
  std::vector<rocksdb::LiveFileMetaData> files;
  db->GetLiveFilesMetaData(&files);
  for (const auto& file : files) {
    if (file.column_family_name == family)
      ssts.push_back(fs::path(dir) / fs::path(file.name).filename());
  }
  for (auto* h : handles) db->DestroyColumnFamilyHandle(h);
  delete db;
  return ssts;
}

// A damaged data block of a family the load reads (jobs, sched, workers) is found by the
// load, which runs on the read-only instance before anything is written: refused like
// any damage, with the store left as it was.
TEST_F(StartupTest, CorruptDataBlockFoundByTheLoadIsRefusedUntouched) {
  int families_tried = 0;
  for (const std::string family : {keys::kJobsCf, keys::kSchedCf, keys::kWorkersCf}) {
    const std::string dir = CopyOfBase();
    const std::vector<fs::path> ssts = FamilySsts(dir, family);
    if (ssts.empty()) continue;  // the base store has no record there
    ++families_tried;
    for (const fs::path& sst : ssts) {
      std::string bytes = ReadFile(sst);
      ASSERT_GT(bytes.size(), 64u);
      for (size_t i = 8; i < 24; ++i) bytes[i] ^= 0x5a;  // inside the first data block
      WriteFile(sst, bytes);
    }
    SCOPED_TRACE(family);
    ExpectRefusedUntouched(dir, "ckptd will not modify it");
  }
  EXPECT_GE(families_tried, 1);
}

}  // namespace
}  // namespace ckpt
