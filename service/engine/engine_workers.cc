// Worker decisions (register, heartbeat, unregister, list), lease expiry, and state
// blobs.
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "service/common/proto_time.h"
#include "service/common/status_macros.h"
#include "service/engine/engine.h"
#include "service/engine/group.h"
#include "service/store/keys.h"

namespace ckpt {

absl::Status Engine::DoRegisterWorker(Group& g, const v1::RegisterWorkerRequest& r,
                                      v1::RegisterWorkerResponse* out) {
  CKPT_ASSIGN_OR_RETURN(JobRuntime * job, FindJob(r.job_id()));
  const std::string id = absl::StrCat("w-", Issue(&next_worker_));
  WorkerRuntime& w = job->workers[id];
  v1::Worker* worker = w.record.mutable_worker();
  worker->set_worker_id(id);
  worker->set_job_id(job->id());
  worker->set_hostname(r.hostname());
  worker->set_pid(r.pid());
  worker->set_invocation_id(r.invocation_id());
  *worker->mutable_labels() = r.labels();
  worker->set_state(v1::WORKER_STATE_ACTIVE);
  *worker->mutable_register_time() = ToProtoTime(g.now);
  w.last_heartbeat = g.now;
  job->dirty_workers.insert(id);
  Touch(g, *job);
  out->set_worker_id(id);
  *out->mutable_lease_timeout() = ToProtoDuration(LeaseTimeout(*job));
  *out->mutable_heartbeat_interval() = ToProtoDuration(LeaseTimeout(*job) / 3);
  return absl::OkStatus();
}

absl::StatusOr<WorkerRuntime*> Engine::FindLiveWorker(Group& g, JobRuntime& job,
                                                      absl::string_view worker_id) {
  auto it = job.workers.find(worker_id);
  if (it == job.workers.end()) {
    return absl::NotFoundError(
        absl::StrCat("worker_id: worker \"", worker_id, "\" of job \"", job.id(), "\" not found"));
  }
  WorkerRuntime& w = it->second;
  if (w.record.worker().state() == v1::WORKER_STATE_EXITED) {
    return absl::FailedPreconditionError(
        absl::StrCat("worker_id: worker \"", worker_id, "\" has unregistered; register again"));
  }
  const absl::Duration silent = g.now - w.last_heartbeat;
  if (silent > LeaseTimeout(job)) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "worker \"%s\" was declared lost after %s without a heartbeat (lease timeout %s); "
        "its leases were returned: drop its items and register again",
        std::string(worker_id), absl::FormatDuration(absl::Trunc(silent, absl::Seconds(1))),
        absl::FormatDuration(LeaseTimeout(job))));
  }
  return &w;
}

absl::Status Engine::DoHeartbeat(Group& g, const v1::HeartbeatRequest& r,
                                 v1::HeartbeatResponse* out) {
  CKPT_ASSIGN_OR_RETURN(JobRuntime * job, FindJob(r.job_id()));
  CKPT_ASSIGN_OR_RETURN(WorkerRuntime * worker, FindLiveWorker(g, *job, r.worker_id()));
  // Check every presented lease before changing anything.
  std::vector<int> steps(r.leases_size());
  for (int i = 0; i < r.leases_size(); ++i) {
    CKPT_ASSIGN_OR_RETURN(steps[i], FindStep(*job, r.leases(i).step()));
  }
  CKPT_ASSIGN_OR_RETURN(const LogPlan logs, PlanHeartbeatLogs(g, *job, r, steps));
  worker->last_heartbeat = g.now;
  const absl::Time deadline = g.now + LeaseTimeout(*job);
  for (const auto& [step, grant_id] : worker->grants) {
    SetGrantDeadline(*job, step, grant_id, job->steps[step].grants.at(grant_id), deadline);
  }
  for (const auto& [step, key] : worker->own_leases) {
    SetDeadline(*job, step, key, job->steps[step].leases.at(key), deadline);
  }
  for (int i = 0; i < r.leases_size(); ++i) {
    const v1::HeldLease& held = r.leases(i);
    StepRuntime& s = job->steps[steps[i]];
    const std::string key = keys::EncodeItemKey(held.key());
    auto lease = s.leases.find(key);
    if (lease == s.leases.end() || lease->second.token != held.lease_token() ||
        lease->second.worker_id != r.worker_id()) {
      v1::LostLease* lost = out->add_lost();
      lost->set_step(s.name);
      *lost->mutable_key() = held.key();
      lost->set_lease_token(held.lease_token());
      lost->set_reason(lease == s.leases.end() ? "the lease ended (expired, released or "
                                                 "the item was finished or reset)"
                                               : "the item was leased again");
      continue;
    }
    if (held.has_cursor() && held.cursor() != lease->second.cursor) {
      lease->second.cursor = held.cursor();
      if (lease->second.grant != 0) {
        s.dirty_grants.insert(lease->second.grant);  // its grant's record is rewritten
        continue;
      }
      storage::v1::LeaseRecord record;
      record.set_worker_id(lease->second.worker_id);
      record.set_token(lease->second.token);
      record.set_attempts(lease->second.attempts);
      record.set_cursor(lease->second.cursor);
      record.set_grant_time_micros(absl::ToUnixMicros(lease->second.granted));
      g.batch->Put(Cf::kSched, keys::Leased(job->id(), s.name, key), record.SerializeAsString());
    }
  }
  g.logs.Apply(job->id(), job->log, logs, *g.batch);
  Touch(g, *job);
  out->set_control(ControlFor(*job));
  *out->mutable_lease_expire_time() = ToProtoTime(deadline);
  return absl::OkStatus();
}

