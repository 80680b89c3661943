#include "tools/bench/child.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace ckpt {
namespace bench {
namespace {

constexpr size_t kMaxStderr = 64 << 10;

// fork + exec with stdout/stderr redirected to the given fds (-1: inherit). Everything
// the child needs is prepared before fork: only async-signal-safe calls after it.
absl::StatusOr<pid_t> Spawn(const std::vector<std::string>& argv, int out_fd, int err_fd) {
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) return absl::InternalError(absl::StrCat("fork: ", std::strerror(errno)));
  if (pid == 0) {
    if (out_fd >= 0) ::dup2(out_fd, STDOUT_FILENO);
    if (err_fd >= 0) ::dup2(err_fd, STDERR_FILENO);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  return pid;
}

// A line "Key:   1234 kB" of /proc/<pid>/status, in MiB; -1 if absent.
double StatusMib(pid_t pid, absl::string_view key) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(in, line)) {
    if (!absl::StartsWith(line, key)) continue;
    std::vector<std::string> parts = absl::StrSplit(line, ' ', absl::SkipEmpty());
    double kb = 0;
    if (parts.size() >= 2 && absl::SimpleAtod(parts[1], &kb)) return kb / 1024.0;
  }
  return -1;
}

double Seconds(const timeval& tv) { return tv.tv_sec + tv.tv_usec / 1e6; }

}  // namespace

std::string SelfPath() {
  char buf[4096];
  const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
}

absl::StatusOr<std::unique_ptr<ChildServer>> ChildServer::Start(
    const std::vector<std::string>& argv, absl::Duration timeout) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    return absl::InternalError(absl::StrCat("pipe: ", std::strerror(errno)));
  }
  absl::StatusOr<pid_t> pid = Spawn(argv, -1, fds[1]);
  ::close(fds[1]);
  if (!pid.ok()) {
    ::close(fds[0]);
    return pid.status();
  }
  std::unique_ptr<ChildServer> child(new ChildServer(*pid, fds[0]));
  const absl::Time deadline = absl::Now() + timeout;
  absl::MutexLock lock(&child->mu_);
  auto said = [&]() ABSL_SHARED_LOCKS_REQUIRED(child->mu_) {
    return child->eof_ || absl::StrContains(child->stderr_, "serving on ");
  };
  child->mu_.AwaitWithDeadline(absl::Condition(&said), deadline);
  const size_t at = child->stderr_.find("serving on ");
  if (at == std::string::npos) {
    return absl::UnavailableError(absl::StrCat(argv[0], " did not start: ", child->stderr_));
  }
  const size_t begin = at + std::strlen("serving on ");
  const size_t end = child->stderr_.find_first_of(", \n", begin);
  child->address_ = child->stderr_.substr(begin, end - begin);
  return child;
}

ChildServer::ChildServer(pid_t pid, int stderr_fd)
    : pid_(pid), stderr_fd_(stderr_fd), drainer_([this] { Drain(); }) {}

ChildServer::~ChildServer() {
  if (!stopped_) Stop().IgnoreError();
  if (drainer_.joinable()) drainer_.join();
  ::close(stderr_fd_);
}

void ChildServer::Drain() {
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(stderr_fd_, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    absl::MutexLock lock(&mu_);
    if (n <= 0) {
      eof_ = true;
      return;
    }
    stderr_.append(buf, static_cast<size_t>(n));
    if (stderr_.size() > kMaxStderr) stderr_.erase(0, stderr_.size() - kMaxStderr);
  }
}

std::string ChildServer::Stderr() const {
  absl::MutexLock lock(&mu_);
  return stderr_;
}

namespace {

// What /proc/<pid>/stat says about a process's CPU, in seconds.
struct ProcStat {
  long ppid = 0;
  double cpu = 0;         // its own user + system
  double reaped_cpu = 0;  // user + system of the children it has waited for
};

// /proc/<pid>/stat's text; empty if the process is gone, even while being read (with
// plain read(2): a stream reading a file whose process just ended throws ESRCH).
std::string ReadProcStat(const std::string& pid) {
  const int fd = ::open(absl::StrCat("/proc/", pid, "/stat").c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "";
  char buf[1024];  // the stat line is a few hundred bytes
  ssize_t n;
  do {
    n = ::read(fd, buf, sizeof(buf));
  } while (n < 0 && errno == EINTR);
  ::close(fd);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : "";
}

// False if the process cannot be read (it is gone).
bool ReadStat(const std::string& pid, ProcStat* stat) {
  const std::string text = ReadProcStat(pid);
  // The command name (field 2) may hold spaces; fields after its ')' are plain.
  const size_t close = text.rfind(')');
  if (close == std::string::npos) return false;
  std::vector<std::string> fields = absl::StrSplit(text.substr(close + 2), ' ');
  // Fields 4 (ppid) and 14-17 (utime, stime, cutime, cstime) are at 1 and 11-14 after
  // the ')'.
  double ticks[4];
  if (fields.size() < 15 || !absl::SimpleAtoi(fields[1], &stat->ppid)) return false;
  for (int i = 0; i < 4; ++i) {
    if (!absl::SimpleAtod(fields[11 + i], &ticks[i])) return false;
  }
  const double hz = static_cast<double>(::sysconf(_SC_CLK_TCK));
  stat->cpu = (ticks[0] + ticks[1]) / hz;
  stat->reaped_cpu = (ticks[2] + ticks[3]) / hz;
  return true;
}

}  // namespace

double ChildServer::CpuSeconds() const {
  ProcStat stat;
  return ReadStat(absl::StrCat(pid_), &stat) ? stat.cpu : -1;
}

double TreeCpuSeconds(pid_t pid) {
  const std::string self = absl::StrCat(pid);
  double total = 0;
  std::error_code ignored;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", ignored)) {
    const std::string name = entry.path().filename().string();
    ProcStat stat;
    if (name.find_first_not_of("0123456789") != std::string::npos || !ReadStat(name, &stat)) {
      continue;
    }
    if (name == self) total += stat.cpu + stat.reaped_cpu;
    if (stat.ppid == pid) total += stat.cpu;
  }
  return total;
}

