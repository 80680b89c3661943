// A running ckptd: the store, the services and the gRPC server, as one handle that
// tests start in process on port 0 and ckptd_main starts from flags.
#ifndef CKPT_SERVICE_SERVER_SERVER_H_
#define CKPT_SERVICE_SERVER_SERVER_H_

#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "service/common/clock.h"
#include "service/rpc/validate.h"
#include "service/store/rocksdb_store.h"
#include "service/store/store.h"

namespace grpc {
class Server;
}  // namespace grpc

namespace ckpt {

class CheckpointService;
class Engine;
class HealthService;
class HttpServer;
class ServerMetrics;

struct ServerOptions {
  // host:port. Loopback by default; port 0 picks a free port (see Server::port()).
  std::string listen_address = "127.0.0.1:7700";
  // host:port of the HTTP listener (/metrics; see service/http/). Empty: no HTTP. ckptd's
  // --http_listen defaults to 127.0.0.1:7701; in-process servers have none unless asked.
  std::string http_listen_address;
  // ckpt_job_items covers at most this many running or paused jobs (server_metrics.h).
  size_t metrics_max_jobs = 100;
  RocksDbStoreOptions store;
  Limits limits;
  size_t max_message_bytes = 16 << 20;
  Clock* clock = Clock::Real();
};

// Thread-safe.
class Server {
 public:
  // Opens the store and loads the engine, then serves ckpt.v1.Checkpoint, grpc.health.v1.Health
  // (SERVING once started) and server reflection. Errors say what is wrong and what to do: the
  // store's (see RocksDbStore::Open), or FAILED_PRECONDITION when the address cannot be listened
  // on.
  static absl::StatusOr<std::unique_ptr<Server>> Start(const ServerOptions& options);

  // Shuts down with a 5 s grace if Shutdown was not called.
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  int port() const { return port_; }
  // "host:port" as bound, for clients.
  std::string address() const;
  // The HTTP listener's port and "host:port", or 0 and "" without one.
  int http_port() const;
  std::string http_address() const;

  // Answers new calls UNAVAILABLE, lets calls in flight finish within `grace`, answers
  // writes still queued after it UNAVAILABLE (not applied), closes every connection and
  // the store. Returns as soon as nothing is in flight. Idempotent.
  void Shutdown(absl::Duration grace);

 private:
  Server(ServerOptions options, std::unique_ptr<ServerMetrics> metrics,
         std::unique_ptr<Store> store, std::unique_ptr<Engine> engine);
  absl::Status StartHttp();

  const ServerOptions options_;
  // Declared first, destroyed last: the engine reports to it until it stops.
  std::unique_ptr<ServerMetrics> metrics_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<Engine> engine_;
  std::unique_ptr<HealthService> health_;
  std::unique_ptr<CheckpointService> checkpoint_;
  std::unique_ptr<grpc::Server> grpc_server_;
  int port_ = 0;
  std::unique_ptr<HttpServer> http_server_;

  absl::Mutex shutdown_mu_;
  bool shut_down_ ABSL_GUARDED_BY(shutdown_mu_) = false;
};

// Splits "host:port" ("[::1]:7700" for IPv6). INVALID_ARGUMENT if malformed.
absl::Status ParseListenAddress(absl::string_view address, std::string* host, int* port);

}  // namespace ckpt

#endif  // CKPT_SERVICE_SERVER_SERVER_H_
