#include "service/store/postgres_store.h"

#include <unistd.h>

#include <cassert>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "service/common/status_macros.h"
#include "service/store/pg_batch.h"
#include "service/store/pg_connection.h"
#include "service/store/pg_leases.h"
#include "service/store/pg_owner.h"
#include "service/store/pg_pool.h"
#include "service/store/pg_reader.h"
#include "service/store/pg_schema.h"
#include "service/store/pg_sql.h"

namespace ckpt {
namespace {

std::string DefaultOwner() {
  char host[256] = {};
  if (::gethostname(host, sizeof(host) - 1) != 0) host[0] = '\0';
  return absl::StrCat("ckptd on ", host[0] != '\0' ? host : "unknown host", " pid ", ::getpid());
}

// A status that says the server could not be reached (rather than refusing a statement).
bool IsConnectionFailure(const absl::Status& status) {
  if (!absl::IsUnavailable(status)) return false;
  const std::string state = SqlState(status);
  return state.empty() || absl::StartsWith(state, "08") || absl::StartsWith(state, "57P") ||
         state == "25006";
}

}  // namespace

// A REPEATABLE READ, READ ONLY transaction on a pooled connection.
class PostgresStore::View : public ReadView {
 public:
  View(const PostgresStore* store, PgPool::Lease connection)
      : store_(store),
        connection_(std::move(connection)),
        reader_(store->shard_,
                [this](const pgsql::Statement& s, const PgParams& p) -> absl::StatusOr<PgResult> {
                  absl::MutexLock lock(&mu_);
                  absl::StatusOr<PgResult> result = connection_->Run(s, p);
                  if (!result.ok()) return store_->Noted(result.status());
                  return result;
                }) {}
  ~View() override {
    absl::MutexLock lock(&mu_);
    // A failure leaves the connection broken, and the pool drops it.
    connection_->RunSql(pgsql::kEndView, "end a read view").IgnoreError();
  }

  absl::StatusOr<std::optional<std::string>> Get(Cf cf, absl::string_view key) const override {
    return reader_.Get(cf, key);
  }
  std::unique_ptr<StoreIterator> Scan(Cf cf, absl::string_view prefix,
                                      absl::string_view start) const override {
    return reader_.Scan(cf, prefix, start);
  }
  absl::StatusOr<std::optional<std::pair<std::string, std::string>>> Floor(
      Cf cf, absl::string_view prefix, absl::string_view key) const override {
    return reader_.Floor(cf, prefix, key);
  }
  bool FloorIsCheap() const override { return true; }

