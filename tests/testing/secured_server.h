#ifndef CKPT_TESTS_TESTING_SECURED_SERVER_H_
#define CKPT_TESTS_TESTING_SECURED_SERVER_H_

#include "absl/strings/string_view.h"
#include "service/server/server.h"
#include "tests/testing/test_credentials.h"

namespace ckpt {
namespace testutil {

// Options for an in-process ckptd on a free loopback port with a fresh temp store (no
// sync), serving mutual TLS with `pki`'s server certificate and client CA, and an auth
// file (mode 0600, in its own temp dir) holding `auth_lines` (see AuthLine).
ServerOptions MutualTlsServerOptions(const TestPki& pki, absl::string_view auth_lines);

}  // namespace testutil
}  // namespace ckpt

#endif  // CKPT_TESTS_TESTING_SECURED_SERVER_H_
