// The RocksDB store: ckpt's records in column families of one RocksDB in a local
// directory, the embedded default. What is stored where is in STORAGE_FORMAT.md.
#ifndef CKPT_SERVICE_STORE_ROCKSDB_STORE_H_
#define CKPT_SERVICE_STORE_ROCKSDB_STORE_H_

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "service/store/store.h"

namespace rocksdb {
class ColumnFamilyHandle;
class DB;
class Env;
struct DBOptions;
}  // namespace rocksdb

namespace ckpt {

struct RocksDbStoreOptions {
  std::string path;  // the data directory
  // Sync the WAL before a write returns (the default). Without it a process crash
  // still loses nothing (the WAL is written), but a power failure may lose the last
  // writes the OS had not flushed.
  bool sync = true;
  size_t block_cache_bytes = 64 << 20;
  // Start on a store whose write-ahead log is damaged (beyond a torn tail) or lacks its
  // newest file, keeping what comes before the damage and dropping the rest; the store
  // logs one line saying how much was dropped. Without it such a store is refused.
  bool accept_wal_loss = false;
  // Run against the existing store opened read-only, before the read-write open (which
  // replays the WAL into new files and rewrites RocksDB's MANIFEST and OPTIONS): the
  // caller's whole load, so that a record it cannot read refuses the start with the
  // store left byte for byte as it was. Not run for a new store, nor for one of an older
  // schema that lacks families (the read-write open adds them).
  std::function<absl::Status(const StoreReader& store)> check_load;
};

// Thread-safe: RocksDB is; the store adds no mutable state after Open but the
// resume-after-failed-write flags.
class RocksDbStore : public Store {
 public:
  // Opens (creating if the directory is empty or missing) the store at options.path.
  // An existing store is first checked read-only, options.check_load included; one it
  // refuses is left byte for byte as it was (a torn WAL tail is not a refusal: it is
  // dropped, as after any crash). Errors carry one line naming the data dir, saying what
  // is wrong and what to do:
  //   FAILED_PRECONDITION: the directory is not writable, is held by another ckptd
  //     (RocksDB's LOCK), holds files but no store, lacks a ckpt column family, or has
  //     a newer schema;
  //   DATA_LOSS: the store is corrupt (CURRENT, MANIFEST, an SST file, a record the
  //     load cannot read, the WAL damaged or missing its newest file unless
  //     options.accept_wal_loss);
  //   RESOURCE_EXHAUSTED: the disk has less free than replaying the WAL writes (the
  //     message says how much must be free);
  //   what check_load returns, with the data dir and advice added.
  static absl::StatusOr<std::unique_ptr<RocksDbStore>> Open(const RocksDbStoreOptions& options);

  ~RocksDbStore() override;

  std::unique_ptr<WriteBatch> NewBatch() const override;
  // Synced when options.sync. RESOURCE_EXHAUSTED when the disk is full, saying how much
  // must be free for writes to resume. After a failed write RocksDB refuses writes
  // until resumed, which flushes every memtable (at most 16 MiB); the next Write resumes
  // it once that much (and a little more) is free, so writes come back by themselves.
  absl::Status Write(WriteBatch* batch) override;
  absl::StatusOr<std::unique_ptr<ReadView>> NewReadView() const override;
  uint32_t schema_version() const override { return schema_version_; }

  absl::StatusOr<std::optional<std::string>> Get(Cf cf, absl::string_view key) const override;
  absl::StatusOr<std::unique_ptr<StoreValue>> GetPinned(Cf cf,
                                                        absl::string_view key) const override;
  std::unique_ptr<StoreIterator> Scan(Cf cf, absl::string_view prefix,
                                      absl::string_view start = {}) const override;
  absl::StatusOr<std::optional<std::pair<std::string, std::string>>> Floor(
      Cf cf, absl::string_view prefix, absl::string_view key) const override;

  // RocksDB's Checkpoint (rocksdb_checkpoint.cc): memtables flushed, SST files
  // hard-linked (copied across filesystems), the live WAL copied. `dir` must also lie
  // outside the data dir, and DIR.tmp (the staging directory) must not exist.
  absl::StatusOr<StoreCopy> Checkpoint(const std::string& dir) override;

