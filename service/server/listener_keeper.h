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
//      dead listening socket down (shutdown(2): the port or the socket path can be bound
//      again) and calls its `relisten` function, which starts a new gRPC server on the
//      same TCP port or Unix socket with the same services. Connections of the old
//      server keep being served.
// A keeper of a Unix socket also checks every second that the socket's file still
// exists: if it was removed (by hand, or by a /tmp cleaner), no new client could reach
// ckptd, and local: clients could not start another one (this one holds the store). It
// shuts the unreachable listener down and calls `relisten`, which creates the file again.
#ifndef CKPT_SERVICE_SERVER_LISTENER_KEEPER_H_
#define CKPT_SERVICE_SERVER_LISTENER_KEEPER_H_

#include <cstdint>
#include <functional>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"

namespace ckpt {

// Installs the gRPC log function described above. Idempotent; thread-safe.
void TapGrpcLog();

// The listening socket a keeper watches: TCP `port`, or the Unix socket at `unix_path`
// (when not empty).
struct WatchedListener {
  int port = 0;
  std::string unix_path;
  // "port 7700" or "unix:/path", for log lines.
  std::string Describe() const;
};

// Thread-safe.
class ListenerKeeper {
 public:
  // Watches for gRPC's listener on `listener` stopping (and, for a Unix socket, for its
  // file being removed); `relisten` starts a new one on the same port or path and is
  // called on the keeper's own thread.
  ListenerKeeper(WatchedListener listener, std::function<absl::Status()> relisten);
  // Stops the keeper's thread (waiting for a relisten in progress).
  ~ListenerKeeper();
  ListenerKeeper(const ListenerKeeper&) = delete;
  ListenerKeeper& operator=(const ListenerKeeper&) = delete;

  // Called by the log tap when a gRPC listener of this process stopped.
  void ListenerStopped();

 private:
  enum class Wake { kStopping, kListenerStopped, kSocketRemoved };
  // Waits until the keeper stops, a listener stopped, or the Unix socket was removed.
  Wake AwaitWake();
  void Loop();
  // Shuts the old listener down and calls relisten_, saying what happened; false if the
  // keeper is stopping.
  bool Relisten(Wake wake);
  // Waits until enough descriptors are free; false if the keeper is stopping.
  bool AwaitFreeDescriptors();

  const WatchedListener listener_;
  const std::function<absl::Status()> relisten_;
  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t stopped_listeners_ ABSL_GUARDED_BY(mu_) = 0;  // not yet handled
  bool socket_loss_reported_ = false;                    // the keeper's thread only
  std::thread thread_;
};

// Free file descriptors below the soft RLIMIT_NOFILE (counted in /proc/self/fd).
int64_t FreeFileDescriptors();

}  // namespace ckpt

#endif  // CKPT_SERVICE_SERVER_LISTENER_KEEPER_H_
