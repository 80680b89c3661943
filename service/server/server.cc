#include "service/server/server.h"

#include <arpa/inet.h>
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/resource_quota.h>
#include <netdb.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <filesystem>
#include <tuple>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "service/auth/authorizer.h"
#include "service/cluster/shard_set.h"
#include "service/common/log.h"
#include "service/common/status_macros.h"
#include "service/engine/engine.h"
#include "service/http/dashboard.h"
#include "service/http/http_server.h"
#include "service/http/json_gateway.h"
#include "service/metrics/exposition.h"
#include "service/rpc/checkpoint_service.h"
#include "service/server/activity.h"
#include "service/server/health_service.h"
#include "service/server/listener_keeper.h"
#include "service/server/memory_reclaimer.h"
#include "service/server/reflection_guard.h"
#include "service/server/replica.h"
#include "service/server/server_metrics.h"

namespace ckpt {
namespace {

// gRPC reports only "could not bind"; binding once ourselves tells the operator why.
absl::Status CheckCanListenTcp(const std::string& address, const ListenAddress& listen,
                               absl::string_view flag) {
  if (listen.port == 0) return absl::OkStatus();
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* result = nullptr;
  const int rc =
      ::getaddrinfo(listen.host.c_str(), std::to_string(listen.port).c_str(), &hints, &result);
  if (rc != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot listen on ", address, ": ", ::gai_strerror(rc), "; check --", flag));
  }
  absl::Status status = absl::OkStatus();
  const int fd = ::socket(result->ai_family, SOCK_STREAM, 0);
  if (fd >= 0) {
    const int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (::bind(fd, result->ai_addr, result->ai_addrlen) != 0) {
      const int err = errno;
      status = absl::FailedPreconditionError(absl::StrCat(
          "cannot listen on ", address, ": ", std::strerror(err),
          err == EADDRINUSE ? absl::StrCat(" (another ckptd or program holds this port); stop "
                                           "it or pick another --",
                                           flag)
                            : absl::StrCat("; check --", flag)));
    }
    ::close(fd);
  }
  ::freeaddrinfo(result);
  return status;
}

// Whether something accepts connections on the Unix socket at `path` (ECONNREFUSED: a
// stale socket file that nothing listens on). Errors other than those two are returned.
absl::StatusOr<bool> UnixSocketIsLive(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.data(), path.size());
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(absl::StrCat("socket: ", std::strerror(errno)));
  const int rc = ::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr));
  const int err = errno;
  ::close(fd);
  if (rc == 0) return true;
  if (err == ECONNREFUSED) return false;
  return absl::FailedPreconditionError(
      absl::StrCat("cannot listen on unix:", path, ": ", std::strerror(err), "; check --listen"));
}

// A Unix socket path can be bound when its directory exists and nothing but a stale
// socket is in the way (Server::Start replaces that one once it owns the store).
absl::Status CheckCanListenUnix(const std::string& path) {
  const std::string dir = std::filesystem::path(path).parent_path().string();
  std::error_code ec;
  if (!dir.empty() && !std::filesystem::is_directory(dir, ec)) {
    return absl::FailedPreconditionError(absl::StrCat("cannot listen on unix:", path, ": ", dir,
                                                      " is not a directory; check --listen"));
  }
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return absl::OkStatus();  // nothing there
  if (!S_ISSOCK(st.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot listen on unix:", path,
                     ": a file that is not a socket is there; ckptd will not replace it"));
  }
  CKPT_ASSIGN_OR_RETURN(const bool live, UnixSocketIsLive(path));
  if (live) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot listen on unix:", path,
        ": another ckptd or program is listening there; stop it or pick another --listen"));
  }
  return absl::OkStatus();
}

absl::Status CheckCanListen(const std::string& address, absl::string_view flag) {
  CKPT_ASSIGN_OR_RETURN(const ListenAddress listen, ParseListenAddress(address));
  if (!listen.is_unix()) return CheckCanListenTcp(address, listen, flag);
  if (flag != "listen") {
    return absl::InvalidArgumentError(absl::StrCat("--", flag, " takes host:port, not ", address));
  }
  return CheckCanListenUnix(listen.unix_path);
}

