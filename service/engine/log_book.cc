#include "service/engine/log_book.h"

#include <memory>
#include <optional>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "service/common/proto_time.h"
#include "service/common/status_macros.h"
#include "service/engine/stored_record.h"
#include "service/store/keys.h"

namespace ckpt {
namespace {

bool Over(const storage::v1::LogStatsRecord& stats, uint64_t max_entries, uint64_t max_bytes) {
  return stats.entries() > max_entries || stats.bytes() > max_bytes;
}

void Count(storage::v1::LogStatsRecord* stats, int64_t entries, int64_t bytes) {
  stats->set_entries(stats->entries() + entries);
  stats->set_bytes(stats->bytes() + bytes);
}

}  // namespace

// Plans one op's entries: adds them item by item, keeping within each item's bound,
// then trims the job's log to its bound.
class LogGroup::Planner {
 public:
  Planner(LogGroup& group, absl::string_view job_id, const JobLog& job, absl::string_view worker_id)
      : group_(group), job_id_(job_id), worker_id_(worker_id) {
    plan_.job = job.stats;
    if (plan_.job.next_sequence() == 0) plan_.job.set_next_sequence(1);
  }

  absl::StatusOr<LogPlan> Run(const std::vector<NewLogEntry>& entries) {
    // Entries by item, items in the order they first appear.
    std::vector<std::vector<const NewLogEntry*>> by_item;
    absl::flat_hash_map<std::string, size_t> position;
    for (const NewLogEntry& entry : entries) {
      const std::string id = absl::StrCat(entry.step, absl::string_view("\0", 1), entry.item_key);
      auto [it, added] = position.try_emplace(id, by_item.size());
      if (added) by_item.emplace_back();
      by_item[it->second].push_back(&entry);
    }
    for (const auto& item_entries : by_item) CKPT_RETURN_IF_ERROR(AddItemEntries(item_entries));
    CKPT_RETURN_IF_ERROR(TrimJob());
    return std::move(plan_);
  }

 private:
  // The item's state within this plan.
  absl::StatusOr<ItemLogState*> Item(const std::string& step, const std::string& item_key) {
    std::string stats_key = keys::ItemLogStats(job_id_, step, item_key);
    if (auto it = index_.find(stats_key); it != index_.end())
      return &plan_.items[it->second].second;
    CKPT_ASSIGN_OR_RETURN(ItemLogState state, group_.ItemState(job_id_, stats_key));
    index_[stats_key] = plan_.items.size();
    plan_.items.emplace_back(std::move(stats_key), std::move(state));
    return &plan_.items.back().second;
  }

  std::string Record(const NewLogEntry& entry) const {
    storage::v1::LogRecord record;
    const v1::LogEntry& e = *entry.entry;
    record.set_time_micros(
        absl::ToUnixMicros(e.has_time() ? FromProtoTime(e.time()) : group_.now_));
    record.set_level(e.level() == v1::LOG_LEVEL_UNSPECIFIED ? v1::LOG_LEVEL_INFO : e.level());
    record.set_logger(e.logger());
    record.set_message(e.message());
    record.set_worker_id(std::string(worker_id_));
    record.set_step(entry.step);
    record.set_item_key(entry.item_key);
    return record.SerializeAsString();
  }

  // Adds one item's (or the job's own) entries of this op: the newest that fit the
  // item's bound, then drops the item's oldest stored entries while it is over it.
  absl::Status AddItemEntries(const std::vector<const NewLogEntry*>& entries) {
    const NewLogEntry& first = *entries.front();
    ItemLogState* item = nullptr;
    if (!first.item_key.empty()) {
      CKPT_ASSIGN_OR_RETURN(item, Item(first.step, first.item_key));
    }
    const LogLimits& limits = group_.limits_;
    std::vector<std::string> records;
    uint64_t bytes = 0;
    size_t kept = 0;  // the newest `kept` entries
    for (auto e = entries.rbegin(); e != entries.rend(); ++e) {
      std::string record = Record(**e);
      if (item != nullptr && (kept >= limits.max_entries_per_item ||
                              bytes + record.size() > limits.max_bytes_per_item)) {
        break;
      }
      bytes += record.size();
      records.push_back(std::move(record));
      ++kept;
    }
    const uint64_t dropped = entries.size() - kept;
    for (auto r = records.rbegin(); r != records.rend(); ++r) {
      plan_.adds.push_back({first.step, first.item_key, std::move(*r)});
    }
    plan_.job.set_next_sequence(plan_.job.next_sequence() + kept);
    Count(&plan_.job, kept, bytes);
    plan_.job.set_dropped(plan_.job.dropped() + dropped);
    if (item == nullptr) return absl::OkStatus();
    Count(&item->stats, kept, bytes);
    item->stats.set_dropped(item->stats.dropped() + dropped);
    return TrimItem(first.step, first.item_key, *item);
  }

  absl::Status TrimItem(const std::string& step, const std::string& item_key, ItemLogState& item) {
    const LogLimits& limits = group_.limits_;
    if (!Over(item.stats, limits.max_entries_per_item, limits.max_bytes_per_item)) {
      return absl::OkStatus();
    }
    // The stored entries in order; the first store_dropped are gone already.
    const std::string prefix = keys::ItemLogPrefix(job_id_, step, item_key);
    auto it = group_.store_.Scan(Cf::kLogs, prefix);
    for (uint64_t skip = 0; skip < item.store_dropped && it->Valid(); ++skip) it->Next();
    while (Over(item.stats, limits.max_entries_per_item, limits.max_bytes_per_item) &&
           item.store_dropped < item.loaded_entries && it->Valid()) {
      CKPT_ASSIGN_OR_RETURN(const uint64_t sequence,
                            keys::ParseLogSequence(it->key(), prefix.size()));
      CKPT_ASSIGN_OR_RETURN(const uint64_t size,
                            keys::ParseBigEndian64Value(it->value(), "item log"));
      Drop(sequence, step, item_key, size, &item);
      it->Next();
    }
    return it->status();
  }

