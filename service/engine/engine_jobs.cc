// Job decisions: create/resume, update, the state machine's transitions, reset, delete.
#include <string>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "service/common/proto_time.h"
#include "service/common/sha256.h"
#include "service/common/status_macros.h"
#include "service/engine/engine.h"
#include "service/engine/group.h"
#include "service/engine/job_state_machine.h"
#include "service/engine/progress.h"
#include "service/store/keys.h"

namespace ckpt {

std::string GenerateJobId(absl::Time now) {
  thread_local absl::BitGen bits;
  return absl::StrCat("job-", absl::FormatTime("%Y%m%d-%H%M%S", now, absl::UTCTimeZone()), "-",
                      absl::StrFormat("%06x", absl::Uniform<uint32_t>(bits, 0, 1u << 24)));
}
namespace {

constexpr absl::Duration kDefaultLeaseTimeout = absl::Seconds(60);
constexpr uint32_t kDefaultMaxAttempts = 3;

std::string Sha256Fingerprint(absl::string_view config) {
  return absl::StrCat("sha256:", Sha256Hex(config));
}

storage::v1::JobRecord NewJobRecord(const v1::CreateJobRequest& r, const std::string& id,
                                    const std::string& fingerprint, absl::Time now,
                                    absl::Duration default_retention) {
  storage::v1::JobRecord record;
  v1::Job* job = record.mutable_job();
  job->set_job_id(id);
  job->set_display_name(r.display_name());
  job->set_config(r.config());
  job->set_fingerprint(fingerprint);
  *job->mutable_labels() = r.labels();
  *job->mutable_params() = r.params();
  *job->mutable_steps() = r.steps();
  if (job->steps().empty()) job->add_steps("main");
  *job->mutable_lease_timeout() =
      r.has_lease_timeout() ? r.lease_timeout() : ToProtoDuration(kDefaultLeaseTimeout);
  job->set_max_attempts(r.max_attempts() > 0 ? r.max_attempts() : kDefaultMaxAttempts);
  if (r.has_max_run_time()) *job->mutable_max_run_time() = r.max_run_time();
  *job->mutable_failure_budget() = r.failure_budget();
  // An explicit 0 keeps the job until deleted, whatever the default.
  const absl::Duration retention =
      r.has_retention() ? FromProtoDuration(r.retention()) : default_retention;
  if (retention > absl::ZeroDuration()) *job->mutable_retention() = ToProtoDuration(retention);
  job->set_status(v1::JOB_STATUS_RUNNING);
  *job->mutable_create_time() = ToProtoTime(now);
  *job->mutable_update_time() = ToProtoTime(now);
  record.set_start_time_micros(absl::ToUnixMicros(now));
  return record;
}

}  // namespace

absl::Status Engine::DoCreateJob(Group& g, const v1::CreateJobRequest& r,
                                 v1::CreateJobResponse* out) {
  const std::string id = r.job_id().empty() ? GenerateJobId(g.now) : r.job_id();
  const std::string fingerprint =
      r.fingerprint().empty() ? Sha256Fingerprint(r.config()) : r.fingerprint();
  auto existing = jobs_.find(id);
  if (existing != jobs_.end()) {
    JobRuntime& job = *existing->second;
    const std::string& old = job.record.job().fingerprint();
    if (old == fingerprint) {
      out->set_resumed(true);
      *out->mutable_job() = JobFromSnapshot(*MakeSnapshot(job));
      return absl::OkStatus();
    }
    if (!r.reset_on_fingerprint_change()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "job \"", id, "\" exists with fingerprint ", old, " but this request's is ", fingerprint,
          ": its config or inputs changed. Use a new job_id, or set "
          "reset_on_fingerprint_change to start it over"));
    }
    // Start over on the new definition: everything of the old run goes.
    ResetJobState(g, job, /*remove_items=*/true);
    const auto old_create_time = job.record.job().create_time();
    job.record = NewJobRecord(r, id, fingerprint, g.now, options_.retention.default_retention);
    *job.record.mutable_job()->mutable_create_time() = old_create_time;
    RebuildSteps(g, job);
    MarkRecordChanged(g, job);
    out->set_reset(true);
    *out->mutable_job() = JobFromSnapshot(*MakeSnapshot(job));
    return absl::OkStatus();
  }
  auto job = std::make_unique<JobRuntime>();
  job->record = NewJobRecord(r, id, fingerprint, g.now, options_.retention.default_retention);
  JobRuntime& created = *job;
  jobs_[id] = std::move(job);
  RebuildSteps(g, created);
  MarkRecordChanged(g, created);
  out->set_created(true);
  *out->mutable_job() = JobFromSnapshot(*MakeSnapshot(created));
  return absl::OkStatus();
}

