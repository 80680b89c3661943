#include "service/metrics/process_metrics.h"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"

namespace ckpt {
namespace {

absl::StatusOr<std::string> ReadFile(const char* path) {
  std::ifstream in(path);
  if (!in) return absl::InternalError(std::string("cannot read ") + path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Seconds since the epoch at which the machine booted (/proc/stat's btime).
absl::StatusOr<uint64_t> BootTime() {
  absl::StatusOr<std::string> stat = ReadFile("/proc/stat");
  if (!stat.ok()) return stat.status();
  for (absl::string_view line : absl::StrSplit(*stat, '\n')) {
    uint64_t seconds = 0;
    if (absl::ConsumePrefix(&line, "btime ") && absl::SimpleAtoi(line, &seconds)) return seconds;
  }
  return absl::InternalError("no btime in /proc/stat");
}

absl::StatusOr<uint64_t> CountOpenFds() {
  DIR* dir = ::opendir("/proc/self/fd");
  if (dir == nullptr) return absl::InternalError("cannot list /proc/self/fd");
  uint64_t count = 0;
  while (const dirent* entry = ::readdir(dir)) {
    if (entry->d_name[0] != '.') ++count;
  }
  ::closedir(dir);
  return count > 0 ? count - 1 : 0;  // not the fd of the listing itself
}

}  // namespace

absl::StatusOr<ProcessStats> ReadProcessStats() {
  absl::StatusOr<std::string> stat = ReadFile("/proc/self/stat");
  if (!stat.ok()) return stat.status();
  // The command name (field 2) may hold spaces and parentheses: fields are counted from
  // the last ')'.
  const size_t paren = stat->rfind(')');
  if (paren == std::string::npos) return absl::InternalError("unexpected /proc/self/stat");
  const std::vector<absl::string_view> fields =
      absl::StrSplit(absl::string_view(*stat).substr(paren + 2), ' ', absl::SkipEmpty());
  // fields[0] is field 3 (state): field N is fields[N - 3].
  uint64_t utime = 0, stime = 0, start_ticks = 0, vsize = 0, rss_pages = 0;
  if (fields.size() < 22 || !absl::SimpleAtoi(fields[11], &utime) ||
      !absl::SimpleAtoi(fields[12], &stime) || !absl::SimpleAtoi(fields[19], &start_ticks) ||
      !absl::SimpleAtoi(fields[20], &vsize) || !absl::SimpleAtoi(fields[21], &rss_pages)) {
    return absl::InternalError("unexpected /proc/self/stat");
  }
  const double ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
  absl::StatusOr<uint64_t> boot = BootTime();
  if (!boot.ok()) return boot.status();
  absl::StatusOr<uint64_t> fds = CountOpenFds();
  if (!fds.ok()) return fds.status();
  rlimit limit{};
  ::getrlimit(RLIMIT_NOFILE, &limit);

  ProcessStats stats;
  stats.cpu_seconds = static_cast<double>(utime + stime) / ticks;
  stats.resident_bytes = rss_pages * static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  stats.virtual_bytes = vsize;
  stats.open_fds = *fds;
  stats.max_fds = static_cast<uint64_t>(limit.rlim_cur);
  stats.start_time_seconds = static_cast<double>(*boot) + static_cast<double>(start_ticks) / ticks;
  return stats;
}

void WriteProcessMetrics(ExpositionWriter& writer) {
  absl::StatusOr<ProcessStats> stats = ReadProcessStats();
  if (!stats.ok()) return;
  writer.Family("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.",
                MetricType::kCounter);
  writer.Sample("process_cpu_seconds_total", {}, stats->cpu_seconds);
  writer.Family("process_resident_memory_bytes", "Resident memory size in bytes.",
                MetricType::kGauge);
  writer.Sample("process_resident_memory_bytes", {}, stats->resident_bytes);
  writer.Family("process_virtual_memory_bytes", "Virtual memory size in bytes.",
                MetricType::kGauge);
  writer.Sample("process_virtual_memory_bytes", {}, stats->virtual_bytes);
  writer.Family("process_open_fds", "Number of open file descriptors.", MetricType::kGauge);
  writer.Sample("process_open_fds", {}, stats->open_fds);
  writer.Family("process_max_fds", "Maximum number of open file descriptors.", MetricType::kGauge);
  writer.Sample("process_max_fds", {}, stats->max_fds);
  writer.Family("process_start_time_seconds",
                "Start time of the process since unix epoch in seconds.", MetricType::kGauge);
  writer.Sample("process_start_time_seconds", {}, stats->start_time_seconds);
}

}  // namespace ckpt
