// The run directory's blocks (item_runs.h, keys::RunDirectory) read through a bounded
// cache. Internal to the engine.
#ifndef CKPT_SERVICE_ENGINE_RUN_DIRECTORIES_H_
#define CKPT_SERVICE_ENGINE_RUN_DIRECTORIES_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "service/store/store.h"

namespace ckpt {

// A GetItem inside a run reads its block's directory, then the run: the directory's
// read is a point Get that searches the memtables and SST files like any other, about
// a third of the GetItem. Directories are small (a few firsts) and read far more often
// than written, so the engine keeps recently written and read ones here (up to its
// capacity; a full shard drops an arbitrary entry).
//
// Entries are hints, like the directory itself: a reader takes a run only if the run's
// record, read from its own snapshot, covers the index. So an entry newer or older than
// a reader's snapshot costs that reader a seek, never a wrong answer. The writer keeps
// entries current by writing each block through after its group commits, and takes the
// blocks it rewrites from here only (Cached), never from the store; a reader's fill
// after a miss is dropped if a write-through of the same shard came between its read
// and its fill, so a fill never replaces a newer entry.
//
// Thread-safe. Memory is bounded by `capacity` entries of a few firsts each.
class RunDirectories {
 public:
  // Reads blocks missing from the cache from `store`, which must outlive this.
  RunDirectories(const StoreReader& store, size_t capacity);

  // The firsts of the block stored under `key`, ascending, as the store has them now
  // or had them moments ago (empty: none). DATA_LOSS for a damaged record.
  absl::StatusOr<std::vector<uint64_t>> Read(const std::string& key) const;

  // The firsts cached for the block under `key`, without reading the store.
  std::optional<std::vector<uint64_t>> Cached(const std::string& key) const;

  // The writer, after its group committed: the block under `key` is now `firsts`.
  void Committed(const std::string& key, std::vector<uint64_t> firsts);
  // The writer, after jobs' keys were deleted (their blocks: under `prefixes`, each a
  // job's keys::RunDirectoryPrefix; one pass over the cache for all of them), or after
  // a failed write (everything).
  void ForgetPrefixes(const std::vector<absl::string_view>& prefixes);
  void ForgetAll();
  // How many blocks are cached (at most the capacity rounded down to a multiple of 16).
  size_t size() const;

 private:
  static constexpr size_t kShards = 16;
  struct Shard {
    mutable absl::Mutex mu;
    absl::flat_hash_map<std::string, std::vector<uint64_t>> blocks ABSL_GUARDED_BY(mu);
    uint64_t writes ABSL_GUARDED_BY(mu) = 0;  // write-throughs and forgets so far
  };
  Shard& ShardOf(absl::string_view key) const;
  // Inserts under the shard's lock, making room by dropping an arbitrary entry.
  void Insert(Shard& shard, const std::string& key, std::vector<uint64_t> firsts) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(shard.mu);

  const StoreReader& store_;
  const size_t shard_capacity_;
  mutable std::array<Shard, kShards> shards_;
};

}  // namespace ckpt

#endif  // CKPT_SERVICE_ENGINE_RUN_DIRECTORIES_H_
