#include "service/server/replica.h"

#include <unistd.h>

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "service/cluster/shard_map.h"
#include "service/common/log.h"
#include "service/common/status_macros.h"
#include "service/server/server.h"

namespace ckpt {
namespace {

// Unique per process, readable in the lease table: the address, then when and which
// process started.
std::string NewMemberId(const std::string& advertise) {
  return absl::StrCat(advertise, "/", absl::ToUnixMicros(absl::Now()), "-", ::getpid());
}

absl::Status CheckAdvertise(const std::string& advertise) {
  absl::StatusOr<ListenAddress> parsed = ParseListenAddress(advertise);
  if (!parsed.ok() || parsed->is_unix() || parsed->port == 0 || parsed->host.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--advertise=", advertise,
                     " must be HOST:PORT with a port, where the other replicas reach this one "
                     "(usually the --listen address)"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<Replica>> Replica::Open(const ReplicaOptions& options) {
  CKPT_RETURN_IF_ERROR(CheckAdvertise(options.advertise));
  if (options.shards < 1 || options.shards > kMaxShards) {
    return absl::InvalidArgumentError(
        absl::StrCat("--shards=", options.shards, " must be in 1..", kMaxShards));
  }
  PostgresDatabaseOptions database;
  database.conninfo = options.conninfo;
  database.shards = options.shards;
  database.read_connections = options.read_connections;
  database.clock = options.engine.clock;
  CKPT_ASSIGN_OR_RETURN(std::unique_ptr<PostgresDatabase> opened, PostgresDatabase::Open(database));
  return std::unique_ptr<Replica>(new Replica(options, std::move(opened)));
}

Replica::Replica(ReplicaOptions options, std::unique_ptr<PostgresDatabase> database)
    : options_(std::move(options)),
      member_id_(NewMemberId(options_.advertise)),
      database_(std::move(database)) {
  ShardSetOptions set;
  set.shards = database_->shards();
  set.on_stale = [this] {
    absl::MutexLock lock(&mu_);
    if (coordinator_ != nullptr) coordinator_->Wake();
  };
  // The forwarder is made below, before any round of the coordinator can move a shard.
  set.on_moved = [this](int shard, const std::string& former_owner) {
    forwarder_->Abandon(former_owner, shard);
  };
  shards_ = std::make_unique<ShardSet>(set);
  ForwarderOptions forward;
  forward.self = options_.advertise;
  forward.max_message_bytes = options_.max_message_bytes;
  forwarder_ = std::make_unique<Forwarder>(forward);
}

Replica::~Replica() {
  Stop();
  shards_.reset();  // before the database its stores use
}

absl::StatusOr<std::unique_ptr<Engine>> Replica::OpenEngine(int shard, Store* store) const {
  EngineOptions engine = options_.engine;
  engine.id_first = static_cast<uint64_t>(shard) + 1;
  engine.id_stride = static_cast<uint64_t>(database_->shards());
  return Engine::Open(store, engine);
}

absl::Status Replica::Join(std::function<void(bool)> on_health) {
  ShardCoordinatorOptions coordinate;
  coordinate.member.id = member_id_;
  coordinate.member.address = options_.advertise;
  coordinate.member.lease = options_.lease;
  coordinate.interval = std::max(options_.lease / 10, absl::Milliseconds(100));
  coordinate.gone_after = std::min(absl::Seconds(2), options_.lease);
  coordinate.open_engine = [this](int shard, Store* store) { return OpenEngine(shard, store); };
  coordinate.on_health = std::move(on_health);
  CKPT_ASSIGN_OR_RETURN(std::unique_ptr<ShardCoordinator> coordinator,
                        ShardCoordinator::Start(database_.get(), shards_.get(), coordinate));
  LogLine(absl::StrCat("joined the cluster on ", database_->display_name(), " as ", member_id_,
                       " (", database_->shards(), " shards)"));
  absl::MutexLock lock(&mu_);
  coordinator_ = std::move(coordinator);
  return absl::OkStatus();
}

bool Replica::Leave(absl::Time deadline) {
  ShardCoordinator* coordinator;
  {
    absl::MutexLock lock(&mu_);
    coordinator = coordinator_.get();
  }
  // Only Stop destroys the coordinator, and the server calls it after Leave returns.
  return coordinator == nullptr || coordinator->Leave(deadline);
}

void Replica::Stop() {
  std::unique_ptr<ShardCoordinator> coordinator;
  {
    absl::MutexLock lock(&mu_);
    coordinator.swap(coordinator_);
  }
  coordinator.reset();
}

}  // namespace ckpt
