#include "service/store/rocksdb_store.h"

#include <algorithm>
#include <cassert>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
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
#include "service/store/newest_wal.h"
#include "service/store/rocksdb_files.h"
#include "service/store/rocksdb_status.h"
#include "service/store/wal_tail.h"

namespace ckpt {
namespace {

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

// RocksDB's automatic recovery from a full disk polls every 5 s and refuses a manual
// DB::Resume() meanwhile. Store::Write resumes on the next write instead, once the disk
// has room for what resuming writes.
class ResumeOnNextWrite : public rocksdb::EventListener {
 public:
  void OnErrorRecoveryBegin(rocksdb::BackgroundErrorReason reason, rocksdb::Status bg_error,
                            bool* auto_recovery) override {
    *auto_recovery = false;
  }
};

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
// correct; keys of 8 bytes or fewer, and keys ending in NUL, simply get no hint.
//
// RocksDB 7.8 keeps one map of hints per memtable for its point keys and its range
// deletions alike (facebook/rocksdb#12558, fixed in 9.2): a range deletion whose begin
// key had the hint prefix of a point key was linked into the point keys' skiplist (the
// range then deleted nothing in memory, and replaying the WAL crashed on the skiplist's
// assertions). So no range deletion may begin with a key in this domain:
// RocksWriteBatch::DeleteRange moves the begin of any range that would out of it.
class AllButIndexTransform : public rocksdb::SliceTransform {
 public:
  static constexpr size_t kIndexBytes = 8;
  const char* Name() const override { return "ckpt.AllButIndex"; }
  rocksdb::Slice Transform(const rocksdb::Slice& key) const override {
    return rocksdb::Slice(key.data(), key.size() - kIndexBytes);
  }
  // Keys ending in NUL are left out so that a range's begin can always be moved out of
  // the domain by appending one.
  bool InDomain(const rocksdb::Slice& key) const override {
    return key.size() > kIndexBytes && key[key.size() - 1] != '\0';
  }
};

// What recovering from a full disk must write is bounded by what RocksDB holds in
// memory: resuming writes flushes every memtable, and a restart flushes what the WAL
// holds. The defaults (64 MiB per family, the WAL unbounded) made both need more than a
// full disk gets back (docs/api.md, "A full disk").
// Smaller is slower: at 8 MiB and 16 MiB the worker loop ran at a third to a half of its
// speed, flushing every few seconds (docs/performance.md, "What bounded memtables cost").
constexpr uint64_t kMemtableBytes = 16 << 20;  // all families' memtables together
// Each family's own: it flushes alone when it fills. Without it the budget above was the
// only trigger, and it flushes the family with the oldest memtable, which is a small one
// (jobs, workers, meta) that frees nothing, then the next: every flush of items or
// outputs came with five tiny ones (a 300 000-item worker loop: 68 flushes and 25
// compactions, now 21 and 6; server CPU per item -11 to -15%). Four fit in the budget;
// in a worker loop items and outputs fill theirs, and the other families flush when the
// WAL limit asks (so a restart may replay up to the whole 32 MiB of WAL).
constexpr uint64_t kFamilyMemtableBytes = kMemtableBytes / 4;
constexpr uint64_t kMaxWalBytes = 32 << 20;  // then the families in the oldest WAL flush
// What RocksDB preallocates for each new WAL (DBImpl::GetWalPreallocateBlockSize: the
// smallest of 1.1x a family's write buffer, the WAL limit and the memtable budget).
// A resume or an open starts a new WAL, so this comes on top of what they flush.
constexpr uint64_t kWalPreallocBytes =
    std::min({kFamilyMemtableBytes + kFamilyMemtableBytes / 10, kMaxWalBytes, kMemtableBytes});
// Room for what comes with a flush or an open beyond the data: MANIFEST and OPTIONS
// files, the next WAL's first writes.
constexpr uint64_t kSpareBytes = 4 << 20;

rocksdb::ColumnFamilyOptions FamilyOptions(const std::shared_ptr<rocksdb::Cache>& cache,
                                           const std::string& name) {
  rocksdb::ColumnFamilyOptions cf;
  if (name == keys::kOutputsCf) {
    // Output paths arrive in any order and are only ever looked up whole (FindOutput),
    // never iterated: a hash table of small skiplists, one bucket per path, inserts in
    // O(1) where the default skiplist descends through every path written so far.
    // Flushing sorts the memtable, on RocksDB's background thread.
    // ~40 000 paths fill a family's memtable; the bucket array (8 bytes a bucket) counts
    // against its budget, so it is not larger than that needs.
    constexpr size_t kOutputBuckets = 1 << 16;
    cf.prefix_extractor.reset(rocksdb::NewNoopTransform());
    cf.memtable_factory.reset(rocksdb::NewHashSkipListRepFactory(kOutputBuckets));
  }
  // The engine writes one batch at a time, so RocksDB inserts it sequentially and can
  // use the hint; measured -38% instructions in MemTable::Add (docs/performance.md).
  cf.memtable_insert_with_hint_prefix_extractor = std::make_shared<AllButIndexTransform>();
  cf.write_buffer_size = kFamilyMemtableBytes;
  // L0 files (flushed memtables, a few tens of MiB at most) are left uncompressed: the
  // flush skips compressing them and their compaction into L1 skips decompressing them
  // (measured: 930 of ~24 000 instructions per completed item were the flush's Snappy).
  // Deeper levels, where the data stays, are compressed as before.
  cf.compression_per_level.assign(cf.num_levels, cf.compression);
  cf.compression_per_level[0] = rocksdb::kNoCompression;
  rocksdb::BlockBasedTableOptions table;
  table.block_cache = cache;
  // Point lookups (an item's record, a job) skip SST files that cannot hold the key.
  table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  cf.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  return cf;
}

// Reads the schema record, writing it on a new store. With `upgrade`, an older store
// is marked as this version (every older format is a subset of this one's: schema 2
// only added LeaseGrantRecords, 3 two families, 4 runs of items, 5 runs of leases), so
// an older ckptd refuses it from then on.
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

rocksdb::DBOptions DbOptions(const RocksDbStoreOptions& options, bool damage_accepted) {
  rocksdb::DBOptions db_options;
  db_options.IncreaseParallelism(2);
  // The engine's one writer thread writes one batch at a time, so concurrent memtable
  // inserts never happen; the outputs family's hash memtable does not support them.
  db_options.allow_concurrent_memtable_write = false;
  db_options.db_write_buffer_size = kMemtableBytes;
  db_options.max_total_wal_size = kMaxWalBytes;
  // Only a torn WAL tail (a crash mid-append) is dropped. Damage before it stops the
  // open (Corruption), unless the operator accepts losing what follows it.
  db_options.wal_recovery_mode = damage_accepted
                                     ? rocksdb::WALRecoveryMode::kPointInTimeRecovery
                                     : rocksdb::WALRecoveryMode::kTolerateCorruptedTailRecords;
  // A closed WAL that is missing or shorter than when it was synced stops the open.
  db_options.track_and_verify_wals_in_manifest = !damage_accepted;
  return db_options;
}

absl::Status WalDamageError(const std::string& path, const std::string& detail) {
  return absl::DataLossError(
      absl::StrCat("store at ", path, " has a damaged write-ahead log (", detail,
                   "); ckptd will not modify it: restore it from a backup, or start with "
                   "--accept_wal_loss to keep what comes before the damage and drop the rest"));
}

// The data dir's disk has less free than a restart must write.
absl::Status CheckSpaceToStart(const std::string& path) {
  const WalFiles wals = ListWalFiles(path);
  const uint64_t needed = wals.bytes + kWalPreallocBytes + kSpareBytes;
  const uint64_t free_bytes = FreeDiskBytes(path);
  if (free_bytes >= needed) return absl::OkStatus();
  return absl::ResourceExhaustedError(absl::StrCat(
      "data dir ", path, ": the disk is full (", free_bytes >> 20, " MiB free), and starting ",
      "writes what its write-ahead log holds (", MiBRoundedUp(wals.bytes), " MiB); ckptd ",
      "will start once ", MiBRoundedUp(needed), " MiB are free: free space and start it again"));
}

// Families of an existing store to open: ckpt's that it has, in Cf order, then any of a
// newer format, so RocksDB agrees to open it and the schema check can say what is wrong.
std::vector<std::string> FamiliesToOpen(const std::vector<std::string>& existing) {
  std::vector<std::string> names;
  for (const char* name : kCfNames) {
    if (std::find(existing.begin(), existing.end(), name) != existing.end()) names.push_back(name);
  }
  for (const std::string& name : existing) {
    if (name != rocksdb::kDefaultColumnFamilyName &&
        std::find(names.begin(), names.end(), name) == names.end()) {
      names.push_back(name);
    }
  }
  return names;
}

}  // namespace

absl::StatusOr<std::unique_ptr<RocksDbStore>> RocksDbStore::OpenReadOnly(
    const RocksDbStoreOptions& options, const std::vector<std::string>& names,
    const rocksdb::DBOptions& base, std::string* open_error) {
  rocksdb::DBOptions read_only = base;
  read_only.info_log = std::make_shared<NullLogger>();
  read_only.listeners.clear();
  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors = {
      {rocksdb::kDefaultColumnFamilyName, rocksdb::ColumnFamilyOptions()}};
  for (const std::string& name : names)
    descriptors.emplace_back(name, FamilyOptions(nullptr, name));
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw_db = nullptr;
  rocksdb::Status s =
      rocksdb::DB::OpenForReadOnly(read_only, options.path, descriptors, &handles, &raw_db);
  if (!s.ok()) {
    if (open_error != nullptr) *open_error = s.ToString();
    return OpenError(s, options.path);
  }
  std::unique_ptr<rocksdb::DB> db(raw_db);
  db->DestroyColumnFamilyHandle(handles[0]);
  handles.erase(handles.begin());
  absl::StatusOr<uint32_t> version =
      CheckSchema(db.get(), handles[0], /*is_new=*/false, /*upgrade=*/false, options.path);
  std::unique_ptr<RocksDbStore> store(
      new RocksDbStore(options, std::move(db), std::move(handles), version.value_or(0)));
  if (!version.ok()) return version.status();
  return store;
}

absl::StatusOr<RocksDbStore::WalLoss> RocksDbStore::CheckExisting(
    const RocksDbStoreOptions& options, const std::vector<std::string>& existing) {
  const std::string& path = options.path;
  auto refuse = [&](const char* name) {
    return absl::FailedPreconditionError(absl::StrCat(
        "data dir ", path, " holds a RocksDB store without ckpt's column family \"", name,
        "\": it is not a ckpt store, or it is damaged; ckptd will not modify it: restore it "
        "from a backup or choose another --data_dir"));
  };
  if (std::find(existing.begin(), existing.end(), keys::kMetaCf) == existing.end()) {
    return refuse(keys::kMetaCf);
  }
  const std::vector<std::string> names = FamiliesToOpen(existing);
  WalLoss loss;
  CKPT_ASSIGN_OR_RETURN(std::unique_ptr<RocksDbStore> store,
                        OpenReadOnlyUpToWalDamage(options, names, &loss));
  CKPT_RETURN_IF_ERROR(CheckNewestWal(options, &loss));
  bool has_every_family = true;
  for (size_t cf = 0; cf < kNumCfs; ++cf) {
    if (std::find(existing.begin(), existing.end(), kCfNames[cf]) != existing.end()) continue;
    // Every family of the store's own version must be there; later ones are created.
    if (kCfSince[cf] <= store->schema_version()) return refuse(kCfNames[cf]);
    has_every_family = false;
  }
  // The whole load, on this read-only instance: a record it cannot read refuses the start
  // here, before the read-write open changes any file. A store of an older schema lacks
  // families the load reads; opening it for writing adds them, and the load runs then.
  if (options.check_load && has_every_family) {
    if (absl::Status loaded = options.check_load(*store); !loaded.ok()) {
      return absl::Status(loaded.code(),
                          absl::StrCat("store at ", path, " cannot be loaded (", loaded.message(),
                                       "); ckptd will not modify it: restore it from a backup "
                                       "or move it aside"));
    }
  }
  CKPT_RETURN_IF_ERROR(CheckSpaceToStart(path));
  return loss;
}

absl::StatusOr<std::unique_ptr<RocksDbStore>> RocksDbStore::OpenReadOnlyUpToWalDamage(
    const RocksDbStoreOptions& options, const std::vector<std::string>& names, WalLoss* loss) {
  std::string open_error;
  absl::StatusOr<std::unique_ptr<RocksDbStore>> store =
      OpenReadOnly(options, names, DbOptions(options, /*damage_accepted=*/false), &open_error);
  if (store.ok()) return CheckWalTails(options, std::move(*store), loss);
  if (!absl::IsDataLoss(store.status())) return store;
  // Is it the WAL? Then the store opens when its WAL is read up to the damage.
  absl::StatusOr<std::unique_ptr<RocksDbStore>> up_to_damage =
      OpenReadOnly(options, names, DbOptions(options, /*damage_accepted=*/true));
  if (!up_to_damage.ok()) return store;
  if (!options.accept_wal_loss) return WalDamageError(options.path, open_error);
  *loss = WalLossAfterDamage(options, names, **up_to_damage);
  return up_to_damage;
}

absl::StatusOr<std::unique_ptr<RocksDbStore>> RocksDbStore::CheckWalTails(
    const RocksDbStoreOptions& options, std::unique_ptr<RocksDbStore> store, WalLoss* loss) {
  for (uint64_t number : ListWalFiles(options.path).numbers) {
    std::optional<std::string> damage = DamageBeforeWalTail(WalPath(options.path, number));
    if (!damage.has_value()) continue;
    if (!options.accept_wal_loss) return WalDamageError(options.path, *damage);
    // RocksDB reads the log up to there in every mode: what follows cannot be counted.
    loss->damaged = true;
    loss->uncounted = true;
    loss->damage = *damage;
  }
  return store;
}

RocksDbStore::WalLoss RocksDbStore::WalLossAfterDamage(const RocksDbStoreOptions& options,
                                                       const std::vector<std::string>& names,
                                                       const RocksDbStore& up_to_damage) {
  WalLoss loss;
  loss.damaged = true;
  loss.kept_through = up_to_damage.db()->GetLatestSequenceNumber();
  loss.last_written = loss.kept_through;
  rocksdb::DBOptions skipping = DbOptions(options, /*damage_accepted=*/true);
  skipping.wal_recovery_mode = rocksdb::WALRecoveryMode::kSkipAnyCorruptedRecords;
  absl::StatusOr<std::unique_ptr<RocksDbStore>> all = OpenReadOnly(options, names, skipping);
  if (all.ok()) {
    loss.last_written = std::max(loss.last_written, (*all)->db()->GetLatestSequenceNumber());
  }
  return loss;
}

absl::Status RocksDbStore::CheckNewestWal(const RocksDbStoreOptions& options, WalLoss* loss) {
  const std::optional<uint64_t> newest = RecordedNewestWal(options.path);
  if (!newest.has_value()) return absl::OkStatus();
  const WalFiles wals = ListWalFiles(options.path);
  if (!wals.numbers.empty() && wals.numbers.back() >= *newest) return absl::OkStatus();
  if (!options.accept_wal_loss) {
    return absl::DataLossError(absl::StrCat(
        "store at ", options.path, " is missing its newest write-ahead log (",
        WalPath(options.path, *newest),
        "); ckptd will not modify it: restore it from a "
        "backup, or start with --accept_wal_loss to start without the writes it held"));
  }
  loss->missing = true;
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<RocksDbStore>> RocksDbStore::Open(
    const RocksDbStoreOptions& options) {
  CKPT_RETURN_IF_ERROR(PrepareDirectory(options.path));
  CKPT_ASSIGN_OR_RETURN(const bool exists, StoreExists(options.path));

  std::vector<std::string> names(kCfNames, kCfNames + kNumCfs);
  WalLoss loss;
  if (exists) {
    std::vector<std::string> existing;
    rocksdb::Status s = rocksdb::DB::ListColumnFamilies(
        DbOptions(options, /*damage_accepted=*/false), options.path, &existing);
    if (!s.ok()) return OpenError(s, options.path);
    CKPT_ASSIGN_OR_RETURN(loss, CheckExisting(options, existing));
    for (const std::string& name : FamiliesToOpen(existing)) {
      if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
    }
  }
  rocksdb::DBOptions db_options = DbOptions(options, loss.damaged || loss.missing);
  db_options.create_if_missing = !exists;
  // A new store gets every family; an existing one has those of its schema version
  // (CheckExisting), and an older one gets the families added since.
  db_options.create_missing_column_families = true;
  auto logger = std::make_shared<FileLogger>(options.path + "/LOG");
  db_options.info_log = logger;
  db_options.listeners.push_back(std::make_shared<ResumeOnNextWrite>());
  std::unique_ptr<rocksdb::Env> env = NewWalRecordingEnv(options.path);
  db_options.env = env.get();

  auto cache = rocksdb::NewLRUCache(options.block_cache_bytes);
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
  ReportWalLoss(options.path, loss, db->GetLatestSequenceNumber());

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
  auto store = std::unique_ptr<RocksDbStore>(
      new RocksDbStore(options, std::move(db), std::move(handles), *version));
  store->env_ = std::move(env);
  return store;
}

void RocksDbStore::ReportWalLoss(const std::string& path, const WalLoss& loss,
                                 uint64_t recovered_through) {
  const std::string prefix = absl::StrCat("store at ", path, ": --accept_wal_loss: started ");
  if (loss.damaged && loss.uncounted) {
    LogLine(absl::StrCat(prefix, "without the write-ahead log from its damaged record on (",
                         loss.damage,
                         "; how many key updates that dropped cannot be known); "
                         "kept ",
                         recovered_through, " before it"));
  } else if (loss.damaged) {
    const uint64_t after =
        loss.last_written > recovered_through ? loss.last_written - recovered_through : 0;
    LogLine(absl::StrCat(prefix, "without the damaged write-ahead log record and the ", after,
                         " key updates written after it (RocksDB sequence numbers ",
                         recovered_through + 1, "..", loss.last_written, "); kept ",
                         recovered_through, " before it"));
  }
  if (loss.missing) {
    LogLine(absl::StrCat(prefix,
                         "without its missing newest write-ahead log; the writes it "
                         "held are lost (how many cannot be known); kept ",
                         recovered_through, " key updates"));
  }
}

namespace {

rocksdb::Slice ToSlice(absl::string_view s) { return rocksdb::Slice(s.data(), s.size()); }

class RocksWriteBatch : public WriteBatch {
 public:
  explicit RocksWriteBatch(const RocksDbStore* store) : store_(store) {}
  void Put(Cf cf, absl::string_view key, absl::string_view value) override {
    batch_.Put(store_->handle(cf), ToSlice(key), ToSlice(value));
  }
  void Delete(Cf cf, absl::string_view key) override {
    batch_.Delete(store_->handle(cf), ToSlice(key));
  }
  // A range whose begin would get a memtable insert hint (see AllButIndexTransform) is
  // written as a point deletion of `begin` and the range from begin's successor
  // (`begin` + NUL), which gets none. Every range ckpt deletes begins with a key ending
  // in NUL (a JobPrefix, or a job's run directory prefix in meta), so this never happens
  // today; it keeps the next caller safe.
  void DeleteRange(Cf cf, absl::string_view begin, absl::string_view end) override {
    rocksdb::ColumnFamilyHandle* handle = store_->handle(cf);
    if (!end.empty() && end <= begin) return;  // an empty range deletes nothing
    if (!AllButIndexTransform().InDomain(ToSlice(begin))) {
      batch_.DeleteRange(handle, ToSlice(begin), ToSlice(end));
      return;
    }
    batch_.Delete(handle, ToSlice(begin));
    const std::string after_begin = absl::StrCat(begin, absl::string_view("\0", 1));
    if (end.empty() || after_begin < end) {
      batch_.DeleteRange(handle, ToSlice(after_begin), ToSlice(end));
    }
  }
  size_t Count() const override { return batch_.Count(); }
  size_t ByteSize() const override { return batch_.GetDataSize(); }

  const RocksDbStore* store() const { return store_; }
  rocksdb::WriteBatch* rocks() { return &batch_; }

 private:
  const RocksDbStore* const store_;
  rocksdb::WriteBatch batch_;
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
  if (write_failed_.load(std::memory_order_acquire)) CKPT_RETURN_IF_ERROR(ResumeWrites());
  // No lock across the write: RocksDB shares one WAL sync among the writers that reach
  // it together.
  rocksdb::WriteOptions write_options;
  write_options.sync = options_.sync;
  rocksdb::Status s = db_->Write(write_options, rocks_batch->rocks());
  if (s.ok()) return absl::OkStatus();
  {
    absl::MutexLock lock(&resume_mu_);
    failed_for_space_ = IsNoSpace(s);
  }
  if (!write_failed_.exchange(true, std::memory_order_acq_rel)) {
    LogLine(absl::StrCat("store at ", options_.path, ": write failed (", s.ToString(),
                         "); writes are refused until one succeeds again"));
  }
  return IsNoSpace(s) ? DiskFullError() : FromRocksStatus(s, "write");
}

absl::Status RocksDbStore::ResumeWrites() {
  absl::MutexLock lock(&resume_mu_);
  if (!write_failed_.load(std::memory_order_acquire)) return absl::OkStatus();
  // RocksDB refuses every write after a failed one until resumed, and resuming flushes
  // every memtable: on a full disk, try only once there is room for that, so that a
  // stream of refused writes does not become a stream of doomed flushes.
  if (failed_for_space_ && FreeDiskBytes(options_.path) < SpaceToResume()) {
    return DiskFullError();
  }
  rocksdb::Status resumed = db_->Resume();
  if (!resumed.ok()) {
    failed_for_space_ = IsNoSpace(resumed);
    return failed_for_space_ ? DiskFullError() : FromRocksStatus(resumed, "write");
  }
  write_failed_.store(false, std::memory_order_release);
  LogLine(absl::StrCat("store at ", options_.path, ": writes resumed"));
  return absl::OkStatus();
}

uint64_t RocksDbStore::SpaceToResume() const {
  uint64_t memtables = 0;
  db_->GetAggregatedIntProperty(rocksdb::DB::Properties::kCurSizeAllMemTables, &memtables);
  return memtables + kWalPreallocBytes + kSpareBytes;
}

absl::Status RocksDbStore::DiskFullError() const {
  return absl::ResourceExhaustedError(
      absl::StrCat("write: the data dir's disk is full (", FreeDiskBytes(options_.path) >> 20,
                   " MiB free); writes resume once ", MiBRoundedUp(SpaceToResume()),
                   " MiB are free: free space and retry"));
}

}  // namespace ckpt
