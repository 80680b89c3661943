#include "service/http/http_server.h"

#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "service/http/bounded_pool.h"

namespace ckpt {
namespace {

// Splits "host:port" ("[::1]:7701" for IPv6) as --http_listen spells it.
absl::Status SplitAddress(absl::string_view address, std::string* host, int* port) {
  const size_t colon = address.rfind(':');
  if (colon == absl::string_view::npos || colon == 0 ||
      !absl::SimpleAtoi(address.substr(colon + 1), port) || *port < 0 || *port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("HTTP listen address \"", address,
                                                   "\" is not host:port (e.g. 127.0.0.1:7701)"));
  }
  absl::string_view h = address.substr(0, colon);
  if (h.size() >= 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  *host = std::string(h);
  return absl::OkStatus();
}

time_t Seconds(absl::Duration d) { return static_cast<time_t>(absl::ToInt64Seconds(d)); }

}  // namespace

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(const HttpServerOptions& options,
                                                              const Routes& routes) {
  std::string host;
  int port = 0;
  if (absl::Status valid = SplitAddress(options.listen_address, &host, &port); !valid.ok()) {
    return valid;
  }
  std::unique_ptr<httplib::Server> server;
  if (options.tls_setup) {
    server = std::make_unique<httplib::SSLServer>(options.tls_setup);
    if (!server->is_valid()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "cannot serve HTTPS on ", options.listen_address, ": OpenSSL refused the TLS settings"));
    }
  } else {
    server = std::make_unique<httplib::Server>();
  }
  const size_t threads = options.threads;
  server->new_task_queue = [threads] { return new BoundedPool(threads); };
  // cpp-httplib's default sets SO_REUSEPORT, which would let a second ckptd share the
  // port; SO_REUSEADDR alone only allows a quick restart.
  server->set_socket_options([](socket_t sock) {
    const int one = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  });
  server->set_keep_alive_timeout(std::max<time_t>(1, Seconds(options.keep_alive)));
  server->set_read_timeout(Seconds(options.read_timeout));
  server->set_write_timeout(Seconds(options.write_timeout));
  server->set_payload_max_length(options.max_body_bytes);
  routes(*server);

  const int bound = port == 0                          ? server->bind_to_any_port(host)
                    : server->bind_to_port(host, port) ? port
                                                       : -1;
  if (bound <= 0) {
    const int err = errno;
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot listen on ", options.listen_address, " for HTTP: ", std::strerror(err),
        err == EADDRINUSE ? " (another ckptd or program holds this port); stop it or pick "
                            "another --http_listen, or --http_listen= to turn HTTP off"
                          : "; check --http_listen"));
  }
  std::unique_ptr<HttpServer> http(
      new HttpServer(host, options.tls_setup != nullptr, std::move(server)));
  http->port_ = bound;
  {
    absl::MutexLock lock(&http->shutdown_mu_);
    http->listener_ = std::thread([h = http.get()] {
      h->server_->listen_after_bind();
      h->listener_ended_ = true;
    });
  }
  http->AwaitAcceptLoop();
  return http;
}

HttpServer::~HttpServer() { Shutdown(); }

std::string HttpServer::address() const {
  const std::string host =
      host_.find(':') != std::string::npos ? absl::StrCat("[", host_, "]") : host_;
  return absl::StrCat(host, ":", port_);
}

std::string HttpServer::url() const {
  return absl::StrCat(tls_ ? "https://" : "http://", address(), "/");
}

void HttpServer::AwaitAcceptLoop() const {
  // The loop marks itself running first thing; this waits microseconds, once.
  while (!server_->is_running() && !listener_ended_) std::this_thread::yield();
}

void HttpServer::Shutdown() {
  absl::MutexLock lock(&shutdown_mu_);
  if (!listener_.joinable()) return;
  server_->stop();
  listener_.join();
}

}  // namespace ckpt
