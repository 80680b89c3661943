#include "service/server/listener_keeper.h"

#include <dirent.h>
#include <grpc/support/log.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>

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

// Shuts down this process's listening TCP sockets on `port` (gRPC's dead listener).
void ShutDownListeners(int port) {
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
    int bound = -1;
    if (address.ss_family == AF_INET) {
      bound = ntohs(reinterpret_cast<sockaddr_in*>(&address)->sin_port);
    } else if (address.ss_family == AF_INET6) {
      bound = ntohs(reinterpret_cast<sockaddr_in6*>(&address)->sin6_port);
    }
    if (bound == port) ::shutdown(fd, SHUT_RDWR);
  }
  ::closedir(dir);
}

}  // namespace

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

ListenerKeeper::ListenerKeeper(int port, std::function<absl::Status()> relisten)
    : port_(port), relisten_(std::move(relisten)), thread_([this] { Loop(); }) {
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

void ListenerKeeper::Loop() {
  for (;;) {
    {
      absl::MutexLock lock(&mu_);
      auto woken = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stopping_ || stopped_listeners_ > 0;
      };
      mu_.Await(absl::Condition(&woken));
      if (stopping_) return;
      stopped_listeners_ = 0;
    }
    LogLine(absl::StrCat("stopped accepting connections on port ", port_,
                         " (out of file descriptors); listening again once enough are free"));
    if (!AwaitFreeDescriptors()) return;
    ShutDownListeners(port_);
    const absl::Status listening = relisten_();
    if (listening.ok()) {
      LogLine(absl::StrCat("listening again on port ", port_));
    } else {
      LogLine(absl::StrCat("cannot listen on port ", port_, " again (", listening.message(),
                           "); trying again"));
      absl::MutexLock lock(&mu_);
      ++stopped_listeners_;
      if (mu_.AwaitWithTimeout(absl::Condition(&stopping_), absl::Seconds(1))) return;
    }
  }
}

}  // namespace ckpt