// Runs `build`, which binds the Unix socket at `path`, so that the socket is never
// reachable by other users, not even for a moment: a stale file is removed first
// (CheckCanListenUnix found nothing listening on it), the umask applies to the bind()
// inside `build` (it is process-wide, so files other threads create meanwhile are
// owner-only too, as ckptd's umask makes them anyway), and the chmod keeps it so.
template <typename Build>
auto BindPrivately(const std::string& path, Build build) {
  ::unlink(path.c_str());
  const mode_t old_umask = ::umask(0177);
  auto result = build();
  ::umask(old_umask);
  ::chmod(path.c_str(), 0600);
  return result;
}

// A RocksDB store is opened only once the engine's whole load succeeds on it read-only.
absl::StatusOr<std::unique_ptr<Store>> OpenStore(const ServerOptions& options,
                                                 const EngineOptions& engine_options) {
  if (options.postgres.conninfo.empty()) {
    RocksDbStoreOptions rocksdb = options.store;
    rocksdb.check_load = [engine_options](const StoreReader& store) {
      return Engine::CheckLoad(store, engine_options);
    };
    CKPT_ASSIGN_OR_RETURN(std::unique_ptr<RocksDbStore> store, RocksDbStore::Open(rocksdb));
    return std::unique_ptr<Store>(std::move(store));
  }
  PostgresStoreOptions postgres = options.postgres;
  if (postgres.address.empty()) postgres.address = options.listen_address;
  CKPT_ASSIGN_OR_RETURN(std::unique_ptr<PostgresStore> store, PostgresStore::Open(postgres));
  return std::unique_ptr<Store>(std::move(store));
}

ReplicaOptions ReplicaOptionsFor(const ServerOptions& options, const EngineOptions& engine) {
  ReplicaOptions replica;
  replica.conninfo = options.postgres.conninfo;
  replica.advertise = options.advertise;
  replica.shards = options.shards;
  replica.lease = options.postgres.lease;
  replica.read_connections = options.postgres.read_connections;
  replica.max_message_bytes = options.max_message_bytes;
  replica.engine = engine;
  return replica;
}

int Millis(absl::Duration d) {
  return static_cast<int>(std::min<int64_t>(absl::ToInt64Milliseconds(d), INT32_MAX));
}

// Whether a listener is on `address` ("": none) and reachable from the network.
bool OnNetwork(const std::string& address) { return !address.empty() && !IsLocalAddress(address); }

// What anyone who reaches an open `flag` listener could do.
constexpr char kGrpcExposure[] = "could read, change and delete every job";
constexpr char kHttpExposure[] = "could read every job and pause, stop or reset it";

// A network address needs TLS or an auth file, unless the operator insists. The HTTP
// listener has the same TLS and authentication as gRPC, so the same rule.
absl::Status CheckExposure(const ServerOptions& options) {
  if (options.insecure || options.tls.enabled() || !options.auth_file.empty()) {
    return absl::OkStatus();
  }
  for (const auto& [flag, address, exposure] :
       {std::make_tuple("listen", options.listen_address, kGrpcExposure),
        std::make_tuple("http_listen", options.http_listen_address, kHttpExposure)}) {
    if (!OnNetwork(address)) continue;
    return absl::FailedPreconditionError(absl::StrCat(
        "--", flag, "=", address, " is reachable from the network, and without TLS or an auth ",
        "file anyone who reaches it ", exposure,
        ": add --tls_cert, --tls_key and --auth_file (README: \"Securing ckptd\"), listen on "
        "127.0.0.1, or pass --insecure to serve it open"));
  }
  return absl::OkStatus();
}

// A warning for a network `address` served without TLS or without an auth file.
void WarnIfExposed(const std::string& address, const ServerTls* tls,
                   const auth::Authorizer* authorizer) {
  if (!OnNetwork(address)) return;
  if (tls == nullptr && authorizer == nullptr) {
    LogLine(absl::StrCat("WARNING: --insecure: serving ", address,
                         " without TLS and without authentication: anyone who can reach it can "
                         "read, change and delete every job"));
  } else if (tls == nullptr) {
    LogLine(absl::StrCat("WARNING: bearer tokens travel in plaintext on ", address,
                         ": anyone on the path can read and reuse them; add --tls_cert and "
                         "--tls_key"));
  } else if (authorizer == nullptr && !tls->requires_client_certificates()) {
    LogLine(absl::StrCat("WARNING: no --auth_file: every client that reaches ", address,
                         " may call everything"));
  }
}

