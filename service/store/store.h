// The RocksDB store: opening it safely, its column families, and status conversion.
// What is stored where is specified in STORAGE_FORMAT.md.
#ifndef CKPT_SERVICE_STORE_STORE_H_
#define CKPT_SERVICE_STORE_STORE_H_

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "rocksdb/db.h"
#include "rocksdb/write_batch.h"

namespace ckpt {

// The store format this build writes and understands. A store with a newer version
// is refused at open; an older one is opened and marked as this version (1 -> 2 adds
// LeaseGrantRecords; schema 1's LeaseRecords are still read).
inline constexpr uint32_t kSchemaVersion = 2;

enum class Cf { kMeta, kJobs, kItems, kSched, kWorkers, kStates, kOutputs };

// Failures a test injects into a store, standing for a disk that fails. Production
// leaves StoreOptions::faults null. Thread-safe implementations only: the engine's
// writer and the readers call them.
class StoreFaults {
 public:
  virtual ~StoreFaults() = default;
  // Called before each Write / Get; a non-OK status is returned in place of doing it.
  virtual absl::Status BeforeWrite() { return absl::OkStatus(); }
  virtual absl::Status BeforeGet() { return absl::OkStatus(); }
};

struct StoreOptions {
  std::string path;  // the data directory
  // Sync the WAL before a write returns (the default). Without it a process crash
  // still loses nothing (the WAL is written), but a power failure may lose the last
  // writes the OS had not flushed.
  bool sync = true;
  size_t block_cache_bytes = 64 << 20;
  std::shared_ptr<StoreFaults> faults;  // tests only
};

// Maps a RocksDB status to absl: NoSpace -> RESOURCE_EXHAUSTED, Corruption ->
// DATA_LOSS, Busy/TryAgain -> UNAVAILABLE, NotFound -> NOT_FOUND, others INTERNAL.
// `context` says what was being done ("write", "read job").
absl::Status FromRocksStatus(const rocksdb::Status& status, absl::string_view context);

// Iterates keys that start with a prefix. Owns its upper bound, so the bound outlives
// the RocksDB iterator. Not thread-safe. Check status() once Valid() turns false.
class PrefixIterator {
 public:
  PrefixIterator(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf, absl::string_view prefix,
                 absl::string_view start, const rocksdb::Snapshot* snapshot);

  bool Valid() const { return it_->Valid(); }
  void Next() { it_->Next(); }
  absl::string_view key() const { return ToView(it_->key()); }
  // The key with the prefix removed.
  absl::string_view suffix() const { return key().substr(prefix_size_); }
  absl::string_view value() const { return ToView(it_->value()); }
  absl::Status status() const;

 private:
  static absl::string_view ToView(const rocksdb::Slice& s) {
    return absl::string_view(s.data(), s.size());
  }

  const size_t prefix_size_;
  const std::string upper_bound_;
  rocksdb::Slice upper_bound_slice_;
  std::unique_ptr<rocksdb::Iterator> it_;  // last: destroyed before the bound
};

// Thread-safe: RocksDB is; the Store adds no mutable state after Open.
class Store {
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
  static absl::StatusOr<std::unique_ptr<Store>> Open(const StoreOptions& options);

  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // Applies `batch` atomically, synced when options.sync. RESOURCE_EXHAUSTED when the
  // disk is full. After a failed write RocksDB refuses writes until resumed; the next
  // Write resumes it first, so writes come back by themselves once space is freed.
  absl::Status Write(rocksdb::WriteBatch* batch);

  // The value at `key` (at `snapshot` if given), or nullopt if absent.
  absl::StatusOr<std::optional<std::string>> Get(Cf cf, absl::string_view key,
                                                 const rocksdb::Snapshot* snapshot = nullptr) const;

  // Iterates the keys that start with `prefix`, from `start` (which must start with
  // `prefix`; empty: from the prefix itself), optionally at `snapshot`.
  std::unique_ptr<PrefixIterator> Scan(Cf cf, absl::string_view prefix,
                                       absl::string_view start = {},
                                       const rocksdb::Snapshot* snapshot = nullptr) const;

  rocksdb::ColumnFamilyHandle* handle(Cf cf) const { return handles_[static_cast<size_t>(cf)]; }
  rocksdb::DB* db() const { return db_.get(); }
  const StoreOptions& options() const { return options_; }
  uint32_t schema_version() const { return schema_version_; }

 private:
  Store(StoreOptions options, std::unique_ptr<rocksdb::DB> db,
        std::vector<rocksdb::ColumnFamilyHandle*> handles, uint32_t schema_version);

  const StoreOptions options_;
  std::unique_ptr<rocksdb::DB> db_;
  // Indexed by Cf; then any column families of a newer format, opened to satisfy
  // RocksDB and otherwise untouched.
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;
  const uint32_t schema_version_;
  rocksdb::WriteOptions write_options_;
  // Set by a failed write; the next Write resumes RocksDB first, under resume_mu_.
  std::atomic<bool> write_failed_{false};
  absl::Mutex resume_mu_;
};

}  // namespace ckpt

#endif  // CKPT_SERVICE_STORE_STORE_H_