absl::StatusOr<LogPlan> Engine::PlanHeartbeatLogs(Group& g, const JobRuntime& job,
                                                  const v1::HeartbeatRequest& r,
                                                  const std::vector<int>& steps) {
  std::vector<NewLogEntry> entries;
  for (int i = 0; i < r.leases_size(); ++i) {
    const v1::HeldLease& held = r.leases(i);
    if (held.logs().empty()) continue;
    std::string key = keys::EncodeItemKey(held.key());
    // A lost lease's entries are kept too (they say what its holder did), unless the
    // item itself is gone (ResetJob removed it).
    CKPT_ASSIGN_OR_RETURN(const ItemPlace place, Locate(g, job, steps[i], key));
    if (place == ItemPlace::kUnregistered) continue;
    for (const v1::LogEntry& entry : held.logs()) {
      entries.push_back({job.steps[steps[i]].name, key, &entry});
    }
  }
  return g.logs.Plan(job.id(), job.log, r.worker_id(), entries);
}

absl::Status Engine::DoUnregisterWorker(Group& g, const v1::UnregisterWorkerRequest& r,
                                        v1::UnregisterWorkerResponse* out) {
  CKPT_ASSIGN_OR_RETURN(JobRuntime * job, FindJob(r.job_id()));
  auto it = job->workers.find(r.worker_id());
  if (it == job->workers.end()) {
    return absl::NotFoundError(absl::StrCat("worker_id: worker \"", r.worker_id(), "\" of job \"",
                                            job->id(), "\" not found"));
  }
  WorkerRuntime& w = it->second;
  if (w.record.worker().state() == v1::WORKER_STATE_EXITED) return absl::OkStatus();
  const std::vector<std::pair<int, std::string>> held = HeldLeases(*job, w);
  // A released item keeps its last error (and goes back to FAILED with it when it has
  // no attempts left): read them all before changing anything.
  std::vector<v1::ItemError> errors;
  errors.reserve(held.size());
  for (const auto& [step, key] : held) {
    v1::ItemError& error = errors.emplace_back();
    if (job->steps[step].leases.at(key).attempts == 0) continue;  // never failed
    CKPT_ASSIGN_OR_RETURN(std::optional<storage::v1::ItemRecord> record,
                          ReadItem(g, *job, step, key));
    if (record.has_value()) error = record->last_error();
  }
  size_t i = 0;
  for (const auto& [step, key] : held) {
    EndLeaseUnfinished(g, *job, step, key, errors[i++], /*count_attempt=*/false);
  }
  out->set_released(held.size());
  w.record.mutable_worker()->set_state(v1::WORKER_STATE_EXITED);
  job->dirty_workers.insert(r.worker_id());
  Touch(g, *job);
  MaybeFinishJob(g, *job);
  return absl::OkStatus();
}

absl::Status Engine::DoListWorkers(Group& g, const v1::ListWorkersRequest& r,
                                   v1::ListWorkersResponse* out) {
  CKPT_ASSIGN_OR_RETURN(JobRuntime * job, FindJob(r.job_id()));
  std::vector<std::string> ids;
  for (const auto& [id, w] : job->workers) ids.push_back(id);
  std::sort(ids.begin(), ids.end());
  for (const std::string& id : ids) {
    const WorkerRuntime& w = job->workers.at(id);
    const bool exited = w.record.worker().state() == v1::WORKER_STATE_EXITED;
    if (exited && !r.include_exited()) continue;
    v1::Worker* worker = out->add_workers();
    *worker = w.record.worker();
    if (!exited && g.now - w.last_heartbeat > LeaseTimeout(*job)) {
      worker->set_state(v1::WORKER_STATE_LOST);
    }
    *worker->mutable_last_heartbeat() = ToProtoTime(w.last_heartbeat);
    for (const auto& [step, key] : HeldLeases(*job, w)) {
      *worker->add_current_items() = *keys::DecodeItemKey(key);
      worker->set_current_step(job->steps[step].name);
    }
  }
  return absl::OkStatus();
}

