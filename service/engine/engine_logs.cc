// Logs: WriteLogs (record mode's entries), and ListLogs. The entries that ride along
// with Heartbeat, CompleteItems and FailItems are planned and applied by those ops.
#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "service/common/status_macros.h"
#include "service/engine/engine.h"
#include "service/engine/errors.h"
#include "service/engine/group.h"
#include "service/engine/log_reads.h"
#include "service/store/keys.h"

namespace ckpt {

absl::Status Engine::DoWriteLogs(Group& g, const v1::WriteLogsRequest& r,
                                 v1::WriteLogsResponse* out) {
  CKPT_ASSIGN_OR_RETURN(JobRuntime * job, FindJob(r.job_id()));
  std::vector<NewLogEntry> entries;
  for (int i = 0; i < r.items_size(); ++i) {
    const v1::ItemLogs& item = r.items(i);
    std::string step, key;
    if (item.has_key()) {  // the job's own entries have neither
      CKPT_ASSIGN_OR_RETURN(const int index, FindStep(*job, item.step()));
      step = job->steps[index].name;
      key = keys::EncodeItemKey(item.key());
      CKPT_ASSIGN_OR_RETURN(const ItemPlace place, Locate(g, *job, index, key));
      if (place == ItemPlace::kUnregistered) {
        return absl::NotFoundError(absl::StrCat("items[", i, "].key: ", keys::DescribeItemKey(key),
                                                " is not registered in step \"", step,
                                                "\" of job \"", job->id(), "\" (AddItems first)"));
      }
    }
    for (const v1::LogEntry& entry : item.entries()) entries.push_back({step, key, &entry});
  }
  CKPT_ASSIGN_OR_RETURN(const LogPlan plan,
                        g.logs.Plan(job->id(), job->log, r.worker_id(), entries));
  g.logs.Apply(job->id(), job->log, plan, *g.batch);
  Touch(g, *job);  // the job's log counts are written at flush
  out->set_written(plan.adds.size());
  return absl::OkStatus();
}

absl::Status Engine::ListLogs(const v1::ListLogsRequest& r, v1::ListLogsResponse* out) const {
  auto snapshot = Snapshot(r.job_id());
  if (snapshot == nullptr) return JobNotFound(r.job_id());
  // With a key the step is the item's (empty: the first); without, a filter (empty:
  // every step), which must still name one of the job's steps.
  std::string step = r.step();
  const auto& steps = snapshot->record->job().steps();
  if (r.has_key() && step.empty()) step = steps.Get(0);
  if (!step.empty() && std::find(steps.begin(), steps.end(), step) == steps.end()) {
    return UnknownStep(r.job_id(), step, steps);
  }
  CKPT_ASSIGN_OR_RETURN(std::unique_ptr<ReadView> view, store_->NewReadView());
  return ListLogEntries(*view, r, step, out);
}

}  // namespace ckpt
