// Child processes for tests (and the bench's PostgreSQL): fork and exec with pipes, as
// another user if asked, output captured by threads so a child never blocks on a full
// pipe, and the child killed if the thread that started it ends.
#ifndef CKPT_TESTS_TESTING_CHILD_PROCESS_H_
#define CKPT_TESTS_TESTING_CHILD_PROCESS_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace ckpt {
namespace testutil {

// Output captured from a child's file descriptor by a thread of its own, so the child
// never blocks on a full pipe. Thread-safe.
class CapturedOutput {
 public:
  // Takes ownership of `fd` (the read end of a pipe) and reads it until EOF.
  explicit CapturedOutput(int fd);
  ~CapturedOutput();  // joins the reader: the child must have closed its end
  CapturedOutput(const CapturedOutput&) = delete;
  CapturedOutput& operator=(const CapturedOutput&) = delete;

  std::string Text() const;
  // Blocks until the `nth` whole line containing `needle` has arrived, and returns it.
  // NOT_FOUND if the pipe ends first; DEADLINE_EXCEEDED after `timeout` (a hung child).
  absl::StatusOr<std::string> AwaitLine(const std::string& needle, absl::Duration timeout,
                                        int nth = 1) const;
  // Blocks until the pipe ends (the child exited or closed it), at most `timeout`.
  bool AwaitEnd(absl::Duration timeout) const;

 private:
  void ReadLoop(int fd);

  mutable absl::Mutex mu_;
  std::string text_ ABSL_GUARDED_BY(mu_);
  bool ended_ ABSL_GUARDED_BY(mu_) = false;
  std::thread reader_;
};

// What a child gets set up between fork and exec.
struct ChildSetup {
  int umask = -1;  // umask(2), if >= 0
  // RLIMIT_NOFILE, if >= 0: the soft limit, and the hard one (the soft one if < 0).
  long open_files_soft = -1;
  long open_files_hard = -1;
  // Run as this user and group, if >= 0 (the parent must be root).
  int uid = -1;
  int gid = -1;
};

// Forks and execs `argv` (argv[0] is the binary) with stdin and stdout as pipes to the
// parent and stderr captured. The child dies with SIGKILL if the thread that started it
// ends.
struct ChildProcess {
  pid_t pid = -1;
  int stdin_fd = -1;                        // write end of the child's stdin
  std::unique_ptr<CapturedOutput> stdout_;  // the child's stdout
  std::unique_ptr<CapturedOutput> stderr_;  // the child's stderr
};
absl::StatusOr<ChildProcess> SpawnChild(const std::vector<std::string>& argv,
                                        const ChildSetup& setup = {});

// Reaps `pid`, retrying on EINTR; returns its wait status (waitpid(2)).
int WaitFor(pid_t pid);

}  // namespace testutil
}  // namespace ckpt

#endif  // CKPT_TESTS_TESTING_CHILD_PROCESS_H_
