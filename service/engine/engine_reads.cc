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
#include "service/engine/completion_index.h"
#include "service/engine/engine.h"
#include "service/engine/errors.h"
#include "service/engine/item_reads.h"
#include "service/engine/job_state_machine.h"
#include "service/engine/stored_record.h"
#include "service/store/keys.h"

namespace ckpt {
namespace {

using storage::v1::ItemRecord;

constexpr uint32_t kDefaultListJobs = 50;
constexpr size_t kMaxStateNameBytes = 256;

absl::StatusOr<std::string> ResolveStep(const JobSnapshot& snapshot, absl::string_view step) {
  const auto& steps = snapshot.record->job().steps();
  if (step.empty()) return steps.Get(0);
  for (const std::string& name : steps) {
    if (name == step) return name;
  }
  return UnknownStep(snapshot.record->job().job_id(), step, steps);
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

// Newest first; ties by id. The page token is the last row's "micros:id".
bool ListsBefore(const v1::Job& a, const v1::Job& b) {
  const int64_t ta = absl::ToUnixMicros(FromProtoTime(a.create_time()));
  const int64_t tb = absl::ToUnixMicros(FromProtoTime(b.create_time()));
  return ta != tb ? ta > tb : a.job_id() < b.job_id();
}

std::string JobPageToken(const v1::Job& last) {
  return absl::StrCat(absl::ToUnixMicros(FromProtoTime(last.create_time())), ":", last.job_id());
}

std::shared_ptr<const JobSnapshot> Engine::Snapshot(absl::string_view job_id) const {
  absl::MutexLock lock(&publish_mu_);
  auto it = published_.find(job_id);
  return it == published_.end() ? nullptr : it->second;
}

std::vector<std::shared_ptr<const JobSnapshot>> Engine::AllSnapshots() const {
  std::vector<std::shared_ptr<const JobSnapshot>> all;
  absl::MutexLock lock(&publish_mu_);
  all.reserve(published_.size());
  for (const auto& [id, snapshot] : published_) all.push_back(snapshot);
  return all;
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
  if (snapshot == nullptr) return JobNotFound(r.job_id());
  *out->mutable_job() = JobFromSnapshot(*snapshot);
  for (const v1::RecentCompletion& recent : snapshot->recent_completions) {
    *out->add_recent_completions() = recent;
  }
  return absl::OkStatus();
}

absl::Status Engine::ListJobsWithPrefix(const v1::ListJobsRequest& r, v1::ListJobsResponse* out,
                                        absl::string_view job_id_prefix) const {
  const std::vector<std::shared_ptr<const JobSnapshot>> all = AllSnapshots();
  const auto order = &ListsBefore;
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
    if (!absl::StartsWith(job.job_id(), job_id_prefix)) continue;
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
  // A page ends at `limit` jobs, or before its jobs pass max_page_bytes (at least one).
  size_t limit = r.limit() > 0 ? r.limit() : kDefaultListJobs;
  size_t page_bytes = 0;
  for (size_t i = 0; i < rows.size() && i < limit; ++i) {
    v1::Job job = JobFromSnapshot(*rows[i]);
    const size_t bytes = job.ByteSizeLong();
    if (i > 0 && page_bytes + bytes > options_.max_page_bytes) {
      limit = i;
      break;
    }
    page_bytes += bytes;
    *out->add_jobs() = std::move(job);
  }
  if (rows.size() > limit) {
    const v1::Job& last = rows[limit - 1]->record->job();
    out->set_next_page_token(JobPageToken(last));
  }
  return absl::OkStatus();
}

std::vector<JobSummary> Engine::JobSummaries() const {
  const std::vector<std::shared_ptr<const JobSnapshot>> all = AllSnapshots();
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

size_t Engine::QueuedOps() const { return queue_.size(); }

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
  if (snapshot == nullptr) return JobNotFound(r.job_id());
  CKPT_ASSIGN_OR_RETURN(const std::string step, ResolveStep(*snapshot, r.step()));
  CKPT_ASSIGN_OR_RETURN(std::unique_ptr<ReadView> view, store_->NewReadView());
  v1::Item* item = out->mutable_item();
  *item->mutable_key() = r.key();
  item->set_step(step);
  ItemRecordFinder records(*view, r.job_id(), step, &run_directories_);
  const absl::Status read = ReadStepItem(*view, r.job_id(), step, keys::EncodeItemKey(r.key()),
                                         /*keys_only=*/false, records, item);
  if (!read.ok()) out->clear_item();
  return read;
}

absl::Status Engine::ListItems(const v1::ListItemsRequest& r, v1::ListItemsResponse* out) const {
  auto snapshot = Snapshot(r.job_id());
  if (snapshot == nullptr) return JobNotFound(r.job_id());
  CKPT_ASSIGN_OR_RETURN(const std::string step, ResolveStep(*snapshot, r.step()));
  CKPT_ASSIGN_OR_RETURN(std::unique_ptr<ReadView> view, store_->NewReadView());
  if (WantsCompletionOrder(r)) {
    CKPT_RETURN_IF_ERROR(ListCompletedItems(*view, r, step, options_.max_page_bytes, out));
  } else {
    CKPT_RETURN_IF_ERROR(ListStepItems(*view, r, step, options_.max_page_bytes, out));
  }
  if (r.error_groups() > 0) {
    CKPT_RETURN_IF_ERROR(ListErrorGroups(*view, r.job_id(), r.error_groups(), out));
  }
  return absl::OkStatus();
}

absl::Status Engine::FindOutputWithPrefix(const v1::FindOutputRequest& r,
                                          v1::FindOutputResponse* out,
                                          absl::string_view job_id_prefix) const {
  auto not_found = absl::NotFoundError(
      absl::StrCat("no completed item recorded output \"", r.output_path(), "\""));
  CKPT_ASSIGN_OR_RETURN(std::optional<std::string> bytes,
                        store_->Get(Cf::kOutputs, keys::Output(r.output_path())));
  if (!bytes.has_value()) return not_found;
  storage::v1::OutputRecord output;
  if (!output.ParseFromString(*bytes)) return absl::DataLossError("corrupt output record");
  if (!absl::StartsWith(output.job_id(), job_id_prefix)) return not_found;
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
  *out->mutable_item() = std::move(*item.mutable_item());  // copies only across arenas
  return absl::OkStatus();
}

// ---------------------------------------------------------------- states

absl::Status Engine::GetState(const v1::GetStateRequest& r, v1::GetStateResponse* out) const {
  if (Snapshot(r.job_id()) == nullptr) return JobNotFound(r.job_id());
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
  if (Snapshot(r.job_id()) == nullptr) return JobNotFound(r.job_id());
  if (r.page_token().size() > kMaxStateNameBytes ||
      r.page_token().find('\0') != std::string::npos) {
    return absl::InvalidArgumentError("page_token: not a token this server issued");
  }
  const std::string prefix = keys::JobPrefix(r.job_id());
  // The page starts just after the token's state name, in name order.
  const std::string start =
      r.page_token().empty() ? "" : absl::StrCat(prefix, r.page_token(), std::string(1, '\0'));
  auto it = store_->Scan(Cf::kStates, prefix, start);
  size_t page_bytes = 0;
  for (; it->Valid(); it->Next()) {
    storage::v1::StateRecord record;
    if (!record.ParseFromArray(it->value().data(), static_cast<int>(it->value().size()))) {
      return absl::DataLossError("corrupt state record");
    }
    v1::State state;
    state.set_name(std::string(it->suffix()));
    if (r.include_values()) state.set_value(record.value());
    state.set_version(record.version());
    *state.mutable_update_time() = ToProtoTime(absl::FromUnixMicros(record.update_time_micros()));
    const size_t bytes = state.ByteSizeLong();
    if (out->states_size() > 0 && page_bytes + bytes > options_.max_page_bytes) {
      out->set_next_page_token(out->states(out->states_size() - 1).name());
      return absl::OkStatus();
    }
    page_bytes += bytes;
    *out->add_states() = std::move(state);
  }
  return it->status();
}

}  // namespace ckpt
