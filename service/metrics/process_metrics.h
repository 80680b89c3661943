// The standard process metrics every Prometheus client library exports, read from
// /proc/self at scrape time (Linux only): process_cpu_seconds_total,
// process_resident_memory_bytes, process_virtual_memory_bytes, process_open_fds,
// process_max_fds, process_start_time_seconds. They keep their standard names (no ckpt_
// prefix) so existing dashboards and alerts apply to ckptd unchanged.
//
// Thread-safe: pure functions over /proc.
#ifndef CKPT_SERVICE_METRICS_PROCESS_METRICS_H_
#define CKPT_SERVICE_METRICS_PROCESS_METRICS_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "service/metrics/exposition.h"

namespace ckpt {

struct ProcessStats {
  double cpu_seconds = 0;  // user + system
  uint64_t resident_bytes = 0;
  uint64_t virtual_bytes = 0;
  uint64_t open_fds = 0;
  uint64_t max_fds = 0;           // the soft RLIMIT_NOFILE
  double start_time_seconds = 0;  // since the Unix epoch
};

// This process's numbers. INTERNAL if /proc cannot be read or parsed.
absl::StatusOr<ProcessStats> ReadProcessStats();

// Writes the process_* families; nothing if /proc cannot be read.
void WriteProcessMetrics(ExpositionWriter& writer);

}  // namespace ckpt

#endif  // CKPT_SERVICE_METRICS_PROCESS_METRICS_H_
