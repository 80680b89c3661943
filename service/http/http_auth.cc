#include "service/http/http_auth.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/strip.h"

namespace ckpt {

std::optional<std::string> BearerToken(const httplib::Request& request) {
  if (!request.has_header("Authorization")) return std::nullopt;
  const std::string header = request.get_header_value("Authorization");
  const absl::string_view value = absl::StripAsciiWhitespace(header);
  if (value.size() < 7 || !absl::EqualsIgnoreCase(value.substr(0, 7), "bearer ")) return "";
  return std::string(absl::StripAsciiWhitespace(value.substr(7)));
}

absl::StatusOr<auth::PrincipalRef> HttpAuth::Authenticate(const httplib::Request& request) const {
  if (authorizer_ == nullptr) return auth::PrincipalRef();
  const std::optional<std::string> token = BearerToken(request);
  auth::Credentials credentials;
  if (token.has_value()) credentials.bearer_token = *token;
  return authorizer_->Authenticate(credentials);
}

absl::StatusOr<auth::PrincipalRef> HttpAuth::Check(const httplib::Request& request,
                                                   absl::string_view rpc,
                                                   absl::string_view job_id) const {
  if (authorizer_ == nullptr) return auth::PrincipalRef();
  const std::optional<std::string> token = BearerToken(request);
  auth::Credentials credentials;
  if (token.has_value()) credentials.bearer_token = *token;
  return authorizer_->Check(credentials, rpc, job_id);
}

bool HttpAuth::Allows(const auth::Principal* principal, absl::string_view rpc,
                      absl::string_view job_id) {
  return principal == nullptr || auth::Authorizer::Authorize(*principal, rpc, job_id).ok();
}

}  // namespace ckpt
