// Who calls the HTTP gateway, and may they: the bearer token of the `authorization`
// header, or without one the names of the client certificate TLS verified (HTTPS with
// --tls_client_ca), checked by the same Authorizer and role table (service/auth) as
// gRPC calls, so a principal may do over HTTP exactly what it may do over gRPC, on the
// same jobs.
#ifndef CKPT_SERVICE_HTTP_HTTP_AUTH_H_
#define CKPT_SERVICE_HTTP_HTTP_AUTH_H_

#include <httplib.h>

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "service/auth/authorizer.h"

namespace ckpt {

// Thread-safe.
class HttpAuth {
 public:
  // `authorizer` null: authentication is off and every caller may do everything, as
  // over gRPC without --auth_file. Otherwise it must outlive this.
  explicit HttpAuth(const auth::Authorizer* authorizer) : authorizer_(authorizer) {}

  bool enabled() const { return authorizer_ != nullptr; }

  // The caller's principal; nullptr when authentication is off. UNAUTHENTICATED
  // without a known bearer token or, without a token, a certificate naming a principal.
  absl::StatusOr<auth::PrincipalRef> Authenticate(const httplib::Request& request) const;

  // Authenticate, then whether the principal may call `rpc` (a name of roles.h) on job
  // `job_id`: UNAUTHENTICATED or PERMISSION_DENIED as Authorizer::Check says.
  absl::StatusOr<auth::PrincipalRef> Check(const httplib::Request& request, absl::string_view rpc,
                                           absl::string_view job_id) const;

  // Whether `principal` (nullptr: authentication off) may call `rpc` on `job_id`.
  static bool Allows(const auth::Principal* principal, absl::string_view rpc,
                     absl::string_view job_id);

  // Whether `principal` may see `job_id` in a listing (ListJobs, FindOutput).
  static bool Sees(const auth::Principal* principal, absl::string_view job_id) {
    return principal == nullptr || principal->MayTouch(job_id);
  }

 private:
  // The request's token (`token`, which must outlive the result) or, without one,
  // its verified certificate's names when some principal is proven by a certificate.
  auth::Credentials CredentialsOf(const httplib::Request& request,
                                  const std::optional<std::string>& token) const;

  const auth::Authorizer* const authorizer_;
};

// The token of an `authorization: Bearer TOKEN` header; "" for another scheme or a
// malformed header (which then matches no principal); nullopt without the header.
std::optional<std::string> BearerToken(const httplib::Request& request);

// The names of the client certificate of an HTTPS connection, as gRPC gives them
// (subject alternative names: DNS, URI, email and IP, then the subject CN), if TLS
// verified it against the client CA; empty otherwise (`ssl` null: plain HTTP).
std::vector<std::string> VerifiedCertificateNames(const SSL* ssl);

}  // namespace ckpt

#endif  // CKPT_SERVICE_HTTP_HTTP_AUTH_H_
