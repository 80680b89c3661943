// A running ckptd: the store, the services and the gRPC server, as one handle that
// tests start in process on port 0 and ckptd_main starts from flags.
#ifndef CKPT_SERVICE_SERVER_SERVER_H_
#define CKPT_SERVICE_SERVER_SERVER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "service/common/clock.h"
#include "service/engine/log_book.h"
#include "service/engine/retention_index.h"
#include "service/engine/write_queue.h"
#include "service/rpc/validate.h"
#include "service/server/server_tls.h"
#include "service/store/postgres_store.h"
#include "service/store/rocksdb_store.h"
#include "service/store/store.h"

namespace grpc {
class Server;
}  // namespace grpc

namespace ckpt {

class ActivityTracker;
class ShardSet;
class CheckpointService;
class Replica;
class Engine;
class HealthService;
class HttpServer;
class JsonGateway;
class ListenerKeeper;
class ServerMetrics;
class ThroughputHistory;
class MemoryReclaimer;
namespace auth {
class Authorizer;
}  // namespace auth

// Where ckptd listens: a TCP host and port, or a Unix domain socket.
struct ListenAddress {
  std::string host;       // TCP: the host, without IPv6 brackets
  int port = 0;           // TCP: 0..65535; 0 picks a free port
  std::string unix_path;  // a Unix domain socket's path; non-empty means Unix
  bool is_unix() const { return !unix_path.empty(); }
};

// Parses "host:port" ("[::1]:7700" for IPv6) or "unix:PATH" (absolute or relative to the
// working directory; at most kMaxUnixPathBytes). INVALID_ARGUMENT saying what is wrong.
absl::StatusOr<ListenAddress> ParseListenAddress(absl::string_view address);

// The longest Unix socket path the kernel takes (sockaddr_un::sun_path, less its NUL).
inline constexpr size_t kMaxUnixPathBytes = 107;

struct ServerOptions {
  // host:port, or unix:PATH (see ParseListenAddress). Loopback by default; port 0 picks a
  // free port (see Server::port()).
  std::string listen_address = "127.0.0.1:7700";
  // host:port of the HTTP listener (/metrics; see service/http/). Empty: no HTTP. ckptd's
  // --http_listen defaults to 127.0.0.1:7701; in-process servers have none unless asked.
  // With `tls` it serves HTTPS only, with the same certificate and client CA as gRPC;
  // the process must then ignore SIGPIPE (ckptd does), as OpenSSL writes with write(2).
  std::string http_listen_address;
  // ckpt_job_items covers at most this many running or paused jobs (server_metrics.h).
  size_t metrics_max_jobs = 100;
  RocksDbStoreOptions store;
  // When postgres.conninfo is set, the store is PostgreSQL instead and `store` is
  // unused; postgres.address defaults to listen_address.
  PostgresStoreOptions postgres;
  // Replicas (replica.h, docs/deploy.md): with postgres.conninfo, a non-empty
  // `advertise` (HOST:PORT where the other replicas reach this one) makes this ckptd
  // one of several over the store, serving a fair share of its shards and forwarding
  // the rest; postgres.lease is each shard lease's length. Without it, ckptd owns the
  // whole store alone (a store made for replicas, with more than one shard, is refused).
  std::string advertise;
  // Shards of a store a replica initialises (service/cluster/shard_map.h).
  int shards = 16;
  Limits limits;
  size_t max_message_bytes = 16 << 20;
  // TLS, and with tls.client_ca mutual TLS, for gRPC and HTTP alike. Empty: plaintext.
  TlsFiles tls;
  // The principals that may call (service/auth/principal_table.h). Empty: no
  // authentication, every caller may call everything.
  std::string auth_file;
  // Serve a network address (gRPC's or HTTP's) with neither TLS nor an auth file;
  // refused otherwise.
  bool insecure = false;
  Clock* clock = Clock::Real();
  // Bounds of the engine's write queue (service/engine/write_queue.h).
  WriteQueueLimits write_queue;
  // Bounds of each item's and each job's log (service/engine/log_book.h).
  LogLimits log_limits;
  // Jobs' retention: the default, and how often expired jobs are deleted.
  RetentionOptions retention;

