// ckptd as a child process, for tests that kill, freeze or starve it: the real binary
// (//:ckptd) with its stderr captured, started on 127.0.0.1:0.
#ifndef CKPT_TESTS_DURABILITY_CKPTD_PROCESS_H_
#define CKPT_TESTS_DURABILITY_CKPTD_PROCESS_H_

#include <sys/types.h>

#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "ckpt/v1/checkpoint.grpc.pb.h"
#include "tests/testing/child_process.h"

namespace ckpt {
namespace testutil {

// The path of a binary in the test's runfiles, e.g. Runfile("service/server/ckptd").
std::string Runfile(const std::string& path);

// ckptd's flag for a store: --store=URI for a postgresql:// URI, else --data_dir=DIR.
std::string StoreFlag(const std::string& store);

// Not thread-safe, except Kill() and pid(), which may be called from any thread.
class CkptdProcess {
 public:
  // Runs ckptd --listen=127.0.0.1:0 StoreFlag(store) <flags...> and waits for its
  // "serving on" line. If ckptd exits instead, FAILED_PRECONDITION with its stderr.
  static absl::StatusOr<std::unique_ptr<CkptdProcess>> Start(const std::string& store,
                                                             const std::vector<std::string>& flags,
                                                             const ChildSetup& setup = {});

  // SIGKILLs the process if it still runs, and reaps it.
  ~CkptdProcess();
  CkptdProcess(const CkptdProcess&) = delete;
  CkptdProcess& operator=(const CkptdProcess&) = delete;

  pid_t pid() const { return pid_; }
  // "127.0.0.1:<port>".
  const std::string& address() const { return address_; }
  // A stub on a channel of its own (its own connection).
  std::unique_ptr<v1::Checkpoint::Stub> NewStub() const;
  // NewStub(), once its channel has connected (bounded by the start-up bound), for
  // raw-stub clients that take any failed call as ckptd's: gRPC 1.51's TCP client may
  // fail a connect that is only in progress, reading errno after calls that overwrite
  // it (grpc/grpc#35064: "failed to connect ...: No such file or directory" while ckptd
  // serves). The SDKs retry that UNAVAILABLE; a raw stub would report it as a fault.
  // UNAVAILABLE if no connection was made; CANCELLED as soon as `stop_waiting` (polled
  // while waiting, if set) returns true, e.g. once a writer has killed ckptd.
  absl::StatusOr<std::unique_ptr<v1::Checkpoint::Stub>> NewConnectedStub(
      const std::function<bool()>& stop_waiting = nullptr) const;

  // Sends SIGKILL. Async-signal-safe and thread-safe: writers call it mid-flight.
  void Kill() const;
  // Reaps the process; returns its wait status (see waitpid(2)).
  int Wait();
  // SIGTERM, then Wait(): a graceful stop.
  int Stop();
  std::string Stderr() const { return stderr_->Text(); }
  // CapturedOutput::AwaitLine on ckptd's stderr.
  absl::StatusOr<std::string> AwaitStderrLine(const std::string& needle, absl::Duration timeout,
                                              int nth = 1) const {
    return stderr_->AwaitLine(needle, timeout, nth);
  }

 private:
  CkptdProcess(pid_t pid, std::unique_ptr<CapturedOutput> stdout_output,
               std::unique_ptr<CapturedOutput> stderr_output)
      : pid_(pid), stdout_(std::move(stdout_output)), stderr_(std::move(stderr_output)) {}

  const pid_t pid_;
  bool reaped_ = false;
  std::string address_;
  std::unique_ptr<CapturedOutput> stdout_;  // ckptd prints nothing there
  std::unique_ptr<CapturedOutput> stderr_;
};

// What a ckptd that was expected not to start did.
struct CkptdExit {
  int wait_status = 0;  // waitpid(2)
  std::string stderr_text;
};

// Runs ckptd on `store` (as in Start) and waits for it to exit by itself (a refused
// start-up). If it starts serving instead, it is killed and the result says so in
// stderr_text.
CkptdExit RunCkptdExpectingExit(const std::string& store, const std::vector<std::string>& flags);

}  // namespace testutil
}  // namespace ckpt

#endif  // CKPT_TESTS_DURABILITY_CKPTD_PROCESS_H_
