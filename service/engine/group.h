// One group commit's working state: the WriteBatch being built and what this group
// already wrote, so later ops in the same group read their predecessors' writes.
// Writer thread only. Internal to the engine.
#ifndef CKPT_SERVICE_ENGINE_GROUP_H_
#define CKPT_SERVICE_ENGINE_GROUP_H_

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/btree_map.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "ckpt/storage/v1/records.pb.h"
#include "service/engine/engine.h"
#include "service/engine/log_book.h"
#include "service/store/store.h"

namespace ckpt {

class Engine::Group {
 public:
  Group(absl::Time now, std::unique_ptr<WriteBatch> batch, const StoreReader& store,
        const LogLimits& log_limits)
      : now(now), batch(std::move(batch)), logs(store, log_limits, now) {}

  const absl::Time now;
  const std::unique_ptr<WriteBatch> batch;
  // The log entries this group appends, and the item log counts it changed.
  LogGroup logs;
  // items CF key -> the serialized record this group wrote (nullopt: deleted). Bytes,
  // not the parsed record: copying every written record costs more than parsing the
  // rare one read back. Ordered: the record of an index may be a run's, stored under a
  // lower key (item_runs.h).
  absl::btree_map<std::string, std::optional<std::string>> items;
  // meta CF key of a run directory block -> its firsts as this group left them
  // (item_runs.h); taken from the engine's cache when the group first changes the
  // block, written at flush.
  absl::btree_map<std::string, std::vector<uint64_t>> run_directories;
  // states CF key -> record written by this group (nullopt: deleted).
  absl::flat_hash_map<std::string, std::optional<storage::v1::StateRecord>> states;
  // Job prefixes this group deleted with ranges (DeleteJob, ResetJob). `items`,
  // `run_directories` and `states` hold only what the group wrote after the last such delete, so a
  // key under one of these prefixes and not in them is deleted as of this group, whatever the store
  // still says.
  std::vector<std::string> deleted_prefixes;

  bool DeletedByRange(absl::string_view key) const {
    for (const std::string& prefix : deleted_prefixes) {
      if (absl::StartsWith(key, prefix)) return true;
    }
    return false;
  }
  // Jobs whose snapshot must be republished (ids, so deleted jobs are fine).
  absl::flat_hash_set<std::string> touched;
  // Items that moved in this group, for the observer (GroupCommitStats).
  uint64_t items_completed = 0;
  uint64_t items_failed = 0;
  uint64_t items_leased = 0;
  // Jobs deleted in this group: by the retention sweep, and on request.
  uint64_t jobs_expired = 0;
  uint64_t jobs_deleted = 0;
};

}  // namespace ckpt

#endif  // CKPT_SERVICE_ENGINE_GROUP_H_
