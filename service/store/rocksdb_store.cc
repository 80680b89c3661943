#include "service/store/rocksdb_store.h"

#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <system_error>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "ckpt/storage/v1/records.pb.h"
#include "rocksdb/db.h"
#include "rocksdb/filter_policy.h"
#include "rocksdb/listener.h"
#include "rocksdb/memtablerep.h"
#include "rocksdb/perf_level.h"
#include "rocksdb/slice_transform.h"
#include "rocksdb/table.h"
#include "rocksdb/write_batch.h"
#include "service/common/log.h"
#include "service/common/status_macros.h"
#include "service/store/keys.h"

namespace ckpt {
namespace {

namespace fs = std::filesystem;

// Maps a RocksDB status to absl: NoSpace -> RESOURCE_EXHAUSTED, Corruption ->
// DATA_LOSS, Busy/TryAgain -> UNAVAILABLE, NotFound -> NOT_FOUND, others INTERNAL.
// `context` says what was being done ("write", "read job").
absl::Status FromRocksStatus(const rocksdb::Status& status, absl::string_view context) {
  if (status.ok()) return absl::OkStatus();
  const std::string message = absl::StrCat(context, ": ", status.ToString());
  if (status.IsNoSpace() || status.subcode() == rocksdb::Status::kNoSpace) {
    return absl::ResourceExhaustedError(absl::StrCat(context, ": the data dir's disk is full (",
                                                     status.ToString(), "); free space and retry"));
  }
  if (status.IsCorruption()) return absl::DataLossError(message);
  if (status.IsBusy() || status.IsTryAgain() || status.IsShutdownInProgress()) {
    return absl::UnavailableError(message);
  }
  if (status.IsNotFound()) return absl::NotFoundError(message);
  return absl::InternalError(message);
}

// Column family names in Cf order.
const char* const kCfNames[] = {keys::kMetaCf,    keys::kJobsCf,    keys::kItemsCf,
                                keys::kSchedCf,   keys::kWorkersCf, keys::kStatesCf,
                                keys::kOutputsCf, keys::kLogsCf,    keys::kCompletionsCf};
static_assert(sizeof(kCfNames) / sizeof(kCfNames[0]) == kNumCfs, "one name per Cf");

// The schema version that introduced each family, in Cf order: a store of an older
// version lacks it, and opening the store for writing creates it (empty) before the
// schema record is marked as this version.
const uint32_t kCfSince[] = {1, 1, 1, 1, 1, 1, 1, 3, 3};
static_assert(sizeof(kCfSince) / sizeof(kCfSince[0]) == kNumCfs, "one version per Cf");

// RocksDB's info log. Its own LOG writer aborts the process (Debian builds RocksDB with
// assertions on) when it writes again after a failed write, which is what happens on a
// full disk; and it renames LOG to LOG.old.* on every open, even one that is refused.
// This one appends warnings to <data_dir>/LOG with stdio and ignores write errors.
// Until Release() (called once the store is open) it only holds the lines, so an open
// that is refused leaves no trace: its error says what RocksDB would have logged.
// Thread-safe.
class FileLogger : public rocksdb::Logger {
 public:
  explicit FileLogger(std::string path)
      : rocksdb::Logger(rocksdb::InfoLogLevel::WARN_LEVEL), path_(std::move(path)) {}
  ~FileLogger() override {
    absl::MutexLock lock(&mu_);
    if (file_ != nullptr) std::fclose(file_);
  }

  // Writes the held lines, and from now on every line, to the file.
  void Release() {
    absl::MutexLock lock(&mu_);
    released_ = true;
    for (const std::string& line : held_) Append(line);
    held_.clear();
  }

