#include "tests/testing/test_credentials.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "service/common/sha256.h"
#include "tests/testing/temp_dir.h"

namespace ckpt {
namespace testutil {

std::string NewTestToken(absl::string_view who) {
  thread_local absl::BitGen bits;
  return absl::StrCat(
      kTestTokenMarker, who, "-",
      absl::StrFormat("%016x%016x", absl::Uniform<uint64_t>(bits), absl::Uniform<uint64_t>(bits)));
}

std::string AuthLine(absl::string_view name, absl::string_view role, absl::string_view token,
                     absl::string_view extra) {
  return absl::StrCat(name, " ", role, " token_sha256=", Sha256Hex(token), " ", extra, "\n");
}

void WriteFileAtomically(const std::string& path, absl::string_view text) {
  const std::string temp = path + ".new";
  const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0 || ::write(fd, text.data(), text.size()) != static_cast<ssize_t>(text.size()) ||
      ::close(fd) != 0 || ::rename(temp.c_str(), path.c_str()) != 0) {
    std::perror(("cannot write " + path).c_str());
    std::abort();
  }
}

absl::StatusOr<TestPki> TestPki::Make() {
  const char* root = std::getenv("TEST_SRCDIR");
  const std::string script =
      absl::StrCat(root != nullptr ? root : ".", "/ckpt/tests/testing/make_test_pki.sh");
  const std::string dir = NewTempDir("pki");
  const std::string command = absl::StrCat("/bin/bash '", script, "' '", dir, "'");
  const int status = std::system(command.c_str());
  if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return absl::InternalError(absl::StrCat(command, " failed (status ", status, ")"));
  }
  return TestPki(dir);
}

std::string TestPki::Path(absl::string_view file) const { return absl::StrCat(dir_, "/", file); }

std::string TestPki::Pem(absl::string_view file) const {
  std::ifstream in(Path(file));
  std::stringstream contents;
  contents << in.rdbuf();
  return contents.str();
}

std::shared_ptr<grpc::ChannelCredentials> TestPki::Credentials(absl::string_view client) const {
  return CredentialsTrusting("ca", client);
}

std::shared_ptr<grpc::ChannelCredentials> TestPki::CredentialsTrusting(
    absl::string_view ca, absl::string_view client) const {
  grpc::SslCredentialsOptions options;
  options.pem_root_certs = Pem(absl::StrCat(ca, ".crt"));
  if (!client.empty()) {
    options.pem_cert_chain = Pem(absl::StrCat(client, ".crt"));
    options.pem_private_key = Pem(absl::StrCat(client, ".key"));
  }
  return grpc::SslCredentials(options);
}

}  // namespace testutil
}  // namespace ckpt
