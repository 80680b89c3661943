// The RocksDB store: ckpt's records in column families of one RocksDB in a local
// directory, the embedded default. What is stored where is in STORAGE_FORMAT.md.
#ifndef CKPT_SERVICE_STORE_ROCKSDB_STORE_H_
#define CKPT_SERVICE_STORE_ROCKSDB_STORE_H_

#include <atomic>
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
}  // namespace rocksdb

namespace ckpt {

struct RocksDbStoreOptions {
  std::string path;  // the data directory
  // Sync the WAL before a write returns (the default). Without it a process crash
  // still loses nothing (the WAL is written), but a power failure may lose the last
  // writes the OS had not flushed.
  bool sync = true;
  size_t block_cache_bytes = 64 << 20;
};

// Thread-safe: RocksDB is; the store adds no mutable state after Open but the
// resume-after-failed-write flag.
class RocksDbStore : public Store {
 public:
  // Opens (creating if the directory is empty or missing) the store at options.path.
  // An existing store is first checked read-only; one it refuses is left byte for byte
  // as it was (a torn WAL tail is not a refusal: it is dropped, as after any crash).
  // Errors carry one line saying what is wrong and what to do:
  //   FAILED_PRECONDITION: the directory is not writable, is held by another ckptd
  //     (RocksDB's LOCK), holds files but no store, lacks a ckpt column family, or has
  //     a newer schema;
  //   DATA_LOSS: the store is corrupt (CURRENT, MANIFEST, an SST file, the WAL);
  //   RESOURCE_EXHAUSTED: the disk is full.
  static absl::StatusOr<std::unique_ptr<RocksDbStore>> Open(const RocksDbStoreOptions& options);

  ~RocksDbStore() override;

  std::unique_ptr<WriteBatch> NewBatch() const override;
  // Synced when options.sync. RESOURCE_EXHAUSTED when the disk is full. After a failed
  // write RocksDB refuses writes until resumed; the next Write resumes it first, so
  // writes come back by themselves once space is freed.
  absl::Status Write(WriteBatch* batch) override;
  absl::StatusOr<std::unique_ptr<ReadView>> NewReadView() const override;
  uint32_t schema_version() const override { return schema_version_; }

  absl::StatusOr<std::optional<std::string>> Get(Cf cf, absl::string_view key) const override;
  std::unique_ptr<StoreIterator> Scan(Cf cf, absl::string_view prefix,
                                      absl::string_view start = {}) const override;
  absl::StatusOr<std::optional<std::pair<std::string, std::string>>> Floor(
      Cf cf, absl::string_view prefix, absl::string_view key) const override;

  const RocksDbStoreOptions& options() const { return options_; }
  // For tests of the on-disk layout (flushing a family to SST files).
  rocksdb::DB* db() const { return db_.get(); }
  rocksdb::ColumnFamilyHandle* handle(Cf cf) const { return handles_[static_cast<size_t>(cf)]; }

 private:
  RocksDbStore(RocksDbStoreOptions options, std::unique_ptr<rocksdb::DB> db,
               std::vector<rocksdb::ColumnFamilyHandle*> handles, uint32_t schema_version);

  const RocksDbStoreOptions options_;
  std::unique_ptr<rocksdb::DB> db_;
  // Indexed by Cf; then any column families of a newer format, opened to satisfy
  // RocksDB and otherwise untouched.
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;
  const uint32_t schema_version_;
  // Set by a failed write; the next Write resumes RocksDB first, under resume_mu_.
  std::atomic<bool> write_failed_{false};
  absl::Mutex resume_mu_;
};

}  // namespace ckpt

#endif  // CKPT_SERVICE_STORE_ROCKSDB_STORE_H_