  using rocksdb::Logger::Logv;
  void Logv(const char* format, va_list ap) override {
    timeval now{};
    ::gettimeofday(&now, nullptr);
    tm local{};
    ::localtime_r(&now.tv_sec, &local);
    char stamp[32];
    std::strftime(stamp, sizeof(stamp), "%Y/%m/%d-%H:%M:%S", &local);
    char text[1024];
    std::vsnprintf(text, sizeof(text), format, ap);
    std::string line =
        absl::StrCat(stamp, ".", absl::Dec(now.tv_usec, absl::kZeroPad6), " ", text, "\n");
    absl::MutexLock lock(&mu_);
    if (released_) {
      Append(line);
    } else if (held_.size() < 1000) {
      held_.push_back(std::move(line));
    }
  }
  // The options dump RocksDB writes at every open.
  void LogHeader(const char* format, va_list ap) override {}

 private:
  void Append(const std::string& line) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (file_ == nullptr) file_ = std::fopen(path_.c_str(), "ae");
    if (file_ == nullptr) return;
    std::fwrite(line.data(), 1, line.size(), file_);
    std::fflush(file_);
  }

  const std::string path_;
  absl::Mutex mu_;
  bool released_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::string> held_ ABSL_GUARDED_BY(mu_);
  std::FILE* file_ ABSL_GUARDED_BY(mu_) = nullptr;
};

// For the read-only look at a store before opening it: writes nothing anywhere.
class NullLogger : public rocksdb::Logger {
 public:
  using rocksdb::Logger::Logv;
  void Logv(const char* format, va_list ap) override {}
};

// RocksDB's automatic recovery from a full disk waits until a whole write buffer
// (64 MiB) is free, polling every 5 s, and refuses a manual DB::Resume() meanwhile.
// Store::Write resumes on the next write instead, as soon as any space is free.
class ResumeOnNextWrite : public rocksdb::EventListener {
 public:
  void OnErrorRecoveryBegin(rocksdb::BackgroundErrorReason reason, rocksdb::Status bg_error,
                            bool* auto_recovery) override {
    *auto_recovery = false;
  }
};

// Creates the directory if needed, private to its owner (0700: it holds every job's
// config, params, results and states), and checks that we can write in it. An existing
// directory keeps its mode; if others can read it, a warning says how to fix that.
absl::Status PrepareDirectory(const std::string& path) {
  std::error_code ec;
  const fs::path dir = fs::path(path).lexically_normal();
  if (dir.has_parent_path() && !dir.parent_path().empty()) {
    fs::create_directories(dir.parent_path(), ec);
  }
  if (!ec && ::mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) {
    ec = std::error_code(errno, std::generic_category());
  }
  if (ec) {
    return absl::FailedPreconditionError(absl::StrCat(
        "data dir ", path, " cannot be created: ", ec.message(), "; choose a writable --data_dir"));
  }
  if (!fs::is_directory(path, ec)) {
    return absl::FailedPreconditionError(
        absl::StrCat("data dir ", path, " is not a directory; choose another --data_dir"));
  }
  if (::access(path.c_str(), W_OK | X_OK) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("data dir ", path, " is not writable: ", std::strerror(errno),
                     "; fix its permissions or choose another --data_dir"));
  }
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && (st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
    LogLine(
        absl::StrFormat("warning: data dir %s is open to other users (mode %04o): they can "
                        "read every job's data; run chmod 700 %s",
                        path, st.st_mode & 07777, path));
  }
  return absl::OkStatus();
}

// A directory with files but no CURRENT is a damaged store or not a store: creating a
// fresh store there could overwrite what is left, so refuse. Files named "ckptd.*" are not
// the store's (STORAGE_FORMAT.md): a local-mode launcher keeps its lock, socket and log
// there, and they may come before the store.
absl::StatusOr<bool> StoreExists(const std::string& path) {
  std::error_code ec;
  if (fs::exists(fs::path(path) / "CURRENT", ec)) return true;
  for (const auto& entry : fs::directory_iterator(path, ec)) {
    if (absl::StartsWith(entry.path().filename().string(), "ckptd.")) continue;
    return absl::FailedPreconditionError(
        absl::StrCat("data dir ", path, " holds files (", entry.path().filename().string(),
                     ", ...) but no store (its CURRENT file is missing); ckptd will not touch it: "
                     "restore the store or choose an empty --data_dir"));
  }
  if (ec) {
    return absl::FailedPreconditionError(
        absl::StrCat("data dir ", path, " cannot be read: ", ec.message()));
  }
  return false;
}

