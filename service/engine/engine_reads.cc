// Committed reads. Jobs come from published snapshots; items, outputs and states from
// RocksDB at one snapshot, so a reader never sees a write that was not acknowledged.
#include <algorithm>
#include <functional>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "service/common/proto_time.h"
#include "service/common/status_macros.h"
#include "service/engine/engine.h"
#include "service/engine/job_state_machine.h"
#include "service/store/keys.h"

namespace ckpt {
namespace {

using storage::v1::ItemRecord;

constexpr uint32_t kDefaultListJobs = 50;
constexpr uint32_t kDefaultListItems = 100;

// Releases a RocksDB snapshot when it goes out of scope.
class ScopedSnapshot {
 public:
  explicit ScopedSnapshot(rocksdb::DB* db) : db_(db), snapshot_(db->GetSnapshot()) {}
  ~ScopedSnapshot() { db_->ReleaseSnapshot(snapshot_); }
  const rocksdb::Snapshot* get() const { return snapshot_; }

 private:
  rocksdb::DB* const db_;
  const rocksdb::Snapshot* const snapshot_;
};

// A sorted stream of encoded item keys of one kind, each optionally with a value.
class KeyStream {
 public:
  virtual ~KeyStream() = default;
  virtual bool Valid() const = 0;
  virtual const std::string& key() const = 0;
  virtual absl::string_view value() const { return {}; }
  virtual void Next() = 0;
  virtual absl::Status status() const { return absl::OkStatus(); }
};

// Keys under a RocksDB prefix (the rest of the key is the item key), after `after`.
class PrefixStream : public KeyStream {
 public:
  PrefixStream(const Store& store, Cf cf, const std::string& prefix, const std::string& after,
               const rocksdb::Snapshot* snapshot)
      : it_(store.Scan(cf, prefix, prefix + after, snapshot)), after_(after) {
    Settle();
  }
  bool Valid() const override { return it_->Valid(); }
  const std::string& key() const override { return key_; }
  absl::string_view value() const override { return it_->value(); }
  void Next() override {
    it_->Next();
    Settle();
  }
  absl::Status status() const override { return it_->status(); }

 private:
  void Settle() {
    if (it_->Valid()) key_ = std::string(it_->suffix());
    if (it_->Valid() && !after_.empty() && key_ == after_) {
      it_->Next();
      if (it_->Valid()) key_ = std::string(it_->suffix());
    }
  }
  std::unique_ptr<PrefixIterator> it_;
  const std::string after_;
  std::string key_;
};

// Indices of the step's untouched ranges (sched 'U'), after `after`.
class UntouchedStream : public KeyStream {
 public:
  UntouchedStream(const Store& store, const std::string& prefix, const std::string& after,
                  const rocksdb::Snapshot* snapshot)
      : it_(store.Scan(Cf::kSched, prefix, "", snapshot)) {
    if (!after.empty() && !keys::IsIndexKey(after)) {
      done_ = true;  // every index sorts before every name
      return;
    }
    next_ = after.empty() ? 0 : keys::IndexOf(after) + 1;
    Settle();
  }
  bool Valid() const override { return !done_; }
  const std::string& key() const override { return key_; }
  void Next() override {
    ++next_;
    Settle();
  }
  absl::Status status() const override { return it_->status(); }

