// Processes the bench starts: servers it measures from outside (ckptd, or this binary
// with --serve=...) and one-shot peer runs (this binary with --peer=...). Measuring
// a separate process keeps the server's CPU and memory apart from the clients'.
#ifndef CKPT_TOOLS_BENCH_CHILD_H_
#define CKPT_TOOLS_BENCH_CHILD_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace ckpt {
namespace bench {

// A running server child. Thread-compatible (one owner); stderr is drained by an
// internal thread.
class ChildServer {
 public:
  // Runs argv[0] with argv and waits up to `timeout` for its stderr to say
  // "serving on HOST:PORT". UNAVAILABLE with the child's stderr if it exits first or
  // never says it.
  static absl::StatusOr<std::unique_ptr<ChildServer>> Start(const std::vector<std::string>& argv,
                                                            absl::Duration timeout);
  // Stops the child (SIGTERM, then SIGKILL after 30 s) if Stop was not called.
  ~ChildServer();
  ChildServer(const ChildServer&) = delete;
  ChildServer& operator=(const ChildServer&) = delete;

  const std::string& address() const { return address_; }
  pid_t pid() const { return pid_; }

  // User + system CPU seconds the child has used so far (/proc/<pid>/stat).
  double CpuSeconds() const;
  // Sets the child's peak RSS (VmHWM) back to its current RSS (/proc/<pid>/clear_refs),
  // so PeakRssMib() covers what happens next. Returns false if the kernel refused.
  bool ResetPeakRss() const;
  double PeakRssMib() const;  // VmHWM; -1 if unreadable
  double RssMib() const;      // VmRSS; -1 if unreadable

  // SIGTERM and wait. INTERNAL with its stderr if it did not exit 0.
  absl::Status Stop();
  // What the child wrote to stderr (the last 64 KiB).
  std::string Stderr() const;

 private:
  explicit ChildServer(pid_t pid, int stderr_fd);
  void Drain();

  const pid_t pid_;
  const int stderr_fd_;
  std::string address_;
  bool stopped_ = false;
  mutable absl::Mutex mu_;
  std::string stderr_ ABSL_GUARDED_BY(mu_);
  bool eof_ ABSL_GUARDED_BY(mu_) = false;
  std::thread drainer_;
};

// What a finished one-shot child produced.
struct ChildRun {
  std::string out;  // its stdout
  std::string err;  // its stderr
  int exit_code = -1;
  double cpu_seconds = 0;   // user + system, from wait4
  double peak_rss_mib = 0;  // ru_maxrss
};

// Runs argv[0] with argv to completion.
absl::StatusOr<ChildRun> RunChild(const std::vector<std::string>& argv);

// User + system CPU seconds of `pid`, of its running children and of the children it
// has reaped (for a postmaster: PostgreSQL's backends, also those that ended), from
// /proc. A difference of two calls is the tree's CPU between them.
double TreeCpuSeconds(pid_t pid);

// User + system CPU seconds of this process so far (the bench's own clients).
double SelfCpuSeconds();

// CPU seconds every core of the machine has spent busy (not idle, not waiting for
// I/O) since boot, from /proc/stat: a difference of two calls, divided by the wall
// time between them, is how many cores were busy, whoever used them. -1 if unreadable.
double MachineBusySeconds();

// The 1-minute load average (/proc/loadavg); -1 if unreadable.
double LoadAverage();

// The path of this executable (/proc/self/exe).
std::string SelfPath();

}  // namespace bench
}  // namespace ckpt

#endif  // CKPT_TOOLS_BENCH_CHILD_H_
