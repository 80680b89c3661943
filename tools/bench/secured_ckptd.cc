#include "tools/bench/secured_ckptd.h"

#include <fcntl.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "service/common/sha256.h"
#include "tools/bench/child.h"

namespace ckpt {
namespace bench {
namespace {

std::string RandomToken() {
  absl::BitGen gen;
  return absl::StrFormat("ckpt-bench-%016x%016x", absl::Uniform<uint64_t>(gen),
                         absl::Uniform<uint64_t>(gen));
}

absl::Status WritePrivateFile(const std::string& path, const std::string& text) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return absl::FailedPreconditionError(absl::StrCat("cannot create ", path));
  const bool written = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  ::close(fd);
  if (!written) return absl::FailedPreconditionError(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<SecuredCkptd> MakeSecuredCkptd(const std::string& pki_script,
                                              const std::string& dir) {
  absl::StatusOr<ChildRun> pki = RunChild({"/bin/bash", pki_script, dir});
  if (!pki.ok()) return pki.status();
  if (pki->exit_code != 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        pki_script,
        " could not make the TLS rows' certificates (is openssl installed?): ", pki->err));
  }
  std::ifstream ca_file(dir + "/ca.crt");
  std::stringstream ca;
  ca << ca_file.rdbuf();
  SecuredCkptd secured;
  secured.client.ca_pem = ca.str();
  secured.client.token = RandomToken();
  const std::string auth = dir + "/auth";
  const std::string line =
      absl::StrCat("bench worker token_sha256=", Sha256Hex(secured.client.token), "\n");
  if (absl::Status s = WritePrivateFile(auth, line); !s.ok()) return s;
  secured.flags = {"--tls_cert=" + dir + "/server.crt", "--tls_key=" + dir + "/server.key",
                   "--auth_file=" + auth};
  return secured;
}

}  // namespace bench
}  // namespace ckpt