 private:
  void Settle() {
    for (; it_->Valid(); it_->Next()) {
      const uint64_t begin = keys::ReadBigEndian64(it_->suffix());
      const uint64_t end = keys::ReadBigEndian64(it_->value());
      if (next_ < begin) next_ = begin;
      if (next_ < end) {
        key_ = keys::EncodeIndex(next_);
        return;
      }
    }
    done_ = true;
  }
  std::unique_ptr<PrefixIterator> it_;
  uint64_t next_ = 0;
  bool done_ = false;
  std::string key_;
};

// Calls `fn` with each of the step's grant records ('G'). Reads every one: O(live
// leases of the step), never O(items).
absl::Status ForEachGrant(const Store& store, absl::string_view job, absl::string_view step,
                          const rocksdb::Snapshot* snapshot,
                          const std::function<void(const storage::v1::LeaseGrantRecord&)>& fn) {
  auto it =
      store.Scan(Cf::kSched, keys::SchedPrefix(job, step, keys::SchedTag::kGrant), "", snapshot);
  storage::v1::LeaseGrantRecord grant;
  for (; it->Valid(); it->Next()) {
    if (!grant.ParseFromArray(it->value().data(), static_cast<int>(it->value().size()))) {
      return absl::DataLossError("corrupt lease grant record");
    }
    fn(grant);
  }
  return it->status();
}

// One granted lease as the LeaseRecord a schema-1 'L' record would hold.
std::string AsLeaseRecord(const storage::v1::LeaseGrantRecord& grant,
                          const storage::v1::LeaseGrantRecord::Lease& entry) {
  storage::v1::LeaseRecord lease;
  lease.set_worker_id(grant.worker_id());
  lease.set_token(entry.token());
  lease.set_attempts(entry.attempts());
  lease.set_cursor(entry.cursor());
  lease.set_grant_time_micros(grant.grant_time_micros());
  return lease.SerializeAsString();
}

// The granted lease of `key`, as a LeaseRecord, or nullopt.
absl::StatusOr<std::optional<std::string>> FindGrantedLease(const Store& store,
                                                            absl::string_view job,
                                                            absl::string_view step,
                                                            const std::string& key,
                                                            const rocksdb::Snapshot* snapshot) {
  std::optional<std::string> found;
  CKPT_RETURN_IF_ERROR(ForEachGrant(store, job, step, snapshot, [&](const auto& grant) {
    for (const auto& entry : grant.leases()) {
      if (entry.key() == key) found = AsLeaseRecord(grant, entry);
    }
  }));
  return found;
}

// The `limit` smallest keys after `after` of the step's granted leases, each with its
// LeaseRecord: all one page of ListItems can use, in O(limit) memory.
absl::StatusOr<std::map<std::string, std::string>> GrantedLeases(
    const Store& store, absl::string_view job, absl::string_view step, const std::string& after,
    size_t limit, const rocksdb::Snapshot* snapshot) {
  std::map<std::string, std::string> leases;
  CKPT_RETURN_IF_ERROR(ForEachGrant(store, job, step, snapshot, [&](const auto& grant) {
    for (const auto& entry : grant.leases()) {
      if (!after.empty() && entry.key() <= after) continue;
      if (leases.size() >= limit && entry.key() >= leases.rbegin()->first) continue;
      leases[entry.key()] = AsLeaseRecord(grant, entry);
      if (leases.size() > limit) leases.erase(std::prev(leases.end()));
    }
  }));
  return leases;
}

// GrantedLeases as a stream.
class GrantStream : public KeyStream {
 public:
  explicit GrantStream(std::map<std::string, std::string> leases)
      : leases_(std::move(leases)), it_(leases_.begin()) {}
  bool Valid() const override { return it_ != leases_.end(); }
  const std::string& key() const override { return it_->first; }
  absl::string_view value() const override { return it_->second; }
  void Next() override { ++it_; }

 private:
  const std::map<std::string, std::string> leases_;
  std::map<std::string, std::string>::const_iterator it_;
};

std::string PageToken(const std::string& key) { return absl::BytesToHexString(key); }

absl::StatusOr<std::string> FromPageToken(absl::string_view token) {
  if (token.empty()) return std::string();
  const std::string key = absl::HexStringToBytes(token);
  if (token.size() % 2 != 0 || !keys::DecodeItemKey(key).ok()) {
    return absl::InvalidArgumentError("page_token: not a token this server issued");
  }
  return key;
}

absl::Status ParseRecord(absl::string_view bytes, ItemRecord* record) {
  if (record->ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return absl::OkStatus();
  }
  return absl::DataLossError("corrupt item record");
}

void FillFromRecord(const ItemRecord& record, bool keys_only, v1::Item* item) {
  item->set_state(record.state());
  item->set_attempts(record.attempts());
  *item->mutable_update_time() = ToProtoTime(absl::FromUnixMicros(record.update_time_micros()));
  if (keys_only) return;
  *item->mutable_result() = record.result();
  *item->mutable_last_error() = record.last_error();
  item->set_cursor(record.cursor());
}

void FillFromLease(absl::string_view bytes, bool keys_only, v1::Item* item) {
  storage::v1::LeaseRecord lease;
  lease.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()));
  item->set_state(v1::ITEM_STATE_LEASED);
  item->set_attempts(lease.attempts());
  item->set_worker_id(lease.worker_id());
  item->set_lease_token(lease.token());
  if (!keys_only) item->set_cursor(lease.cursor());
}

