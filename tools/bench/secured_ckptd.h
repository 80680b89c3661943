// ckptd secured the way README's "Securing ckptd" does it, for the bench's TLS rows: a
// throwaway PKI made at run time with Debian's openssl (tests/testing/make_test_pki.sh)
// and an auth file naming one worker principal by a fresh random token.
#ifndef CKPT_TOOLS_BENCH_SECURED_CKPTD_H_
#define CKPT_TOOLS_BENCH_SECURED_CKPTD_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "tools/bench/clients.h"

namespace ckpt {
namespace bench {

struct SecuredCkptd {
  std::vector<std::string> flags;  // ckptd's --tls_cert, --tls_key and --auth_file
  ClientSecurity client;           // what the bench's clients present
};

// Makes the PKI and the auth file (mode 0600) under `dir` with the script at
// `pki_script`. FAILED_PRECONDITION naming the script if it fails (openssl missing).
absl::StatusOr<SecuredCkptd> MakeSecuredCkptd(const std::string& pki_script,
                                              const std::string& dir);

}  // namespace bench
}  // namespace ckpt

#endif  // CKPT_TOOLS_BENCH_SECURED_CKPTD_H_
