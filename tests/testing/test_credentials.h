// Credentials made at test time, never committed: a throwaway PKI from Debian's openssl
// (make_test_pki.sh), bearer tokens, and auth files naming them.
//
// Every test token starts with kTestTokenMarker, so a scan of every log a test run
// wrote (tools/test.sh, suite "secrets") finds any token that leaked into one.
#ifndef CKPT_TESTS_TESTING_TEST_CREDENTIALS_H_
#define CKPT_TESTS_TESTING_TEST_CREDENTIALS_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace ckpt {
namespace testutil {

inline constexpr char kTestTokenMarker[] = "ckpt-test-secret-";

// A fresh random bearer token: kTestTokenMarker, `who`, then 32 hex digits.
std::string NewTestToken(absl::string_view who);

// One auth-file line: "NAME ROLE token_sha256=<sha256 of token> EXTRA".
std::string AuthLine(absl::string_view name, absl::string_view role, absl::string_view token,
                     absl::string_view extra = "");

// Writes `text` to `path` (mode 0600), replacing it at once (rename), as an operator's
// editor or config management would. Aborts the test binary if it cannot.
void WriteFileAtomically(const std::string& path, absl::string_view text);

// The PKI of make_test_pki.sh (its header lists the files) in a new temp directory.
class TestPki {
 public:
  // Runs tests/testing/make_test_pki.sh (a data dependency) into a new temp dir.
  static absl::StatusOr<TestPki> Make();

  // "<dir>/<file>", e.g. Path("server.crt").
  std::string Path(absl::string_view file) const;
  // The file's contents.
  std::string Pem(absl::string_view file) const;

  // Channel credentials trusting the test CA, with client certificate `client`
  // ("client" for client.crt and client.key, "" for none) for mutual TLS.
  std::shared_ptr<grpc::ChannelCredentials> Credentials(absl::string_view client = "") const;
  // The same, trusting `ca` ("other-ca") instead.
  std::shared_ptr<grpc::ChannelCredentials> CredentialsTrusting(absl::string_view ca,
                                                                absl::string_view client) const;

 private:
  explicit TestPki(std::string dir) : dir_(std::move(dir)) {}
  std::string dir_;
};

}  // namespace testutil
}  // namespace ckpt

#endif  // CKPT_TESTS_TESTING_TEST_CREDENTIALS_H_