absl::StatusOr<std::string> ResolveStep(const JobSnapshot& snapshot, absl::string_view step) {
  const auto& steps = snapshot.record->job().steps();
  if (step.empty()) return steps.Get(0);
  for (const std::string& name : steps) {
    if (name == step) return name;
  }
  return absl::InvalidArgumentError(absl::StrCat("step: job \"", snapshot.record->job().job_id(),
                                                 "\" has no step \"", step, "\""));
}

// Workers heard from within the lease timeout, as of `now` (Progress.active_workers).
uint32_t ActiveWorkers(const JobSnapshot& snapshot, absl::Time now) {
  uint32_t active = 0;
  for (absl::Time heard : snapshot.worker_heartbeats) {
    if (now - heard <= snapshot.lease_timeout) ++active;
  }
  return active;
}

}  // namespace

// ---------------------------------------------------------------- jobs

std::shared_ptr<const JobSnapshot> Engine::Snapshot(absl::string_view job_id) const {
  absl::MutexLock lock(&publish_mu_);
  auto it = published_.find(job_id);
  return it == published_.end() ? nullptr : it->second;
}

v1::Job Engine::JobFromSnapshot(const JobSnapshot& snapshot) const {
  v1::Job job = snapshot.record->job();
  const absl::Time now = options_.clock->Now();
  const bool over = IsFinished(job.status()) || job.status() == v1::JOB_STATUS_STOPPED;
  const absl::Time end = over && job.has_finish_time() ? FromProtoTime(job.finish_time()) : now;
  const absl::Duration elapsed = end - absl::FromUnixMicros(snapshot.record->start_time_micros());
  storage::v1::StepCounters total;
  for (size_t i = 0; i < snapshot.step_counters.size(); ++i) {
    AddCounters(snapshot.step_counters[i], &total);
    v1::StepProgress* step = job.add_step_progress();
    step->set_step(job.steps(static_cast<int>(i)));
    *step->mutable_progress() = ComputeProgress(
        snapshot.step_counters[i], snapshot.step_rates[i].PerSecond(now), elapsed, over);
  }
  *job.mutable_progress() = ComputeProgress(total, snapshot.rate.PerSecond(now), elapsed, over);
  job.mutable_progress()->set_active_workers(ActiveWorkers(snapshot, now));
  return job;
}

absl::Status Engine::GetJob(const v1::GetJobRequest& r, v1::GetJobResponse* out) const {
  auto snapshot = Snapshot(r.job_id());
  if (snapshot == nullptr) {
    return absl::NotFoundError(absl::StrCat("job \"", r.job_id(), "\" not found"));
  }
  *out->mutable_job() = JobFromSnapshot(*snapshot);
  for (const v1::RecentCompletion& recent : snapshot->recent_completions) {
    *out->add_recent_completions() = recent;
  }
  return absl::OkStatus();
}