// One line each on how the server is secured, and a warning for each network listener
// that is not.
void LogSecurity(const ServerOptions& options, const ServerTls* tls,
                 const auth::Authorizer* authorizer) {
  if (tls != nullptr) {
    LogLine(absl::StrCat("TLS", options.http_listen_address.empty() ? "" : " (gRPC and HTTPS)",
                         ": ", tls->Summary()));
  }
  if (authorizer != nullptr) {
    LogLine(absl::StrCat("auth file ", options.auth_file, ": ", authorizer->Summary()));
  } else if (tls != nullptr && tls->requires_client_certificates() &&
             (OnNetwork(options.listen_address) || OnNetwork(options.http_listen_address))) {
    LogLine(
        "no --auth_file: every client with a certificate from the client CA may call "
        "everything");
  }
  WarnIfExposed(options.listen_address, tls, authorizer);
  WarnIfExposed(options.http_listen_address, tls, authorizer);
}

}  // namespace

bool IsLocalAddress(absl::string_view address) {
  if (absl::StartsWith(address, "unix-abstract:")) return true;
  absl::StatusOr<ListenAddress> parsed = ParseListenAddress(address);
  if (!parsed.ok()) return false;
  if (parsed->is_unix()) return true;
  const std::string& host = parsed->host;
  if (host == "localhost") return true;
  in_addr v4{};
  if (::inet_pton(AF_INET, host.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  in6_addr v6{};
  if (::inet_pton(AF_INET6, host.c_str(), &v6) == 1) {
    return IN6_IS_ADDR_LOOPBACK(&v6) || (IN6_IS_ADDR_V4MAPPED(&v6) && v6.s6_addr[12] == 127);
  }
  return false;
}

absl::StatusOr<ListenAddress> ParseListenAddress(absl::string_view address) {
  ListenAddress out;
  if (absl::ConsumePrefix(&address, "unix:")) {
    if (address.empty() || address.size() > kMaxUnixPathBytes) {
      return absl::InvalidArgumentError(
          absl::StrCat("listen address unix:", address, " needs a socket path of 1..",
                       kMaxUnixPathBytes, " bytes (the kernel's limit)"));
    }
    out.unix_path = std::string(address);
    return out;
  }
  const size_t colon = address.rfind(':');
  if (colon == absl::string_view::npos || colon == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "listen address \"", address, "\" is not host:port (e.g. 127.0.0.1:7700) or unix:PATH"));
  }
  absl::string_view h = address.substr(0, colon);
  if (h.size() >= 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  if (!absl::SimpleAtoi(address.substr(colon + 1), &out.port) || out.port < 0 || out.port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("listen address \"", address, "\" has no valid port (0..65535)"));
  }
  out.host = std::string(h);
  return out;
}

