// Item decisions: register, lease, complete, fail, reset. Each checks every item first
// and changes nothing until all checks pass (a batch is all or nothing).
#include <algorithm>
#include <functional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "service/common/proto_time.h"
#include "service/common/status_macros.h"
#include "service/engine/completion_index.h"
#include "service/engine/engine.h"
#include "service/engine/errors.h"
#include "service/engine/group.h"
#include "service/engine/item_runs.h"
#include "service/engine/job_state_machine.h"
#include "service/engine/stored_record.h"
#include "service/store/keys.h"

namespace ckpt {
namespace {

using storage::v1::ItemRecord;

bool AcceptsRecordWrites(v1::JobStatus status) {
  return status == v1::JOB_STATUS_RUNNING || status == v1::JOB_STATUS_PAUSED;
}

absl::Status RecordWriteRefused(const JobRuntime& job) {
  return absl::FailedPreconditionError(
      absl::StrCat("job \"", job.id(), "\" is ", JobStatusName(job.status()),
                   ": items can be recorded without a lease only while it is RUNNING or PAUSED",
                   IsFinished(job.status()) ? " (ResetItems retries failed items)" : ""));
}

absl::Status LeaseLost(absl::string_view field, const std::string& key, uint64_t token,
                       absl::string_view why) {
  return absl::FailedPreconditionError(
      absl::StrCat(field, ": lease lost for ", keys::DescribeItemKey(key), ": token ", token,
                   " is not current (", why, "); drop the item and do not retry the write"));
}

// The parts of [begin, end) not in `set`.
std::vector<std::pair<uint64_t, uint64_t>> Gaps(const IntervalSet& set, uint64_t begin,
                                                uint64_t end) {
  std::vector<std::pair<uint64_t, uint64_t>> gaps;
  const auto& intervals = set.intervals();
  auto it = intervals.upper_bound(begin);
  if (it != intervals.begin()) --it;
  uint64_t cursor = begin;
  for (; it != intervals.end() && it->first < end && cursor < end; ++it) {
    if (it->second <= cursor) continue;
    if (it->first > cursor) gaps.emplace_back(cursor, it->first);
    cursor = std::max(cursor, it->second);
  }
  if (cursor < end) gaps.emplace_back(cursor, end);
  return gaps;
}

void RememberCompletion(JobRuntime& job, const std::string& step, const v1::ItemKey& key,
                        const std::string& worker_id, absl::Time now) {
  v1::RecentCompletion recent;
  *recent.mutable_key() = key;
  recent.set_step(step);
  *recent.mutable_time() = ToProtoTime(now);
  recent.set_worker_id(worker_id);
  job.recent_completions.push_front(std::move(recent));
  if (job.recent_completions.size() > kRecentCompletions) job.recent_completions.pop_back();
}

// The log entries that ride along with the items of a CompleteItems or FailItems
// (Completion.logs, Failure.logs), under their items; without those of `skipped` items.
template <typename Entries>
std::vector<NewLogEntry> LogsOf(const Entries& items, const std::vector<LeasePlan>& plans,
                                const std::string& step,
                                const std::function<bool(int)>& skipped = nullptr) {
  std::vector<NewLogEntry> entries;
  for (int i = 0; i < items.size(); ++i) {
    if (skipped && skipped(i)) continue;
    for (const v1::LogEntry& entry : items[i].logs()) {
      entries.push_back({step, plans[i].key, &entry});
    }
  }
  return entries;
}

// Drops a reset item from the job's recent completions.
void ForgetRecentCompletion(JobRuntime& job, const std::string& step, const std::string& key) {
  auto& recent = job.recent_completions;
  recent.erase(std::remove_if(recent.begin(), recent.end(),
                              [&](const v1::RecentCompletion& c) {
                                return c.step() == step && keys::EncodeItemKey(c.key()) == key;
                              }),
               recent.end());
}

}  // namespace

// ---------------------------------------------------------------- AddItems

absl::Status Engine::DoAddItems(Group& g, const v1::AddItemsRequest& r, v1::AddItemsResponse* out) {
  CKPT_ASSIGN_OR_RETURN(JobRuntime * job, FindJob(r.job_id()));
  CKPT_ASSIGN_OR_RETURN(const int step, FindStep(*job, r.step()));
  uint64_t duplicates = 0;
  std::vector<std::string> new_names;
  absl::flat_hash_set<std::string> seen;
  for (const std::string& name : r.names()) {
    std::string key = keys::EncodeName(name);
    if (!seen.insert(key).second) {
      ++duplicates;
      continue;
    }
    CKPT_ASSIGN_OR_RETURN(const ItemPlace place, Locate(g, *job, step, key));
    if (place != ItemPlace::kUnregistered) {
      ++duplicates;
    } else {
      new_names.push_back(std::move(key));
    }
  }
  // Only new items are refused: re-registering what is there (a resumed pipeline, or a
  // retry of a sealing AddItems whose answer was lost) is OK and counts duplicates.
  const IntervalSet& registered = job->steps[step].registered;
  auto has_gap = [&registered](uint64_t begin, uint64_t end) {
    return !Gaps(registered, begin, end).empty();
  };
  const bool adds =
      !new_names.empty() ||
      std::any_of(r.indices().begin(), r.indices().end(),
                  [&](uint64_t index) { return has_gap(index, index + 1); }) ||
      std::any_of(r.ranges().begin(), r.ranges().end(),
                  [&](const v1::IndexRange& range) { return has_gap(range.begin(), range.end()); });
  if (adds && job->record.job().sealed()) {
    return absl::FailedPreconditionError(
        absl::StrCat("job \"", job->id(),
                     "\" is sealed: no more items can be added (ResetJob with "
                     "remove_items starts it over)"));
  }
  if (adds && !AcceptsRecordWrites(job->status())) {
    return absl::FailedPreconditionError(
        absl::StrCat("job \"", job->id(), "\" is ", JobStatusName(job->status()),
                     ": items can be added only while it is RUNNING or PAUSED"));
  }

  StepRuntime& s = job->steps[step];
  for (const std::string& key : new_names) {
    ItemRecord record;
    record.set_state(v1::ITEM_STATE_PENDING);
    record.set_update_time_micros(absl::ToUnixMicros(g.now));
    WriteItem(g, *job, step, key, record);
    Enter(g, *job, step, key, ItemPlace::kPendingFresh);
  }
  uint64_t added = new_names.size();
  auto add_range = [&](uint64_t begin, uint64_t end) {
    uint64_t fresh = 0;
    for (const auto& [b, e] : Gaps(s.registered, begin, end)) {
      s.registered.Add(b, e);
      s.untouched.Add(b, e);
      fresh += e - b;
    }
    s.counters.set_pending(s.counters.pending() + fresh);
    added += fresh;
    duplicates += (end - begin) - fresh;
  };
  for (uint64_t index : r.indices()) add_range(index, index + 1);
  for (const v1::IndexRange& range : r.ranges()) add_range(range.begin(), range.end());
  s.counters.set_total(s.counters.total() + added);
  s.counters_dirty = true;
  Touch(g, *job);
  if (r.seal() && !job->record.job().sealed()) {
    job->record.mutable_job()->set_sealed(true);
    MarkRecordChanged(g, *job);
  }
  MaybeFinishJob(g, *job);
  out->set_added(added);
  out->set_duplicates(duplicates);
  return absl::OkStatus();
}

// ---------------------------------------------------------------- CompleteItems

absl::Status Engine::DoCompleteItems(Group& g, const v1::CompleteItemsRequest& r,
                                     v1::CompleteItemsResponse* out) {
  CKPT_ASSIGN_OR_RETURN(JobRuntime * job, FindJob(r.job_id()));
  CKPT_ASSIGN_OR_RETURN(const int step, FindStep(*job, r.step()));
  // Check every item, and the worker the next lease goes to, before changing anything:
  // a refused call leaves no trace.
  if (r.has_lease_next()) CKPT_RETURN_IF_ERROR(FindLiveWorker(g, *job, r.worker_id()).status());
  std::vector<LeasePlan> plans(r.items_size());
  for (int i = 0; i < r.items_size(); ++i) {
    CKPT_ASSIGN_OR_RETURN(const v1::CompletionOutcome outcome,
                          CheckCompletion(g, *job, step, r, i, &plans[i]));
    out->add_outcomes(outcome);
  }
  // A repeat of a completion (its answer was lost) must not log its entries twice.
  auto repeated = [&](int i) {
    return out->outcomes(i) == v1::COMPLETION_OUTCOME_ALREADY_COMPLETED;
  };
  CKPT_ASSIGN_OR_RETURN(const LogPlan logs,
                        g.logs.Plan(job->id(), job->log, r.worker_id(),
                                    LogsOf(r.items(), plans, job->steps[step].name, repeated)));
  NextLease next;
  if (r.has_lease_next()) CKPT_RETURN_IF_ERROR(PlanNextLease(g, *job, step, r, &next));
  ApplyCompletions(g, *job, step, r, plans, *out);
  g.logs.Apply(job->id(), job->log, logs, *g.batch);
  MaybeFinishJob(g, *job);
  if (r.has_lease_next()) GrantNextLease(g, *job, step, r, &next, out->mutable_leased());
  return absl::OkStatus();
}

void Engine::ApplyCompletions(Group& g, JobRuntime& job, int step,
                              const v1::CompleteItemsRequest& r,
                              const std::vector<LeasePlan>& plans,
                              const v1::CompleteItemsResponse& checked) {
  StepRuntime& s = job.steps[step];
  std::vector<std::pair<int, std::string>> completed;  // request index, who completed it
  completed.reserve(r.items_size());
  storage::v1::OutputRecord output;  // the same job and step for every item of the call
  output.set_job_id(job.id());
  output.set_step(s.name);
  for (int i = 0; i < r.items_size();) {
    if (checked.outcomes(i) != v1::COMPLETION_OUTCOME_COMPLETED) {
      ++i;
      continue;
    }
    const int end = RunEnd(job, step, r, checked, plans, i);
    if (end - i > 1) {
      RecordRun(g, job, step, r, plans, i, end, &output, &completed);
    } else {
      completed.emplace_back(
          i, RecordCompletion(g, job, step, r.items(i), plans[i], r.worker_id(), &output));
    }
    i = end;
  }
  if (completed.empty()) return;
  if (auto worker = job.workers.find(r.worker_id()); worker != job.workers.end()) {
    v1::Worker* w = worker->second.record.mutable_worker();
    w->set_completed(w->completed() + completed.size());
    job.dirty_workers.insert(r.worker_id());
  }
  s.rate.Add(g.now, completed.size());
  job.rate.Add(g.now, completed.size());
  // Only the last few can be among the most recent.
  const size_t first = completed.size() - std::min(completed.size(), kRecentCompletions);
  for (size_t c = first; c < completed.size(); ++c) {
    RememberCompletion(job, s.name, r.items(completed[c].first).key(), completed[c].second, g.now);
  }
}

absl::StatusOr<v1::CompletionOutcome> Engine::CheckCompletion(Group& g, JobRuntime& job, int step,
                                                              const v1::CompleteItemsRequest& r,
                                                              int i, LeasePlan* plan) {
  const v1::Completion& item = r.items(i);
  const std::string field = absl::StrCat("items[", i, "]");
  plan->key = keys::EncodeItemKey(item.key());
  CKPT_ASSIGN_OR_RETURN(plan->place, Locate(g, job, step, plan->key));
  const uint64_t token = item.lease_token();
  absl::Status lost;
  v1::CompletionOutcome outcome = v1::COMPLETION_OUTCOME_COMPLETED;
  switch (plan->place) {
    case ItemPlace::kUnregistered:
      return NotRegistered(field, plan->key, job, step);
    case ItemPlace::kCompleted: {
      CKPT_ASSIGN_OR_RETURN(std::optional<ItemRecord> done, ReadItem(g, job, step, plan->key));
      if (token != 0 && done.has_value() && done->completed_token() != token) {
        lost = LeaseLost(field, plan->key, token, "the item was completed under another lease");
      }
      outcome = v1::COMPLETION_OUTCOME_ALREADY_COMPLETED;
      break;
    }
    case ItemPlace::kLeased:
      if (token != 0 && token != job.steps[step].leases.at(plan->key).token) {
        lost = LeaseLost(field, plan->key, token, "the item was leased again");
      }
      break;
    default:
      if (token != 0) {
        lost = LeaseLost(field, plan->key, token,
                         absl::StrCat("the lease ended; the item is ", PlaceName(plan->place)));
      }
  }
  if (!lost.ok()) {
    if (!r.skip_lost_leases()) return lost;
    return v1::COMPLETION_OUTCOME_LEASE_LOST;
  }
  if (outcome != v1::COMPLETION_OUTCOME_COMPLETED) return outcome;
  if (token == 0 && !AcceptsRecordWrites(job.status())) return RecordWriteRefused(job);
  CKPT_RETURN_IF_ERROR(FillPlan(g, job, step, plan));
  return outcome;
}

std::string Engine::RecordCompletion(Group& g, JobRuntime& job, int step,
                                     const v1::Completion& item, const LeasePlan& plan,
                                     const std::string& worker_id,
                                     storage::v1::OutputRecord* output) {
  ItemRecord record;
  record.set_worker_id(FinishingWorker(job, step, plan, worker_id, item.lease_token()));
  record.set_state(v1::ITEM_STATE_COMPLETED);
  record.set_attempts(plan.attempts);
  record.set_completed_token(item.lease_token());
  record.set_update_time_micros(absl::ToUnixMicros(g.now));
  std::string bytes = record.SerializeAsString();
  AppendResultField(item.result(), &bytes);
  PutCompletion(*g.batch, job.id(), job.steps[step].name, record.update_time_micros(), plan.key,
                record.worker_id());
  WriteItemBytes(g, job, step, plan.key, std::move(bytes));
  MoveToCompleted(g, job, step, item, plan, output);
  return record.worker_id();
}

int Engine::RunEnd(const JobRuntime& job, int step, const v1::CompleteItemsRequest& r,
                   const v1::CompleteItemsResponse& checked, const std::vector<LeasePlan>& plans,
                   int begin) const {
  auto joins = [&](int i) {
    return checked.outcomes(i) == v1::COMPLETION_OUTCOME_COMPLETED && plans[i].no_record &&
           keys::IsIndexKey(plans[i].key);
  };
  if (!joins(begin)) return begin + 1;
  const std::string worker =
      FinishingWorker(job, step, plans[begin], r.worker_id(), r.items(begin).lease_token());
  const uint64_t first = keys::IndexOf(plans[begin].key);
  int end = begin + 1;
  while (end < r.items_size() && static_cast<uint64_t>(end - begin) < kMaxRunItems && joins(end) &&
         keys::IndexOf(plans[end].key) == first + static_cast<uint64_t>(end - begin) &&
         (!r.worker_id().empty() || FinishingWorker(job, step, plans[end], r.worker_id(),
                                                    r.items(end).lease_token()) == worker)) {
    ++end;
  }
  return end;
}

void Engine::RecordRun(Group& g, JobRuntime& job, int step, const v1::CompleteItemsRequest& r,
                       const std::vector<LeasePlan>& plans, int begin, int end,
                       storage::v1::OutputRecord* output,
                       std::vector<std::pair<int, std::string>>* completed) {
  ItemRecord header;
  header.set_worker_id(
      FinishingWorker(job, step, plans[begin], r.worker_id(), r.items(begin).lease_token()));
  header.set_state(v1::ITEM_STATE_COMPLETED);
  header.set_update_time_micros(absl::ToUnixMicros(g.now));
  std::string bytes = header.SerializeAsString();
  for (int i = begin; i < end; ++i) {
    const v1::Completion& item = r.items(i);
    AppendRunItem(item.result(), item.lease_token(), plans[i].attempts, &bytes);
    MoveToCompleted(g, job, step, item, plans[i], output);
    completed->emplace_back(i, header.worker_id());
  }
  const uint64_t first_index = keys::IndexOf(plans[begin].key);
  PutCompletion(*g.batch, job.id(), job.steps[step].name, header.update_time_micros(),
                plans[begin].key, header.worker_id(), static_cast<uint64_t>(end - begin));
  WriteItemBytes(g, job, step, plans[begin].key, std::move(bytes));
  UpdateRunDirectory(g, job, step, first_index, static_cast<uint64_t>(end - begin), /*add=*/true);
}

void Engine::MoveToCompleted(Group& g, JobRuntime& job, int step, const v1::Completion& item,
                             const LeasePlan& plan, storage::v1::OutputRecord* output) {
  Leave(g, job, step, plan.key, plan.place);
  Enter(g, job, step, plan.key, ItemPlace::kCompleted);
  if (item.result().metrics().has_wall_time()) {
    const absl::Duration wall = FromProtoDuration(item.result().metrics().wall_time());
    AddWallTime(&job.steps[step].counters, static_cast<uint64_t>(absl::ToInt64Microseconds(wall)));
  }
  if (item.result().output_paths_size() > 0) {
    output->set_item_key(plan.key);
    const std::string output_bytes = output->SerializeAsString();
    for (const std::string& path : item.result().output_paths()) {
      g.batch->Put(Cf::kOutputs, keys::Output(path), output_bytes);
    }
  }
}

// ---------------------------------------------------------------- FailItems

absl::Status Engine::DoFailItems(Group& g, const v1::FailItemsRequest& r,
                                 v1::FailItemsResponse* out) {
  CKPT_ASSIGN_OR_RETURN(JobRuntime * job, FindJob(r.job_id()));
  CKPT_ASSIGN_OR_RETURN(const int step, FindStep(*job, r.step()));
  std::vector<LeasePlan> plans(r.items_size());
  for (int i = 0; i < r.items_size(); ++i) {
    const std::string field = absl::StrCat("items[", i, "]");
    const uint64_t token = r.items(i).lease_token();
    LeasePlan& plan = plans[i];
    plan.key = keys::EncodeItemKey(r.items(i).key());
    CKPT_ASSIGN_OR_RETURN(plan.place, Locate(g, *job, step, plan.key));
    if (plan.place == ItemPlace::kUnregistered) return NotRegistered(field, plan.key, *job, step);
    const bool current =
        plan.place == ItemPlace::kLeased && token == job->steps[step].leases.at(plan.key).token;
    if (token != 0 && !current) {
      return LeaseLost(field, plan.key, token,
                       absl::StrCat("the item is ", PlaceName(plan.place), " now"));
    }
    if (plan.place == ItemPlace::kCompleted) {
      return absl::FailedPreconditionError(
          absl::StrCat(field, ": ", keys::DescribeItemKey(plan.key),
                       " is already COMPLETED; a completed item cannot fail (ResetItems first)"));
    }
    if (token == 0 && !AcceptsRecordWrites(job->status())) return RecordWriteRefused(*job);
    CKPT_RETURN_IF_ERROR(FillPlan(g, *job, step, &plan));
  }
  CKPT_ASSIGN_OR_RETURN(const LogPlan logs,
                        g.logs.Plan(job->id(), job->log, r.worker_id(),
                                    LogsOf(r.items(), plans, job->steps[step].name)));

  auto worker = job->workers.find(r.worker_id());
  const uint32_t max_attempts = job->record.job().max_attempts();
  for (int i = 0; i < r.items_size(); ++i) {
    const v1::Failure& item = r.items(i);
    const uint32_t attempts = plans[i].attempts + 1;
    // Record mode keeps a failure listed until the item is processed again.
    const bool retry =
        item.lease_token() != 0 && item.error().retryable() && attempts < max_attempts;
    ItemRecord record;
    record.set_worker_id(FinishingWorker(*job, step, plans[i], r.worker_id(), item.lease_token()));
    Leave(g, *job, step, plans[i].key, plans[i].place);
    record.set_state(retry ? v1::ITEM_STATE_PENDING : v1::ITEM_STATE_FAILED);
    record.set_attempts(attempts);
    *record.mutable_last_error() = item.error();
    *record.mutable_last_error()->mutable_time() = ToProtoTime(g.now);
    record.mutable_last_error()->set_worker_id(record.worker_id());
    record.set_cursor(plans[i].cursor);
    record.set_update_time_micros(absl::ToUnixMicros(g.now));
    WriteItem(g, *job, step, plans[i].key, record);
    if (retry) {
      Enter(g, *job, step, plans[i].key, ItemPlace::kPendingRetry);
    } else {
      EnterFailed(g, *job, step, plans[i].key, item.error().message());
    }
    out->add_states(record.state());
    out->add_attempts(attempts);
    if (worker != job->workers.end()) {
      v1::Worker* w = worker->second.record.mutable_worker();
      w->set_failed(w->failed() + 1);
      job->dirty_workers.insert(r.worker_id());
    }
  }
  g.logs.Apply(job->id(), job->log, logs, *g.batch);
  MaybeFinishJob(g, *job);
  return absl::OkStatus();
}

ItemPlace Engine::EndLeaseUnfinished(Group& g, JobRuntime& job, int step, const std::string& key,
                                     const v1::ItemError& error, bool count_attempt) {
  const LeaseInfo lease = job.steps[step].leases.at(key);
  const uint32_t attempts = lease.attempts + (count_attempt ? 1 : 0);
  // A release counts no attempt, but an item already out of attempts (a claimed FAILED
  // item) goes back to FAILED, never to another try.
  const bool retry = attempts < job.record.job().max_attempts();
  Leave(g, job, step, key, ItemPlace::kLeased);
  ItemRecord record;
  record.set_state(retry ? v1::ITEM_STATE_PENDING : v1::ITEM_STATE_FAILED);
  record.set_attempts(attempts);
  if (!error.message().empty()) *record.mutable_last_error() = error;
  if (count_attempt) *record.mutable_last_error()->mutable_time() = ToProtoTime(g.now);
  record.set_worker_id(error.worker_id());
  record.set_cursor(lease.cursor);
  record.set_update_time_micros(absl::ToUnixMicros(g.now));
  WriteItem(g, job, step, key, record);
  if (retry) {
    Enter(g, job, step, key, ItemPlace::kPendingRetry);
    return ItemPlace::kPendingRetry;
  }
  EnterFailed(g, job, step, key,
              error.message().empty() ? absl::string_view("out of attempts") : error.message());
  return ItemPlace::kFailed;
}

std::string Engine::FinishingWorker(const JobRuntime& job, int step, const LeasePlan& plan,
                                    const std::string& worker_id, uint64_t token) const {
  if (!worker_id.empty() || token == 0 || plan.place != ItemPlace::kLeased) return worker_id;
  return job.steps[step].leases.at(plan.key).worker_id;
}

// ---------------------------------------------------------------- ResetItems

absl::Status Engine::DoResetItems(Group& g, const v1::ResetItemsRequest& r,
                                  v1::ResetItemsResponse* out) {
  CKPT_ASSIGN_OR_RETURN(JobRuntime * job, FindJob(r.job_id()));
  if (job->status() == v1::JOB_STATUS_STOPPED) {
    return absl::FailedPreconditionError(absl::StrCat(
        "job \"", job->id(), "\" is STOPPED: its items cannot be reset (ResetJob starts it over)"));
  }
  const v1::ItemState filter = r.state();
  const bool by_error = !r.error_message().empty();  // validated: state FAILED or any
  auto wanted = [filter, by_error](ItemPlace place) {
    if (by_error) return place == ItemPlace::kFailed;
    switch (place) {
      case ItemPlace::kFailed:
        return filter == v1::ITEM_STATE_UNSPECIFIED || filter == v1::ITEM_STATE_FAILED;
      case ItemPlace::kLeased:
        return filter == v1::ITEM_STATE_UNSPECIFIED || filter == v1::ITEM_STATE_LEASED;
      case ItemPlace::kCompleted:
        return filter == v1::ITEM_STATE_UNSPECIFIED || filter == v1::ITEM_STATE_COMPLETED;
      case ItemPlace::kPendingRetry:
        return filter == v1::ITEM_STATE_UNSPECIFIED || filter == v1::ITEM_STATE_PENDING;
      default:  // never tried: nothing to reset
        return false;
    }
  };
  std::vector<std::tuple<int, std::string, ItemPlace>> targets;
  if (r.keys_size() > 0) {
    CKPT_ASSIGN_OR_RETURN(const int step, FindStep(*job, r.step()));
    absl::flat_hash_set<std::string> seen;  // a key listed twice is reset once
    for (int i = 0; i < r.keys_size(); ++i) {
      const std::string key = keys::EncodeItemKey(r.keys(i));
      if (!seen.insert(key).second) continue;
      CKPT_ASSIGN_OR_RETURN(const ItemPlace place, Locate(g, *job, step, key));
      if (place == ItemPlace::kUnregistered) {
        return NotRegistered(absl::StrCat("keys[", i, "]"), key, *job, step);
      }
      if (wanted(place)) targets.emplace_back(step, key, place);
    }
  } else {
    std::vector<int> steps;
    if (r.step().empty()) {
      for (size_t i = 0; i < job->steps.size(); ++i) steps.push_back(static_cast<int>(i));
    } else {
      CKPT_ASSIGN_OR_RETURN(const int step, FindStep(*job, r.step()));
      steps.push_back(step);
    }
    for (int step : steps) {
      CKPT_RETURN_IF_ERROR(CollectResetTargets(g, *job, step, wanted, &targets));
    }
  }
  if (by_error) {
    // Failed items remember their error group's hash (AddErrorGroup's key).
    const uint64_t group = keys::Fnv1a64(r.error_message());
    auto elsewhere = [&](const std::tuple<int, std::string, ItemPlace>& target) {
      const auto& [step, key, place] = target;
      return job->steps[step].failed.at(key) != group;
    };
    targets.erase(std::remove_if(targets.begin(), targets.end(), elsewhere), targets.end());
  }
  out->set_matched(targets.size());
  if (r.dry_run() || targets.empty()) return absl::OkStatus();
  return ApplyResets(g, *job, targets);
}

absl::Status Engine::ApplyResets(
    Group& g, JobRuntime& job,
    const std::vector<std::tuple<int, std::string, ItemPlace>>& targets) {
  // Completed items leave their records (a run is split around them) and the completion
  // index, whose entries are keyed by a record's time and key: read them all before
  // anything changes.
  CKPT_ASSIGN_OR_RETURN(std::vector<CompletedHolder> holders,
                        ReadCompletedHolders(g, job, targets));
  for (CompletedHolder& holder : holders) {
    const std::string& step_name = job.steps[holder.step].name;
    const int64_t micros = holder.record.update_time_micros();
    DeleteCompletion(*g.batch, job.id(), step_name, micros, holder.key);
    if (holder.record.run_size() == 0) continue;  // the item's own record: rewritten below
    std::sort(holder.offsets.begin(), holder.offsets.end());
    const uint64_t run_first = keys::IndexOf(holder.key);
    UpdateRunDirectory(g, job, holder.step, run_first, RecordSpan(holder.record), /*add=*/false);
    for (RunPiece& piece : SplitRun(holder.record, run_first, holder.offsets)) {
      const std::string first = keys::EncodeIndex(piece.first);
      PutCompletion(*g.batch, job.id(), step_name, micros, first, holder.record.worker_id(),
                    piece.size);
      WriteItemBytes(g, job, holder.step, first, std::move(piece.bytes));
      if (piece.size > 1) {
        UpdateRunDirectory(g, job, holder.step, piece.first, piece.size, /*add=*/true);
      }
    }
  }
  for (const auto& [step, key, place] : targets) {
    Leave(g, job, step, key, place);
    if (place == ItemPlace::kCompleted) ForgetRecentCompletion(job, job.steps[step].name, key);
    if (keys::IsIndexKey(key)) {
      DeleteItem(g, job, step, key);  // back to an untouched index, as if new
      Enter(g, job, step, key, ItemPlace::kUntouched);
    } else {
      ItemRecord record;
      record.set_state(v1::ITEM_STATE_PENDING);
      record.set_update_time_micros(absl::ToUnixMicros(g.now));
      WriteItem(g, job, step, key, record);
      Enter(g, job, step, key, ItemPlace::kPendingFresh);
    }
  }
  if (IsFinished(job.status())) SetStatus(g, job, v1::JOB_STATUS_RUNNING, "");
  MaybeFinishJob(g, job);  // still over budget, or nothing left after all
  return absl::OkStatus();
}

absl::StatusOr<std::vector<Engine::CompletedHolder>> Engine::ReadCompletedHolders(
    Group& g, const JobRuntime& job,
    const std::vector<std::tuple<int, std::string, ItemPlace>>& targets) {
  std::vector<CompletedHolder> holders;
  absl::flat_hash_map<std::pair<int, std::string>, size_t> by_key;  // (step, key) -> holder
  for (const auto& [step, key, place] : targets) {
    if (place != ItemPlace::kCompleted) continue;
    // Targets mostly come in key order, so a run's items follow one another: read it once.
    size_t at = holders.size() - 1;
    const bool in_last = !holders.empty() && holders.back().step == step &&
                         RecordCovers(holders.back().key, holders.back().record, key);
    if (!in_last) {
      CKPT_ASSIGN_OR_RETURN(auto stored, ReadStoredItem(g, job, step, key));
      if (!stored.has_value()) continue;
      auto [it, added] = by_key.try_emplace(std::make_pair(step, stored->first), holders.size());
      if (added) holders.push_back({step, std::move(stored->first), std::move(stored->second), {}});
      at = it->second;
    }
    CompletedHolder& holder = holders[at];
    if (holder.record.run_size() > 0) {
      holder.offsets.push_back(keys::IndexOf(key) - keys::IndexOf(holder.key));
    }
  }
  return holders;
}

absl::Status Engine::CollectResetTargets(
    Group& g, const JobRuntime& job, int step, const std::function<bool(ItemPlace)>& wanted,
    std::vector<std::tuple<int, std::string, ItemPlace>>* targets) {
  const StepRuntime& s = job.steps[step];
  if (wanted(ItemPlace::kFailed)) {
    std::vector<std::string> failed;
    for (const auto& [key, hash] : s.failed) failed.push_back(key);
    std::sort(failed.begin(), failed.end());
    for (auto& key : failed) targets->emplace_back(step, std::move(key), ItemPlace::kFailed);
  }
  if (wanted(ItemPlace::kLeased)) {
    for (const auto& [key, lease] : s.leases) targets->emplace_back(step, key, ItemPlace::kLeased);
  }
  if (wanted(ItemPlace::kPendingRetry)) {
    for (const auto& key : s.pending_retry) {
      targets->emplace_back(step, key, ItemPlace::kPendingRetry);
    }
  }
  if (!wanted(ItemPlace::kCompleted)) return absl::OkStatus();
  // Completed items live only on disk: this is the one reset that scans. A stored record
  // stands unless this group rewrote or deleted its key (runs are split only at their
  // own key); what the group wrote is taken from the group.
  const std::string prefix = keys::StepPrefix(job.id(), s.name);
  auto add = [&](absl::string_view stored_key, absl::string_view bytes) -> absl::Status {
    ItemRecord record;
    CKPT_RETURN_IF_ERROR(ParseStored(bytes, &record, "item"));
    if (record.state() != v1::ITEM_STATE_COMPLETED) return absl::OkStatus();
    if (record.run_size() == 0) {
      if (!s.leases.contains(stored_key)) {
        targets->emplace_back(step, std::string(stored_key), ItemPlace::kCompleted);
      }
      return absl::OkStatus();
    }
    const uint64_t first = keys::IndexOf(stored_key);
    for (uint64_t i = 0; i < RecordSpan(record); ++i) {
      targets->emplace_back(step, keys::EncodeIndex(first + i), ItemPlace::kCompleted);
    }
    return absl::OkStatus();
  };
  if (!g.DeletedByRange(prefix)) {
    auto it = store_->Scan(Cf::kItems, prefix);
    for (; it->Valid(); it->Next()) {
      if (g.items.contains(it->key())) continue;
      CKPT_RETURN_IF_ERROR(add(it->suffix(), it->value()));
    }
    CKPT_RETURN_IF_ERROR(it->status());
  }
  for (auto it = g.items.lower_bound(prefix);
       it != g.items.end() && absl::StartsWith(it->first, prefix); ++it) {
    if (!it->second.has_value()) continue;
    CKPT_RETURN_IF_ERROR(add(absl::string_view(it->first).substr(prefix.size()), *it->second));
  }
  return absl::OkStatus();
}

}  // namespace ckpt
