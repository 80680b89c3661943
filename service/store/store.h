// The store: what the engine needs from durable storage, and nothing else. Two
// implementations keep the same records under the same keys (STORAGE_FORMAT.md):
// RocksDbStore (rocksdb_store.h, the embedded default) and PostgresStore.
//
// The engine builds each group commit as one WriteBatch and applies it atomically with
// Store::Write; it reads the latest committed state from the Store itself (its writer
// is the only writer) and gives readers a consistent ReadView (a snapshot).
//
// Errors every implementation maps its own failures to:
//   RESOURCE_EXHAUSTED  the disk (or database) is full;
//   DATA_LOSS           a record or file is corrupt;
//   UNAVAILABLE         the store cannot be reached now (retry later);
//   INTERNAL            anything else.
#ifndef CKPT_SERVICE_STORE_STORE_H_
#define CKPT_SERVICE_STORE_STORE_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace ckpt {

// The store format this build writes and understands. A store with a newer version
// is refused at open; an older one is opened and marked as this version (1 -> 2 adds
// LeaseGrantRecords; schema 1's LeaseRecords are still read; 2 -> 3 adds the logs and
// completions families, empty in an upgraded store; 3 -> 4 adds runs: one item record
// and one completion entry for consecutive indices completed together; 4 -> 5 adds runs
// of leases in grant records).
inline constexpr uint32_t kSchemaVersion = 5;

// Record families (RocksDB column families; a column of PostgreSQL's table). New ones
// go at the end: the values are stored by PostgreSQL.
enum class Cf { kMeta, kJobs, kItems, kSched, kWorkers, kStates, kOutputs, kLogs, kCompletions };
inline constexpr size_t kNumCfs = 9;

// Changes applied together by Store::Write, in the order they were added: a Put after
// a DeleteRange covering its key stands. Not thread-safe; made by Store::NewBatch and
// only valid for that store.
class WriteBatch {
 public:
  virtual ~WriteBatch() = default;
  virtual void Put(Cf cf, absl::string_view key, absl::string_view value) = 0;
  virtual void Delete(Cf cf, absl::string_view key) = 0;
  // Deletes every key in [begin, end).
  virtual void DeleteRange(Cf cf, absl::string_view begin, absl::string_view end) = 0;
  // Changes added so far.
  virtual size_t Count() const = 0;
  // Roughly the bytes the changes hold (keys and values), for metrics.
  virtual size_t ByteSize() const = 0;
};

// Keys that start with a prefix, in ascending bytewise order, from a start key. Not
// thread-safe. Check status() once Valid() turns false: an iterator that stops early
// because of an error is not Valid and has a non-OK status.
class StoreIterator {
 public:
  explicit StoreIterator(size_t prefix_size) : prefix_size_(prefix_size) {}
  virtual ~StoreIterator() = default;
  StoreIterator(const StoreIterator&) = delete;
  StoreIterator& operator=(const StoreIterator&) = delete;

  virtual bool Valid() const = 0;
  virtual void Next() = 0;
  // REQUIRES: Valid(). Views stay valid until the next Next().
  virtual absl::string_view key() const = 0;
  virtual absl::string_view value() const = 0;
  virtual absl::Status status() const = 0;
  // The key with the prefix removed. REQUIRES: Valid().
  absl::string_view suffix() const { return key().substr(prefix_size_); }

 private:
  const size_t prefix_size_;
};

// A value read by StoreReader::GetPinned. Valid until destroyed; not thread-safe.
class StoreValue {
 public:
  virtual ~StoreValue() = default;
  virtual absl::string_view view() const = 0;
};

// A StoreValue that owns a copy.
class OwnedStoreValue : public StoreValue {
 public:
  explicit OwnedStoreValue(std::string value) : value_(std::move(value)) {}
  absl::string_view view() const override { return value_; }

 private:
  const std::string value_;
};