absl::Status Engine::ListJobs(const v1::ListJobsRequest& r, v1::ListJobsResponse* out) const {
  std::vector<std::shared_ptr<const JobSnapshot>> all;
  {
    absl::MutexLock lock(&publish_mu_);
    all.reserve(published_.size());
    for (const auto& [id, snapshot] : published_) all.push_back(snapshot);
  }
  // Newest first; ties by id. The page token is the last row's "micros:id".
  auto order = [](const v1::Job& a, const v1::Job& b) {
    const int64_t ta = absl::ToUnixMicros(FromProtoTime(a.create_time()));
    const int64_t tb = absl::ToUnixMicros(FromProtoTime(b.create_time()));
    return ta != tb ? ta > tb : a.job_id() < b.job_id();
  };
  v1::Job after;
  if (!r.page_token().empty()) {
    std::vector<std::string> parts = absl::StrSplit(r.page_token(), absl::MaxSplits(':', 1));
    int64_t micros = 0;
    if (parts.size() != 2 || !absl::SimpleAtoi(parts[0], &micros)) {
      return absl::InvalidArgumentError("page_token: not a token this server issued");
    }
    *after.mutable_create_time() = ToProtoTime(absl::FromUnixMicros(micros));
    after.set_job_id(parts[1]);
  }
  std::vector<const JobSnapshot*> rows;  // kept alive by `all`
  for (const auto& snapshot : all) {
    const v1::Job& job = snapshot->record->job();
    if (r.status() != v1::JOB_STATUS_UNSPECIFIED && job.status() != r.status()) continue;
    if (!r.name_prefix().empty() && !absl::StartsWith(job.job_id(), r.name_prefix()) &&
        !absl::StartsWith(job.display_name(), r.name_prefix())) {
      continue;
    }
    bool labels_match = true;
    for (const auto& [k, v] : r.labels()) {
      auto it = job.labels().find(k);
      labels_match = labels_match && it != job.labels().end() && it->second == v;
    }
    if (!labels_match) continue;
    if (!r.page_token().empty() && !order(after, job)) continue;
    rows.push_back(snapshot.get());
  }
  std::sort(rows.begin(), rows.end(), [&](const JobSnapshot* a, const JobSnapshot* b) {
    return order(a->record->job(), b->record->job());
  });
  const size_t limit = r.limit() > 0 ? r.limit() : kDefaultListJobs;
  for (size_t i = 0; i < rows.size() && i < limit; ++i) {
    *out->add_jobs() = JobFromSnapshot(*rows[i]);
  }
  if (rows.size() > limit) {
    const v1::Job& last = rows[limit - 1]->record->job();
    out->set_next_page_token(
        absl::StrCat(absl::ToUnixMicros(FromProtoTime(last.create_time())), ":", last.job_id()));
  }
  return absl::OkStatus();
}

std::vector<JobSummary> Engine::JobSummaries() const {
  std::vector<std::shared_ptr<const JobSnapshot>> all;
  {
    absl::MutexLock lock(&publish_mu_);
    all.reserve(published_.size());
    for (const auto& [id, snapshot] : published_) all.push_back(snapshot);
  }
  const absl::Time now = options_.clock->Now();
  std::vector<JobSummary> out;
  out.reserve(all.size());
  for (const auto& snapshot : all) {
    const v1::Job& job = snapshot->record->job();
    JobSummary& summary = out.emplace_back();
    summary.job_id = job.job_id();
    summary.status = job.status();
    summary.create_time = FromProtoTime(job.create_time());
    for (const auto& counters : snapshot->step_counters) AddCounters(counters, &summary.counters);
    summary.active_workers = ActiveWorkers(*snapshot, now);
  }
  return out;
}

size_t Engine::QueuedOps() const {
  absl::MutexLock lock(&queue_mu_);
  return queue_.size();
}

uint64_t Engine::AwaitPublish(uint64_t seen, absl::Time deadline) const {
  absl::MutexLock lock(&publish_mu_);
  auto changed = [&]() ABSL_SHARED_LOCKS_REQUIRED(publish_mu_) {
    return reads_stopped_ || publish_version_ != seen;
  };
  publish_mu_.AwaitWithDeadline(absl::Condition(&changed), deadline);
  return publish_version_;
}

// ---------------------------------------------------------------- items