absl::Status Engine::DoExpireLeases(Group& g) {
  while (!expiry_.empty() && expiry_.begin()->deadline <= g.now) {
    const ExpiryKey entry = *expiry_.begin();
    // Ending the entry's last lease removes the entry; it goes even if it had none.
    ExpireEntry(g, entry);
    auto left = expiry_.find(ExpiryOrder::Position(entry.deadline, entry.token));
    if (left != expiry_.end()) expiry_.erase(left);
  }
  return absl::OkStatus();
}

void Engine::ExpireEntry(Group& g, const ExpiryKey& entry) {
  JobRuntime& job = *jobs_.at(entry.job_id);
  const StepRuntime& s = job.steps[entry.step];
  std::vector<std::string> expiring;
  if (!entry.key.empty()) {
    expiring.push_back(entry.key);
  } else {
    auto grant = s.grants.find(entry.token);
    if (grant == s.grants.end()) return;
    for (const std::string& key : grant->second.keys) {
      auto lease = s.leases.find(key);
      if (lease != s.leases.end() && lease->second.grant == entry.token) expiring.push_back(key);
    }
  }
  for (const std::string& key : expiring) {
    const LeaseInfo& lease = s.leases.at(key);
    const absl::Duration max_run = FromProtoDuration(job.record.job().max_run_time());
    v1::ItemError error;
    if (max_run > absl::ZeroDuration() && g.now - lease.granted >= max_run) {
      error.set_message(
          absl::StrCat("lease ran past the job's max_run_time of ", absl::FormatDuration(max_run)));
    } else if (lease.worker_id.empty()) {
      error.set_message(absl::StrCat("claim expired after the lease timeout of ",
                                     absl::FormatDuration(LeaseTimeout(job))));
    } else {
      auto w = job.workers.find(lease.worker_id);
      const absl::Time last = w == job.workers.end() ? lease.granted : w->second.last_heartbeat;
      error.set_message(absl::StrFormat(
          "lease expired: worker %s was silent for %s (lease timeout %s)", lease.worker_id,
          absl::FormatDuration(absl::Trunc(g.now - last, absl::Seconds(1))),
          absl::FormatDuration(LeaseTimeout(job))));
      error.set_worker_id(lease.worker_id);
    }
    error.set_retryable(true);
    EndLeaseUnfinished(g, job, entry.step, key, error, /*count_attempt=*/true);
  }
  MaybeFinishJob(g, job);
}

absl::Status Engine::DoPutState(Group& g, const v1::PutStateRequest& r, v1::PutStateResponse* out) {
  CKPT_ASSIGN_OR_RETURN(JobRuntime * job, FindJob(r.job_id()));
  const std::string key = keys::State(job->id(), r.name());
  uint64_t version = 0;
  auto own = g.states.find(key);
  if (own != g.states.end()) {
    if (own->second.has_value()) version = own->second->version();
  } else if (!g.DeletedByRange(key)) {
    CKPT_ASSIGN_OR_RETURN(std::optional<std::string> bytes, store_->Get(Cf::kStates, key));
    storage::v1::StateRecord current;
    if (bytes.has_value()) {
      if (!current.ParseFromString(*bytes)) {
        return absl::DataLossError(absl::StrCat("state \"", r.name(), "\" is corrupt"));
      }
      version = current.version();
    }
  }
  if (r.has_expected_version() && r.expected_version() != version) {
    return absl::AbortedError(absl::StrCat("state \"", r.name(), "\" of job \"", job->id(),
                                           "\" is at version ", version, ", not ",
                                           r.expected_version(), ": re-read it and retry"));
  }
  storage::v1::StateRecord record;
  record.set_value(r.value());
  record.set_version(version + 1);
  record.set_update_time_micros(absl::ToUnixMicros(g.now));
  g.batch->Put(Cf::kStates, key, record.SerializeAsString());
  g.states[key] = record;
  out->set_version(record.version());
  return absl::OkStatus();
}

}  // namespace ckpt
