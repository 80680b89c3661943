// Keeps ckptd accepting connections after it ran out of file descriptors.
//
// gRPC 1.51's listener stops for good the first time accept4 fails with anything but
// EAGAIN or EINTR: once the process is out of file descriptors (EMFILE), no connection
// is ever accepted again, even after every other one closed (upstream CVE-2023-4785,
// fixed later by a retry timer). ckptd works around it from outside gRPC:
//   1. TapGrpcLog() routes gRPC's log lines through a LogLimiter (so no client can
//      flood the log either) and recognises "Failed accept4: <resource error>", the
//      line gRPC writes when its listener stops for lack of a resource;
//   2. every ListenerKeeper then waits until enough descriptors are free, shuts the
//      dead listening socket down (shutdown(2): the port can be bound again) and calls
//      its `relisten` function, which starts a new gRPC server on the same port with the
//      same services. Connections of the old server keep being served.
#ifndef CKPT_SERVICE_SERVER_LISTENER_KEEPER_H_
#define CKPT_SERVICE_SERVER_LISTENER_KEEPER_H_

#include <cstdint>
#include <functional>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"

namespace ckpt {

// Installs the gRPC log function described above. Idempotent; thread-safe.
void TapGrpcLog();

// Thread-safe.
class ListenerKeeper {
 public:
  // Watches for gRPC's listener on TCP `port` stopping; `relisten` starts a new one on
  // the same port and is called on the keeper's own thread.
  ListenerKeeper(int port, std::function<absl::Status()> relisten);
  // Stops the keeper's thread (waiting for a relisten in progress).
  ~ListenerKeeper();
  ListenerKeeper(const ListenerKeeper&) = delete;
  ListenerKeeper& operator=(const ListenerKeeper&) = delete;

  // Called by the log tap when a gRPC listener of this process stopped.
  void ListenerStopped();

 private:
  void Loop();
  // Waits until enough descriptors are free; false if the keeper is stopping.
  bool AwaitFreeDescriptors();

  const int port_;
  const std::function<absl::Status()> relisten_;
  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t stopped_listeners_ ABSL_GUARDED_BY(mu_) = 0;  // not yet handled
  std::thread thread_;
};

// Free file descriptors below the soft RLIMIT_NOFILE (counted in /proc/self/fd).
int64_t FreeFileDescriptors();

}  // namespace ckpt

#endif  // CKPT_SERVICE_SERVER_LISTENER_KEEPER_H_
