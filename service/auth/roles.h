// Roles and the one table of which role each RPC needs (docs/api.md, "Authentication
// and roles", prints the same table). Free of gRPC types: ckptd's gRPC handlers and any
// other front end (an HTTP gateway) decide with the same rules.
#ifndef CKPT_SERVICE_AUTH_ROLES_H_
#define CKPT_SERVICE_AUTH_ROLES_H_

#include <optional>
#include <vector>

#include "absl/strings/string_view.h"

namespace ckpt {
namespace auth {

// Each role may do everything the roles before it may.
enum class Role { kReader = 1, kWorker = 2, kAdmin = 3 };

// "reader", "worker", "admin".
absl::string_view RoleName(Role role);
std::optional<Role> ParseRole(absl::string_view name);
inline bool RoleAtLeast(Role held, Role needed) {
  return static_cast<int>(held) >= static_cast<int>(needed);
}

// What an RPC's job_id means to a principal confined to a job-id prefix.
enum class JobScope {
  kOneJob,    // the request names one job: it must start with the prefix
  kFiltered,  // ListJobs, FindOutput, DeleteJobs: allowed; only the prefix's jobs count
  kNoJob,     // not about jobs (server reflection)
  kAllJobs,   // acts on every job at once (BackupStore): refused to a confined principal
};

struct RpcRule {
  absl::string_view rpc;  // "GetJob": the method name of ckpt.v1.Checkpoint
  Role role;
  JobScope scope;
};

// Every RPC of ckpt.v1.Checkpoint, plus "ServerReflectionInfo" (gRPC server
// reflection). grpc.health.v1.Health is open to all and not listed.
const std::vector<RpcRule>& RpcRules();

// The rule of `rpc`, or nullptr for an RPC nobody may call.
const RpcRule* FindRpcRule(absl::string_view rpc);

}  // namespace auth
}  // namespace ckpt

#endif  // CKPT_SERVICE_AUTH_ROLES_H_