absl::Status OpenError(const rocksdb::Status& s, const std::string& path) {
  const std::string detail = s.ToString();
  if (s.IsIOError() && absl::StrContains(detail, "lock")) {
    return absl::FailedPreconditionError(
        absl::StrCat("data dir ", path,
                     " is in use by another ckptd (its LOCK file is held): stop "
                     "that ckptd or choose another --data_dir"));
  }
  // A file the store needs that is gone (a MANIFEST named by CURRENT, an SST file named
  // by the MANIFEST) is damage, like a checksum mismatch.
  if (s.IsCorruption() || s.IsPathNotFound() || s.IsNotFound()) {
    return absl::DataLossError(
        absl::StrCat("store at ", path, " is corrupt (", detail,
                     "); ckptd will not modify it: restore it from a backup or move it aside"));
  }
  return FromRocksStatus(s, absl::StrCat("open store at ", path));
}

// A key without its last 8 bytes: for an item key `SP(job, step) 0x01 BE64(index)`,
// its step's index prefix; for a lease `... 'L' 0x01 BE64(index)` likewise. Used only as
// a memtable insert hint: the memtable remembers where the last insert under each
// prefix ended and starts the next one there, so a batch of consecutive indices walks
// the skiplist from its previous position instead of descending from the top for each
// key. Not persisted and not used for reads (no prefix_extractor), so any key shape is
// correct; keys of 8 bytes or fewer simply get no hint.
class AllButIndexTransform : public rocksdb::SliceTransform {
 public:
  static constexpr size_t kIndexBytes = 8;
  const char* Name() const override { return "ckpt.AllButIndex"; }
  rocksdb::Slice Transform(const rocksdb::Slice& key) const override {
    return rocksdb::Slice(key.data(), key.size() - kIndexBytes);
  }
  bool InDomain(const rocksdb::Slice& key) const override { return key.size() > kIndexBytes; }
};

rocksdb::ColumnFamilyOptions FamilyOptions(const std::shared_ptr<rocksdb::Cache>& cache,
                                           const std::string& name) {
  rocksdb::ColumnFamilyOptions cf;
  if (name == keys::kOutputsCf) {
    // Output paths arrive in any order and are only ever looked up whole (FindOutput),
    // never iterated: a hash table of small skiplists, one bucket per path, inserts in
    // O(1) where the default skiplist descends through every path written so far.
    // Flushing sorts the memtable, on RocksDB's background thread.
    constexpr size_t kOutputBuckets = 1 << 18;
    cf.prefix_extractor.reset(rocksdb::NewNoopTransform());
    cf.memtable_factory.reset(rocksdb::NewHashSkipListRepFactory(kOutputBuckets));
  }
  // The engine writes one batch at a time, so RocksDB inserts it sequentially and can
  // use the hint; measured -38% instructions in MemTable::Add (docs/performance.md).
  cf.memtable_insert_with_hint_prefix_extractor = std::make_shared<AllButIndexTransform>();
  rocksdb::BlockBasedTableOptions table;
  table.block_cache = cache;
  // Point lookups (an item's record, a job) skip SST files that cannot hold the key.
  table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  cf.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  return cf;
}

