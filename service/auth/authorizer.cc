#include "service/auth/authorizer.h"

#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "service/common/file.h"
#include "service/common/status_macros.h"

namespace ckpt {
namespace auth {
namespace {

constexpr size_t kMaxQuotedBytes = 128;

// `text` for a message: quoted, escaped and cut short, since it comes from a request
// or a certificate.
std::string Quote(absl::string_view text) {
  const bool cut = text.size() > kMaxQuotedBytes;
  return absl::StrCat("\"", absl::CHexEscape(text.substr(0, kMaxQuotedBytes)),
                      cut ? "...\"" : "\"");
}

std::string Confinement(const Principal& principal) {
  return absl::StrCat("confined to jobs whose id starts with \"", principal.job_prefix, "\"");
}

absl::StatusOr<std::shared_ptr<const PrincipalTable>> ReadTable(const std::string& path) {
  CKPT_ASSIGN_OR_RETURN(std::string text,
                        ReadSmallFile("auth file", path, PrincipalTable::kMaxFileBytes));
  return PrincipalTable::Parse(text, path);
}

}  // namespace

absl::StatusOr<std::unique_ptr<Authorizer>> Authorizer::Load(std::string path) {
  CKPT_ASSIGN_OR_RETURN(std::shared_ptr<const PrincipalTable> table, ReadTable(path));
  return std::unique_ptr<Authorizer>(new Authorizer(std::move(path), std::move(table)));
}

std::unique_ptr<Authorizer> Authorizer::ForTable(std::shared_ptr<const PrincipalTable> table) {
  return std::unique_ptr<Authorizer>(new Authorizer("", std::move(table)));
}

absl::StatusOr<std::string> Authorizer::Reload() {
  if (path_.empty()) return Summary();
  CKPT_ASSIGN_OR_RETURN(std::shared_ptr<const PrincipalTable> table, ReadTable(path_));
  std::string summary = table->Summary();
  absl::MutexLock lock(&mu_);
  table_ = std::move(table);
  return summary;
}

std::shared_ptr<const PrincipalTable> Authorizer::table() const {
  absl::MutexLock lock(&mu_);
  return table_;
}

absl::StatusOr<PrincipalRef> Authorizer::Authenticate(const Credentials& credentials) const {
  std::shared_ptr<const PrincipalTable> table = this->table();
  if (credentials.bearer_token.has_value()) {
    const Principal* principal = table->FindByToken(*credentials.bearer_token);
    if (principal == nullptr) {
      return absl::UnauthenticatedError(
          "the bearer token matches no principal of ckptd's auth file");
    }
    return PrincipalRef(std::move(table), principal);
  }
  for (const std::string& name : credentials.certificate_names) {
    const Principal* principal = table->FindByCertificateName(name);
    if (principal != nullptr) return PrincipalRef(std::move(table), principal);
  }
  if (!credentials.certificate_names.empty()) {
    std::vector<std::string> names;
    for (size_t i = 0; i < credentials.certificate_names.size() && i < 3; ++i) {
      names.push_back(Quote(credentials.certificate_names[i]));
    }
    return absl::UnauthenticatedError(absl::StrCat("the client certificate (",
                                                   absl::StrJoin(names, ", "),
                                                   ") matches no principal of ckptd's auth file"));
  }
  return absl::UnauthenticatedError(
      "no credentials: ckptd wants a bearer token (metadata \"authorization: Bearer TOKEN\"; "
      "--token or $CKPT_TOKEN in the ckpt clients) or a client certificate");
}

absl::Status Authorizer::Authorize(const Principal& principal, absl::string_view rpc,
                                   absl::string_view job_id) {
  const RpcRule* rule = FindRpcRule(rpc);
  if (rule == nullptr) {
    return absl::PermissionDeniedError(absl::StrCat(rpc, " is not open to any role"));
  }
  if (!RoleAtLeast(principal.role, rule->role)) {
    return absl::PermissionDeniedError(absl::StrCat(
        rpc, " needs the ", RoleName(rule->role), " role; principal \"", principal.name, "\" is ",
        principal.role == Role::kAdmin ? "an " : "a ", RoleName(principal.role),
        principal.confined() ? absl::StrCat(" ", Confinement(principal)) : ""));
  }
  if (principal.confined() && rule->scope == JobScope::kAllJobs) {
    return absl::PermissionDeniedError(absl::StrCat(
        rpc, " covers every job: principal \"", principal.name, "\" is ", Confinement(principal)));
  }
  if (!principal.confined() || rule->scope != JobScope::kOneJob || principal.MayTouch(job_id)) {
    return absl::OkStatus();
  }
  if (job_id.empty()) {
    return absl::PermissionDeniedError(
        absl::StrCat(rpc, " without a job_id: principal \"", principal.name, "\" is ",
                     Confinement(principal), "; pass such a job_id"));
  }
  return absl::PermissionDeniedError(absl::StrCat(rpc, " on job ", Quote(job_id), ": principal \"",
                                                  principal.name, "\" is ",
                                                  Confinement(principal)));
}

absl::StatusOr<PrincipalRef> Authorizer::Check(const Credentials& credentials,
                                               absl::string_view rpc,
                                               absl::string_view job_id) const {
  absl::StatusOr<PrincipalRef> principal = Authenticate(credentials);
  if (!principal.ok()) {
    return absl::Status(principal.status().code(),
                        absl::StrCat(rpc, ": ", principal.status().message()));
  }
  CKPT_RETURN_IF_ERROR(Authorize(**principal, rpc, job_id));
  return principal;
}

bool Authorizer::UsesCertificates() const { return table()->uses_certificates(); }

std::string Authorizer::Summary() const { return table()->Summary(); }

}  // namespace auth
}  // namespace ckpt
