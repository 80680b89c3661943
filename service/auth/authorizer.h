// Who is calling, and may they: a call's credentials (a bearer token, or the names of a
// verified client certificate) name a principal of the auth file (authentication), and
// the principal's role and job-id prefix decide whether it may call an RPC on a job
// (authorization, by the table in roles.h).
//
// Free of gRPC types: ckptd's gRPC handlers use it through service/rpc/call_auth.h, and
// any other front end (an HTTP gateway reading `authorization: Bearer ...`, a dashboard
// deciding which buttons to show) calls Authenticate and Authorize itself.
//
//   CKPT_ASSIGN_OR_RETURN(auto authorizer, auth::Authorizer::Load("/etc/ckpt/auth"));
//   auth::Credentials credentials;
//   credentials.bearer_token = token_from_header;
//   absl::StatusOr<auth::PrincipalRef> principal =
//       authorizer->Check(credentials, "DeleteJob", job_id);
//
// Messages never contain a token. Thread-safe: calls may run while Reload() swaps the
// principals; each call sees one whole table, the old or the new.
#ifndef CKPT_SERVICE_AUTH_AUTHORIZER_H_
#define CKPT_SERVICE_AUTH_AUTHORIZER_H_

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "service/auth/principal_table.h"
#include "service/auth/roles.h"

namespace ckpt {
namespace auth {

struct Credentials {
  // The call's bearer token (what follows "Bearer "), or nullopt if it carried none.
  std::optional<absl::string_view> bearer_token;
  // The subject CN and SANs of the client's certificate, already verified by TLS
  // against the trusted client CA; empty without one. SANs are tried first, in order.
  std::vector<std::string> certificate_names;
};

// A principal; it stays valid after a reload replaced its table.
using PrincipalRef = std::shared_ptr<const Principal>;

class Authorizer {
 public:
  // Reads and parses the auth file at `path`. Errors are ReadSmallFile's and
  // PrincipalTable::Parse's, naming the file.
  static absl::StatusOr<std::unique_ptr<Authorizer>> Load(std::string path);
  // An authorizer over a table that is never reloaded (Reload() is a no-op).
  static std::unique_ptr<Authorizer> ForTable(std::shared_ptr<const PrincipalTable> table);

  // Reads the file again. On success calls from now on use the new principals and
  // the table's Summary() is returned; on error the old principals stay in force and
  // the error says why.
  absl::StatusOr<std::string> Reload();

  // The principal the credentials prove. A bearer token, when present, decides alone
  // (a wrong token is not rescued by a certificate). UNAUTHENTICATED when there are no
  // credentials or they match no principal.
  absl::StatusOr<PrincipalRef> Authenticate(const Credentials& credentials) const;

  // OK if `principal` may call `rpc` (a name in roles.h) on job `job_id` (the
  // request's; for JobScope::kFiltered and kNoJob RPCs it is ignored). Otherwise
  // PERMISSION_DENIED naming the RPC, the role it needs and the principal's, and for a
  // confined principal its prefix.
  static absl::Status Authorize(const Principal& principal, absl::string_view rpc,
                                absl::string_view job_id);

  // Authenticate, then Authorize; messages start with the RPC's name.
  absl::StatusOr<PrincipalRef> Check(const Credentials& credentials, absl::string_view rpc,
                                     absl::string_view job_id) const;

  // Whether any principal is proven by a certificate (else certificate names need not
  // be gathered).
  bool UsesCertificates() const;
  // The current table's Summary().
  std::string Summary() const;

 private:
  Authorizer(std::string path, std::shared_ptr<const PrincipalTable> table)
      : path_(std::move(path)), table_(std::move(table)) {}
  std::shared_ptr<const PrincipalTable> table() const;

  const std::string path_;  // empty: ForTable
  mutable absl::Mutex mu_;
  std::shared_ptr<const PrincipalTable> table_ ABSL_GUARDED_BY(mu_);
};

}  // namespace auth
}  // namespace ckpt

#endif  // CKPT_SERVICE_AUTH_AUTHORIZER_H_