// Reads the schema record, writing it on a new store. With `upgrade`, an older store
// is marked as this version (every older format is a subset of this one's: schema 2
// only added LeaseGrantRecords, 3 two families), so an older ckptd refuses it from then
// on.
absl::StatusOr<uint32_t> CheckSchema(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* meta,
                                     bool is_new, bool upgrade, const std::string& path) {
  std::string value;
  rocksdb::Status s = db->Get(rocksdb::ReadOptions(), meta, keys::kSchemaKey, &value);
  if (s.IsNotFound()) {
    if (!is_new) {
      return absl::FailedPreconditionError(
          absl::StrCat("data dir ", path,
                       " holds a RocksDB store that is not ckpt's (no schema "
                       "record); choose another --data_dir"));
    }
    storage::v1::SchemaRecord schema;
    schema.set_version(kSchemaVersion);
    schema.set_created_by("ckptd");
    schema.set_create_time_micros(absl::ToUnixMicros(absl::Now()));
    rocksdb::WriteOptions sync;
    sync.sync = true;
    s = db->Put(sync, meta, keys::kSchemaKey, schema.SerializeAsString());
    if (!s.ok()) return FromRocksStatus(s, "write schema record");
    return kSchemaVersion;
  }
  if (!s.ok()) return FromRocksStatus(s, "read schema record");
  storage::v1::SchemaRecord schema;
  if (!schema.ParseFromString(value)) {
    return absl::DataLossError(
        absl::StrCat("store at ", path,
                     " has an unreadable schema record; ckptd will not modify "
                     "it: restore it from a backup or move it aside"));
  }
  if (schema.version() > kSchemaVersion) {
    return absl::FailedPreconditionError(
        absl::StrCat("store at ", path, " has schema version ", schema.version(),
                     ", newer than this ckptd understands (", kSchemaVersion,
                     "): run a newer ckptd; the store was not changed"));
  }
  if (upgrade && schema.version() < kSchemaVersion) {
    LogLine(absl::StrCat("store at ", path, ": schema version ", schema.version(), " -> ",
                         kSchemaVersion));
    schema.set_version(kSchemaVersion);
    rocksdb::WriteOptions sync;
    sync.sync = true;
    s = db->Put(sync, meta, keys::kSchemaKey, schema.SerializeAsString());
    if (!s.ok()) return FromRocksStatus(s, "write schema record");
  }
  return schema.version();
}