void Engine::RebuildSteps(Group& g, JobRuntime& job) {
  job.steps.clear();
  for (const std::string& name : job.record.job().steps()) {
    job.steps.push_back({name});
    job.steps.back().counters_dirty = true;  // zero counters are written too
  }
  Touch(g, job);
}

absl::Status Engine::DoUpdateJob(Group& g, const v1::UpdateJobRequest& r,
                                 v1::UpdateJobResponse* out) {
  CKPT_ASSIGN_OR_RETURN(JobRuntime * job, FindJob(r.job_id()));
  v1::Job merged = job->record.job();
  if (r.has_stage()) merged.set_stage(r.stage());
  for (const auto& [k, v] : r.set_labels()) (*merged.mutable_labels())[k] = v;
  for (const std::string& k : r.remove_labels()) merged.mutable_labels()->erase(k);
  for (const auto& [k, v] : r.set_params()) (*merged.mutable_params())[k] = v;
  for (const std::string& k : r.remove_params()) merged.mutable_params()->erase(k);
  if (r.seal()) merged.set_sealed(true);
  if (r.has_failure_budget()) *merged.mutable_failure_budget() = r.failure_budget();
  if (r.has_retention()) {
    // 0 removes it; a finished job whose new retention has run out goes at the next sweep.
    if (FromProtoDuration(r.retention()) > absl::ZeroDuration()) {
      *merged.mutable_retention() = r.retention();
    } else {
      merged.clear_retention();
    }
  }
  CKPT_RETURN_IF_ERROR(CheckJobTotals(merged));
  *job->record.mutable_job() = std::move(merged);
  MarkRecordChanged(g, *job);
  MaybeFinishJob(g, *job);
  *out->mutable_job() = JobFromSnapshot(*MakeSnapshot(*job));
  return absl::OkStatus();
}

absl::Status CheckJobTotals(const v1::Job& job) {
  if (job.labels_size() > kMaxJobLabels) {
    return absl::InvalidArgumentError(absl::StrCat(
        "set_labels: the job would have ", job.labels_size(), " labels, over the limit of ",
        kMaxJobLabels, "; remove some (remove_labels) first"));
  }
  if (job.params_size() > kMaxJobParams) {
    return absl::InvalidArgumentError(absl::StrCat(
        "set_params: the job would have ", job.params_size(), " params, over the limit of ",
        kMaxJobParams, "; remove some (remove_params) first"));
  }
  const size_t bytes = job.ByteSizeLong();
  if (bytes > kMaxJobRecordBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("the job would be ", bytes, " bytes after this update, over the limit of ",
                     kMaxJobRecordBytes,
                     " bytes for a job's config, params and labels together; remove "
                     "params or labels (remove_params, remove_labels) first"));
  }
  return absl::OkStatus();
}

absl::Status Engine::DoTransition(Group& g, absl::string_view job_id, v1::JobStatus to,
                                  absl::string_view reason, v1::Job* out) {
  CKPT_ASSIGN_OR_RETURN(JobRuntime * job, FindJob(job_id));
  CKPT_RETURN_IF_ERROR(CheckTransition(job_id, job->status(), to));
  if (job->status() == v1::JOB_STATUS_FAILED && to == v1::JOB_STATUS_RUNNING) {
    CKPT_RETURN_IF_ERROR(CheckResumable(*job));
  }
  if (job->status() != to) {
    SetStatus(g, *job, to, reason);
    // Resuming a job whose items all finished (or ran over budget) finishes it.
    MaybeFinishJob(g, *job);
  }
  *out = JobFromSnapshot(*MakeSnapshot(*job));
  return absl::OkStatus();
}

absl::Status Engine::CheckResumable(const JobRuntime& job) const {
  if (std::string over = BudgetExceeded(job); !over.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "job \"", job.id(), "\" cannot resume: ", over,
        "; reset failed items (ResetItems, ckpt retry) or raise the budget (UpdateJob "
        "failure_budget, ckpt resume --max-failed-items/--max-failed-fraction) first"));
  }
  storage::v1::StepCounters total;
  for (const StepRuntime& s : job.steps) AddCounters(s.counters, &total);
  if (job.record.job().sealed() && total.pending() + total.leased() == 0 && total.failed() > 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "job \"", job.id(), "\" cannot resume: it is sealed and every item is finished, ",
        total.failed(), " of ", total.total(),
        " failed; ResetItems (ckpt retry) retries the failed items, which resumes it"));
  }
  return absl::OkStatus();
}