  const RocksDbStoreOptions& options() const { return options_; }
  // For tests of the on-disk layout (flushing a family to SST files).
  rocksdb::DB* db() const { return db_.get(); }
  rocksdb::ColumnFamilyHandle* handle(Cf cf) const { return handles_[static_cast<size_t>(cf)]; }

 private:
  RocksDbStore(RocksDbStoreOptions options, std::unique_ptr<rocksdb::DB> db,
               std::vector<rocksdb::ColumnFamilyHandle*> handles, uint32_t schema_version);

  // What an existing store's WAL lost, when options.accept_wal_loss let it start.
  struct WalLoss {
    bool damaged = false;       // a record before the tail does not read
    bool missing = false;       // the newest WAL file is gone
    uint64_t kept_through = 0;  // last sequence number before the damage
    uint64_t last_written = 0;  // last sequence number in the WAL, damage skipped
    bool uncounted = false;     // damage RocksDB reads as a torn tail (wal_tail.h)
    std::string damage;         // what wal_tail.h found
  };
  // The read-only look at an existing store, before the read-write open: RocksDB opens
  // it (CURRENT, MANIFEST, the WAL, the files), it has every ckpt family of its schema,
  // a schema this build understands, its newest WAL, room to replay the WAL, and
  // options.check_load passes.
  static absl::StatusOr<WalLoss> CheckExisting(const RocksDbStoreOptions& options,
                                               const std::vector<std::string>& existing);
  static absl::StatusOr<std::unique_ptr<RocksDbStore>> OpenReadOnly(
      const RocksDbStoreOptions& options, const std::vector<std::string>& names,
      const rocksdb::DBOptions& base, std::string* open_error = nullptr);
  // OpenReadOnly, and if the WAL is damaged before its tail, refused unless
  // options.accept_wal_loss, when it is read up to the damage and `loss` says so.
  static absl::StatusOr<std::unique_ptr<RocksDbStore>> OpenReadOnlyUpToWalDamage(
      const RocksDbStoreOptions& options, const std::vector<std::string>& names, WalLoss* loss);
  // A WAL damaged where RocksDB takes it for a torn tail (wal_tail.h): refused unless
  // options.accept_wal_loss, when `loss` says so.
  static absl::StatusOr<std::unique_ptr<RocksDbStore>> CheckWalTails(
      const RocksDbStoreOptions& options, std::unique_ptr<RocksDbStore> store, WalLoss* loss);
  static WalLoss WalLossAfterDamage(const RocksDbStoreOptions& options,
                                    const std::vector<std::string>& names,
                                    const RocksDbStore& up_to_damage);
  static absl::Status CheckNewestWal(const RocksDbStoreOptions& options, WalLoss* loss);
  static void ReportWalLoss(const std::string& path, const WalLoss& loss,
                            uint64_t recovered_through);

  // After a failed write: resumes RocksDB if the disk has room for that (a failure for
  // space), or whatever the failure was.
  absl::Status ResumeWrites();
  // Free bytes resuming needs: the memtables it flushes, and spare.
  uint64_t SpaceToResume() const;
  absl::Status DiskFullError() const;

  const RocksDbStoreOptions options_;
  // The read-write store's Env (newest_wal.h), which db_ uses: declared first, so it is
  // destroyed after db_.
  std::unique_ptr<rocksdb::Env> env_;
  std::unique_ptr<rocksdb::DB> db_;
  // Checkpoint's work, once it holds checkpoint_mu_.
  absl::StatusOr<StoreCopy> CheckpointLocked(const std::string& dir)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(checkpoint_mu_);

  // Indexed by Cf; then any column families of a newer format, opened to satisfy
  // RocksDB and otherwise untouched.
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;
  const uint32_t schema_version_;
  // Set by a failed write; the next Write resumes RocksDB first, under resume_mu_.
  std::atomic<bool> write_failed_{false};
  absl::Mutex resume_mu_;
  bool failed_for_space_ ABSL_GUARDED_BY(resume_mu_) = false;
  // Held while a Checkpoint runs: one at a time.
  absl::Mutex checkpoint_mu_;
};

}  // namespace ckpt

#endif  // CKPT_SERVICE_STORE_ROCKSDB_STORE_H_