// Looks at an existing store read-only, before the read-write open, which would create
// missing column families, flush the WAL into new files, rotate RocksDB's MANIFEST and
// OPTIONS: a store ckptd refuses must be left exactly as it was. Checks that RocksDB can
// open it (CURRENT, MANIFEST, the WAL up to a torn tail, the meta family's files), that
// it has every ckpt column family, and that its schema is one this build understands.
absl::Status CheckExistingStore(const std::string& path, const std::vector<std::string>& existing) {
  auto missing = [&](const char* name) {
    return std::find(existing.begin(), existing.end(), name) == existing.end();
  };
  auto refuse = [&](const char* name) {
    return absl::FailedPreconditionError(absl::StrCat(
        "data dir ", path, " holds a RocksDB store without ckpt's column family \"", name,
        "\": it is not a ckpt store, or it is damaged; ckptd will not modify it: restore it "
        "from a backup or choose another --data_dir"));
  };
  if (missing(keys::kMetaCf)) return refuse(keys::kMetaCf);
  rocksdb::DBOptions read_only;
  read_only.info_log = std::make_shared<NullLogger>();
  read_only.wal_recovery_mode = rocksdb::WALRecoveryMode::kPointInTimeRecovery;
  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors = {
      {rocksdb::kDefaultColumnFamilyName, rocksdb::ColumnFamilyOptions()},
      {keys::kMetaCf, rocksdb::ColumnFamilyOptions()}};
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw_db = nullptr;
  rocksdb::Status s = rocksdb::DB::OpenForReadOnly(read_only, path, descriptors, &handles, &raw_db);
  if (!s.ok()) return OpenError(s, path);
  std::unique_ptr<rocksdb::DB> db(raw_db);
  absl::StatusOr<uint32_t> version =
      CheckSchema(db.get(), handles[1], /*is_new=*/false, /*upgrade=*/false, path);
  for (auto* h : handles) db->DestroyColumnFamilyHandle(h);
  CKPT_RETURN_IF_ERROR(version.status());
  // Every family of the store's own version must be there; later ones are created.
  for (size_t cf = 0; cf < kNumCfs; ++cf) {
    if (kCfSince[cf] <= *version && missing(kCfNames[cf])) return refuse(kCfNames[cf]);
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<RocksDbStore>> RocksDbStore::Open(
    const RocksDbStoreOptions& options) {
  CKPT_RETURN_IF_ERROR(PrepareDirectory(options.path));
  CKPT_ASSIGN_OR_RETURN(const bool exists, StoreExists(options.path));

  rocksdb::DBOptions db_options;
  db_options.create_if_missing = !exists;
  // A new store gets every family; an existing one has those of its schema version
  // (CheckExistingStore), and an older one gets the families added since.
  db_options.create_missing_column_families = true;
  db_options.IncreaseParallelism(2);
  // The engine's one writer thread writes one batch at a time, so concurrent memtable
  // inserts never happen; the outputs family's hash memtable does not support them.
  db_options.allow_concurrent_memtable_write = false;
  // A torn WAL tail (a crash mid-append) is dropped; anything before it is kept.
  db_options.wal_recovery_mode = rocksdb::WALRecoveryMode::kPointInTimeRecovery;
  auto logger = std::make_shared<FileLogger>(options.path + "/LOG");
  db_options.info_log = logger;
  db_options.listeners.push_back(std::make_shared<ResumeOnNextWrite>());

  auto cache = rocksdb::NewLRUCache(options.block_cache_bytes);
  std::vector<std::string> names(kCfNames, kCfNames + kNumCfs);
  if (exists) {
    // Open every family the store has, including any of a newer format, so RocksDB
    // agrees to open it and the schema check can say what is wrong.
    std::vector<std::string> existing;
    rocksdb::Status s = rocksdb::DB::ListColumnFamilies(db_options, options.path, &existing);
    if (!s.ok()) return OpenError(s, options.path);
    CKPT_RETURN_IF_ERROR(CheckExistingStore(options.path, existing));
    for (const std::string& name : existing) {
      if (name == rocksdb::kDefaultColumnFamilyName) continue;
      if (std::find(names.begin(), names.end(), name) == names.end()) {
        names.push_back(name);
      }
    }
  }
  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  descriptors.emplace_back(rocksdb::kDefaultColumnFamilyName,
                           FamilyOptions(cache, rocksdb::kDefaultColumnFamilyName));
  for (const std::string& name : names) descriptors.emplace_back(name, FamilyOptions(cache, name));

  std::vector<rocksdb::ColumnFamilyHandle*> raw_handles;
  rocksdb::DB* raw_db = nullptr;
  rocksdb::Status s =
      rocksdb::DB::Open(db_options, options.path, descriptors, &raw_handles, &raw_db);
  if (!s.ok()) return OpenError(s, options.path);
  std::unique_ptr<rocksdb::DB> db(raw_db);

  // Drop the default family's handle (unused); keep ours in Cf order.
  std::vector<rocksdb::ColumnFamilyHandle*> handles(raw_handles.begin() + 1, raw_handles.end());
  auto close_handles = [&]() {
    for (auto* h : raw_handles) db->DestroyColumnFamilyHandle(h);
  };
  absl::StatusOr<uint32_t> version =
      CheckSchema(db.get(), handles[static_cast<size_t>(Cf::kMeta)], !exists,
                  /*upgrade=*/true, options.path);
  if (!version.ok()) {
    close_handles();
    return version.status();
  }
  db->DestroyColumnFamilyHandle(raw_handles[0]);
  logger->Release();
  return std::unique_ptr<RocksDbStore>(
      new RocksDbStore(options, std::move(db), std::move(handles), *version));
}

namespace {

rocksdb::Slice ToSlice(absl::string_view s) { return rocksdb::Slice(s.data(), s.size()); }
absl::string_view ToView(const rocksdb::Slice& s) { return absl::string_view(s.data(), s.size()); }

class RocksWriteBatch : public WriteBatch {
 public:
  explicit RocksWriteBatch(const RocksDbStore* store) : store_(store) {}
  void Put(Cf cf, absl::string_view key, absl::string_view value) override {
    batch_.Put(store_->handle(cf), ToSlice(key), ToSlice(value));
  }
  void Delete(Cf cf, absl::string_view key) override {
    batch_.Delete(store_->handle(cf), ToSlice(key));
  }
  void DeleteRange(Cf cf, absl::string_view begin, absl::string_view end) override {
    batch_.DeleteRange(store_->handle(cf), ToSlice(begin), ToSlice(end));
  }
  size_t Count() const override { return batch_.Count(); }
  size_t ByteSize() const override { return batch_.GetDataSize(); }

  const RocksDbStore* store() const { return store_; }
  rocksdb::WriteBatch* rocks() { return &batch_; }

 private:
  const RocksDbStore* const store_;
  rocksdb::WriteBatch batch_;
};

// Iterates keys that start with a prefix. Owns its upper bound, so the bound outlives
// the RocksDB iterator.
class RocksIterator : public StoreIterator {
 public:
  RocksIterator(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf, absl::string_view prefix,
                absl::string_view start, const rocksdb::Snapshot* snapshot)
      : StoreIterator(prefix.size()),
        upper_bound_(keys::PrefixSuccessor(prefix)),
        upper_bound_slice_(upper_bound_) {
    rocksdb::ReadOptions read;
    read.snapshot = snapshot;
    if (!upper_bound_.empty()) read.iterate_upper_bound = &upper_bound_slice_;
    it_.reset(db->NewIterator(read, cf));
    it_->Seek(ToSlice(start.empty() ? prefix : start));
  }
  bool Valid() const override { return it_->Valid(); }
  void Next() override { it_->Next(); }
  absl::string_view key() const override { return ToView(it_->key()); }
  absl::string_view value() const override { return ToView(it_->value()); }
  absl::Status status() const override { return FromRocksStatus(it_->status(), "scan"); }

 private:
  const std::string upper_bound_;
  rocksdb::Slice upper_bound_slice_;
  std::unique_ptr<rocksdb::Iterator> it_;  // last: destroyed before the bound
};

absl::StatusOr<std::optional<std::string>> GetAt(const RocksDbStore& store, Cf cf,
                                                 absl::string_view key,
                                                 const rocksdb::Snapshot* snapshot) {
  std::string value;
  rocksdb::ReadOptions read;
  read.snapshot = snapshot;
  rocksdb::Status s = store.db()->Get(read, store.handle(cf), ToSlice(key), &value);
  if (s.IsNotFound()) return std::optional<std::string>();
  if (!s.ok()) return FromRocksStatus(s, "read");
  return std::optional<std::string>(std::move(value));
}

absl::StatusOr<std::optional<std::pair<std::string, std::string>>> FloorAt(
    const RocksDbStore& store, Cf cf, absl::string_view prefix, absl::string_view key,
    const rocksdb::Snapshot* snapshot) {
  const rocksdb::Slice lower = ToSlice(prefix);
  rocksdb::ReadOptions read;
  read.snapshot = snapshot;
  read.iterate_lower_bound = &lower;
  std::unique_ptr<rocksdb::Iterator> it(store.db()->NewIterator(read, store.handle(cf)));
  it->SeekForPrev(ToSlice(key));
  if (it->Valid() && it->key().starts_with(lower)) {
    return std::make_optional(
        std::make_pair(std::string(ToView(it->key())), std::string(ToView(it->value()))));
  }
  CKPT_RETURN_IF_ERROR(FromRocksStatus(it->status(), "read"));
  return std::optional<std::pair<std::string, std::string>>();
}

// A RocksDB snapshot, released when the view goes.
class RocksReadView : public ReadView {
 public:
  explicit RocksReadView(const RocksDbStore* store)
      : store_(store), snapshot_(store->db()->GetSnapshot()) {}
  ~RocksReadView() override { store_->db()->ReleaseSnapshot(snapshot_); }

  absl::StatusOr<std::optional<std::string>> Get(Cf cf, absl::string_view key) const override {
    return GetAt(*store_, cf, key, snapshot_);
  }
  std::unique_ptr<StoreIterator> Scan(Cf cf, absl::string_view prefix,
                                      absl::string_view start) const override {
    return std::make_unique<RocksIterator>(store_->db(), store_->handle(cf), prefix, start,
                                           snapshot_);
  }
  absl::StatusOr<std::optional<std::pair<std::string, std::string>>> Floor(
      Cf cf, absl::string_view prefix, absl::string_view key) const override {
    return FloorAt(*store_, cf, prefix, key, snapshot_);
  }

 private:
  const RocksDbStore* const store_;
  const rocksdb::Snapshot* const snapshot_;
};

}  // namespace

RocksDbStore::RocksDbStore(RocksDbStoreOptions options, std::unique_ptr<rocksdb::DB> db,
                           std::vector<rocksdb::ColumnFamilyHandle*> handles,
                           uint32_t schema_version)
    : options_(std::move(options)),
      db_(std::move(db)),
      handles_(std::move(handles)),
      schema_version_(schema_version) {}

RocksDbStore::~RocksDbStore() {
  for (auto* h : handles_) db_->DestroyColumnFamilyHandle(h);
  // Flushes nothing extra: the WAL already holds every acknowledged write.
  db_->Close();
}

std::unique_ptr<WriteBatch> RocksDbStore::NewBatch() const {
  return std::make_unique<RocksWriteBatch>(this);
}

absl::Status RocksDbStore::Write(WriteBatch* batch) {
  auto* rocks_batch = static_cast<RocksWriteBatch*>(batch);
  assert(rocks_batch->store() == this);
  // RocksDB counts key comparisons per thread by default (perf level kEnableCount): a
  // thread-local increment per comparison of every memtable insert. Nothing reads them.
  thread_local const bool perf_counters_off =
      (rocksdb::SetPerfLevel(rocksdb::PerfLevel::kDisable), true);
  (void)perf_counters_off;
  if (write_failed_.load(std::memory_order_acquire)) {
    // RocksDB refuses every write after a failed one (e.g. on a full disk) until resumed;
    // resuming flushes the memtables, so it fails again while the disk is still full.
    absl::MutexLock lock(&resume_mu_);
    if (write_failed_.load(std::memory_order_acquire)) {
      rocksdb::Status resumed = db_->Resume();
      if (!resumed.ok()) return FromRocksStatus(resumed, "write");
      write_failed_.store(false, std::memory_order_release);
      LogLine(absl::StrCat("store at ", options_.path, ": writes resumed"));
    }
  }
  // No lock across the write: RocksDB shares one WAL sync among the writers that reach
  // it together.
  rocksdb::WriteOptions write_options;
  write_options.sync = options_.sync;
  rocksdb::Status s = db_->Write(write_options, rocks_batch->rocks());
  if (!s.ok() && !write_failed_.exchange(true, std::memory_order_acq_rel)) {
    LogLine(absl::StrCat("store at ", options_.path, ": write failed (", s.ToString(),
                         "); writes are refused until one succeeds again"));
  }
  return FromRocksStatus(s, "write");
}

absl::StatusOr<std::unique_ptr<ReadView>> RocksDbStore::NewReadView() const {
  return std::unique_ptr<ReadView>(std::make_unique<RocksReadView>(this));
}

absl::StatusOr<std::optional<std::string>> RocksDbStore::Get(Cf cf, absl::string_view key) const {
  return GetAt(*this, cf, key, nullptr);
}

std::unique_ptr<StoreIterator> RocksDbStore::Scan(Cf cf, absl::string_view prefix,
                                                  absl::string_view start) const {
  return std::make_unique<RocksIterator>(db_.get(), handle(cf), prefix, start, nullptr);
}

absl::StatusOr<std::optional<std::pair<std::string, std::string>>> RocksDbStore::Floor(
    Cf cf, absl::string_view prefix, absl::string_view key) const {
  return FloorAt(*this, cf, prefix, key, nullptr);
}

}  // namespace ckpt