absl::Status Engine::GetItem(const v1::GetItemRequest& r, v1::GetItemResponse* out) const {
  auto snapshot = Snapshot(r.job_id());
  if (snapshot == nullptr) {
    return absl::NotFoundError(absl::StrCat("job \"", r.job_id(), "\" not found"));
  }
  CKPT_ASSIGN_OR_RETURN(const std::string step, ResolveStep(*snapshot, r.step()));
  const std::string key = keys::EncodeItemKey(r.key());
  ScopedSnapshot at(store_->db());
  v1::Item* item = out->mutable_item();
  *item->mutable_key() = r.key();
  item->set_step(step);
  CKPT_ASSIGN_OR_RETURN(std::optional<std::string> record,
                        store_->Get(Cf::kItems, keys::Item(r.job_id(), step, key), at.get()));
  ItemRecord parsed;
  if (record.has_value()) {
    CKPT_RETURN_IF_ERROR(ParseRecord(*record, &parsed));
    FillFromRecord(parsed, /*keys_only=*/false, item);
    if (parsed.state() == v1::ITEM_STATE_COMPLETED) return absl::OkStatus();  // never leased
  } else if (keys::IsIndexKey(key)) {
    // An untouched index: PENDING with no record. Its range starts at or before it.
    const uint64_t index = keys::IndexOf(key);
    const std::string prefix = keys::SchedPrefix(r.job_id(), step, keys::SchedTag::kUntouched);
    rocksdb::ReadOptions read;
    read.snapshot = at.get();
    std::unique_ptr<rocksdb::Iterator> it(
        store_->db()->NewIterator(read, store_->handle(Cf::kSched)));
    it->SeekForPrev(keys::RangeStart(r.job_id(), step, keys::SchedTag::kUntouched, index));
    if (it->Valid() && it->key().starts_with(prefix) &&
        keys::ReadBigEndian64(absl::string_view(it->value().data(), it->value().size())) > index) {
      item->set_state(v1::ITEM_STATE_PENDING);
      return absl::OkStatus();
    }
    CKPT_RETURN_IF_ERROR(FromRocksStatus(it->status(), "read"));
  }
  // Leased, in its own 'L' record (schema 1) or in a grant; or PENDING/FAILED as its
  // record says.
  CKPT_ASSIGN_OR_RETURN(std::optional<std::string> lease,
                        store_->Get(Cf::kSched, keys::Leased(r.job_id(), step, key), at.get()));
  if (!lease.has_value()) {
    CKPT_ASSIGN_OR_RETURN(lease, FindGrantedLease(*store_, r.job_id(), step, key, at.get()));
  }
  if (lease.has_value()) FillFromLease(*lease, /*keys_only=*/false, item);
  if (record.has_value() || lease.has_value()) return absl::OkStatus();
  out->clear_item();
  return absl::NotFoundError(absl::StrCat(keys::DescribeItemKey(key),
                                          " is not registered in step \"", step, "\" of job \"",
                                          r.job_id(), "\""));
}