absl::StatusOr<std::unique_ptr<Server>> Server::Start(const ServerOptions& options) {
  CKPT_ASSIGN_OR_RETURN(const ListenAddress listen, ParseListenAddress(options.listen_address));
  CKPT_RETURN_IF_ERROR(CheckExposure(options));
  std::unique_ptr<ServerTls> tls;
  if (options.tls.enabled()) {
    CKPT_ASSIGN_OR_RETURN(tls, ServerTls::Load(options.tls));
  } else if (!options.tls.client_ca.empty()) {
    return absl::InvalidArgumentError("--tls_client_ca needs --tls_cert and --tls_key");
  }
  std::unique_ptr<auth::Authorizer> authorizer;
  if (!options.auth_file.empty()) {
    CKPT_ASSIGN_OR_RETURN(authorizer, auth::Authorizer::Load(options.auth_file));
  }
  // A Unix socket is checked once the store is open: it often lives in the data dir,
  // which opening creates.
  if (!listen.is_unix()) CKPT_RETURN_IF_ERROR(CheckCanListen(options.listen_address, "listen"));
  if (!options.http_listen_address.empty()) {
    CKPT_RETURN_IF_ERROR(CheckCanListen(options.http_listen_address, "http_listen"));
  }
  const bool replica = !options.advertise.empty();
  if (replica && options.postgres.conninfo.empty()) {
    return absl::InvalidArgumentError(
        "--advertise makes ckptd a replica over a shared PostgreSQL store: add --store");
  }
  if (replica && tls != nullptr) {
    return absl::InvalidArgumentError(
        "--advertise with --tls_cert is not supported yet: replicas forward calls to each "
        "other in plaintext; run replicas on a private network without TLS for now");
  }
  EngineOptions engine_options;
  engine_options.clock = options.clock;
  engine_options.queue = options.write_queue;
  // Half the message limit: a page's entries plus everything else fit in an answer.
  engine_options.max_page_bytes = std::max<size_t>(options.max_message_bytes / 2, 1);
  engine_options.log_limits = options.log_limits;
  engine_options.retention = options.retention;
  auto metrics = std::make_unique<ServerMetrics>(ServerMetricsOptions{
      options.metrics_max_jobs, options.postgres.conninfo.empty() ? options.store.path : ""});
  std::unique_ptr<Server> server;
  if (replica) {
    engine_options.observer = metrics.get();
    CKPT_ASSIGN_OR_RETURN(std::unique_ptr<Replica> opened,
                          Replica::Open(ReplicaOptionsFor(options, engine_options)));
    if (listen.is_unix()) CKPT_RETURN_IF_ERROR(CheckCanListen(options.listen_address, "listen"));
    server.reset(new Server(options, std::move(metrics), nullptr, std::move(opened), nullptr,
                            nullptr, std::move(tls), std::move(authorizer)));
  } else {
    CKPT_ASSIGN_OR_RETURN(std::unique_ptr<Store> store, OpenStore(options, engine_options));
    if (listen.is_unix()) CKPT_RETURN_IF_ERROR(CheckCanListen(options.listen_address, "listen"));
    engine_options.observer = metrics.get();
    CKPT_ASSIGN_OR_RETURN(std::unique_ptr<Engine> engine,
                          Engine::Open(store.get(), engine_options));
    metrics->WatchEngine(engine.get());
    // One shard, served here for ever.
    auto shards = std::make_unique<ShardSet>(ShardSetOptions{});
    Store* const raw_store = store.get();
    Engine* const raw_engine = engine.get();
    shards->Serve(0, std::move(store), std::move(engine), SteadyTime::max());
    server.reset(new Server(options, std::move(metrics), std::move(shards), nullptr, raw_store,
                            raw_engine, std::move(tls), std::move(authorizer)));
  }
  server->listen_ = listen;
  TapGrpcLog();
  const absl::Status listening =
      listen.is_unix()
          ? BindPrivately(listen.unix_path,
                          [&server, &options] { return server->Listen(options.listen_address); })
          : server->Listen(options.listen_address);
  if (!listening.ok()) {
    server->checkpoint_.reset();
    server->shards_.reset();
    server->replica_.reset();
    absl::MutexLock lock(&server->shutdown_mu_);
    server->shut_down_ = true;
    return listening;
  }
  if (absl::Status http = server->StartHttp(); !http.ok()) {
    server->Shutdown(absl::ZeroDuration());
    return http;
  }
  // A Unix socket is bound again as privately as the first time.
  const std::string bound = server->address();
  server->keeper_ = std::make_unique<ListenerKeeper>(
      WatchedListener{server->port_, listen.unix_path}, [s = server.get(), bound, listen] {
        if (!listen.is_unix()) return s->Listen(bound);
        return BindPrivately(listen.unix_path, [s, &bound] { return s->Listen(bound); });
      });
  server->reclaimer_ =
      std::make_unique<MemoryReclaimer>(options.memory_reclaim_interval, size_t{32} << 20);
  LogSecurity(options, server->tls_.get(), server->authorizer_.get());
  auto on_health = [health = server->health_.get()](bool available) {
    health->SetStoreAvailable(available);
  };
  if (server->replica_ != nullptr) {
    // After listening: a peer never forwards to a replica that cannot answer yet.
    if (absl::Status joined = server->replica_->Join(on_health); !joined.ok()) {
      server->Shutdown(absl::ZeroDuration());
      return joined;
    }
  } else {
    server->store_->SetAvailabilityListener(on_health);
  }
  server->health_->SetServing(true);
  return server;
}

