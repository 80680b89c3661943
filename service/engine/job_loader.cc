#include "service/engine/job_loader.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "service/common/proto_time.h"
#include "service/common/status_macros.h"
#include "service/engine/completion_index.h"
#include "service/engine/item_reads.h"
#include "service/engine/stored_record.h"

namespace ckpt {

absl::StatusOr<std::unique_ptr<JobRuntime>> JobLoader::Load(const storage::v1::JobRecord& record) {
  auto job = std::make_unique<JobRuntime>();
  job->record = record;
  for (const std::string& name : record.job().steps()) job->steps.push_back({name});
  const std::string& id = record.job().job_id();
  auto it = store_->Scan(Cf::kSched, keys::JobPrefix(id));
  for (; it->Valid(); it->Next()) {
    CKPT_ASSIGN_OR_RETURN(const keys::SchedKey key, keys::ParseSchedKey(id, it->suffix()));
    CKPT_RETURN_IF_ERROR(LoadSchedRecord(*job, key, it->value()));
  }
  CKPT_RETURN_IF_ERROR(it->status());
  CKPT_RETURN_IF_ERROR(LoadWorkers(*job));
  const std::vector<std::string> steps(record.job().steps().begin(), record.job().steps().end());
  CKPT_ASSIGN_OR_RETURN(std::vector<v1::RecentCompletion> recent,
                        NewestCompletions(*store_, id, steps, kRecentCompletions));
  job->recent_completions.assign(recent.begin(), recent.end());
  CKPT_ASSIGN_OR_RETURN(job->log, LoadJobLog(*store_, id));
  return job;
}

absl::Status JobLoader::LoadSchedRecord(JobRuntime& job, const keys::SchedKey& key,
                                        absl::string_view value) {
  if (key.error_group) {
    return ParseStored(value, &job.error_groups[key.error_hash], "error group");
  }
  const int step = job.StepIndex(key.step);
  if (step < 0) {
    return absl::DataLossError(
        absl::StrCat("sched record of unknown step \"", key.step, "\" in job \"", job.id(), "\""));
  }
  StepRuntime& s = job.steps[step];
  switch (key.tag) {
    case keys::SchedTag::kCounters:
      return ParseStored(value, &s.counters, "counters");
    case keys::SchedTag::kRegistered:
    case keys::SchedTag::kUntouched: {
      CKPT_ASSIGN_OR_RETURN(const uint64_t end, keys::ParseRangeEnd(value));
      (key.tag == keys::SchedTag::kRegistered ? s.registered : s.untouched).Load(key.number, end);
      return absl::OkStatus();
    }
    case keys::SchedTag::kPending:
      (key.rest[0] == keys::kPendingRetry ? s.pending_retry : s.pending_fresh)
          .insert(std::string(key.rest.substr(1)));
      return absl::OkStatus();
    case keys::SchedTag::kLeased: {
      storage::v1::LeaseRecord lease;
      CKPT_RETURN_IF_ERROR(ParseStored(value, &lease, "lease"));
      return LoadLease(job, step, std::string(key.rest),
                       {lease.worker_id(), lease.token(), lease.attempts(), lease.cursor(),
                        absl::FromUnixMicros(lease.grant_time_micros()), absl::InfinitePast(),
                        /*grant=*/0});
    }
    case keys::SchedTag::kGrant:
      return LoadGrant(job, step, key.number, value);
    case keys::SchedTag::kFailed:
      // Schema 1 wrote no error hash for some failed items: they join no group.
      s.failed[std::string(key.rest)] = value.size() == 8 ? keys::ReadBigEndian64(value) : 0;
      return absl::OkStatus();
  }
  return absl::DataLossError(absl::StrCat("unknown sched tag in job \"", job.id(), "\""));
}

absl::Status JobLoader::LoadGrant(JobRuntime& job, int step, uint64_t grant_id,
                                  absl::string_view value) {
  storage::v1::LeaseGrantRecord record;
  CKPT_RETURN_IF_ERROR(ParseStored(value, &record, "lease grant"));
  CKPT_RETURN_IF_ERROR(ExpandGrantRuns(job.id(), &record));  // schema 5's runs
  StepRuntime& s = job.steps[step];
  LeaseGrant& grant = s.grants[grant_id];
  grant.worker_id = record.worker_id();
  grant.granted = absl::FromUnixMicros(record.grant_time_micros());
  grant.asked_by = record.asked_by_token();
  if (grant.asked_by != 0) s.asked_grants[grant.asked_by].push_back(grant_id);
  for (storage::v1::LeaseGrantRecord::Lease& entry : *record.mutable_leases()) {
    if (!keys::DecodeItemKey(entry.key()).ok()) {
      return absl::DataLossError(
          absl::StrCat("corrupt lease grant record in job \"", job.id(), "\": bad item key"));
    }
    grant.keys.push_back(entry.key());
    ++grant.live;
    CKPT_RETURN_IF_ERROR(LoadLease(
        job, step, std::move(*entry.mutable_key()),
        {record.worker_id(), entry.token(), entry.attempts(), std::move(*entry.mutable_cursor()),
         grant.granted, absl::InfinitePast(), grant_id, entry.no_record()}));
  }
  if (grant.live == 0) {
    s.dirty_grants.insert(grant_id);  // deleted at the next flush
    return absl::OkStatus();
  }
  // The grant's leases expire together (LeaseGrant::deadline).
  grant.deadline = Deadline(job, grant.granted);
  expiry_->insert({grant.deadline, grant_id, job.id(), step, ""});
  if (!grant.worker_id.empty()) job.workers[grant.worker_id].grants.insert({step, grant_id});
  return absl::OkStatus();
}

absl::Time JobLoader::Deadline(const JobRuntime& job, absl::Time granted) const {
  const absl::Time deadline = now_ + FromProtoDuration(job.record.job().lease_timeout());
  const absl::Duration max_run = FromProtoDuration(job.record.job().max_run_time());
  return max_run > absl::ZeroDuration() ? std::min(deadline, granted + max_run) : deadline;
}

absl::Status JobLoader::LoadLease(JobRuntime& job, int step, std::string key, LeaseInfo lease) {
  StepRuntime& s = job.steps[step];
  if (s.leases.contains(key)) {
    return absl::DataLossError(
        absl::StrCat("two leases of ", keys::DescribeItemKey(key), " in job \"", job.id(), "\""));
  }
  if (lease.grant == 0) {  // a grant's leases expire with it (LoadGrant)
    lease.deadline = Deadline(job, lease.granted);
    expiry_->insert({lease.deadline, lease.token, job.id(), step, key});
    if (!lease.worker_id.empty()) job.workers[lease.worker_id].own_leases.insert({step, key});
  }
  s.leases.emplace(std::move(key), std::move(lease));
  return absl::OkStatus();
}

absl::Status JobLoader::LoadWorkers(JobRuntime& job) {
  auto it = store_->Scan(Cf::kWorkers, keys::JobPrefix(job.id()));
  for (; it->Valid(); it->Next()) {
    WorkerRuntime& w = job.workers[std::string(it->suffix())];
    CKPT_RETURN_IF_ERROR(ParseStored(it->value(), &w.record, "worker"));
    w.last_heartbeat = now_;  // a restart is not the worker's silence
  }
  CKPT_RETURN_IF_ERROR(it->status());
  // Leases naming a worker with no record (cannot happen by construction) keep their
  // expiry and simply end.
  for (auto w = job.workers.begin(); w != job.workers.end();) {
    if (!w->second.record.has_worker()) {
      job.workers.erase(w++);
    } else {
      ++w;
    }
  }
  return absl::OkStatus();
}

}  // namespace ckpt
