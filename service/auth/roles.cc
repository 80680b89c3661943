#include "service/auth/roles.h"

#include "absl/container/flat_hash_map.h"

namespace ckpt {
namespace auth {

absl::string_view RoleName(Role role) {
  switch (role) {
    case Role::kReader:
      return "reader";
    case Role::kWorker:
      return "worker";
    case Role::kAdmin:
      return "admin";
  }
  return "unknown";
}

std::optional<Role> ParseRole(absl::string_view name) {
  for (Role role : {Role::kReader, Role::kWorker, Role::kAdmin}) {
    if (name == RoleName(role)) return role;
  }
  return std::nullopt;
}

const std::vector<RpcRule>& RpcRules() {
  static const std::vector<RpcRule>* const rules = new std::vector<RpcRule>{
      // reader: look at jobs, items, workers, states and progress.
      {"GetJob", Role::kReader, JobScope::kOneJob},
      {"ListJobs", Role::kReader, JobScope::kFiltered},
      {"GetItem", Role::kReader, JobScope::kOneJob},
      {"ListItems", Role::kReader, JobScope::kOneJob},
      {"FindOutput", Role::kReader, JobScope::kFiltered},
      {"ListWorkers", Role::kReader, JobScope::kOneJob},
      {"GetState", Role::kReader, JobScope::kOneJob},
      {"ListStates", Role::kReader, JobScope::kOneJob},
      {"ListLogs", Role::kReader, JobScope::kOneJob},
      {"WatchJob", Role::kReader, JobScope::kOneJob},
      {"ServerReflectionInfo", Role::kReader, JobScope::kNoJob},
      // worker: run a pipeline, in either mode.
      {"CreateJob", Role::kWorker, JobScope::kOneJob},
      {"UpdateJob", Role::kWorker, JobScope::kOneJob},
      {"AddItems", Role::kWorker, JobScope::kOneJob},
      {"LeaseItems", Role::kWorker, JobScope::kOneJob},
      {"CompleteItems", Role::kWorker, JobScope::kOneJob},
      {"FailItems", Role::kWorker, JobScope::kOneJob},
      {"RegisterWorker", Role::kWorker, JobScope::kOneJob},
      {"Heartbeat", Role::kWorker, JobScope::kOneJob},
      {"UnregisterWorker", Role::kWorker, JobScope::kOneJob},
      {"PutState", Role::kWorker, JobScope::kOneJob},
      {"WriteLogs", Role::kWorker, JobScope::kOneJob},
      // A pipeline ends its own job with a reason (Python's Job.finish): a worker can
      // already end a job by sealing it and recording every item, so this gives a
      // worker no power it lacks (docs/api.md says so).
      {"FinishJob", Role::kWorker, JobScope::kOneJob},
      // admin: operate on jobs: pause, stop, undo work, delete.
      {"PauseJob", Role::kAdmin, JobScope::kOneJob},
      {"ResumeJob", Role::kAdmin, JobScope::kOneJob},
      {"StopJob", Role::kAdmin, JobScope::kOneJob},
      {"ResetJob", Role::kAdmin, JobScope::kOneJob},
      {"DeleteJob", Role::kAdmin, JobScope::kOneJob},
      {"ResetItems", Role::kAdmin, JobScope::kOneJob},
      // Deletes by filter; a confined admin sees and deletes only its own jobs.
      {"DeleteJobs", Role::kAdmin, JobScope::kFiltered},
      // admin, unconfined: the store as a whole.
      {"BackupStore", Role::kAdmin, JobScope::kAllJobs},
  };
  return *rules;
}

const RpcRule* FindRpcRule(absl::string_view rpc) {
  static const auto* const by_name = [] {
    auto* map = new absl::flat_hash_map<absl::string_view, const RpcRule*>();
    for (const RpcRule& rule : RpcRules()) (*map)[rule.rpc] = &rule;
    return map;
  }();
  const auto it = by_name->find(rpc);
  return it == by_name->end() ? nullptr : it->second;
}

}  // namespace auth
}  // namespace ckpt