absl::Status Server::Listen(const std::string& address) {
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  // Without this, gRPC sets SO_REUSEPORT and a second ckptd could share the port.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  int port = 0;
  builder.AddListeningPort(
      address, tls_ != nullptr ? tls_->credentials() : grpc::InsecureServerCredentials(), &port);
  builder.SetMaxReceiveMessageSize(static_cast<int>(options_.max_message_bytes));
  builder.SetMaxSendMessageSize(static_cast<int>(options_.max_message_bytes));
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, options_.max_concurrent_streams);
  builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_IDLE_MS, Millis(options_.max_connection_idle));
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, Millis(options_.keepalive_time));
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, Millis(options_.keepalive_timeout));
  grpc::ResourceQuota quota("ckptd");
  quota.Resize(options_.max_grpc_memory_bytes);
  builder.SetResourceQuota(quota);
  builder.RegisterService(health_.get());
  builder.RegisterService(checkpoint_.get());
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> interceptors;
  interceptors.push_back(metrics_->rpc().NewInterceptorFactory());
  if (options_.activity != nullptr) {
    interceptors.push_back(MakeActivityInterceptorFactory(options_.activity));
  }
  if (authorizer_ != nullptr) interceptors.push_back(NewReflectionGuard(authorizer_.get()));
  builder.experimental().SetInterceptorCreators(std::move(interceptors));
  std::unique_ptr<grpc::Server> grpc_server = builder.BuildAndStart();
  if (grpc_server == nullptr || port == 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot listen on ", address, "; check --listen"));
  }
  if (port_ == 0 && !listen_.is_unix()) port_ = port;  // gRPC says 1 for a Unix socket
  absl::MutexLock lock(&servers_mu_);
  grpc_servers_.push_back(std::move(grpc_server));
  return absl::OkStatus();
}

absl::Status Server::StartHttp() {
  if (options_.http_listen_address.empty()) return absl::OkStatus();
  HttpServerOptions http;
  http.listen_address = options_.http_listen_address;
  if (tls_ != nullptr) {
    http.tls_setup = [tls = tls_.get()](SSL_CTX& ctx) { return tls->ConfigureSslContext(&ctx); };
  }
  // A replica serves /metrics only: the dashboard and its JSON API read one local engine.
  if (engine_ != nullptr) {
    history_ = std::make_unique<ThroughputHistory>(engine_, ThroughputHistoryOptions());
    gateway_ = std::make_unique<JsonGateway>(engine_, options_.limits, checkpoint_->watch_hub(),
                                             authorizer_.get(), history_.get());
  }
  CKPT_ASSIGN_OR_RETURN(
      http_server_, HttpServer::Start(http, [this](httplib::Server& routes) {
        routes.Get("/metrics", [this](const httplib::Request&, httplib::Response& response) {
          response.set_content(metrics_->Render(), std::string(kExpositionContentType));
        });
        if (gateway_ != nullptr) {
          gateway_->Install(routes);
          InstallDashboard(routes);
        }
      }));
  return absl::OkStatus();
}

Server::Server(ServerOptions options, std::unique_ptr<ServerMetrics> metrics,
               std::unique_ptr<ShardSet> shards, std::unique_ptr<Replica> replica, Store* store,
               Engine* engine, std::unique_ptr<ServerTls> tls,
               std::unique_ptr<auth::Authorizer> authorizer)
    : options_(std::move(options)),
      metrics_(std::move(metrics)),
      shards_(std::move(shards)),
      replica_(std::move(replica)),
      store_(store),
      engine_(engine),
      tls_(std::move(tls)),
      authorizer_(std::move(authorizer)),
      health_(std::make_unique<HealthService>()),
      checkpoint_(std::make_unique<CheckpointService>(
          replica_ != nullptr ? replica_->shards() : shards_.get(),
          replica_ != nullptr ? replica_->forwarder() : nullptr, options_.limits,
          authorizer_.get())) {}

