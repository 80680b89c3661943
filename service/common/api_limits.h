// Fixed limits of the ckpt.v1 API that ckptd enforces and the SDKs respect, written
// once (the flag-controlled limits are in service/rpc/validate.h). The Python SDK has
// the same numbers in ckpt/limits.py; tests on both sides check them against ckptd.
#ifndef CKPT_SERVICE_COMMON_API_LIMITS_H_
#define CKPT_SERVICE_COMMON_API_LIMITS_H_

#include <cstddef>

namespace ckpt {

// ItemError.message: 1..this many bytes.
inline constexpr size_t kMaxErrorMessageBytes = 4096;
// Each value of a job's params map.
inline constexpr size_t kMaxParamValueBytes = 4096;
// LogEntry.logger: at most this many bytes.
inline constexpr size_t kMaxLoggerBytes = 256;
// LogEntry.message: 1..this many bytes by default (ckptd's --max_log_message_bytes); the
// SDKs cut longer messages to it.
inline constexpr size_t kDefaultMaxLogMessageBytes = 8192;
// Job.retention (CreateJob, UpdateJob, ckptd's --default_retention): 0 (none) or 1 s up
// to this many days.
inline constexpr int kMaxRetentionDays = 3650;

}  // namespace ckpt

#endif  // CKPT_SERVICE_COMMON_API_LIMITS_H_
