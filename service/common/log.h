// One-line logging to stderr. This Abseil has no absl/log; ckptd logs little: start,
// stop, and errors an operator must act on. Never log secrets, configs or payloads.
#ifndef CKPT_SERVICE_COMMON_LOG_H_
#define CKPT_SERVICE_COMMON_LOG_H_

#include "absl/strings/string_view.h"

namespace ckpt {

// Writes "ckptd: <message>\n" to stderr in one write. Thread-safe.
void LogLine(absl::string_view message);

}  // namespace ckpt

#endif  // CKPT_SERVICE_COMMON_LOG_H_
