#include "service/server/server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/resource_quota.h>
#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "service/common/status_macros.h"
#include "service/engine/engine.h"
#include "service/http/http_server.h"
#include "service/http/json_gateway.h"
#include "service/metrics/exposition.h"
#include "service/rpc/checkpoint_service.h"
#include "service/server/health_service.h"
#include "service/server/listener_keeper.h"
#include "service/server/memory_reclaimer.h"
#include "service/server/server_metrics.h"

namespace ckpt {
namespace {

// gRPC reports only "could not bind"; binding once ourselves tells the operator why.
absl::Status CheckCanListen(const std::string& address, absl::string_view flag) {
  std::string host;
  int port = 0;
  CKPT_RETURN_IF_ERROR(ParseListenAddress(address, &host, &port));
  if (port == 0) return absl::OkStatus();
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* result = nullptr;
  const int rc = ::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &result);
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

int Millis(absl::Duration d) {
  return static_cast<int>(std::min<int64_t>(absl::ToInt64Milliseconds(d), INT32_MAX));
}

}  // namespace

absl::Status ParseListenAddress(absl::string_view address, std::string* host, int* port) {
  const size_t colon = address.rfind(':');
  if (colon == absl::string_view::npos || colon == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("listen address \"", address, "\" is not host:port (e.g. 127.0.0.1:7700)"));
  }
  absl::string_view h = address.substr(0, colon);
  if (h.size() >= 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  if (!absl::SimpleAtoi(address.substr(colon + 1), port) || *port < 0 || *port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("listen address \"", address, "\" has no valid port (0..65535)"));
  }
  *host = std::string(h);
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Server>> Server::Start(const ServerOptions& options) {
  CKPT_RETURN_IF_ERROR(CheckCanListen(options.listen_address, "listen"));
  if (!options.http_listen_address.empty()) {
    CKPT_RETURN_IF_ERROR(CheckCanListen(options.http_listen_address, "http_listen"));
  }
  CKPT_ASSIGN_OR_RETURN(std::unique_ptr<Store> store, RocksDbStore::Open(options.store));
  auto metrics = std::make_unique<ServerMetrics>(
      ServerMetricsOptions{options.metrics_max_jobs, options.store.path});
  EngineOptions engine_options;
  engine_options.clock = options.clock;
  engine_options.observer = metrics.get();
  CKPT_ASSIGN_OR_RETURN(std::unique_ptr<Engine> engine, Engine::Open(store.get(), engine_options));
  metrics->WatchEngine(engine.get());
  std::unique_ptr<Server> server(
      new Server(options, std::move(metrics), std::move(store), std::move(engine)));

  TapGrpcLog();
  const absl::Status listening = server->Listen(options.listen_address);
  if (!listening.ok()) {
    server->checkpoint_.reset();
    server->engine_.reset();
    absl::MutexLock lock(&server->shutdown_mu_);
    server->shut_down_ = true;
    return listening;
  }
  if (absl::Status http = server->StartHttp(); !http.ok()) {
    server->Shutdown(absl::ZeroDuration());
    return http;
  }
  std::string host;
  int unused_port = 0;
  CKPT_RETURN_IF_ERROR(ParseListenAddress(options.listen_address, &host, &unused_port));
  if (host.find(':') != std::string::npos) host = absl::StrCat("[", host, "]");
  const std::string bound = absl::StrCat(host, ":", server->port_);
  server->keeper_ = std::make_unique<ListenerKeeper>(
      server->port_, [s = server.get(), bound] { return s->Listen(bound); });
  server->reclaimer_ =
      std::make_unique<MemoryReclaimer>(options.memory_reclaim_interval, size_t{32} << 20);
  server->health_->SetServing(true);
  return server;
}

absl::Status Server::Listen(const std::string& address) {
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  // Without this, gRPC sets SO_REUSEPORT and a second ckptd could share the port.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  int port = 0;
  builder.AddListeningPort(address, grpc::InsecureServerCredentials(), &port);
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
  builder.experimental().SetInterceptorCreators(std::move(interceptors));
  std::unique_ptr<grpc::Server> grpc_server = builder.BuildAndStart();
  if (grpc_server == nullptr || port == 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot listen on ", address, "; check --listen"));
  }
  if (port_ == 0) port_ = port;
  absl::MutexLock lock(&servers_mu_);
  grpc_servers_.push_back(std::move(grpc_server));
  return absl::OkStatus();
}

absl::Status Server::StartHttp() {
  if (options_.http_listen_address.empty()) return absl::OkStatus();
  HttpServerOptions http;
  http.listen_address = options_.http_listen_address;
  gateway_ = std::make_unique<JsonGateway>(engine_.get(), options_.limits, checkpoint_->watch_hub(),
                                           /*authorizer=*/nullptr);
  CKPT_ASSIGN_OR_RETURN(
      http_server_, HttpServer::Start(http, [this](httplib::Server& routes) {
        routes.Get("/metrics", [this](const httplib::Request&, httplib::Response& response) {
          response.set_content(metrics_->Render(), std::string(kExpositionContentType));
        });
        gateway_->Install(routes);
      }));
  return absl::OkStatus();
}

Server::Server(ServerOptions options, std::unique_ptr<ServerMetrics> metrics,
               std::unique_ptr<Store> store, std::unique_ptr<Engine> engine)
    : options_(std::move(options)),
      metrics_(std::move(metrics)),
      store_(std::move(store)),
      engine_(std::move(engine)),
      health_(std::make_unique<HealthService>()),
      checkpoint_(std::make_unique<CheckpointService>(engine_.get(), options_.limits)) {}

Server::~Server() { Shutdown(absl::Seconds(5)); }

std::string Server::address() const {
  std::string host;
  int port = 0;
  if (!ParseListenAddress(options_.listen_address, &host, &port).ok()) return "";
  if (host.find(':') != std::string::npos) host = absl::StrCat("[", host, "]");
  return absl::StrCat(host, ":", port_);
}

int Server::http_port() const { return http_server_ == nullptr ? 0 : http_server_->port(); }

std::string Server::http_address() const {
  return http_server_ == nullptr ? "" : http_server_->address();
}

void Server::Shutdown(absl::Duration grace) {
  absl::MutexLock lock(&shutdown_mu_);
  if (shut_down_) return;
  shut_down_ = true;
  health_->SetServing(false);
  // HTTP first: its handlers read the engine. Its event streams end with the hub's.
  if (http_server_ != nullptr) {
    gateway_->BeginShutdown();
    checkpoint_->watch_hub()->Shutdown();
    http_server_->Shutdown();
  }
  // New calls are answered UNAVAILABLE from here on; calls in flight finish (their
  // writes commit) within the grace. What is still queued after it is answered
  // UNAVAILABLE, never applied; only the group being written is waited for.
  checkpoint_->BeginShutdown();
  if (!checkpoint_->AwaitIdle(absl::Now() + grace)) {
    engine_->RefuseQueued();
    checkpoint_->AwaitIdle(absl::InfiniteFuture());
  }
  // Nothing is in flight: close every connection now, idle ones included, rather than
  // wait the grace for clients to hang up.
  keeper_.reset();
  reclaimer_.reset();
  absl::MutexLock servers_lock(&servers_mu_);
  for (auto& grpc_server : grpc_servers_) grpc_server->Shutdown(absl::ToChronoTime(absl::Now()));
  for (auto& grpc_server : grpc_servers_) grpc_server->Wait();
  checkpoint_.reset();
  engine_.reset();
  store_.reset();
}

}  // namespace ckpt
