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

void LogLimiter::Log(absl::string_view line) {
  const absl::Time now = clock_->Now();
  uint64_t dropped = 0;
  {
    absl::MutexLock lock(&mu_);
    if (now - window_start_ >= absl::Minutes(1)) {
      window_start_ = now;
      written_ = 0;
    }
    if (written_ >= lines_per_minute_) {
      ++dropped_;
      return;
    }
    ++written_;
    dropped = dropped_;
    dropped_ = 0;
  }
  if (dropped > 0) {
    LogLine(absl::StrCat(source_, ": ", dropped, " more lines were not logged (at most ",
                         lines_per_minute_, " a minute)"));
  }
  LogLine(absl::StrCat(source_, ": ", line));
}

}  // namespace ckpt
