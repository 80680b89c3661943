#include "tests/testing/child_process.h"

#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace ckpt {
namespace testutil {

// ---------------------------------------------------------------- CapturedOutput

CapturedOutput::CapturedOutput(int fd) : reader_([this, fd] { ReadLoop(fd); }) {}

CapturedOutput::~CapturedOutput() { reader_.join(); }

void CapturedOutput::ReadLoop(int fd) {
  char buffer[4096];
  for (;;) {
    const ssize_t n = ::read(fd, buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    absl::MutexLock lock(&mu_);
    text_.append(buffer, static_cast<size_t>(n));
  }
  ::close(fd);
  absl::MutexLock lock(&mu_);
  ended_ = true;
}

std::string CapturedOutput::Text() const {
  absl::MutexLock lock(&mu_);
  return text_;
}

absl::StatusOr<std::string> CapturedOutput::AwaitLine(const std::string& needle,
                                                      absl::Duration timeout, int nth) const {
  std::string line;
  auto found = [&]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
    size_t start = 0;
    int seen = 0;
    for (size_t end; (end = text_.find('\n', start)) != std::string::npos; start = end + 1) {
      if (absl::StrContains(absl::string_view(text_).substr(start, end - start), needle) &&
          ++seen == nth) {
        line = text_.substr(start, end - start);
        return true;
      }
    }
    return ended_;
  };
  absl::MutexLock lock(&mu_);
  if (!mu_.AwaitWithTimeout(absl::Condition(&found), timeout)) {
    return absl::DeadlineExceededError(absl::StrCat("no line with \"", needle, "\" after ",
                                                    absl::FormatDuration(timeout),
                                                    "; output so far:\n", text_));
  }
  if (line.empty()) {
    return absl::NotFoundError(
        absl::StrCat("output ended without a line with \"", needle, "\":\n", text_));
  }
  return line;
}

bool CapturedOutput::AwaitEnd(absl::Duration timeout) const {
  absl::MutexLock lock(&mu_);
  return mu_.AwaitWithTimeout(absl::Condition(&ended_), timeout);
}

// ---------------------------------------------------------------- SpawnChild

absl::StatusOr<ChildProcess> SpawnChild(const std::vector<std::string>& argv,
                                        const ChildSetup& setup) {
  int in[2], out[2], err[2];
  if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0) {
    return absl::InternalError(absl::StrCat("pipe: ", std::strerror(errno)));
  }
  // Everything the child needs is built before fork: after it, only async-signal-safe
  // calls (the parent has threads).
  std::vector<char*> args;
  for (const std::string& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) return absl::InternalError(absl::StrCat("fork: ", std::strerror(errno)));
  if (pid == 0) {
    // Credentials first: changing them clears the parent-death signal.
    if (setup.gid >= 0 && ::setgid(static_cast<gid_t>(setup.gid)) != 0) ::_exit(124);
    if (setup.gid >= 0 && ::setgroups(0, nullptr) != 0) ::_exit(124);
    if (setup.uid >= 0 && ::setuid(static_cast<uid_t>(setup.uid)) != 0) ::_exit(124);
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(126);
    ::dup2(in[0], STDIN_FILENO);
    ::dup2(out[1], STDOUT_FILENO);
    ::dup2(err[1], STDERR_FILENO);
    if (setup.umask >= 0) ::umask(static_cast<mode_t>(setup.umask));
    if (setup.open_files_soft >= 0) {
      const long hard = setup.open_files_hard >= 0 ? setup.open_files_hard : setup.open_files_soft;
      const rlimit limit{static_cast<rlim_t>(setup.open_files_soft), static_cast<rlim_t>(hard)};
      if (::setrlimit(RLIMIT_NOFILE, &limit) != 0) ::_exit(125);
    }
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  ::close(in[0]);
  ::close(out[1]);
  ::close(err[1]);
  ChildProcess child;
  child.pid = pid;
  child.stdin_fd = in[1];
  child.stdout_ = std::make_unique<CapturedOutput>(out[0]);
  child.stderr_ = std::make_unique<CapturedOutput>(err[0]);
  return child;
}

int WaitFor(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return status;
}

}  // namespace testutil
}  // namespace ckpt