absl::Status Engine::ListItems(const v1::ListItemsRequest& r, v1::ListItemsResponse* out) const {
  auto snapshot = Snapshot(r.job_id());
  if (snapshot == nullptr) {
    return absl::NotFoundError(absl::StrCat("job \"", r.job_id(), "\" not found"));
  }
  CKPT_ASSIGN_OR_RETURN(const std::string step, ResolveStep(*snapshot, r.step()));
  CKPT_ASSIGN_OR_RETURN(const std::string after, FromPageToken(r.page_token()));
  ScopedSnapshot at(store_->db());
  const std::string& job = r.job_id();
  auto sched = [&](keys::SchedTag tag) { return keys::SchedPrefix(job, step, tag); };

  // Sources in the merge, by what their keys mean.
  enum Kind { kRecord, kUntouched, kLease, kPending, kFailed };
  std::vector<std::pair<Kind, std::unique_ptr<KeyStream>>> streams;
  auto add = [&](Kind kind, Cf cf, const std::string& prefix) {
    streams.emplace_back(kind,
                         std::make_unique<PrefixStream>(*store_, cf, prefix, after, at.get()));
  };
  auto add_untouched = [&]() {
    streams.emplace_back(
        kUntouched, std::make_unique<UntouchedStream>(*store_, sched(keys::SchedTag::kUntouched),
                                                      after, at.get()));
  };
  const uint32_t limit = r.limit() > 0 ? r.limit() : kDefaultListItems;
  auto add_granted = [&]() -> absl::Status {
    // One more than a page: if it is left over, there is a next page.
    CKPT_ASSIGN_OR_RETURN(auto granted,
                          GrantedLeases(*store_, job, step, after, limit + size_t{1}, at.get()));
    streams.emplace_back(kLease, std::make_unique<GrantStream>(std::move(granted)));
    return absl::OkStatus();
  };
  const std::string pending = sched(keys::SchedTag::kPending);
  switch (r.state()) {
    case v1::ITEM_STATE_PENDING:
      add_untouched();
      add(kPending, Cf::kSched, pending + keys::kPendingRetry);
      add(kPending, Cf::kSched, pending + keys::kPendingFresh);
      break;
    case v1::ITEM_STATE_LEASED:
      add(kLease, Cf::kSched, sched(keys::SchedTag::kLeased));
      CKPT_RETURN_IF_ERROR(add_granted());
      break;
    case v1::ITEM_STATE_FAILED:
      add(kFailed, Cf::kSched, sched(keys::SchedTag::kFailed));
      break;
    default:  // COMPLETED (filtered below) or any state
      add(kRecord, Cf::kItems, keys::StepPrefix(job, step));
      if (r.state() == v1::ITEM_STATE_UNSPECIFIED) {
        add_untouched();
        add(kLease, Cf::kSched, sched(keys::SchedTag::kLeased));
        CKPT_RETURN_IF_ERROR(add_granted());
      }
  }

  std::string last;
  while (static_cast<uint32_t>(out->items_size()) < limit) {
    const std::string* smallest = nullptr;
    for (const auto& [kind, stream] : streams) {
      if (stream->Valid() && (smallest == nullptr || stream->key() < *smallest)) {
        smallest = &stream->key();
      }
    }
    if (smallest == nullptr) break;
    const std::string key = *smallest;
    v1::Item item;
    *item.mutable_key() = *keys::DecodeItemKey(key);
    item.set_step(step);
    for (auto& [kind, stream] : streams) {
      if (!stream->Valid() || stream->key() != key) continue;
      if (kind == kRecord) {
        ItemRecord record;
        CKPT_RETURN_IF_ERROR(ParseRecord(stream->value(), &record));
        if (item.state() != v1::ITEM_STATE_LEASED) FillFromRecord(record, r.keys_only(), &item);
      } else if (kind == kLease) {
        FillFromLease(stream->value(), r.keys_only(), &item);
      } else if (kind == kUntouched) {
        item.set_state(v1::ITEM_STATE_PENDING);
      } else {  // pending or failed: the details are in the item's record
        CKPT_ASSIGN_OR_RETURN(std::optional<std::string> bytes,
                              store_->Get(Cf::kItems, keys::Item(job, step, key), at.get()));
        ItemRecord record;
        if (bytes.has_value()) CKPT_RETURN_IF_ERROR(ParseRecord(*bytes, &record));
        FillFromRecord(record, r.keys_only(), &item);
        item.set_state(kind == kFailed ? v1::ITEM_STATE_FAILED : v1::ITEM_STATE_PENDING);
      }
      stream->Next();
    }
    last = key;
    if (r.state() == v1::ITEM_STATE_COMPLETED && item.state() != v1::ITEM_STATE_COMPLETED) continue;
    *out->add_items() = std::move(item);
  }
  for (const auto& [kind, stream] : streams) CKPT_RETURN_IF_ERROR(stream->status());
  bool more = false;
  for (const auto& [kind, stream] : streams) more = more || stream->Valid();
  if (more && !last.empty()) out->set_next_page_token(PageToken(last));

  if (r.error_groups() > 0) {
    std::vector<v1::ErrorGroup> groups;
    auto it = store_->Scan(Cf::kSched, keys::ErrorGroupPrefix(job), "", at.get());
    for (; it->Valid(); it->Next()) {
      storage::v1::ErrorGroupRecord record;
      record.ParseFromArray(it->value().data(), static_cast<int>(it->value().size()));
      v1::ErrorGroup group;
      group.set_message(record.message());
      group.set_count(record.count());
      groups.push_back(std::move(group));
    }
    CKPT_RETURN_IF_ERROR(it->status());
    std::sort(groups.begin(), groups.end(), [](const v1::ErrorGroup& a, const v1::ErrorGroup& b) {
      return a.count() != b.count() ? a.count() > b.count() : a.message() < b.message();
    });
    for (size_t i = 0; i < groups.size() && i < r.error_groups(); ++i) {
      *out->add_error_groups() = groups[i];
    }
  }
  return absl::OkStatus();
}

