// ckptd's HTTP listener (cpp-httplib): the routes other components install (/metrics,
// the JSON gateway, the dashboard), served by a bounded pool of threads of its own,
// never by the engine's writer or gRPC's threads.
//
// Bounds: at most `threads` connections are served at once; further connections wait
// in the kernel's backlog until a thread is free (BoundedPool). An idle keep-alive
// connection is closed after `keep_alive`, a request body is at most `max_body_bytes`,
// and reads and writes time out, so a slow or silent client holds a thread for a
// bounded time (the TLS handshake included). Handlers that stream (server-sent events)
// must bound their own number below `threads`.
//
// With `tls_setup` it serves HTTPS only: a client speaking plain HTTP fails the
// handshake and is disconnected. Handlers find the connection's TLS session (the
// client's verified certificate) in httplib::Request::ssl.
#ifndef CKPT_SERVICE_HTTP_HTTP_SERVER_H_
#define CKPT_SERVICE_HTTP_HTTP_SERVER_H_

#include <httplib.h>

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace ckpt {

struct HttpServerOptions {
  // host:port; port 0 picks a free port (see HttpServer::port()).
  std::string listen_address = "127.0.0.1:7701";
  size_t threads = 16;
  absl::Duration keep_alive = absl::Seconds(2);
  absl::Duration read_timeout = absl::Seconds(10);
  absl::Duration write_timeout = absl::Seconds(10);
  size_t max_body_bytes = 1 << 20;
  // HTTPS: configures the OpenSSL context every connection's TLS session is made from
  // (certificate, client verification; e.g. ServerTls::ConfigureSslContext); false
  // refuses to start. Null: plain HTTP.
  std::function<bool(SSL_CTX& ctx)> tls_setup;
};

// Thread-safe.
class HttpServer {
 public:
  // Called once, before serving, to install routes on the server.
  using Routes = std::function<void(httplib::Server& server)>;

  // Binds and starts serving on a thread of its own. FAILED_PRECONDITION naming the
  // address and the reason when it cannot listen.
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(const HttpServerOptions& options,
                                                           const Routes& routes);

  // Shutdown().
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  int port() const { return port_; }
  // "host:port" as bound.
  std::string address() const;
  // "http://host:port/", or "https://host:port/" with TLS.
  std::string url() const;

  // Stops accepting and waits for the connections being served to end (idle
  // keep-alive connections end within `keep_alive`; streaming handlers must have been
  // told to end first). Idempotent.
  void Shutdown();

 private:
  HttpServer(std::string host, bool tls, std::unique_ptr<httplib::Server> server)
      : host_(std::move(host)), tls_(tls), server_(std::move(server)) {}

  // Until the accept loop runs (or has ended), stop() would do nothing.
  void AwaitAcceptLoop() const;

  const std::string host_;
  const bool tls_;
  std::unique_ptr<httplib::Server> server_;
  int port_ = 0;
  std::atomic<bool> listener_ended_{false};
  absl::Mutex shutdown_mu_;
  std::thread listener_ ABSL_GUARDED_BY(shutdown_mu_);
};

}  // namespace ckpt

#endif  // CKPT_SERVICE_HTTP_HTTP_SERVER_H_