absl::Status Server::Reload() {
  absl::Status first_error;
  if (tls_ != nullptr) {
    absl::StatusOr<std::string> loaded = tls_->Reload();
    LogLine(loaded.ok()
                ? absl::StrCat("reloaded TLS: ", *loaded)
                : absl::StrCat("kept the previous TLS certificate: ", loaded.status().message()));
    first_error.Update(loaded.status());
  }
  if (authorizer_ != nullptr) {
    absl::StatusOr<std::string> loaded = authorizer_->Reload();
    LogLine(loaded.ok() ? absl::StrCat("reloaded auth file ", options_.auth_file, ": ", *loaded)
                        : absl::StrCat("kept the previous auth file: ", loaded.status().message()));
    first_error.Update(loaded.status());
  }
  if (tls_ == nullptr && authorizer_ == nullptr) {
    LogLine("nothing to reload: no --tls_cert and no --auth_file");
  }
  return first_error;
}

Server::~Server() { Shutdown(absl::Seconds(5)); }

std::string Server::address() const {
  if (listen_.is_unix()) return absl::StrCat("unix:", listen_.unix_path);
  const std::string& host = listen_.host;
  return absl::StrCat(host.find(':') != std::string::npos ? absl::StrCat("[", host, "]") : host,
                      ":", port_);
}

int Server::http_port() const { return http_server_ == nullptr ? 0 : http_server_->port(); }

std::string Server::http_address() const {
  return http_server_ == nullptr ? "" : http_server_->address();
}

std::string Server::http_url() const { return http_server_ == nullptr ? "" : http_server_->url(); }

void Server::Shutdown(absl::Duration grace) {
  absl::MutexLock lock(&shutdown_mu_);
  if (shut_down_) return;
  shut_down_ = true;
  health_->SetServing(false);
  // HTTP first: its handlers read the engine. Its event streams end with the hub's.
  if (http_server_ != nullptr) {
    if (gateway_ != nullptr) {
      gateway_->BeginShutdown();
      checkpoint_->watch_hub()->Shutdown();
    }
    http_server_->Shutdown();
  }
  const absl::Time deadline = absl::Now() + grace;
  // A replica hands its shards over first, forwarding their calls meanwhile, so that
  // its clients see no refusal.
  if (replica_ != nullptr && !replica_->Leave(deadline)) {
    LogLine(
        "not every shard was handed over within the grace: the others take the rest "
        "when their leases run out");
  }
  // New calls are answered UNAVAILABLE from here on; calls in flight finish (their
  // writes commit) within the grace. What is still queued after it is answered
  // UNAVAILABLE, never applied; only the group being written is waited for.
  checkpoint_->BeginShutdown();
  if (!checkpoint_->AwaitIdle(deadline)) {
    if (engine_ != nullptr) engine_->RefuseQueued();
    if (replica_ != nullptr) replica_->Stop();
    checkpoint_->AwaitIdle(absl::InfiniteFuture());
  }
  // Streams told to end (WatchJob: UNAVAILABLE; health: NOT_SERVING) get to say so,
  // within the grace (a client that stopped reading holds its stream).
  checkpoint_->AwaitNoWatchers(deadline);
  health_->AwaitNoWatchers(deadline);
  // Nothing is in flight: close every connection now, idle ones included, rather than
  // wait the grace for clients to hang up.
  keeper_.reset();
  reclaimer_.reset();
  absl::MutexLock servers_lock(&servers_mu_);
  for (auto& grpc_server : grpc_servers_) grpc_server->Shutdown(absl::ToChronoTime(absl::Now()));
  for (auto& grpc_server : grpc_servers_) grpc_server->Wait();
  checkpoint_.reset();
  if (store_ != nullptr) store_->SetAvailabilityListener(nullptr);
  shards_.reset();   // closes the engine, then the store
  replica_.reset();  // retires its shards, then closes the database
}

}  // namespace ckpt
