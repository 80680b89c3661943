// Leasing: LeaseItems (pending items in order, or claims of chosen keys), and the lease a
// CompleteItems asks for with lease_next, granted in the same group as its completions
// (docs/api.md, "Completing and leasing in one call").
#include <algorithm>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "service/common/proto_time.h"
#include "service/common/status_macros.h"
#include "service/engine/engine.h"
#include "service/engine/errors.h"
#include "service/engine/group.h"
#include "service/engine/item_reads.h"
#include "service/engine/job_state_machine.h"
#include "service/engine/lease_answer.h"
#include "service/store/keys.h"

namespace ckpt {
namespace {

using storage::v1::ItemRecord;

}  // namespace

// ---------------------------------------------------------------- choosing

absl::Status Engine::FillPlan(Group& g, const JobRuntime& job, int step, LeasePlan* plan) {
  if (plan->place == ItemPlace::kLeased) {
    const LeaseInfo& lease = job.steps[step].leases.at(plan->key);
    plan->attempts = lease.attempts;
    plan->cursor = lease.cursor;
    plan->no_record = lease.no_record;
    return absl::OkStatus();
  }
  plan->no_record = plan->place == ItemPlace::kUntouched;
  if (plan->place != ItemPlace::kPendingRetry && plan->place != ItemPlace::kFailed) {
    return absl::OkStatus();  // never tried: no record worth reading
  }
  CKPT_ASSIGN_OR_RETURN(std::optional<ItemRecord> record, ReadItem(g, job, step, plan->key));
  if (record.has_value()) {
    plan->attempts = record->attempts();
    plan->cursor = record->cursor();
  }
  return absl::OkStatus();
}

absl::Status Engine::SelectPending(Group& g, JobRuntime& job, int step, uint32_t n,
                                   std::vector<LeasePlan>* out) {
  const StepRuntime& s = job.steps[step];
  for (auto it = s.pending_retry.begin(); it != s.pending_retry.end() && out->size() < n; ++it) {
    out->push_back({*it, ItemPlace::kPendingRetry});
    CKPT_RETURN_IF_ERROR(FillPlan(g, job, step, &out->back()));
  }
  // Untouched indices sort before fresh names (index keys before name keys).
  for (const auto& [begin, end] : s.untouched.intervals()) {
    for (uint64_t i = begin; i < end && out->size() < n; ++i) {
      out->push_back({keys::EncodeIndex(i), ItemPlace::kUntouched});
    }
    if (out->size() >= n) break;
  }
  for (auto it = s.pending_fresh.begin(); it != s.pending_fresh.end() && out->size() < n; ++it) {
    out->push_back({*it, ItemPlace::kPendingFresh});
  }
  return absl::OkStatus();
}

void Engine::LeaveUntouchedInRuns(JobRuntime& job, int step, std::vector<LeasePlan>* plans) {
  StepRuntime& s = job.steps[step];
  for (size_t i = 0; i < plans->size();) {
    if ((*plans)[i].place != ItemPlace::kUntouched) {
      ++i;
      continue;
    }
    const uint64_t begin = keys::IndexOf((*plans)[i].key);
    size_t j = i + 1;
    while (j < plans->size() && (*plans)[j].place == ItemPlace::kUntouched &&
           keys::IndexOf((*plans)[j].key) == begin + (j - i)) {
      ++j;
    }
    s.untouched.Remove(begin, begin + (j - i));
    s.counters.set_pending(s.counters.pending() - (j - i));
    for (size_t k = i; k < j; ++k) (*plans)[k].left = true;
    i = j;
  }
  s.counters_dirty = true;
}

// ---------------------------------------------------------------- granting

uint32_t Engine::LeaseCount(const v1::LeaseItemsResponse& answer) {
  uint32_t count = static_cast<uint32_t>(answer.leases_size());
  for (const v1::LeaseRun& run : answer.lease_runs()) count += run.count();
  return count;
}

void Engine::Grant(Group& g, JobRuntime& job, int step, const LeasePlan& plan,
                   const std::string& worker_id, uint64_t grant_id, LeaseAnswer* answer) {
  StepRuntime& s = job.steps[step];
  if (!plan.left) Leave(g, job, step, plan.key, plan.place);
  ++g.items_leased;
  LeaseInfo& lease = s.leases[plan.key];
  // Its expiry and its place in the worker's holdings are its grant's (GrantPlans).
  lease = LeaseInfo{
      worker_id, Issue(&next_token_),    plan.attempts, plan.cursor,
      g.now,     absl::InfiniteFuture(), grant_id,      plan.place == ItemPlace::kUntouched};
  LeaseGrant& grant = s.grants[grant_id];  // written whole at flush
  grant.keys.push_back(plan.key);
  ++grant.live;
  s.counters.set_leased(s.counters.leased() + 1);
  s.counters_dirty = true;
  answer->Add(plan.key, lease.token, lease.attempts + 1, lease.cursor, grant.deadline);
}

void Engine::GrantPlans(Group& g, JobRuntime& job, int step, std::vector<LeasePlan>* plans,
                        const std::string& worker_id, uint64_t asked_by, bool packed,
                        v1::LeaseItemsResponse* out) {
  LeaveUntouchedInRuns(job, step, plans);
  // One record per kMaxLeasesPerGrant leases, keyed by its first token.
  StepRuntime& s = job.steps[step];
  LeaseAnswer answer(s.name, packed, options_.id_stride, out);
  uint64_t grant_id = 0;
  for (size_t i = 0; i < plans->size(); ++i) {
    if (i % kMaxLeasesPerGrant == 0) {
      grant_id = next_token_;
      LeaseGrant& grant = s.grants[grant_id];
      grant.worker_id = worker_id;
      grant.granted = g.now;
      grant.asked_by = asked_by;
      grant.keys.reserve(std::min(plans->size() - i, kMaxLeasesPerGrant));
      SetGrantDeadline(job, step, grant_id, grant, g.now + LeaseTimeout(job));
      if (!worker_id.empty()) job.workers[worker_id].grants.insert({step, grant_id});
      s.dirty_grants.insert(grant_id);
      if (asked_by != 0) s.asked_grants[asked_by].push_back(grant_id);
    }
    Grant(g, job, step, (*plans)[i], worker_id, grant_id, &answer);
  }
  Touch(g, job);
}

bool Engine::AnswerNotRunning(const JobRuntime& job, v1::LeaseItemsResponse* out) const {
  const v1::JobStatus status = job.status();
  if (status == v1::JOB_STATUS_RUNNING) return false;
  out->set_shortfall(status == v1::JOB_STATUS_PAUSED    ? v1::LEASE_SHORTFALL_JOB_PAUSED
                     : status == v1::JOB_STATUS_STOPPED ? v1::LEASE_SHORTFALL_JOB_STOPPED
                                                        : v1::LEASE_SHORTFALL_JOB_FINISHED);
  out->set_message(
      absl::StrCat("job \"", job.id(), "\" is ", JobStatusName(status), ": nothing is leased"));
  return true;
}

void Engine::SetShortfall(const JobRuntime& job, int step, uint32_t max_items,
                          v1::LeaseItemsResponse* out) const {
  if (LeaseCount(*out) >= max_items) return;
  const StepRuntime& s = job.steps[step];
  const bool drained =
      job.record.job().sealed() && s.counters.pending() == 0 && s.counters.leased() == 0;
  out->set_shortfall(drained ? v1::LEASE_SHORTFALL_STEP_DRAINED : v1::LEASE_SHORTFALL_NONE_PENDING);
  out->set_message(drained ? "the step is sealed and every item is finished"
                           : "no more pending items now: others hold them, or more may be added");
}

// ---------------------------------------------------------------- LeaseItems

absl::Status Engine::DoLeaseItems(Group& g, const v1::LeaseItemsRequest& r,
                                  v1::LeaseItemsResponse* out) {
  CKPT_ASSIGN_OR_RETURN(JobRuntime * job, FindJob(r.job_id()));
  CKPT_ASSIGN_OR_RETURN(const int step, FindStep(*job, r.step()));
  if (!r.worker_id().empty()) {
    CKPT_ASSIGN_OR_RETURN(WorkerRuntime * worker, FindLiveWorker(g, *job, r.worker_id()));
    worker->last_heartbeat = g.now;  // asking for work is a sign of life
  }
  out->set_control(ControlFor(*job));
  if (AnswerNotRunning(*job, out)) return absl::OkStatus();
  std::vector<LeasePlan> plans;
  if (r.keys_size() > 0) {
    for (int i = 0; i < r.keys_size(); ++i) {
      const std::string field = absl::StrCat("keys[", i, "]");
      LeasePlan plan{keys::EncodeItemKey(r.keys(i))};
      CKPT_ASSIGN_OR_RETURN(plan.place, Locate(g, *job, step, plan.key));
      if (plan.place == ItemPlace::kUnregistered) return NotRegistered(field, plan.key, *job, step);
      if (plan.place == ItemPlace::kLeased || plan.place == ItemPlace::kCompleted) {
        return absl::FailedPreconditionError(
            absl::StrCat(field, ": ", keys::DescribeItemKey(plan.key), " is ",
                         PlaceName(plan.place), "; only PENDING or FAILED items can be claimed"));
      }
      CKPT_RETURN_IF_ERROR(FillPlan(g, *job, step, &plan));
      plans.push_back(std::move(plan));
    }
  } else {
    CKPT_RETURN_IF_ERROR(SelectPending(g, *job, step, r.max_items(), &plans));
  }
  GrantPlans(g, *job, step, &plans, r.worker_id(), /*asked_by=*/0, r.packed(), out);
  if (r.keys_size() == 0) SetShortfall(*job, step, r.max_items(), out);
  return absl::OkStatus();
}

// ---------------------------------------------------------------- CompleteItems' lease_next

absl::Status Engine::PlanNextLease(Group& g, JobRuntime& job, int step,
                                   const v1::CompleteItemsRequest& r, NextLease* next) {
  const StepRuntime& s = job.steps[step];
  // A repeat of a call whose answer was lost finds the grants the first one made: their
  // leases are answered again instead of granting a second set nobody tracks.
  uint32_t again = 0;
  if (auto asked = s.asked_grants.find(r.items(0).lease_token()); asked != s.asked_grants.end()) {
    for (uint64_t grant_id : asked->second) {
      const LeaseGrant& grant = s.grants.at(grant_id);
      if (grant.worker_id != r.worker_id()) continue;
      next->again.push_back(grant_id);
      again += grant.live;
    }
  }
  const uint32_t max_items = r.lease_next().max_items();
  if (job.status() != v1::JOB_STATUS_RUNNING || again >= max_items) return absl::OkStatus();
  // Completions with tokens only end leases: nothing pending now changes before the
  // grant, so choosing first keeps the call all or nothing.
  return SelectPending(g, job, step, max_items - again, &next->plans);
}

void Engine::GrantNextLease(Group& g, JobRuntime& job, int step, const v1::CompleteItemsRequest& r,
                            NextLease* next, v1::LeaseItemsResponse* out) {
  job.workers.at(r.worker_id()).last_heartbeat = g.now;  // asking for work is a sign of life
  out->set_control(ControlFor(job));
  const StepRuntime& s = job.steps[step];
  const bool packed = r.lease_next().packed();
  {
    LeaseAnswer again(s.name, packed, options_.id_stride, out);
    for (uint64_t grant_id : next->again) {
      const LeaseGrant& grant = s.grants.at(grant_id);
      for (const std::string& key : grant.keys) {
        auto lease = s.leases.find(key);
        if (lease != s.leases.end() && lease->second.grant == grant_id) {
          again.Add(key, lease->second.token, lease->second.attempts + 1, lease->second.cursor,
                    grant.deadline);
        }
      }
    }
  }
  // Completions can finish the job (its last items), but never start it again.
  if (AnswerNotRunning(job, out)) return;
  GrantPlans(g, job, step, &next->plans, r.worker_id(), r.items(0).lease_token(), packed, out);
  SetShortfall(job, step, r.lease_next().max_items(), out);
}

}  // namespace ckpt
