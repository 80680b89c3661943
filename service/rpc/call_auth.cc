#include "service/rpc/call_auth.h"

#include <grpcpp/security/auth_context.h>

#include <string>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "service/common/log.h"

namespace ckpt {
namespace {

constexpr absl::string_view kBearer = "bearer ";
constexpr size_t kMaxLoggedJobIdBytes = 128;

void AddCertificateNames(const grpc::ServerContextBase& context, auth::Credentials* credentials) {
  const std::shared_ptr<const grpc::AuthContext> auth_context = context.auth_context();
  // Set only when TLS verified the client's certificate against --tls_client_ca.
  if (auth_context == nullptr || !auth_context->IsPeerAuthenticated()) return;
  for (const char* property : {"x509_subject_alternative_name", "x509_common_name"}) {
    for (const grpc::string_ref& value : auth_context->FindPropertyValues(property)) {
      credentials->certificate_names.emplace_back(value.data(), value.size());
    }
  }
}

}  // namespace

absl::StatusOr<auth::Credentials> CallCredentials(const grpc::ServerContextBase& context,
                                                  bool with_certificate_names) {
  auth::Credentials credentials;
  const auto& metadata = context.client_metadata();
  const auto header = metadata.find("authorization");
  if (header != metadata.end()) {
    const absl::string_view value(header->second.data(), header->second.size());
    // The scheme is case-insensitive (RFC 7235); the value is never echoed.
    if (value.size() <= kBearer.size() ||
        !absl::EqualsIgnoreCase(value.substr(0, kBearer.size()), kBearer)) {
      return absl::UnauthenticatedError("the \"authorization\" metadata is not \"Bearer TOKEN\"");
    }
    credentials.bearer_token = value.substr(kBearer.size());
  }
  if (with_certificate_names && !credentials.bearer_token.has_value()) {
    AddCertificateNames(context, &credentials);
  }
  return credentials;
}

absl::StatusOr<auth::PrincipalRef> AuthenticateCall(const auth::Authorizer* authorizer,
                                                    const grpc::ServerContextBase& context,
                                                    absl::string_view rpc) {
  if (authorizer == nullptr) return nullptr;
  absl::StatusOr<auth::Credentials> credentials =
      CallCredentials(context, authorizer->UsesCertificates());
  absl::Status refusal = credentials.status();
  if (credentials.ok()) {
    absl::StatusOr<auth::PrincipalRef> principal = authorizer->Authenticate(*credentials);
    if (principal.ok()) return principal;
    refusal = principal.status();
  }
  return absl::UnauthenticatedError(absl::StrCat(rpc, ": ", refusal.message()));
}

absl::StatusOr<auth::PrincipalRef> AuthorizeCall(const auth::Authorizer* authorizer,
                                                 const grpc::ServerContextBase& context,
                                                 absl::string_view rpc, absl::string_view job_id) {
  absl::StatusOr<auth::PrincipalRef> principal = AuthenticateCall(authorizer, context, rpc);
  if (!principal.ok() || *principal == nullptr) return principal;
  const absl::Status allowed = auth::Authorizer::Authorize(**principal, rpc, job_id);
  if (!allowed.ok()) return allowed;
  return principal;
}

void LogAdminAction(absl::string_view rpc, const auth::Principal& principal,
                    absl::string_view job_id, const absl::Status& outcome) {
  const bool cut = job_id.size() > kMaxLoggedJobIdBytes;
  const std::string on_job =
      job_id.empty()
          ? ""
          : absl::StrCat(" on job \"", absl::CHexEscape(job_id.substr(0, kMaxLoggedJobIdBytes)),
                         cut ? "...\"" : "\"");
  LogLine(absl::StrCat("admin action: ", rpc, on_job, " by ", principal.name, ": ",
                       absl::StatusCodeToString(outcome.code())));
}

}  // namespace ckpt
