// One-line logging to stderr. This Abseil has no absl/log; ckptd logs little: start,
// stop, and errors an operator must act on. Never log secrets, configs or payloads.
#ifndef CKPT_SERVICE_COMMON_LOG_H_
#define CKPT_SERVICE_COMMON_LOG_H_

#include <cstdint>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "service/common/clock.h"

namespace ckpt {

// Writes "ckptd: <message>\n" to stderr in one write. Thread-safe.
void LogLine(absl::string_view message);

// Lines from a source a client can provoke (a library's log), so that no client can
// flood ckptd's log: at most `lines_per_minute` reach LogLine, each as "<source>:
// <line>"; the rest are counted, and the next line let through is preceded by one
// saying how many were not logged. Thread-safe.
class LogLimiter {
 public:
  LogLimiter(std::string source, int lines_per_minute, Clock* clock = Clock::Real())
      : source_(std::move(source)), lines_per_minute_(lines_per_minute), clock_(clock) {}

  void Log(absl::string_view line);

 private:
  const std::string source_;
  const int lines_per_minute_;
  Clock* const clock_;
  absl::Mutex mu_;
  absl::Time window_start_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  int written_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t dropped_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace ckpt

#endif  // CKPT_SERVICE_COMMON_LOG_H_
