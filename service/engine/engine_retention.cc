// Deleting finished jobs: the retention sweep and DeleteJobs, both through RemoveJob
// (DeleteJob's deletion), a few jobs per group commit.
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "service/common/log.h"
#include "service/common/proto_time.h"
#include "service/engine/engine.h"
#include "service/engine/group.h"
#include "service/engine/job_state_machine.h"

namespace ckpt {
namespace {

// "COMPLETED at 2025-12-14T20:43:00Z": a deleted job's status and finish time, for the
// log (never its config, params or labels).
std::string Finished(const v1::Job& job) {
  std::string out(JobStatusName(job.status()));
  if (job.has_finish_time()) {
    absl::StrAppend(&out, " at ",
                    absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", FromProtoTime(job.finish_time()),
                                     absl::UTCTimeZone()));
  }
  return out;
}

}  // namespace

// ---------------------------------------------------------------- retention sweep

bool Engine::SweepDue(absl::Time now) const {
  return unloaded_.ok() && now >= next_sweep_ && retention_.HasExpired(now);
}

Engine::Op Engine::SweepOp(Done done) {
  auto removed = std::make_shared<std::vector<Removal>>();
  return Op{[this, removed](Group& g) { return DoSweepExpiredJobs(g, removed.get()); },
            [removed, done = std::move(done)](absl::Status status) {
              if (status.ok()) {
                for (const Removal& removal : *removed) LogLine(removal.log_line);
              }
              if (done) done(status);
            },
            0};
}

bool Engine::FitsDeleteGroup(const JobRuntime& job, size_t removed, uint64_t* items) const {
  uint64_t registered = 0;
  for (const StepRuntime& s : job.steps) registered += s.counters.total();
  if (removed > 0 && *items + registered > kItemsPerDeleteGroup) return false;
  *items += registered;
  return true;
}

absl::Status Engine::DoSweepExpiredJobs(Group& g, std::vector<Removal>* removed) {
  uint64_t items = 0;
  for (const std::string& id : retention_.Expired(g.now, kJobsPerDeleteGroup)) {
    auto it = jobs_.find(id);
    if (it == jobs_.end()) {
      retention_.Remove(id);
      continue;
    }
    JobRuntime& job = *it->second;
    // The index follows the records at flush: an earlier op of this group may have
    // resumed the job or changed its retention.
    const std::optional<absl::Time> expiry = RetentionExpiry(job.record.job());
    if (!expiry.has_value() || *expiry > g.now) {
      retention_.Set(id, expiry);
      continue;
    }
    if (!FitsDeleteGroup(job, removed->size(), &items)) break;  // the next group's
    const v1::Job& record = job.record.job();
    removed->push_back(
        {DeletedJobOf(record),
         absl::StrCat("retention: deleted job \"", id, "\" (", Finished(record), ", kept ",
                      absl::FormatDuration(FromProtoDuration(record.retention())), ")")});
    RemoveJob(g, job);
    ++g.jobs_expired;
  }
  if (!retention_.HasExpired(g.now)) next_sweep_ = g.now + options_.retention.sweep_interval;
  return absl::OkStatus();
}

// ---------------------------------------------------------------- DeleteJobs

struct Engine::BulkDelete {
  BulkDelete(const v1::DeleteJobsRequest& request, absl::string_view scope_prefix)
      : filter(request, scope_prefix) {}

  const JobFilter filter;
  std::vector<std::string> ids;  // selected, in order
  size_t next = 0;               // ids[next] is the next to delete
  v1::DeleteJobsResponse* response = nullptr;
  Done done;
};

void Engine::DeleteJobsWithPrefix(const v1::DeleteJobsRequest& request,
                                  v1::DeleteJobsResponse* response, absl::string_view job_id_prefix,
                                  Done done) {
  const std::vector<std::shared_ptr<const JobSnapshot>> snapshots = AllSnapshots();
  std::vector<const v1::Job*> jobs;
  jobs.reserve(snapshots.size());
  for (const auto& snapshot : snapshots) jobs.push_back(&snapshot->record->job());
  absl::StatusOr<JobSelection> selection = SelectJobs(jobs, request, job_id_prefix);
  if (!selection.ok()) return done(selection.status());
  response->set_matched(selection->matched);
  response->set_next_page_token(selection->next_page_token);
  if (request.dry_run() || selection->jobs.empty()) {
    for (const v1::Job* job : selection->jobs) *response->add_jobs() = DeletedJobOf(*job);
    return done(absl::OkStatus());
  }
  auto run = std::make_shared<BulkDelete>(request, job_id_prefix);
  for (const v1::Job* job : selection->jobs) run->ids.push_back(job->job_id());
  run->response = response;
  run->done = std::move(done);
  SubmitBulkDeleteGroup(std::move(run));
}

void Engine::SubmitBulkDeleteGroup(std::shared_ptr<BulkDelete> run) {
  const size_t end = std::min(run->ids.size(), run->next + kJobsPerDeleteGroup);
  std::vector<std::string> ids(run->ids.begin() + run->next, run->ids.begin() + end);
  auto removed = std::make_shared<std::vector<Removal>>();
  auto consumed = std::make_shared<size_t>(0);
  Submit(
      0,
      [this, run, ids = std::move(ids), removed, consumed](Group& g) {
        return DoDeleteMatching(g, run->filter, ids, removed.get(), consumed.get());
      },
      [this, run, removed, consumed](absl::Status status) {
        if (!status.ok()) {
          const int deleted = run->response->jobs_size();
          if (deleted > 0) {
            absl::Status told(status.code(), absl::StrCat("DeleteJobs deleted ", deleted,
                                                          " jobs, then: ", status.message()));
            // Not the retry hint: it tells the SDKs that nothing was applied, and they
            // would send the call again, its answer missing what went here.
            status.ForEachPayload([&](absl::string_view url, const absl::Cord& payload) {
              if (url != kRetryAfterPayload) told.SetPayload(url, payload);
            });
            status = std::move(told);
          }
          return run->done(status);
        }
        for (Removal& removal : *removed) {
          LogLine(removal.log_line);
          *run->response->add_jobs() = std::move(removal.job);
        }
        run->next += *consumed;
        if (run->next < run->ids.size()) return SubmitBulkDeleteGroup(run);
        run->done(absl::OkStatus());
      });
}

absl::Status Engine::DoDeleteMatching(Group& g, const JobFilter& filter,
                                      const std::vector<std::string>& ids,
                                      std::vector<Removal>* removed, size_t* consumed) {
  uint64_t items = 0;
  for (*consumed = 0; *consumed < ids.size(); ++*consumed) {
    const std::string& id = ids[*consumed];
    auto it = jobs_.find(id);
    // Deleted, resumed, relabelled... since it was selected: no longer this call's.
    if (it == jobs_.end() || !filter.Matches(it->second->record.job())) continue;
    if (!FitsDeleteGroup(*it->second, removed->size(), &items)) break;  // the next group's
    const v1::Job& record = it->second->record.job();
    removed->push_back({DeletedJobOf(record), absl::StrCat("DeleteJobs: deleted job \"", id, "\" (",
                                                           Finished(record), ")")});
    RemoveJob(g, *it->second);
    ++g.jobs_deleted;
  }
  return absl::OkStatus();
}

}  // namespace ckpt