absl::Status Engine::FindOutput(const v1::FindOutputRequest& r, v1::FindOutputResponse* out) const {
  auto not_found = absl::NotFoundError(
      absl::StrCat("no completed item recorded output \"", r.output_path(), "\""));
  CKPT_ASSIGN_OR_RETURN(std::optional<std::string> bytes,
                        store_->Get(Cf::kOutputs, keys::Output(r.output_path())));
  if (!bytes.has_value()) return not_found;
  storage::v1::OutputRecord output;
  if (!output.ParseFromString(*bytes)) return absl::DataLossError("corrupt output record");
  // The record may be stale (the item was reset or its job deleted): check the item.
  v1::GetItemRequest get;
  get.set_job_id(output.job_id());
  get.set_step(output.step());
  auto key = keys::DecodeItemKey(output.item_key());
  if (!key.ok()) return absl::DataLossError("corrupt output record");
  *get.mutable_key() = *key;
  v1::GetItemResponse item;
  const absl::Status status = GetItem(get, &item);
  if (!status.ok() && !absl::IsNotFound(status)) return status;
  if (!status.ok() || item.item().state() != v1::ITEM_STATE_COMPLETED) return not_found;
  const auto& paths = item.item().result().output_paths();
  if (std::find(paths.begin(), paths.end(), r.output_path()) == paths.end()) return not_found;
  out->set_job_id(output.job_id());
  *out->mutable_item() = item.item();
  return absl::OkStatus();
}

// ---------------------------------------------------------------- states

absl::Status Engine::GetState(const v1::GetStateRequest& r, v1::GetStateResponse* out) const {
  if (Snapshot(r.job_id()) == nullptr) {
    return absl::NotFoundError(absl::StrCat("job \"", r.job_id(), "\" not found"));
  }
  CKPT_ASSIGN_OR_RETURN(std::optional<std::string> bytes,
                        store_->Get(Cf::kStates, keys::State(r.job_id(), r.name())));
  if (!bytes.has_value()) {
    return absl::NotFoundError(
        absl::StrCat("job \"", r.job_id(), "\" has no state \"", r.name(), "\""));
  }
  storage::v1::StateRecord record;
  if (!record.ParseFromString(*bytes)) return absl::DataLossError("corrupt state record");
  v1::State* state = out->mutable_state();
  state->set_name(r.name());
  state->set_value(record.value());
  state->set_version(record.version());
  *state->mutable_update_time() = ToProtoTime(absl::FromUnixMicros(record.update_time_micros()));
  return absl::OkStatus();
}

absl::Status Engine::ListStates(const v1::ListStatesRequest& r, v1::ListStatesResponse* out) const {
  if (Snapshot(r.job_id()) == nullptr) {
    return absl::NotFoundError(absl::StrCat("job \"", r.job_id(), "\" not found"));
  }
  auto it = store_->Scan(Cf::kStates, keys::JobPrefix(r.job_id()));
  for (; it->Valid(); it->Next()) {
    storage::v1::StateRecord record;
    if (!record.ParseFromArray(it->value().data(), static_cast<int>(it->value().size()))) {
      return absl::DataLossError("corrupt state record");
    }
    v1::State* state = out->add_states();
    state->set_name(std::string(it->suffix()));
    if (r.include_values()) state->set_value(record.value());
    state->set_version(record.version());
    *state->mutable_update_time() = ToProtoTime(absl::FromUnixMicros(record.update_time_micros()));
  }
  return it->status();
}

}  // namespace ckpt