  // What one connection may hold, so that no client can exhaust ckptd (docs/api.md,
  // "Running ckptd"). Streams open at once on a connection (HTTP/2
  // SETTINGS_MAX_CONCURRENT_STREAMS); more wait in the client.
  int max_concurrent_streams = 100;
  // A connection with no call in flight for this long is closed (GOAWAY): idle ones do
  // not hold file descriptors for ever.
  absl::Duration max_connection_idle = absl::Minutes(5);
  // A connection silent for keepalive_time is pinged and closed if the ping is not
  // answered within keepalive_timeout (a peer that vanished).
  absl::Duration keepalive_time = absl::Minutes(1);
  absl::Duration keepalive_timeout = absl::Seconds(20);
  // Memory gRPC may use for connections and calls (grpc::ResourceQuota); past it gRPC
  // sheds buffers and then connections.
  size_t max_grpc_memory_bytes = size_t{256} << 20;
  // How often freed memory is given back to the system (MemoryReclaimer).
  absl::Duration memory_reclaim_interval = absl::Seconds(5);
  // If set, told of every call's start and end (for --idle_exit); not owned, must
  // outlive the server. Null: no per-call tracking.
  ActivityTracker* activity = nullptr;
};

// Thread-safe.
class Server {
 public:
  // Opens the store and loads the engine, then serves ckpt.v1.Checkpoint, grpc.health.v1.Health
  // (SERVING once started, NOT_SERVING while the store cannot be reached; open to all) and
  // server reflection (the reader role when there is an auth file). Logs how it is secured.
  // Errors say what is wrong and what to do: the TLS files' and the auth file's
  // (ServerTls::Load, auth::Authorizer::Load), the store's (see RocksDbStore::Open,
  // PostgresStore::Open), or FAILED_PRECONDITION when the address cannot be listened on, or is
  // a network address with neither TLS nor an auth file and without `insecure`.
  // A Unix socket is created readable and writable by its owner only (0600); a stale socket
  // file (nothing listens on it, e.g. left by a killed ckptd) is replaced once the store is
  // open, while a live one, or any other file at that path, is FAILED_PRECONDITION.
  static absl::StatusOr<std::unique_ptr<Server>> Start(const ServerOptions& options);

  // Shuts down with a 5 s grace if Shutdown was not called.
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // The TCP port as bound; 0 for a Unix socket.
  int port() const { return port_; }
  // Where clients connect: "host:port" as bound, or "unix:PATH" (gRPC's target syntax).
  std::string address() const;
  // The HTTP listener's port and "host:port", or 0 and "" without one.
  int http_port() const;
  std::string http_address() const;
  // The HTTP listener's "http://host:port/" ("https://" with TLS), or "" without one.
  std::string http_url() const;

  // Re-reads the TLS files and the auth file, those in use, each on its own: one that
  // fails keeps its previous version in force. Calls and connections in flight are not
  // disturbed. Logs a line for each; returns OK, or the first error.
  absl::Status Reload();

  // Answers new calls UNAVAILABLE, lets calls in flight finish within `grace`, answers
  // writes still queued after it UNAVAILABLE (not applied), closes every connection and
  // the store. Returns as soon as nothing is in flight. Idempotent.
  void Shutdown(absl::Duration grace);

 private:
  // Either `shards` (one local shard: `store` and `engine`) or `replica`.
  Server(ServerOptions options, std::unique_ptr<ServerMetrics> metrics,
         std::unique_ptr<ShardSet> shards, std::unique_ptr<Replica> replica, Store* store,
         Engine* engine, std::unique_ptr<ServerTls> tls,
         std::unique_ptr<auth::Authorizer> authorizer);
  absl::Status StartHttp();
  // Builds and starts a gRPC server with every service and limit on `address`, and
  // adds it to grpc_servers_. Sets port_ the first time. FAILED_PRECONDITION if it
  // cannot listen.
  absl::Status Listen(const std::string& address);

  const ServerOptions options_;
  ListenAddress listen_;  // options_.listen_address, parsed; set once by Start
  // Declared first, destroyed last: the engine reports to it until it stops.
  std::unique_ptr<ServerMetrics> metrics_;
  // The engines. A single ckptd: one shard, owning the store and the engine below. A
  // replica: its shards and its part in the cluster; store_ and engine_ are null.
  std::unique_ptr<ShardSet> shards_;
  std::unique_ptr<Replica> replica_;
  Store* store_ = nullptr;
  Engine* engine_ = nullptr;
  // Both outlive the gRPC servers, which call into them.
  const std::unique_ptr<ServerTls> tls_;                // null: plaintext
  const std::unique_ptr<auth::Authorizer> authorizer_;  // null: no auth file
  std::unique_ptr<HealthService> health_;
  std::unique_ptr<CheckpointService> checkpoint_;
  absl::Mutex servers_mu_;
  // The first, and one more each time the ListenerKeeper listens again.
  std::vector<std::unique_ptr<grpc::Server>> grpc_servers_ ABSL_GUARDED_BY(servers_mu_);
  std::unique_ptr<ListenerKeeper> keeper_;
  std::unique_ptr<MemoryReclaimer> reclaimer_;
  int port_ = 0;
  std::unique_ptr<ThroughputHistory> history_;
  std::unique_ptr<JsonGateway> gateway_;
  std::unique_ptr<HttpServer> http_server_;

  absl::Mutex shutdown_mu_;
  bool shut_down_ ABSL_GUARDED_BY(shutdown_mu_) = false;
};

// Whether only this machine can reach `address`: a Unix socket ("unix:PATH"), or a host
// that is "localhost", in 127.0.0.0/8 or ::1. Anything else counts as the network.
bool IsLocalAddress(absl::string_view address);

}  // namespace ckpt

#endif  // CKPT_SERVICE_SERVER_SERVER_H_
