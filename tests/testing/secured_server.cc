#include "tests/testing/secured_server.h"

#include <string>

#include "tests/testing/temp_dir.h"

namespace ckpt {
namespace testutil {

ServerOptions MutualTlsServerOptions(const TestPki& pki, absl::string_view auth_lines) {
  ServerOptions options;
  options.listen_address = "127.0.0.1:0";
  options.store.path = NewTempDir("data");
  options.store.sync = false;
  options.tls.cert = pki.Path("server.crt");
  options.tls.key = pki.Path("server.key");
  options.tls.client_ca = pki.Path("ca.crt");
  options.auth_file = NewTempDir("auth") + "/auth";
  WriteFileAtomically(options.auth_file, auth_lines);
  return options;
}

}  // namespace testutil
}  // namespace ckpt