  // Drops the job's oldest stored entries while its log is over the job's bound.
  absl::Status TrimJob() {
    const LogLimits& limits = group_.limits_;
    if (!Over(plan_.job, limits.max_entries_per_job, limits.max_bytes_per_job) ||
        group_.Forgotten(job_id_)) {
      return absl::OkStatus();
    }
    const absl::flat_hash_set<uint64_t>& deleted = group_.deleted_[job_id_];
    const std::string prefix = keys::LogEntryPrefix(job_id_);
    auto it = group_.store_.Scan(Cf::kLogs, prefix);
    for (; it->Valid() && Over(plan_.job, limits.max_entries_per_job, limits.max_bytes_per_job);
         it->Next()) {
      CKPT_ASSIGN_OR_RETURN(const uint64_t sequence,
                            keys::ParseLogSequence(it->key(), prefix.size()));
      if (deleted.contains(sequence) || dropped_.contains(sequence)) continue;
      storage::v1::LogRecord record;
      CKPT_RETURN_IF_ERROR(ParseStored(it->value(), &record, "log"));
      ItemLogState* item = nullptr;
      if (!record.item_key().empty()) {
        CKPT_ASSIGN_OR_RETURN(item, Item(record.step(), record.item_key()));
      }
      Drop(sequence, record.step(), record.item_key(), it->value().size(), item);
    }
    return it->status();
  }

  void Drop(uint64_t sequence, const std::string& step, const std::string& item_key, uint64_t size,
            ItemLogState* item) {
    plan_.drops.push_back({sequence, step, item_key});
    dropped_.insert(sequence);
    Count(&plan_.job, -1, -static_cast<int64_t>(size));
    plan_.job.set_dropped(plan_.job.dropped() + 1);
    if (item == nullptr) return;
    Count(&item->stats, -1, -static_cast<int64_t>(size));
    item->stats.set_dropped(item->stats.dropped() + 1);
    ++item->store_dropped;
  }

  LogGroup& group_;
  const std::string job_id_;
  const absl::string_view worker_id_;
  LogPlan plan_;
  absl::flat_hash_map<std::string, size_t> index_;  // 'S' key -> plan_.items position
  absl::flat_hash_set<uint64_t> dropped_;           // sequences this plan drops
};

absl::StatusOr<LogPlan> LogGroup::Plan(absl::string_view job_id, const JobLog& job,
                                       absl::string_view worker_id,
                                       const std::vector<NewLogEntry>& entries) {
  if (entries.empty()) {
    LogPlan nothing;
    nothing.job = job.stats;
    return nothing;
  }
  return Planner(*this, job_id, job, worker_id).Run(entries);
}

void LogGroup::Apply(absl::string_view job_id, JobLog& job, const LogPlan& plan,
                     WriteBatch& batch) {
  if (plan.adds.empty() && plan.drops.empty()) return;
  uint64_t sequence = plan.job.next_sequence() - plan.adds.size();
  for (const LogPlan::Add& add : plan.adds) {
    batch.Put(Cf::kLogs, keys::LogEntry(job_id, sequence), add.record);
    if (!add.item_key.empty()) {
      batch.Put(Cf::kLogs, keys::ItemLog(job_id, add.step, add.item_key, sequence),
                BigEndian(add.record.size()));
    }
    ++sequence;
  }
  absl::flat_hash_set<uint64_t>& deleted = deleted_[job_id];
  for (const LogPlan::Drop& drop : plan.drops) {
    batch.Delete(Cf::kLogs, keys::LogEntry(job_id, drop.sequence));
    if (!drop.item_key.empty()) {
      batch.Delete(Cf::kLogs, keys::ItemLog(job_id, drop.step, drop.item_key, drop.sequence));
    }
    deleted.insert(drop.sequence);
  }
  for (const auto& [stats_key, state] : plan.items) items_[stats_key] = state;
  job.stats = plan.job;
  job.dirty = true;
}

void LogGroup::Flush(WriteBatch& batch) {
  for (const auto& [stats_key, state] : items_) {
    batch.Put(Cf::kLogs, stats_key, state.stats.SerializeAsString());
  }
}

void LogGroup::ForgetJob(absl::string_view job_id) {
  const std::string prefix = keys::JobPrefix(job_id);
  absl::erase_if(items_, [&](const auto& entry) { return absl::StartsWith(entry.first, prefix); });
  deleted_.erase(job_id);
  forgotten_.insert(std::string(job_id));
}

absl::StatusOr<ItemLogState> LogGroup::ItemState(absl::string_view job_id,
                                                 const std::string& stats_key) {
  if (auto it = items_.find(stats_key); it != items_.end()) return it->second;
  ItemLogState state;
  if (Forgotten(job_id)) return state;
  CKPT_ASSIGN_OR_RETURN(std::optional<std::string> bytes, store_.Get(Cf::kLogs, stats_key));
  if (bytes.has_value()) CKPT_RETURN_IF_ERROR(ParseStored(*bytes, &state.stats, "item log"));
  state.loaded_entries = state.stats.entries();
  return state;
}

absl::StatusOr<JobLog> LoadJobLog(const StoreReader& store, absl::string_view job_id) {
  JobLog log;
  CKPT_ASSIGN_OR_RETURN(std::optional<std::string> bytes,
                        store.Get(Cf::kLogs, keys::JobLogStats(job_id)));
  if (bytes.has_value()) CKPT_RETURN_IF_ERROR(ParseStored(*bytes, &log.stats, "job log"));
  return log;
}

}  // namespace ckpt
