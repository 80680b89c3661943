// The principals of an auth file: who may call ckptd, with which role, on which jobs,
// proven by which bearer tokens (stored as SHA-256 hashes only) or client-certificate
// names. docs/api.md ("Authentication and roles") is the operator's description.
//
// The format: one principal per line, `#` starts a comment line, fields are separated
// by spaces or tabs:
//
//   NAME ROLE [token_sha256=HEX]... [cert=NAME]... [job_prefix=PREFIX]
//
//   # name       role    credentials and confinement
//   ops-alice    admin   token_sha256=<64 hex digits>
//   team-a-ci    worker  token_sha256=<hex> token_sha256=<hex> job_prefix=team-a-
//   etl-node-7   worker  cert=etl-node-7.example.com job_prefix=etl-
//
// NAME: 1..128 of [A-Za-z0-9._:@/-], unique. ROLE: reader, worker or admin.
// token_sha256: the SHA-256 of a token as 64 hex digits (`printf %s "$TOKEN" |
// sha256sum`); several allow rotation. cert: a client certificate's subject CN or a
// SAN (DNS, URI, email), as TLS verified it. job_prefix: confines the principal to
// jobs whose id starts with it. Every token hash and certificate name names one
// principal; a principal needs at least one of them.
#ifndef CKPT_SERVICE_AUTH_PRINCIPAL_TABLE_H_
#define CKPT_SERVICE_AUTH_PRINCIPAL_TABLE_H_

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "service/auth/roles.h"
#include "service/common/sha256.h"

namespace ckpt {
namespace auth {

struct Principal {
  std::string name;  // for logs and messages; never a secret
  Role role = Role::kReader;
  // Confines the principal to jobs whose id starts with this; empty: every job.
  std::string job_prefix;

  bool confined() const { return !job_prefix.empty(); }
  // Whether `job_id` is within the principal's jobs.
  bool MayTouch(absl::string_view job_id) const;
};

// Immutable once parsed, so thread-safe.
class PrincipalTable {
 public:
  // The most an auth file may hold; a bigger file is refused, not read.
  static constexpr size_t kMaxFileBytes = 1 << 20;

  // Parses an auth file's text. INVALID_ARGUMENT naming `source`, the line and what is
  // wrong (never a value that could be a token) for a malformed line, a name, token
  // hash or certificate name given twice, a principal without credentials, or a file
  // without principals.
  static absl::StatusOr<std::shared_ptr<const PrincipalTable>> Parse(absl::string_view text,
                                                                     absl::string_view source);

  // The principal holding bearer token `token`, or nullptr. The token's SHA-256 is
  // compared with every stored hash in constant time, so timing tells nothing about
  // which hash, or how much of one, matched.
  const Principal* FindByToken(absl::string_view token) const;
  // The principal whose `cert=` names `certificate_name`, or nullptr.
  const Principal* FindByCertificateName(absl::string_view certificate_name) const;

  const std::vector<Principal>& principals() const { return principals_; }
  bool uses_certificates() const { return !by_certificate_name_.empty(); }
  // "3 principals (1 admin, 1 worker, 1 reader)".
  std::string Summary() const;

 private:
  PrincipalTable() = default;
  absl::Status AddLine(absl::string_view line);

  std::vector<Principal> principals_;
  std::vector<std::pair<Sha256Digest, size_t>> token_hashes_;  // -> principals_ index
  absl::flat_hash_map<std::string, size_t> by_certificate_name_;
};

}  // namespace auth
}  // namespace ckpt

#endif  // CKPT_SERVICE_AUTH_PRINCIPAL_TABLE_H_