 private:
  const PostgresStore* const store_;
  mutable absl::Mutex mu_;
  PgPool::Lease connection_;  // used under mu_
  const PgReader reader_;
};

absl::StatusOr<std::string> PostgresDisplayName(absl::string_view conninfo) {
  CKPT_ASSIGN_OR_RETURN(PgTarget target, PgTarget::Parse(conninfo));
  return target.display();
}

absl::StatusOr<std::unique_ptr<PostgresStore>> PostgresStore::Open(
    const PostgresStoreOptions& options) {
  PostgresDatabaseOptions database_options;
  database_options.conninfo = options.conninfo;
  database_options.shards = 1;
  database_options.read_connections = options.read_connections;
  database_options.clock = options.clock;
  CKPT_ASSIGN_OR_RETURN(std::unique_ptr<PostgresDatabase> database,
                        PostgresDatabase::Open(database_options));
  if (database->shards() != 1) {
    return absl::FailedPreconditionError(absl::StrCat(
        "store at ", database->display_name(), " was made for replicas (", database->shards(),
        " shards): start ckptd with --advertise=HOST:PORT to serve it "
        "as one of them"));
  }
  OwnerClaim claim;
  claim.owner = options.owner.empty() ? DefaultOwner() : options.owner;
  claim.address = options.address;
  claim.lease = options.lease;
  claim.owners_oid = database->owners_oid_;
  CKPT_ASSIGN_OR_RETURN(std::unique_ptr<PgOwnership> ownership,
                        PgOwnership::Take(database->connector_.get(), claim));
  return std::make_unique<PostgresStore>(database->connector_, database->pool_,
                                         std::move(ownership), /*shard=*/0,
                                         database->schema_version());
}

PostgresStore::PostgresStore(std::shared_ptr<PgConnector> connector, std::shared_ptr<PgPool> pool,
                             std::shared_ptr<ShardFence> fence, int32_t shard,
                             uint32_t schema_version)
    : connector_(std::move(connector)),
      pool_(std::move(pool)),
      fence_(std::move(fence)),
      shard_(shard),
      display_name_(connector_->target().display()),
      reader_(std::make_unique<PgReader>(
          shard_,
          [this](const pgsql::Statement& s, const PgParams& p) -> absl::StatusOr<PgResult> {
            absl::StatusOr<PgPool::Lease> connection = pool_->Acquire();
            if (!connection.ok()) return Noted(connection.status());
            absl::StatusOr<PgResult> result = (*connection)->Run(s, p);
            if (!result.ok()) return Noted(result.status());
            return result;
          })),
      schema_version_(schema_version) {}

PostgresStore::~PostgresStore() = default;

int64_t PostgresStore::epoch() const { return fence_->epoch(); }

absl::Status PostgresStore::Noted(absl::Status status) const {
  if (SqlState(status) == pgsql::kFencedState) {
    fence_->Deposed();
    const absl::Status owned = fence_->Owned();
    return owned.ok() ? status : owned;
  }
  if (IsConnectionFailure(status)) fence_->Unreachable();
  return status;
}

std::unique_ptr<WriteBatch> PostgresStore::NewBatch() const {
  return std::make_unique<PgWriteBatch>(this);
}

absl::Status PostgresStore::Write(WriteBatch* batch) {
  auto* pg_batch = static_cast<PgWriteBatch*>(batch);
  assert(pg_batch->store() == this);
  if (pg_batch->Count() == 0) return absl::OkStatus();
  CKPT_RETURN_IF_ERROR(fence_->Owned());
  std::vector<PgStep> steps;
  PgParams check;
  check.Int4(shard_).Int8(fence_->epoch());
  steps.push_back({&pgsql::kCheckOwner, std::move(check)});
  for (PgStep& step : StepsFor(*pg_batch, shard_)) steps.push_back(std::move(step));
  absl::MutexLock lock(&write_mu_);
  if (writer_ != nullptr && !writer_->Healthy()) writer_.reset();
  if (writer_ == nullptr) {
    absl::StatusOr<std::unique_ptr<PgConnection>> connected = connector_->Connect();
    if (!connected.ok()) return Noted(connected.status());
    writer_ = std::move(*connected);
  }
  const absl::Status written = writer_->RunPipeline(steps);
  if (!writer_->ok()) writer_.reset();
  return written.ok() ? written : Noted(written);
}

absl::StatusOr<std::unique_ptr<ReadView>> PostgresStore::NewReadView() const {
  absl::StatusOr<PgPool::Lease> connection = pool_->Acquire();
  if (!connection.ok()) return Noted(connection.status());
  const absl::Status begun = (*connection)->RunSql(pgsql::kBeginView, "begin a read view");
  if (!begun.ok()) return Noted(begun);
  return std::unique_ptr<ReadView>(std::make_unique<View>(this, std::move(*connection)));
}

void PostgresStore::SetAvailabilityListener(std::function<void(bool)> listener) {
  fence_->SetListener(std::move(listener));
}

absl::StatusOr<std::optional<std::string>> PostgresStore::Get(Cf cf, absl::string_view key) const {
  return reader_->Get(cf, key);
}

std::unique_ptr<StoreIterator> PostgresStore::Scan(Cf cf, absl::string_view prefix,
                                                   absl::string_view start) const {
  return reader_->Scan(cf, prefix, start);
}

absl::StatusOr<std::optional<std::pair<std::string, std::string>>> PostgresStore::Floor(
    Cf cf, absl::string_view prefix, absl::string_view key) const {
  return reader_->Floor(cf, prefix, key);
}

absl::StatusOr<StoreCopy> PostgresStore::Checkpoint(const std::string& /*dir*/) {
  return absl::FailedPreconditionError(absl::StrCat(
      "this ckptd stores in PostgreSQL (", display_name_,
      "), which ckptd does not copy itself: back the database up with PostgreSQL's tools "
      "(pg_basebackup, or point-in-time recovery with WAL archiving; under Patroni, its "
      "backup tooling), which copy it consistently while ckptd runs"));
}

// ---------------------------------------------------------------- PostgresDatabase

absl::StatusOr<std::unique_ptr<PostgresDatabase>> PostgresDatabase::Open(
    const PostgresDatabaseOptions& options) {
  CKPT_ASSIGN_OR_RETURN(PgTarget target, PgTarget::Parse(options.conninfo));
  auto connector = std::make_shared<PgConnector>(target);
  CKPT_ASSIGN_OR_RETURN(std::unique_ptr<PgConnection> setup, PgConnection::Connect(target));
  CKPT_ASSIGN_OR_RETURN(const PgSchema schema,
                        OpenSchema(*setup, options.clock->Now(), std::max(1, options.shards)));
  auto pool =
      std::make_shared<PgPool>(connector.get(), std::max<size_t>(1, options.read_connections));
  return std::unique_ptr<PostgresDatabase>(new PostgresDatabase(
      std::move(connector), std::move(pool), schema.shards, schema.version, schema.owners_oid));
}

PostgresDatabase::PostgresDatabase(std::shared_ptr<PgConnector> connector,
                                   std::shared_ptr<PgPool> pool, int shards,
                                   uint32_t schema_version, int64_t owners_oid)
    : connector_(std::move(connector)),
      pool_(std::move(pool)),
      shards_(shards),
      schema_version_(schema_version),
      owners_oid_(owners_oid) {}

PostgresDatabase::~PostgresDatabase() = default;

const std::string& PostgresDatabase::display_name() const { return connector_->target().display(); }

std::unique_ptr<ShardLeaseTable> PostgresDatabase::NewLeaseTable(const MemberClaim& claim) {
  return std::make_unique<PgShardLeases>(connector_.get(), claim, shards_);
}

std::unique_ptr<Store> PostgresDatabase::OpenShard(int shard, std::shared_ptr<ShardFence> fence) {
  return std::make_unique<PostgresStore>(connector_, pool_, std::move(fence), shard,
                                         schema_version_);
}

}  // namespace ckpt
