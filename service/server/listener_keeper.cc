#include "service/server/listener_keeper.h"

#include <dirent.h>
#include <grpc/support/log.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "service/common/log.h"

namespace ckpt {
namespace {

constexpr int kGrpcLogLinesPerMinute = 10;
// How often a keeper of a Unix socket checks that its file still exists.
constexpr absl::Duration kSocketCheckInterval = absl::Seconds(1);

absl::Mutex keepers_mu(absl::kConstInit);
absl::flat_hash_set<ListenerKeeper*>& Keepers() ABSL_EXCLUSIVE_LOCKS_REQUIRED(keepers_mu) {
  static auto* keepers = new absl::flat_hash_set<ListenerKeeper*>();
  return *keepers;
}

// The line gRPC 1.51 writes when its accept loop ends, for a cause that passes.
bool ListenerStoppedForLackOfResources(absl::string_view message) {
  if (!absl::StrContains(message, "Failed accept4: ")) return false;
  for (int error : {EMFILE, ENFILE, ENOBUFS, ENOMEM}) {
    if (absl::EndsWith(message, std::strerror(error))) return true;
  }
  return false;
}

void OnGrpcLog(gpr_log_func_args* args) {
  static LogLimiter* const limiter = new LogLimiter("grpc", kGrpcLogLinesPerMinute);
  limiter->Log(args->message);
  if (!ListenerStoppedForLackOfResources(args->message)) return;
  absl::MutexLock lock(&keepers_mu);
  for (ListenerKeeper* keeper : Keepers()) keeper->ListenerStopped();
}

// Whether the socket bound to `address` is `listener`'s.
bool IsWatched(const sockaddr_storage& address, socklen_t length, const WatchedListener& listener) {
  if (!listener.unix_path.empty()) {
    if (address.ss_family != AF_UNIX) return false;
    const auto* un = reinterpret_cast<const sockaddr_un*>(&address);
    const size_t path_bytes = length - offsetof(sockaddr_un, sun_path);
    return std::string(un->sun_path, strnlen(un->sun_path, path_bytes)) == listener.unix_path;
  }
  if (address.ss_family == AF_INET) {
    return ntohs(reinterpret_cast<const sockaddr_in*>(&address)->sin_port) == listener.port;
  }
  if (address.ss_family == AF_INET6) {
    return ntohs(reinterpret_cast<const sockaddr_in6*>(&address)->sin6_port) == listener.port;
  }
  return false;
}

// Whether nothing is at `path` any more (ENOENT: removed, or its directory was).
bool SocketRemoved(const std::string& path) {
  struct stat info;
  return ::lstat(path.c_str(), &info) != 0 && errno == ENOENT;
}

// Shuts down this process's listening sockets of `listener` (gRPC's dead listener).
void ShutDownListeners(const WatchedListener& listener) {
  DIR* dir = ::opendir("/proc/self/fd");
  if (dir == nullptr) return;
  while (const dirent* entry = ::readdir(dir)) {
    const int fd = std::atoi(entry->d_name);
    if (fd <= STDERR_FILENO || fd == ::dirfd(dir)) continue;
    int listening = 0;
    socklen_t size = sizeof(listening);
    if (::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &size) != 0 || !listening) {
      continue;
    }
    sockaddr_storage address{};
    socklen_t length = sizeof(address);
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) continue;
    if (IsWatched(address, length, listener)) ::shutdown(fd, SHUT_RDWR);
  }
  ::closedir(dir);
}

}  // namespace

std::string WatchedListener::Describe() const {
  return unix_path.empty() ? absl::StrCat("port ", port) : absl::StrCat("unix:", unix_path);
}

void TapGrpcLog() {
  static std::once_flag once;
  std::call_once(once, [] { gpr_set_log_function(&OnGrpcLog); });
}

int64_t FreeFileDescriptors() {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) return 0;
  int64_t open = 0;
  if (DIR* dir = ::opendir("/proc/self/fd")) {
    while (::readdir(dir) != nullptr) ++open;
    ::closedir(dir);
    open -= 2;  // "." and ".."
  }
  return static_cast<int64_t>(limit.rlim_cur) - open;
}

ListenerKeeper::ListenerKeeper(WatchedListener listener, std::function<absl::Status()> relisten)
    : listener_(std::move(listener)), relisten_(std::move(relisten)), thread_([this] { Loop(); }) {
  TapGrpcLog();
  absl::MutexLock lock(&keepers_mu);
  Keepers().insert(this);
}

ListenerKeeper::~ListenerKeeper() {
  {
    absl::MutexLock lock(&keepers_mu);
    Keepers().erase(this);
  }
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  thread_.join();
}

void ListenerKeeper::ListenerStopped() {
  absl::MutexLock lock(&mu_);
  ++stopped_listeners_;
}

bool ListenerKeeper::AwaitFreeDescriptors() {
  // Enough for the new listener and a burst of clients; what is free is polled, since
  // nothing announces a closed connection.
  rlimit limit{};
  ::getrlimit(RLIMIT_NOFILE, &limit);
  const int64_t wanted = std::max<int64_t>(16, static_cast<int64_t>(limit.rlim_cur) / 8);
  while (FreeFileDescriptors() < wanted) {
    absl::MutexLock lock(&mu_);
    if (mu_.AwaitWithTimeout(absl::Condition(&stopping_), absl::Milliseconds(100))) return false;
  }
  return true;
}

ListenerKeeper::Wake ListenerKeeper::AwaitWake() {
  absl::MutexLock lock(&mu_);
  auto woken = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return stopping_ || stopped_listeners_ > 0;
  };
  if (listener_.unix_path.empty()) {
    mu_.Await(absl::Condition(&woken));
  } else {
    while (!mu_.AwaitWithTimeout(absl::Condition(&woken), kSocketCheckInterval)) {
      if (SocketRemoved(listener_.unix_path)) return Wake::kSocketRemoved;
    }
  }
  if (stopping_) return Wake::kStopping;
  stopped_listeners_ = 0;
  return Wake::kListenerStopped;
}

void ListenerKeeper::Loop() {
  for (;;) {
    const Wake wake = AwaitWake();
    if (wake == Wake::kStopping) return;
    if (wake == Wake::kListenerStopped) {
      LogLine(absl::StrCat("stopped accepting connections on ", listener_.Describe(),
                           " (out of file descriptors); listening again once enough are free"));
      if (!AwaitFreeDescriptors()) return;
    } else if (!socket_loss_reported_) {
      LogLine(absl::StrCat(listener_.Describe(), " was removed; creating it again"));
    }
    if (!Relisten(wake)) return;
  }
}

bool ListenerKeeper::Relisten(Wake wake) {
  const std::string where = listener_.Describe();
  ShutDownListeners(listener_);
  const absl::Status listening = relisten_();
  if (listening.ok()) {
    socket_loss_reported_ = false;
    LogLine(absl::StrCat("listening again on ", where));
    return true;
  }
  if (wake == Wake::kSocketRemoved) {
    // The next check finds the socket still missing and tries again; said once.
    if (!socket_loss_reported_) {
      LogLine(absl::StrCat("cannot listen on ", where, " again (", listening.message(),
                           "); trying again every ", absl::FormatDuration(kSocketCheckInterval)));
    }
    socket_loss_reported_ = true;
    return true;
  }
  LogLine(
      absl::StrCat("cannot listen on ", where, " again (", listening.message(), "); trying again"));
  absl::MutexLock lock(&mu_);
  ++stopped_listeners_;
  return !mu_.AwaitWithTimeout(absl::Condition(&stopping_), absl::Seconds(1));
}

}  // namespace ckpt