// Point reads and prefix scans. Thread-safe: any number of threads may read at once.
class StoreReader {
 public:
  virtual ~StoreReader() = default;

  // The value at `key`, or nullopt if there is none.
  virtual absl::StatusOr<std::optional<std::string>> Get(Cf cf, absl::string_view key) const = 0;
  // The same, for a large value read once: in place where the store can (RocksDB: in
  // its block cache, which keeps the block while the value lives), else copied. nullptr
  // if there is none.
  virtual absl::StatusOr<std::unique_ptr<StoreValue>> GetPinned(Cf cf,
                                                                absl::string_view key) const {
    absl::StatusOr<std::optional<std::string>> value = Get(cf, key);
    if (!value.ok()) return value.status();
    if (!value->has_value()) return std::unique_ptr<StoreValue>();
    return std::unique_ptr<StoreValue>(std::make_unique<OwnedStoreValue>(std::move(**value)));
  }
  // The keys that start with `prefix`, from `start` (which must start with `prefix`;
  // empty: from the prefix itself).
  virtual std::unique_ptr<StoreIterator> Scan(Cf cf, absl::string_view prefix,
                                              absl::string_view start = {}) const = 0;
  // The entry with the greatest key <= `key` among those starting with `prefix`, or
  // nullopt. REQUIRES: `key` starts with `prefix`.
  virtual absl::StatusOr<std::optional<std::pair<std::string, std::string>>> Floor(
      Cf cf, absl::string_view prefix, absl::string_view key) const = 0;
  // Whether a Floor costs about what a Get does (PostgreSQL: one index descent either
  // way), so that readers need not trade one Floor for point reads. False for RocksDB,
  // whose Floor is an iterator over every memtable and SST file.
  virtual bool FloorIsCheap() const { return false; }
};

// The store as of one moment: later writes are not seen. Releases what it holds (a
// RocksDB snapshot, a PostgreSQL transaction) when destroyed.
class ReadView : public StoreReader {};

// What Store::Checkpoint made.
struct StoreCopy {
  uint64_t files = 0;  // in the copy
  uint64_t bytes = 0;  // their total size
};

// Thread-safe. Reads through the Store itself see every write that returned OK.
class Store : public StoreReader {
 public:
  // An empty batch for Write.
  virtual std::unique_ptr<WriteBatch> NewBatch() const = 0;
  // Applies `batch` atomically and durably (as the implementation's options say), or
  // not at all. After an error the batch may or may not have been applied when the
  // implementation cannot know (a connection lost during commit: UNAVAILABLE); the
  // engine treats every error alike and rebuilds its state from the store.
  virtual absl::Status Write(WriteBatch* batch) = 0;
  // A consistent view of everything written so far.
  virtual absl::StatusOr<std::unique_ptr<ReadView>> NewReadView() const = 0;
  // The schema version the store had when opened (now kSchemaVersion).
  virtual uint32_t schema_version() const = 0;
  // Tells `listener` whether the store can serve: at once, then whenever that changes
  // (false while a database cannot be reached or after another ckptd took it over; true
  // again once it can), from a thread of the store. nullptr stops the calls, waiting
  // for one in progress; the listener must stay valid until then. A store that is
  // always there (RocksDB: its failures are per write) says true once.
  // Copies the whole store into the new directory `dir` (an absolute path that must
  // not exist, in an existing directory) while writes go on: the copy holds every write
  // that returned before the call, each batch whole or not at all, and opens as a
  // store of its own. FAILED_PRECONDITION naming what is wrong with `dir`, while
  // another copy runs, or when the store cannot copy itself (PostgreSQL, which has its
  // own tools); a failed copy leaves nothing behind.
  virtual absl::StatusOr<StoreCopy> Checkpoint(const std::string& dir) = 0;
  virtual void SetAvailabilityListener(std::function<void(bool available)> listener) {
    if (listener) listener(true);
  }
};

}  // namespace ckpt

#endif  // CKPT_SERVICE_STORE_STORE_H_
