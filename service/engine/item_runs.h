// Runs: consecutive indices completed together, kept as one item record (schema 4,
// STORAGE_FORMAT.md "items"). A run's record sits under the key of its first index and
// covers [first, first + run size); every other item has a record of its own or none.
// So an index's record is the record at the greatest index key <= it, if that record
// covers it. Names are never in runs. Internal to the engine.
//
// The run directory (keys::RunDirectory) says, per block of keys::kRunBlockIndices
// indices, where the runs covering its indices begin, so a reader finds an index's run
// with two point reads (the directory, then the run) where a seek over every memtable
// and SST file costs several times more. It is a hint: a run is taken only if its
// record covers the index, and a reader falls back to the seek (one Floor) otherwise,
// so a store written before the directory reads the same.
#ifndef CKPT_SERVICE_ENGINE_ITEM_RUNS_H_
#define CKPT_SERVICE_ENGINE_ITEM_RUNS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "ckpt/storage/v1/records.pb.h"
#include "ckpt/v1/checkpoint.pb.h"
#include "service/engine/run_directories.h"
#include "service/store/keys.h"
#include "service/store/store.h"

namespace ckpt {

// The most indices one run covers. A repeated completion checks each of its items
// against its stored record, so a run's length bounds what a resent call of N items
// reads (N runs' worth, not N whole calls' worth); a completion entry claiming more is
// DATA_LOSS. Calls of ~100 items, the common batch, are one run.
inline constexpr uint64_t kMaxRunItems = 128;

// How many items a stored record covers: its run's size, or 1.
inline uint64_t RecordSpan(const storage::v1::ItemRecord& record) {
  return record.run_size() > 0 ? static_cast<uint64_t>(record.run_size()) : 1;
}

// Whether the record stored under item key `stored_key` holds item `key`.
bool RecordCovers(absl::string_view stored_key, const storage::v1::ItemRecord& record,
                  absl::string_view key);

// The record of the item at `offset` in `record` (0 for a record of one item), as if it
// had its own. REQUIRES: offset < RecordSpan(record).
storage::v1::ItemRecord ItemOfRecord(const storage::v1::ItemRecord& record, uint64_t offset);

// Appends `result` to a serialized ItemRecord as its field 3 (result), as serializing a
// record holding it would, without copying the result into one.
void AppendResultField(const v1::ItemResult& result, std::string* record);

// Appends one RunItem to a serialized ItemRecord as its field 9 (run), without building
// one: the next index of the run.
void AppendRunItem(const v1::ItemResult& result, uint64_t token, uint32_t attempts,
                   std::string* record);

// The family of the run directory's records (keys::RunDirectory).
inline constexpr Cf kRunDirectoryFamily = Cf::kMeta;

// The directory block holding `index`.
inline uint64_t RunBlock(uint64_t index) { return index / keys::kRunBlockIndices; }

// A RunDirectoryRecord's firsts, ascending. DATA_LOSS if `bytes` are not one.
absl::StatusOr<std::vector<uint64_t>> ParseRunDirectory(absl::string_view bytes);
// `firsts` (ascending) as a stored RunDirectoryRecord.
std::string SerializeRunDirectory(const std::vector<uint64_t>& firsts);

// A record that stays when items leave a run: a shorter run, or one item's record.
struct RunPiece {
  uint64_t first = 0;  // its first index
  uint64_t size = 0;   // indices it covers
  std::string bytes;   // the serialized record
};

// The records that stay when the items at `offsets` (ascending, distinct, each < the
// run's size) leave the run `record`: the stretches between them, in index order.
// REQUIRES: record is a run stored under index `first`.
std::vector<RunPiece> SplitRun(const storage::v1::ItemRecord& record, uint64_t first,
                               const std::vector<uint64_t>& offsets);

// Whether a record stored under `stored_key` and covering `span` items holds `key`.
bool SpanCovers(absl::string_view stored_key, uint64_t span, absl::string_view key);

// A stored item record read for its items, for readers that want one item of a run or
// a page's worth: the record's own fields are parsed, a run's items are only located in
// its bytes, and each is parsed when asked for (a run holds ~100 results). Not
// thread-safe.
class RecordItems {
 public:
  // Reads `value`, an ItemRecord as stored, keeping it. DATA_LOSS if it is not one.
  // REQUIRES: value != nullptr.
  absl::Status Read(std::unique_ptr<StoreValue> value);
  // The record's bytes as stored.
  absl::string_view bytes() const {
    return value_ == nullptr ? absl::string_view() : value_->view();
  }
  // How many items it covers: the run's size, or 1.
  uint64_t span() const { return runs_.empty() ? 1 : runs_.size(); }
  // The state its items are in.
  v1::ItemState state() const { return record_.state(); }
  // The item at `offset` as if it had its own record. With `answer`, the result of an
  // item of a run (if it has one) is parsed into answer's result instead of the
  // record's: an answer on its call's arena takes it without a copy. REQUIRES: offset <
  // span(). DATA_LOSS if its bytes do not parse.
  absl::StatusOr<storage::v1::ItemRecord> Item(uint64_t offset, v1::Item* answer = nullptr) const;

