#include "tests/cli/run_ckpt.h"

#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>

#include "absl/strings/str_cat.h"

namespace ckpt {
namespace testutil {

CkptOutcome RunCkptBinary(const std::string& args) {
  const std::string command =
      absl::StrCat(std::getenv("TEST_SRCDIR"), "/ckpt/tools/cli/ckpt ", args, " 2>&1");
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return {-1, absl::StrCat("popen failed: ", command)};
  std::string output;
  char buffer[4096];
  while (size_t n = fread(buffer, 1, sizeof(buffer), pipe)) output.append(buffer, n);
  const int status = pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, output};
}

}  // namespace testutil
}  // namespace ckpt