absl::Status Engine::DoResetJob(Group& g, const v1::ResetJobRequest& r, v1::ResetJobResponse* out) {
  CKPT_ASSIGN_OR_RETURN(JobRuntime * job, FindJob(r.job_id()));
  CKPT_RETURN_IF_ERROR(CheckTransition(r.job_id(), job->status(), v1::JOB_STATUS_RUNNING,
                                       /*by_reset=*/true));
  // Names are kept as PENDING; read them before their records are deleted.
  std::vector<std::vector<std::string>> names(job->steps.size());
  if (!r.remove_items()) {
    for (size_t step = 0; step < job->steps.size(); ++step) {
      CKPT_ASSIGN_OR_RETURN(names[step], ListNames(g, *job, static_cast<int>(step)));
    }
  }
  ResetJobState(g, *job, r.remove_items());
  for (size_t step = 0; step < job->steps.size(); ++step) {
    for (const std::string& key : names[step]) {
      storage::v1::ItemRecord record;
      record.set_state(v1::ITEM_STATE_PENDING);
      record.set_update_time_micros(absl::ToUnixMicros(g.now));
      WriteItem(g, *job, static_cast<int>(step), key, record);
      Enter(g, *job, static_cast<int>(step), key, ItemPlace::kPendingFresh);
      StepRuntime& s = job->steps[step];
      s.counters.set_total(s.counters.total() + 1);
    }
  }
  MaybeFinishJob(g, *job);  // a sealed job with no items is complete at once
  *out->mutable_job() = JobFromSnapshot(*MakeSnapshot(*job));
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> Engine::ListNames(Group& g, const JobRuntime& job,
                                                           int step) {
  const std::string prefix = keys::Item(job.id(), job.steps[step].name, keys::EncodeName(""));
  std::set<std::string> found;
  auto it = store_->Scan(Cf::kItems, prefix);
  for (; it->Valid(); it->Next()) {
    found.insert(std::string(it->key().substr(prefix.size() - 1)));
  }
  CKPT_RETURN_IF_ERROR(it->status());
  if (g.DeletedByRange(prefix)) found.clear();  // a reset or delete earlier in this group
  for (const auto& [full, record] : g.items) {  // names this group added or deleted
    if (full.compare(0, prefix.size(), prefix) != 0) continue;
    if (record.has_value()) {
      found.insert(full.substr(prefix.size() - 1));
    } else {
      found.erase(full.substr(prefix.size() - 1));
    }
  }
  return std::vector<std::string>(found.begin(), found.end());
}

void Engine::ResetJobState(Group& g, JobRuntime& job, bool remove_items) {
  DeleteJobData(g, job.id());
  job.recent_completions.clear();
  // The logs go; their sequence goes on, so a reader following the log sees no entry
  // number twice.
  const uint64_t next_sequence = job.log.stats.next_sequence();
  job.log.stats.Clear();
  job.log.stats.set_next_sequence(next_sequence);
  job.log.dirty = true;
  // Workers stay registered (their records were deleted with the job's data, so write
  // them again) but hold nothing.
  ForgetJobExpiries(job);
  for (auto& [worker_id, w] : job.workers) {
    w.grants.clear();
    w.own_leases.clear();
    job.dirty_workers.insert(worker_id);
  }
  const Cf sched = Cf::kSched;
  for (size_t step = 0; step < job.steps.size(); ++step) {
    StepRuntime& s = job.steps[step];
    IntervalSet registered;
    if (!remove_items) {
      for (const auto& [begin, end] : s.registered.intervals()) registered.Load(begin, end);
    }
    s = StepRuntime{s.name};
    s.counters.set_total(registered.size());
    s.counters.set_pending(registered.size());
    s.counters_dirty = true;
    // The ranges' keys were deleted above: write them again, as registered and untouched.
    for (const auto& [begin, end] : registered.intervals()) {
      s.registered.Load(begin, end);
      s.untouched.Load(begin, end);
      for (keys::SchedTag tag : {keys::SchedTag::kRegistered, keys::SchedTag::kUntouched}) {
        std::string value;
        keys::AppendBigEndian64(&value, end);
        g.batch->Put(sched, keys::RangeStart(job.id(), s.name, tag, begin), value);
      }
    }
  }
  job.error_groups.clear();
  job.dirty_error_groups.clear();
  job.rate.Reset();
  v1::Job* j = job.record.mutable_job();
  if (remove_items) j->set_sealed(false);
  j->set_stage("");
  job.record.set_start_time_micros(absl::ToUnixMicros(g.now));
  SetStatus(g, job, v1::JOB_STATUS_RUNNING, "");
}

absl::Status Engine::DoDeleteJob(Group& g, const v1::DeleteJobRequest& r) {
  CKPT_ASSIGN_OR_RETURN(JobRuntime * job, FindJob(r.job_id()));
  RemoveJob(g, *job);
  ++g.jobs_deleted;
  return absl::OkStatus();
}

void Engine::RemoveJob(Group& g, JobRuntime& job) {
  const std::string id = job.id();
  ForgetJobExpiries(job);
  DeleteJobData(g, id);
  g.batch->Delete(Cf::kJobs, id);
  g.touched.insert(id);
  retention_.Remove(id);
  jobs_.erase(id);
}

}  // namespace ckpt