double SelfCpuSeconds() {
  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);
  return Seconds(usage.ru_utime) + Seconds(usage.ru_stime);
}

double MachineBusySeconds() {
  std::ifstream in("/proc/stat");
  std::string line;
  if (!std::getline(in, line) || !absl::StartsWith(line, "cpu ")) return -1;
  // cpu user nice system idle iowait irq softirq steal ...
  std::vector<std::string> fields = absl::StrSplit(line, ' ', absl::SkipEmpty());
  double busy = 0;
  for (size_t i = 1; i < fields.size() && i <= 8; ++i) {
    double ticks = 0;
    if (!absl::SimpleAtod(fields[i], &ticks)) return -1;
    if (i != 4 && i != 5) busy += ticks;
  }
  return busy / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

double LoadAverage() {
  std::ifstream in("/proc/loadavg");
  double load = -1;
  if (!(in >> load)) return -1;
  return load;
}

bool ChildServer::ResetPeakRss() const {
  std::ofstream out(absl::StrCat("/proc/", pid_, "/clear_refs"));
  out << "5";
  out.flush();
  return out.good();
}

double ChildServer::PeakRssMib() const { return StatusMib(pid_, "VmHWM:"); }
double ChildServer::RssMib() const { return StatusMib(pid_, "VmRSS:"); }

absl::Status ChildServer::Stop() {
  if (stopped_) return absl::OkStatus();
  stopped_ = true;
  ::kill(pid_, SIGTERM);
  int status = 0;
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  for (;;) {
    const pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_) break;
    if (r < 0 && errno != EINTR) return absl::InternalError("waitpid failed");
    if (absl::Now() > deadline) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, &status, 0);
      return absl::InternalError(absl::StrCat("child ", pid_, " ignored SIGTERM for 30 s"));
    }
    absl::SleepFor(absl::Milliseconds(5));
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return absl::OkStatus();
  return absl::InternalError(
      absl::StrCat("child ", pid_, " ended with status ", status, ": ", Stderr()));
}

absl::StatusOr<ChildRun> RunChild(const std::vector<std::string>& argv) {
  int out[2], err[2];
  if (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0) {
    return absl::InternalError(absl::StrCat("pipe: ", std::strerror(errno)));
  }
  absl::StatusOr<pid_t> pid = Spawn(argv, out[1], err[1]);
  ::close(out[1]);
  ::close(err[1]);
  ChildRun run;
  if (pid.ok()) {
    pollfd fds[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
    std::string* sinks[2] = {&run.out, &run.err};
    int open = 2;
    char buf[4096];
    while (open > 0) {
      if (::poll(fds, 2, -1) < 0 && errno != EINTR) break;
      for (int i = 0; i < 2; ++i) {
        if (fds[i].fd < 0 || fds[i].revents == 0) continue;
        const ssize_t n = ::read(fds[i].fd, buf, sizeof(buf));
        if (n > 0) {
          sinks[i]->append(buf, static_cast<size_t>(n));
        } else if (n == 0 || errno != EINTR) {
          fds[i].fd = -1;
          --open;
        }
      }
    }
    int status = 0;
    rusage usage{};
    while (::wait4(*pid, &status, 0, &usage) < 0 && errno == EINTR) {
    }
    run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    run.cpu_seconds = Seconds(usage.ru_utime) + Seconds(usage.ru_stime);
    run.peak_rss_mib = static_cast<double>(usage.ru_maxrss) / 1024.0;
  }
  ::close(out[0]);
  ::close(err[0]);
  if (!pid.ok()) return pid.status();
  return run;
}

}  // namespace bench
}  // namespace ckpt
