// Appending to a job's logs (the logs family, STORAGE_FORMAT.md) within one group
// commit: each entry under its item (or the job), each item's log and the job's bounded,
// the oldest entries dropped and counted. Internal to the engine.
//
// An op first Plans its entries (reads: the items' counts and, over a bound, the oldest
// stored entries to drop; changes nothing), so that a refused op leaves no trace, then
// Applies the plan. Entries the group itself added are never dropped by it: a log can
// be over its bound by one group's entries until the next group that writes to it.
#ifndef CKPT_SERVICE_ENGINE_LOG_BOOK_H_
#define CKPT_SERVICE_ENGINE_LOG_BOOK_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "ckpt/storage/v1/records.pb.h"
#include "ckpt/v1/checkpoint.pb.h"
#include "service/store/store.h"

namespace ckpt {

// The bounds (ckptd flags --max_log_*). Sizes are those of the stored LogRecords.
struct LogLimits {
  uint64_t max_entries_per_item = 1000;
  uint64_t max_bytes_per_item = 256 << 10;
  uint64_t max_entries_per_job = 100000;
  uint64_t max_bytes_per_job = 64 << 20;
};

// A job's log as the engine keeps it in memory: its 'J' record, written at flush when
// dirty.
struct JobLog {
  storage::v1::LogStatsRecord stats;
  bool dirty = false;
};

// One entry to append: its item (empty item_key: the job's own entry) and what.
struct NewLogEntry {
  std::string step;                     // the item's step; empty for the job's own entry
  std::string item_key;                 // an encoded item key, or empty
  const v1::LogEntry* entry = nullptr;  // must outlive the plan's application
};

// What one item's log is as of the group.
struct ItemLogState {
  storage::v1::LogStatsRecord stats;
  uint64_t loaded_entries = 0;  // stats.entries as the store had it
  uint64_t store_dropped = 0;   // of those, dropped by this group: always its oldest
};

// The changes of appending one op's entries, decided by LogGroup::Plan.
struct LogPlan {
  struct Add {
    std::string step, item_key;
    std::string record;  // a serialized LogRecord
  };
  struct Drop {
    uint64_t sequence;
    std::string step, item_key;  // empty item_key: the job's own entry
  };
  std::vector<Add> adds;    // in order; sequences from job.next_sequence() - adds.size()
  std::vector<Drop> drops;  // stored entries to delete
  // The logs' states after the op: of every item touched (by 'S' key), and the job's.
  std::vector<std::pair<std::string, ItemLogState>> items;
  storage::v1::LogStatsRecord job;
};

// Not thread-safe: one per group commit, on the engine's writer thread.
class LogGroup {
 public:
  // `store` is read for what this group has not changed; it must outlive the group.
  LogGroup(const StoreReader& store, const LogLimits& limits, absl::Time now)
      : store_(store), limits_(limits), now_(now) {}

  // What appending `entries`, sent by `worker_id`, to the log of `job_id` (whose log is
  // `job` as of this group) changes. Reads; changes nothing. DATA_LOSS for a corrupt
  // record, or the store's error.
  absl::StatusOr<LogPlan> Plan(absl::string_view job_id, const JobLog& job,
                               absl::string_view worker_id,
                               const std::vector<NewLogEntry>& entries);
  // Adds the plan's writes to `batch` and its counts to `job` (marked dirty) and to what
  // this group knows of the items.
  void Apply(absl::string_view job_id, JobLog& job, const LogPlan& plan, WriteBatch& batch);
  // Writes the counts of every item whose log this group changed.
  void Flush(WriteBatch& batch);
  // The job's logs were range-deleted earlier in this group (ResetJob, DeleteJob): what
  // the store holds of them no longer counts.
  void ForgetJob(absl::string_view job_id);

 private:
  class Planner;
  // The item's log as of this group: what it changed, else the store's.
  absl::StatusOr<ItemLogState> ItemState(absl::string_view job_id, const std::string& stats_key);
  bool Forgotten(absl::string_view job_id) const { return forgotten_.contains(job_id); }

  const StoreReader& store_;
  const LogLimits limits_;
  const absl::Time now_;
  absl::flat_hash_map<std::string, ItemLogState> items_;  // by 'S' key; all dirty
  // Per job: the stored entries this group deleted (their sequences).
  absl::flat_hash_map<std::string, absl::flat_hash_set<uint64_t>> deleted_;
  absl::flat_hash_set<std::string> forgotten_;
};

// Reads a job's 'J' record: zeros if it has none.
absl::StatusOr<JobLog> LoadJobLog(const StoreReader& store, absl::string_view job_id);

}  // namespace ckpt

#endif  // CKPT_SERVICE_ENGINE_LOG_BOOK_H_