 private:
  std::unique_ptr<StoreValue> value_;
  storage::v1::ItemRecord record_;               // a run's without its items
  std::vector<std::pair<size_t, size_t>> runs_;  // (start, size) of each RunItem in bytes()
};

// Finds item records in one step through runs, keeping the last record it read so
// that listing a run's items reads it once. Not thread-safe; `reader` must outlive it.
class ItemRecordFinder {
 public:
  // Reads records from `reader` and run directories through `directories` (nullptr:
  // from `reader`); both must outlive it.
  ItemRecordFinder(const StoreReader& reader, absl::string_view job, absl::string_view step,
                   const RunDirectories* directories = nullptr);

  // The record of `key` (an encoded item key), or nullopt: one Get for a name; for an
  // index not in the run read last, the directory and its run (two Gets), else one
  // Floor. DATA_LOSS for a corrupt record.
  // With `answer`, the result may be parsed into answer's instead of the record's (as
  // RecordItems::Item does).
  absl::StatusOr<std::optional<storage::v1::ItemRecord>> Find(const std::string& key,
                                                              v1::Item* answer = nullptr);
  // The item key the record of `key` is stored under (its run's first index, or its
  // own), with that record whole; nullopt if it has none.
  absl::StatusOr<std::optional<std::pair<std::string, storage::v1::ItemRecord>>> FindStored(
      const std::string& key);

 private:
  // The stored record the run directory names for index key `key`, as (item key, bytes):
  // the run beginning at the greatest first at or below it, which may not cover it;
  // nullopt if the directory names none.
  absl::StatusOr<std::optional<std::pair<std::string, std::unique_ptr<StoreValue>>>> DirectoryRun(
      const std::string& key) const;
  // The stored record with the greatest index key at or below index key `key`, as
  // (item key, bytes), or nullopt.
  absl::StatusOr<std::optional<std::pair<std::string, std::string>>> FloorRecord(
      const std::string& key) const;
  // The stored record that holds `key`, as (item key it is stored under, the record),
  // or nullopt: for an index, the run the directory names, else its own record, else
  // the seek.
  absl::StatusOr<std::optional<std::pair<std::string, RecordItems>>> Holder(
      const std::string& key) const;

  const StoreReader& reader_;
  const RunDirectories* const directories_;
  const std::string job_;
  const std::string step_;
  const std::string prefix_;  // the step's items prefix
  std::string cached_key_;    // item key of the run in cached_; empty: none
  RecordItems cached_;
};

}  // namespace ckpt

#endif  // CKPT_SERVICE_ENGINE_ITEM_RUNS_H_
