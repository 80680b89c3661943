// The engine's spine: loading, the writer loop, group commit, flush and publish, and
// the item-placement helpers every decision uses. Decisions live in engine_jobs.cc,
// engine_items.cc and engine_workers.cc; committed reads in engine_reads.cc.
#include "service/engine/engine.h"

#include <algorithm>
#include <chrono>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "google/protobuf/arena.h"
#include "service/common/log.h"
#include "service/common/proto_time.h"
#include "service/common/status_macros.h"
#include "service/engine/errors.h"
#include "service/engine/group.h"
#include "service/engine/item_runs.h"
#include "service/engine/job_loader.h"
#include "service/engine/job_state_machine.h"
#include "service/engine/stored_record.h"
#include "service/store/keys.h"

namespace ckpt {

using storage::v1::ItemRecord;
using storage::v1::JobRecord;

int JobRuntime::StepIndex(absl::string_view step) const {
  for (size_t i = 0; i < steps.size(); ++i) {
    if (steps[i].name == step) return static_cast<int>(i);
  }
  return -1;
}

// ---------------------------------------------------------------- open and load

Engine::Engine(Store* store, const EngineOptions& options)
    : store_(store),
      options_(options),
      run_directories_(*store, kRunDirectoryCacheBlocks),
      queue_(options.queue) {}

absl::StatusOr<std::unique_ptr<Engine>> Engine::Open(Store* store, const EngineOptions& options) {
  std::unique_ptr<Engine> engine(new Engine(store, options));
  CKPT_RETURN_IF_ERROR(engine->Load());
  engine->PublishAll();
  // Jobs that expired while ckptd was down go at once, unless sweeps are off.
  if (options.retention.sweep_interval == absl::InfiniteDuration()) {
    engine->next_sweep_ = absl::InfiniteFuture();
  }
  engine->writer_ = std::thread([e = engine.get()] { e->WriterLoop(); });
  return engine;
}

Engine::~Engine() {
  queue_.StopAccepting();
  if (writer_.joinable()) writer_.join();
  absl::MutexLock lock(&publish_mu_);
  reads_stopped_ = true;
}

absl::Status Engine::CheckLoad(const StoreReader& store, const EngineOptions& options) {
  Engine engine(nullptr, options);
  return engine.LoadFrom(store);
}

absl::Status Engine::LoadFrom(const StoreReader& store) {
  jobs_.clear();
  expiry_.clear();
  retention_.Clear();
  for (auto [key, counter] : {std::make_pair(keys::kNextTokenKey, &next_token_),
                              std::make_pair(keys::kNextWorkerKey, &next_worker_)}) {
    CKPT_ASSIGN_OR_RETURN(std::optional<std::string> value, store.Get(Cf::kMeta, key));
    uint64_t stored = 0;
    if (value.has_value()) {
      CKPT_ASSIGN_OR_RETURN(stored,
                            keys::ParseBigEndian64Value(*value, absl::StrCat("meta/", key)));
    }
    // The first id of this engine's sequence that is not below what the store says.
    const uint64_t first = options_.id_first, stride = options_.id_stride;
    *counter = stored <= first ? first : first + (stored - first + stride - 1) / stride * stride;
  }
  meta_dirty_ = false;
  JobLoader loader(&store, options_.clock->Now(), &expiry_);
  auto it = store.Scan(Cf::kJobs, "");
  for (; it->Valid(); it->Next()) {
    JobRecord record;
    CKPT_RETURN_IF_ERROR(ParseStored(it->value(), &record, "job"));
    CKPT_ASSIGN_OR_RETURN(std::unique_ptr<JobRuntime> job, loader.Load(record));
    retention_.Set(job->id(), RetentionExpiry(job->record.job()));
    jobs_[job->id()] = std::move(job);
  }
  return it->status();
}

absl::Status Engine::Reload() {
  const absl::Status loaded = Load();
  if (!loaded.ok()) {
    if (unloaded_.ok()) {
      LogLine(absl::StrCat("cannot rebuild the state from the store after a failed write (",
                           loaded.message(), "); refusing writes and retrying"));
    }
    unloaded_ = loaded;
    return loaded;
  }
  if (!unloaded_.ok()) LogLine("state rebuilt from the store; writes accepted again");
  unloaded_ = absl::OkStatus();
  PublishAll();
  return absl::OkStatus();
}

void Engine::PublishAll() {
  Group everything(options_.clock->Now(), store_->NewBatch(), *store_, options_.log_limits);
  for (const auto& [id, job] : jobs_) everything.touched.insert(id);
  {
    // Jobs published before but gone from the store now are unpublished.
    absl::MutexLock lock(&publish_mu_);
    for (const auto& [id, snapshot] : published_) everything.touched.insert(id);
  }
  Publish(everything);
}

uint64_t Engine::Issue(uint64_t* counter) {
  const uint64_t id = *counter;
  *counter += options_.id_stride;
  meta_dirty_ = true;
  return id;
}

// ---------------------------------------------------------------- writer loop

void Engine::Submit(size_t bytes, std::function<absl::Status(Group&)> decide, Done done) {
  Op op{std::move(decide), std::move(done), bytes};
  const absl::Status queued = queue_.Push(op);
  if (!queued.ok()) op.done(queued);
}

void Engine::RefuseQueued() {
  const absl::Status status = absl::UnavailableError(
      "ckptd is shutting down and its grace ran out before this write's turn: it was not "
      "applied; retry against the new instance");
  for (Op& op : queue_.TakeAll()) {
    if (op.done) op.done(status);
  }
}

void Engine::WriterLoop() {
  for (;;) {
    std::vector<Op> ops;
    // Between the batches of a sweep the writer does not wait: what is queued goes
    // first, then the next batch.
    const absl::Duration wait =
        SweepDue(options_.clock->Now()) ? absl::ZeroDuration() : options_.expiry_poll;
    if (!queue_.TakeGroup(wait, &ops)) return;
    if (ops.empty() && !unloaded_.ok()) {
      // Rebuild as soon as the store is back, not at the next write: leases expire
      // again, and GetJob shows what the store holds.
      Reload().IgnoreError();
      continue;
    }
    const absl::Time now = options_.clock->Now();
    if (!expiry_.empty() && expiry_.begin()->deadline <= now) {
      ops.push_back({[this](Group& g) { return DoExpireLeases(g); }, nullptr});
    }
    if (SweepDue(now)) {
      // A failed batch is tried again at the next sweep, not at once.
      ops.push_back(SweepOp([this](absl::Status status) {
        if (!status.ok()) next_sweep_ = options_.clock->Now() + options_.retention.sweep_interval;
      }));
    }
    if (!ops.empty()) RunGroup(&ops);
  }
}

void Engine::RunGroup(std::vector<Op>* ops) {
  if (!unloaded_.ok()) {
    // Memory is not the store's: deciding anything on it could undo what was
    // acknowledged. Try the rebuild again first; until it works, refuse.
    absl::Status reloaded = Reload();
    if (!reloaded.ok()) {
      const absl::Status refused = absl::UnavailableError(
          absl::StrCat("ckptd cannot rebuild its state from the store after a failed write (",
                       reloaded.message(),
                       "), so it refuses writes; it retries by itself: check the store "
                       "(disk, database), then retry"));
      for (Op& op : *ops) {
        if (op.done) op.done(refused);
      }
      return;
    }
  }
  Group group(options_.clock->Now(), store_->NewBatch(), *store_, options_.log_limits);
  std::vector<absl::Status> results;
  results.reserve(ops->size());
  for (Op& op : *ops) results.push_back(op.decide(group));
  Flush(group);
  absl::Status written = absl::OkStatus();
  GroupCommitStats stats;
  if (group.batch->Count() > 0) {
    const auto start = std::chrono::steady_clock::now();
    written = store_->Write(group.batch.get());
    stats.write_time = absl::FromChrono(std::chrono::steady_clock::now() - start);
    stats.batch_bytes = group.batch->ByteSize();
  }
  if (options_.observer != nullptr) Observe(group, ops->size(), written.ok(), &stats);
  if (written.ok()) {
    std::vector<absl::string_view> deleted_directories;
    for (const std::string& prefix : group.deleted_prefixes) {
      if (absl::StartsWith(prefix, keys::kRunDirectoryLead)) deleted_directories.push_back(prefix);
    }
    if (!deleted_directories.empty()) run_directories_.ForgetPrefixes(deleted_directories);
    for (auto& [key, firsts] : group.run_directories) {
      run_directories_.Committed(key, std::move(firsts));
    }
    Publish(group);
  } else {
    run_directories_.ForgetAll();
    for (absl::Status& result : results) {
      if (result.ok()) result = written;
    }
    // Memory ran ahead of the store (which may even hold the group, if the commit's
    // outcome is unknown); rebuild it and republish from what the store holds.
    Reload().IgnoreError();
  }
  for (size_t i = 0; i < ops->size(); ++i) {
    if ((*ops)[i].done) (*ops)[i].done(results[i]);
  }
}

void Engine::Observe(const Group& group, size_t ops, bool written, GroupCommitStats* stats) {
  stats->ops = ops;
  stats->write_failed = !written;
  if (written) {
    stats->items_completed = group.items_completed;
    stats->items_failed = group.items_failed;
    stats->items_leased = group.items_leased;
    stats->jobs_expired = group.jobs_expired;
    stats->jobs_deleted = group.jobs_deleted;
  }
  options_.observer->OnGroupCommitted(*stats);
}

void Engine::FlushGrant(Group& g, JobRuntime& job, StepRuntime& s, uint64_t grant_id) {
  auto grant = s.grants.find(grant_id);
  if (grant == s.grants.end()) return;
  const std::string key = keys::Grant(job.id(), s.name, grant_id);
  const Cf sched = Cf::kSched;
  if (grant->second.live == 0) {
    g.batch->Delete(sched, key);
    if (const uint64_t asked_by = grant->second.asked_by; asked_by != 0) {
      std::vector<uint64_t>& asked = s.asked_grants[asked_by];
      asked.erase(std::remove(asked.begin(), asked.end(), grant_id), asked.end());
      if (asked.empty()) s.asked_grants.erase(asked_by);
    }
    s.grants.erase(grant);
    return;
  }
  // Built on an arena: a grant of hundreds of leases is hundreds of small messages,
  // freed together.
  google::protobuf::Arena arena;
  auto& record = *google::protobuf::Arena::CreateMessage<storage::v1::LeaseGrantRecord>(&arena);
  record.set_worker_id(grant->second.worker_id);
  record.set_grant_time_micros(absl::ToUnixMicros(grant->second.granted));
  record.set_asked_by_token(grant->second.asked_by);
  std::vector<std::string>& keys = grant->second.keys;
  // Keys of leases that left are dropped, so rewrites stay O(live).
  auto left = [&](const std::string& item_key) {
    auto lease = s.leases.find(item_key);
    return lease == s.leases.end() || lease->second.grant != grant_id;
  };
  keys.erase(std::remove_if(keys.begin(), keys.end(), left), keys.end());
  // Fresh indices leased in a row (a worker loop's whole batch) are one Run (schema 5);
  // the rest one Lease entry each.
  storage::v1::LeaseGrantRecord::Run* run = nullptr;
  for (const std::string& item_key : keys) {
    const LeaseInfo& lease = s.leases.at(item_key);
    const bool fresh = lease.no_record && lease.attempts == 0 && lease.cursor.empty() &&
                       keys::IsIndexKey(item_key);
    if (fresh) {
      const uint64_t index = keys::IndexOf(item_key);
      if (run != nullptr && index == run->first_index() + run->count() &&
          lease.token == run->first_token() + run->count() * options_.id_stride) {
        run->set_count(run->count() + 1);
        continue;
      }
      run = record.add_runs();
      run->set_first_index(index);
      run->set_count(1);
      run->set_first_token(lease.token);
      if (options_.id_stride != 1) run->set_token_step(options_.id_stride);
      continue;
    }
    storage::v1::LeaseGrantRecord::Lease* entry = record.add_leases();
    entry->set_key(item_key);
    entry->set_token(lease.token);
    entry->set_attempts(lease.attempts);
    entry->set_cursor(lease.cursor);
    entry->set_no_record(lease.no_record);
  }
  g.batch->Put(sched, key, record.SerializeAsString());
}

void Engine::Flush(Group& g) {
  for (const std::string& id : g.touched) {
    auto it = jobs_.find(id);
    if (it != jobs_.end()) FlushJob(g, *it->second);
  }
  g.logs.Flush(*g.batch);
  // Each run directory block the group changed, once (item_runs.h).
  for (const auto& [key, firsts] : g.run_directories) {
    if (firsts.empty()) {
      g.batch->Delete(kRunDirectoryFamily, key);
    } else {
      g.batch->Put(kRunDirectoryFamily, key, SerializeRunDirectory(firsts));
    }
  }
  if (meta_dirty_) {
    const Cf meta = Cf::kMeta;
    g.batch->Put(meta, keys::kNextTokenKey, BigEndian(next_token_));
    g.batch->Put(meta, keys::kNextWorkerKey, BigEndian(next_worker_));
    meta_dirty_ = false;
  }
}

void Engine::FlushJob(Group& g, JobRuntime& job) {
  const Cf sched = Cf::kSched;
  if (job.record_dirty) {
    g.batch->Put(Cf::kJobs, job.id(), job.record.SerializeAsString());
    job.record_dirty = false;
    // Every change of status, finish time or retention rewrites the record.
    retention_.Set(job.id(), RetentionExpiry(job.record.job()));
  }
  if (job.log.dirty) {
    g.batch->Put(Cf::kLogs, keys::JobLogStats(job.id()), job.log.stats.SerializeAsString());
    job.log.dirty = false;
  }
  for (StepRuntime& s : job.steps) {
    if (s.counters_dirty) {
      g.batch->Put(sched, keys::Counters(job.id(), s.name), s.counters.SerializeAsString());
      s.counters_dirty = false;
    }
    for (uint64_t grant_id : s.dirty_grants) FlushGrant(g, job, s, grant_id);
    s.dirty_grants.clear();
    for (auto [set, tag] : {std::make_pair(&s.registered, keys::SchedTag::kRegistered),
                            std::make_pair(&s.untouched, keys::SchedTag::kUntouched)}) {
      for (const auto& [begin, end] : set->TakeChanges()) {
        const std::string key = keys::RangeStart(job.id(), s.name, tag, begin);
        if (end.has_value()) {
          g.batch->Put(sched, key, BigEndian(*end));
        } else {
          g.batch->Delete(sched, key);
        }
      }
    }
  }
  for (uint64_t hash : job.dirty_error_groups) {
    auto group = job.error_groups.find(hash);
    const std::string key = keys::ErrorGroup(job.id(), hash);
    if (group == job.error_groups.end()) {
      g.batch->Delete(sched, key);
    } else {
      g.batch->Put(sched, key, group->second.SerializeAsString());
    }
  }
  job.dirty_error_groups.clear();
  for (const std::string& worker_id : job.dirty_workers) {
    auto w = job.workers.find(worker_id);
    if (w == job.workers.end()) continue;
    g.batch->Put(Cf::kWorkers, keys::Worker(job.id(), worker_id),
                 w->second.record.SerializeAsString());
  }
  job.dirty_workers.clear();
}

void Engine::Publish(const Group& g) {
  std::vector<std::pair<std::string, std::shared_ptr<JobSnapshot>>> fresh;
  for (const std::string& id : g.touched) {
    auto it = jobs_.find(id);
    if (it == jobs_.end()) {
      fresh.emplace_back(id, nullptr);
      continue;
    }
    fresh.emplace_back(id, MakeSnapshot(*it->second));
  }
  absl::MutexLock lock(&publish_mu_);
  for (auto& [id, snapshot] : fresh) {
    if (snapshot == nullptr) {
      published_.erase(id);
      ++publish_version_;
      continue;
    }
    snapshot->version = ++publish_version_;
    published_[id] = std::move(snapshot);
  }
}

std::shared_ptr<JobSnapshot> Engine::MakeSnapshot(JobRuntime& job) {
  if (job.record_changed || job.published_record == nullptr) {
    job.published_record = std::make_shared<const JobRecord>(job.record);
    job.record_changed = false;
  }
  auto snapshot = std::make_shared<JobSnapshot>();
  snapshot->record = job.published_record;
  for (const StepRuntime& s : job.steps) {
    snapshot->step_counters.push_back(s.counters);
    snapshot->step_rates.push_back(s.rate);
  }
  snapshot->rate = job.rate;
  for (const auto& [id, w] : job.workers) {
    if (w.record.worker().state() != v1::WORKER_STATE_EXITED) {
      snapshot->worker_heartbeats.push_back(w.last_heartbeat);
    }
  }
  snapshot->recent_completions.assign(job.recent_completions.begin(), job.recent_completions.end());
  snapshot->lease_timeout = LeaseTimeout(job);
  return snapshot;
}

// ---------------------------------------------------------------- helpers

absl::StatusOr<JobRuntime*> Engine::FindJob(absl::string_view job_id) {
  auto it = jobs_.find(job_id);
  if (it == jobs_.end()) return JobNotFound(job_id);
  return it->second.get();
}

absl::StatusOr<int> Engine::FindStep(const JobRuntime& job, absl::string_view step) const {
  if (step.empty()) return 0;
  const int index = job.StepIndex(step);
  if (index >= 0) return index;
  std::vector<std::string> names;
  for (const StepRuntime& s : job.steps) names.push_back(s.name);
  return UnknownStep(job.id(), step, names);
}

absl::StatusOr<std::optional<ItemRecord>> Engine::ReadItem(Group& g, const JobRuntime& job,
                                                           int step, const std::string& key) {
  CKPT_ASSIGN_OR_RETURN(auto stored, ReadStoredItem(g, job, step, key));
  if (!stored.has_value()) return std::optional<ItemRecord>();
  const uint64_t offset =
      stored->second.run_size() > 0 ? keys::IndexOf(key) - keys::IndexOf(stored->first) : 0;
  return std::optional<ItemRecord>(ItemOfRecord(stored->second, offset));
}

absl::StatusOr<std::optional<std::pair<std::string, ItemRecord>>> Engine::ReadStoredItem(
    Group& g, const JobRuntime& job, int step, const std::string& key) {
  using Found = std::optional<std::pair<std::string, ItemRecord>>;
  const std::string prefix = keys::StepPrefix(job.id(), job.steps[step].name);
  const std::string full = prefix + key;
  // This group's writes first: the greatest record it wrote at or below the key (an
  // index's may be a run's under a lower key; a name's is its own).
  const std::string scope = keys::IsIndexKey(key) ? prefix + keys::kIndexTag : full;
  for (auto it = g.items.upper_bound(full); it != g.items.begin();) {
    --it;
    if (!absl::StartsWith(it->first, scope)) break;
    if (!it->second.has_value()) continue;  // deleted: look further down for a run
    ItemRecord record;
    CKPT_RETURN_IF_ERROR(ParseStored(*it->second, &record, "item"));
    std::string stored_key = it->first.substr(prefix.size());
    if (!RecordCovers(stored_key, record, key)) break;
    return Found(std::make_pair(std::move(stored_key), std::move(record)));
  }
  if (g.DeletedByRange(full)) return Found();
  // Then the store's, unless this group rewrote or deleted it.
  ItemRecordFinder finder(*store_, job.id(), job.steps[step].name, &run_directories_);
  CKPT_ASSIGN_OR_RETURN(Found stored, finder.FindStored(key));
  if (stored.has_value() && g.items.contains(prefix + stored->first)) return Found();
  return stored;
}

void Engine::WriteItem(Group& g, const JobRuntime& job, int step, const std::string& key,
                       const ItemRecord& record) {
  WriteItemBytes(g, job, step, key, record.SerializeAsString());
}

void Engine::WriteItemBytes(Group& g, const JobRuntime& job, int step, const std::string& key,
                            std::string bytes) {
  std::string full = keys::Item(job.id(), job.steps[step].name, key);
  g.batch->Put(Cf::kItems, full, bytes);
  g.items.insert_or_assign(std::move(full), std::move(bytes));
}

void Engine::UpdateRunDirectory(Group& g, const JobRuntime& job, int step, uint64_t first,
                                uint64_t size, bool add) {
  if (store_->FloorIsCheap()) return;  // readers seek: no directory to keep
  const uint64_t last = first + size - 1;
  for (uint64_t block = RunBlock(first); block <= RunBlock(last); ++block) {
    std::string key = keys::RunDirectory(job.id(), job.steps[step].name, block);
    auto it = g.run_directories.find(key);
    if (it == g.run_directories.end()) {
      // The block as committed, if cached. The writer does not read the store for it
      // (a store read on every run made disk_full_test's space accounting flaky, see
      // docs/performance.md): a block not cached (after a restart, an eviction or a
      // failed write) is begun afresh, its older runs left to the seek.
      std::optional<std::vector<uint64_t>> cached;
      if (!g.DeletedByRange(key)) cached = run_directories_.Cached(key);
      if (!cached.has_value() && !add) continue;  // a stale first is harmless
      it = g.run_directories
               .emplace(std::move(key), std::move(cached).value_or(std::vector<uint64_t>()))
               .first;
    }
    std::vector<uint64_t>& firsts = it->second;
    // A new run's indices have no other record, so a first inside it is stale.
    const auto from = std::lower_bound(firsts.begin(), firsts.end(), first);
    const auto to = std::upper_bound(from, firsts.end(), add ? last : first);
    firsts.erase(from, to);
    if (add) firsts.insert(std::lower_bound(firsts.begin(), firsts.end(), first), first);
  }
}

void Engine::DeleteItem(Group& g, const JobRuntime& job, int step, const std::string& key) {
  const std::string full = keys::Item(job.id(), job.steps[step].name, key);
  g.batch->Delete(Cf::kItems, full);
  g.items[full] = std::nullopt;
}

absl::StatusOr<ItemPlace> Engine::Locate(Group& g, const JobRuntime& job, int step,
                                         const std::string& key) {
  const StepRuntime& s = job.steps[step];
  if (s.leases.contains(key)) return ItemPlace::kLeased;
  if (s.failed.contains(key)) return ItemPlace::kFailed;
  if (s.pending_retry.count(key)) return ItemPlace::kPendingRetry;
  if (s.pending_fresh.count(key)) return ItemPlace::kPendingFresh;
  if (keys::IsIndexKey(key)) {
    const uint64_t index = keys::IndexOf(key);
    if (s.untouched.Contains(index)) return ItemPlace::kUntouched;
    return s.registered.Contains(index) ? ItemPlace::kCompleted : ItemPlace::kUnregistered;
  }
  CKPT_ASSIGN_OR_RETURN(std::optional<ItemRecord> record, ReadItem(g, job, step, key));
  return record.has_value() ? ItemPlace::kCompleted : ItemPlace::kUnregistered;
}

void Engine::Leave(Group& g, JobRuntime& job, int step, const std::string& key, ItemPlace from) {
  StepRuntime& s = job.steps[step];
  const Cf sched = Cf::kSched;
  storage::v1::StepCounters& c = s.counters;
  switch (from) {
    case ItemPlace::kUntouched: {
      const uint64_t index = keys::IndexOf(key);
      s.untouched.Remove(index, index + 1);
      c.set_pending(c.pending() - 1);
      break;
    }
    case ItemPlace::kPendingRetry:
    case ItemPlace::kPendingFresh: {
      const bool retry = from == ItemPlace::kPendingRetry;
      (retry ? s.pending_retry : s.pending_fresh).erase(key);
      g.batch->Delete(sched, keys::Pending(job.id(), s.name,
                                           retry ? keys::kPendingRetry : keys::kPendingFresh, key));
      c.set_pending(c.pending() - 1);
      break;
    }
    case ItemPlace::kLeased: {
      auto lease = s.leases.find(key);
      if (const uint64_t grant = lease->second.grant; grant != 0) {
        // The grant's expiry entry and its place in the worker's holdings go with its
        // last lease.
        if (auto it = s.grants.find(grant); it != s.grants.end() && --it->second.live == 0) {
          ForgetGrantExpiry(grant, it->second);
          auto worker = job.workers.find(lease->second.worker_id);
          if (worker != job.workers.end()) worker->second.grants.erase({step, grant});
        }
        s.dirty_grants.insert(grant);
      } else {
        ForgetExpiry(lease->second);
        auto worker = job.workers.find(lease->second.worker_id);
        if (worker != job.workers.end()) worker->second.own_leases.erase({step, key});
        g.batch->Delete(sched, keys::Leased(job.id(), s.name, key));
      }
      s.leases.erase(lease);
      c.set_leased(c.leased() - 1);
      break;
    }
    case ItemPlace::kFailed: {
      auto failed = s.failed.find(key);
      auto group = job.error_groups.find(failed->second);
      if (group != job.error_groups.end()) {
        AddErrorGroup(g, job, group->second.message(), -1);
      }
      s.failed.erase(failed);
      g.batch->Delete(sched, keys::Failed(job.id(), s.name, key));
      c.set_failed(c.failed() - 1);
      break;
    }
    case ItemPlace::kCompleted:
      c.set_completed(c.completed() - 1);
      break;
    case ItemPlace::kUnregistered:  // nothing to leave
      break;
  }
  s.counters_dirty = true;
  Touch(g, job);
}

void Engine::Enter(Group& g, JobRuntime& job, int step, const std::string& key, ItemPlace to) {
  StepRuntime& s = job.steps[step];
  storage::v1::StepCounters& c = s.counters;
  switch (to) {
    case ItemPlace::kUntouched: {
      const uint64_t index = keys::IndexOf(key);
      s.untouched.Add(index, index + 1);
      c.set_pending(c.pending() + 1);
      break;
    }
    case ItemPlace::kPendingRetry:
    case ItemPlace::kPendingFresh: {
      const bool retry = to == ItemPlace::kPendingRetry;
      (retry ? s.pending_retry : s.pending_fresh).insert(key);
      g.batch->Put(
          Cf::kSched,
          keys::Pending(job.id(), s.name, retry ? keys::kPendingRetry : keys::kPendingFresh, key),
          "");
      c.set_pending(c.pending() + 1);
      break;
    }
    case ItemPlace::kCompleted:
      c.set_completed(c.completed() + 1);
      ++g.items_completed;
      break;
    default:  // kLeased: Grant; kFailed: EnterFailed
      break;
  }
  s.counters_dirty = true;
  Touch(g, job);
}

void Engine::EnterFailed(Group& g, JobRuntime& job, int step, const std::string& key,
                         absl::string_view message) {
  StepRuntime& s = job.steps[step];
  const uint64_t hash = keys::Fnv1a64(message);
  s.failed[key] = hash;
  g.batch->Put(Cf::kSched, keys::Failed(job.id(), s.name, key), BigEndian(hash));
  s.counters.set_failed(s.counters.failed() + 1);
  s.counters_dirty = true;
  ++g.items_failed;
  AddErrorGroup(g, job, message, +1);
  Touch(g, job);
}

void Engine::AddErrorGroup(Group& g, JobRuntime& job, absl::string_view message, int64_t delta) {
  const uint64_t hash = keys::Fnv1a64(message);
  auto& group = job.error_groups[hash];
  group.set_message(std::string(message));
  const int64_t count = static_cast<int64_t>(group.count()) + delta;
  if (count <= 0) {
    job.error_groups.erase(hash);
  } else {
    group.set_count(static_cast<uint64_t>(count));
  }
  job.dirty_error_groups.insert(hash);
}

void Engine::SetDeadline(JobRuntime& job, int step, const std::string& key, LeaseInfo& lease,
                         absl::Time deadline) {
  const absl::Duration max_run = FromProtoDuration(job.record.job().max_run_time());
  if (max_run > absl::ZeroDuration()) deadline = std::min(deadline, lease.granted + max_run);
  ForgetExpiry(lease);
  lease.deadline = deadline;
  expiry_.insert({deadline, lease.token, job.id(), step, key});
}

void Engine::SetGrantDeadline(JobRuntime& job, int step, uint64_t grant_id, LeaseGrant& grant,
                              absl::Time deadline) {
  const absl::Duration max_run = FromProtoDuration(job.record.job().max_run_time());
  if (max_run > absl::ZeroDuration()) deadline = std::min(deadline, grant.granted + max_run);
  ForgetGrantExpiry(grant_id, grant);
  grant.deadline = deadline;
  expiry_.insert({deadline, grant_id, job.id(), step, ""});
}

void Engine::ForgetExpiry(const LeaseInfo& lease) {
  auto it = expiry_.find(ExpiryOrder::Position(lease.deadline, lease.token));
  if (it != expiry_.end()) expiry_.erase(it);
}

void Engine::ForgetGrantExpiry(uint64_t grant_id, const LeaseGrant& grant) {
  auto it = expiry_.find(ExpiryOrder::Position(grant.deadline, grant_id));
  if (it != expiry_.end()) expiry_.erase(it);
}

void Engine::ForgetJobExpiries(const JobRuntime& job) {
  for (const StepRuntime& s : job.steps) {
    for (const auto& [key, lease] : s.leases) {
      if (lease.grant == 0) ForgetExpiry(lease);
    }
    for (const auto& [grant_id, grant] : s.grants) ForgetGrantExpiry(grant_id, grant);
  }
}

std::vector<std::pair<int, std::string>> Engine::HeldLeases(const JobRuntime& job,
                                                            const WorkerRuntime& worker) {
  std::vector<std::pair<int, std::string>> held(worker.own_leases.begin(), worker.own_leases.end());
  for (const auto& [step, grant_id] : worker.grants) {
    const StepRuntime& s = job.steps[step];
    auto grant = s.grants.find(grant_id);
    if (grant == s.grants.end()) continue;
    for (const std::string& key : grant->second.keys) {
      auto lease = s.leases.find(key);
      if (lease != s.leases.end() && lease->second.grant == grant_id) held.emplace_back(step, key);
    }
  }
  std::sort(held.begin(), held.end());
  return held;
}

absl::Duration Engine::LeaseTimeout(const JobRuntime& job) const {
  return FromProtoDuration(job.record.job().lease_timeout());
}

void Engine::Touch(Group& g, JobRuntime& job) { g.touched.insert(job.id()); }

void Engine::MarkRecordChanged(Group& g, JobRuntime& job) {
  *job.record.mutable_job()->mutable_update_time() = ToProtoTime(g.now);
  job.record_dirty = true;
  job.record_changed = true;
  Touch(g, job);
}

void Engine::SetStatus(Group& g, JobRuntime& job, v1::JobStatus status, absl::string_view reason) {
  v1::Job* j = job.record.mutable_job();
  j->set_status(status);
  j->set_status_reason(std::string(reason));
  if (status == v1::JOB_STATUS_RUNNING || status == v1::JOB_STATUS_PAUSED) {
    j->clear_finish_time();
  } else {
    *j->mutable_finish_time() = ToProtoTime(g.now);
  }
  MarkRecordChanged(g, job);
}

std::string Engine::BudgetExceeded(const JobRuntime& job) const {
  storage::v1::StepCounters total;
  for (const StepRuntime& s : job.steps) AddCounters(s.counters, &total);
  const v1::FailureBudget& budget = job.record.job().failure_budget();
  const bool over_count =
      budget.max_failed_items() > 0 && total.failed() > budget.max_failed_items();
  const bool over_fraction =
      budget.max_failed_fraction() > 0 && total.total() > 0 &&
      static_cast<double>(total.failed()) / static_cast<double>(total.total()) >
          budget.max_failed_fraction();
  if (!over_count && !over_fraction) return "";
  return absl::StrCat("failure budget exceeded: ", total.failed(), " of ", total.total(),
                      " items failed (budget: ",
                      over_count ? absl::StrCat(budget.max_failed_items(), " items")
                                 : absl::StrCat(budget.max_failed_fraction() * 100, "% of items"),
                      ")");
}

void Engine::MaybeFinishJob(Group& g, JobRuntime& job) {
  const v1::JobStatus status = job.status();
  if (status != v1::JOB_STATUS_RUNNING && status != v1::JOB_STATUS_PAUSED) return;
  if (std::string over = BudgetExceeded(job); !over.empty()) {
    SetStatus(g, job, v1::JOB_STATUS_FAILED, over);
    return;
  }
  storage::v1::StepCounters total;
  for (const StepRuntime& s : job.steps) AddCounters(s.counters, &total);
  if (!job.record.job().sealed() || total.pending() + total.leased() > 0) return;
  if (total.failed() > 0) {
    SetStatus(g, job, v1::JOB_STATUS_FAILED,
              absl::StrCat(total.failed(), " of ", total.total(),
                           " items failed; ResetItems retries them"));
  } else {
    SetStatus(g, job, v1::JOB_STATUS_COMPLETED, "");
  }
}

v1::ControlWord Engine::ControlFor(const JobRuntime& job) const {
  switch (job.status()) {
    case v1::JOB_STATUS_RUNNING:
      return v1::CONTROL_WORD_RUN;
    case v1::JOB_STATUS_PAUSED:
      return v1::CONTROL_WORD_PAUSE;
    default:
      return v1::CONTROL_WORD_STOP;
  }
}

void Engine::DeleteJobData(Group& g, absl::string_view job_id) {
  const std::string begin = keys::JobPrefix(job_id);
  const std::string end = keys::PrefixSuccessor(begin);
  for (Cf cf : {Cf::kItems, Cf::kSched, Cf::kWorkers, Cf::kStates, Cf::kLogs, Cf::kCompletions}) {
    g.batch->DeleteRange(cf, begin, end);
  }
  const std::string directories = keys::RunDirectoryPrefix(job_id);
  if (!store_->FloorIsCheap()) {  // else the store keeps no run directory
    g.batch->DeleteRange(kRunDirectoryFamily, directories, keys::PrefixSuccessor(directories));
  }
  // Later ops of this group must read the job's items, states and run directories as
  // deleted (the store still has them until the batch is written): forget what this
  // group wrote under the prefixes and remember the ranges (ids never start with 0xff,
  // so neither prefix is a prefix of the other kind's keys).
  absl::erase_if(g.items, [&](const auto& entry) { return absl::StartsWith(entry.first, begin); });
  absl::erase_if(g.states, [&](const auto& entry) { return absl::StartsWith(entry.first, begin); });
  absl::erase_if(g.run_directories,
                 [&](const auto& entry) { return absl::StartsWith(entry.first, directories); });
  g.deleted_prefixes.push_back(begin);
  g.deleted_prefixes.push_back(directories);
  g.logs.ForgetJob(job_id);
}

// ---------------------------------------------------------------- public entry points

#define CKPT_ENGINE_WRITE(Method)                                                          \
  void Engine::Method(const v1::Method##Request& request, v1::Method##Response* response,  \
                      Done done) {                                                         \
    Submit(                                                                                \
        request.ByteSizeLong(),                                                            \
        [this, &request, response](Group& g) { return Do##Method(g, request, response); }, \
        std::move(done));                                                                  \
  }

CKPT_ENGINE_WRITE(CreateJob)
CKPT_ENGINE_WRITE(UpdateJob)
CKPT_ENGINE_WRITE(ResetJob)
CKPT_ENGINE_WRITE(AddItems)
CKPT_ENGINE_WRITE(LeaseItems)
CKPT_ENGINE_WRITE(CompleteItems)
CKPT_ENGINE_WRITE(FailItems)
CKPT_ENGINE_WRITE(ResetItems)
CKPT_ENGINE_WRITE(RegisterWorker)
CKPT_ENGINE_WRITE(Heartbeat)
CKPT_ENGINE_WRITE(UnregisterWorker)
CKPT_ENGINE_WRITE(ListWorkers)
CKPT_ENGINE_WRITE(PutState)
CKPT_ENGINE_WRITE(WriteLogs)
#undef CKPT_ENGINE_WRITE

void Engine::PauseJob(const v1::PauseJobRequest& request, v1::PauseJobResponse* response,
                      Done done) {
  Submit(
      request.ByteSizeLong(),
      [this, &request, response](Group& g) {
        return DoTransition(g, request.job_id(), v1::JOB_STATUS_PAUSED, request.reason(),
                            response->mutable_job());
      },
      std::move(done));
}

void Engine::ResumeJob(const v1::ResumeJobRequest& request, v1::ResumeJobResponse* response,
                       Done done) {
  Submit(
      request.ByteSizeLong(),
      [this, &request, response](Group& g) {
        return DoTransition(g, request.job_id(), v1::JOB_STATUS_RUNNING, "",
                            response->mutable_job());
      },
      std::move(done));
}

void Engine::StopJob(const v1::StopJobRequest& request, v1::StopJobResponse* response, Done done) {
  Submit(
      request.ByteSizeLong(),
      [this, &request, response](Group& g) {
        return DoTransition(g, request.job_id(), v1::JOB_STATUS_STOPPED, request.reason(),
                            response->mutable_job());
      },
      std::move(done));
}

void Engine::FinishJob(const v1::FinishJobRequest& request, v1::FinishJobResponse* response,
                       Done done) {
  Submit(
      request.ByteSizeLong(),
      [this, &request, response](Group& g) {
        return DoTransition(g, request.job_id(), request.status(), request.reason(),
                            response->mutable_job());
      },
      std::move(done));
}

void Engine::DeleteJob(const v1::DeleteJobRequest& request, v1::DeleteJobResponse* response,
                       Done done) {
  Submit(
      request.ByteSizeLong(), [this, &request](Group& g) { return DoDeleteJob(g, request); },
      std::move(done));
}

void Engine::ExpireLeases(Done done) {
  Submit(
      0, [this](Group& g) { return DoExpireLeases(g); }, std::move(done));
}

void Engine::SweepExpiredJobs(Done done) {
  Op op = SweepOp(std::move(done));
  Submit(0, std::move(op.decide), std::move(op.done));
}

}  // namespace ckpt
