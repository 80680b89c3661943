#include "service/common/log.h"

#include <unistd.h>

#include <string>

#include "absl/strings/str_cat.h"

namespace ckpt {

void LogLine(absl::string_view message) {
  const std::string line = absl::StrCat("ckptd: ", message, "\n");
  // A single write keeps lines from concurrent threads whole.
  ssize_t unused = ::write(STDERR_FILENO, line.data(), line.size());
  (void)unused;
}

}  // namespace ckpt
