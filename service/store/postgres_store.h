// The PostgreSQL store: ckpt's records, byte for byte as in RocksDB, in one table of a
// PostgreSQL database, for a ckptd whose state must outlive its machine. The mapping
// (table, keys, transactions, schema version, ownership) is in STORAGE_FORMAT.md.
//
// Each Write is one transaction: the owner check, then a statement per range delete,
// one multi-row delete and one multi-row upsert (arrays of families, keys and values),
// pipelined in one round trip and committed with synchronous_commit=on. A ReadView is
// a REPEATABLE READ, READ ONLY transaction on a pooled connection. Scans read pages by
// key. Connections that fail are opened again on the next use, spaced out by a backoff
// while the server is away; the store itself never gives up.
//
// PostgresStore::Open is one ckptd owning the whole store (shard 0). ckptd itself opens a
// PostgresDatabase instead: the store split into shards that replicas own through
// leases (shard_leases.h), each shard a PostgresStore fenced by its owner's epoch.
#ifndef CKPT_SERVICE_STORE_POSTGRES_STORE_H_
#define CKPT_SERVICE_STORE_POSTGRES_STORE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "service/common/clock.h"
#include "service/store/shard_leases.h"
#include "service/store/store.h"

namespace ckpt {

class PgConnection;
class PgConnector;
class PgPool;
class PgReader;

struct PostgresStoreOptions {
  // A libpq connection string ("host=... dbname=...") or URI
  // ("postgresql://user@host1,host2/dbname?target_session_attrs=read-write"). It may
  // hold a password: nothing prints it; messages name the store by host, port, user
  // and database only. ckpt's defaults (target_session_attrs=read-write,
  // connect_timeout=10, TCP keepalives) apply unless it says otherwise.
  std::string conninfo;
  // This ckptd's gRPC address, written in the owner row for whoever finds the store
  // taken.
  std::string address;
  // Who this ckptd is, for the same row; empty: "ckptd on HOST pid PID".
  std::string owner;
  // The ownership lease (renewed every lease/5): how long a frozen or cut-off ckptd
  // keeps another from taking the store over. One that exits or dies holds nothing.
  absl::Duration lease = absl::Seconds(10);
  // Connections for reads (views, point reads, scan pages); writes have their own.
  size_t read_connections = 8;
  Clock* clock = Clock::Real();  // the schema record's create time
};

// Thread-safe.
class PostgresStore : public Store {
 public:
  // Connects, creates ckpt's tables on a database without them (or checks them), and
  // takes ownership. Errors are one line saying what to do:
  //   INVALID_ARGUMENT: `conninfo` does not parse;
  //   UNAVAILABLE: PostgreSQL cannot be reached (or the owner row stays locked);
  //   FAILED_PRECONDITION: another live ckptd owns the store, the schema is newer or
  //     damaged or not ckpt's, or the role may not create the tables;
  //   DATA_LOSS: the schema record is unreadable.
  static absl::StatusOr<std::unique_ptr<PostgresStore>> Open(const PostgresStoreOptions& options);
  // Stops renewing the lease and closes every connection: another ckptd may take over
  // at once.
  ~PostgresStore() override;

  // The records of `shard` of the store `connector` and `pool` reach, whose writes
  // `fence` admits. For PostgresDatabase::OpenShard.
  PostgresStore(std::shared_ptr<PgConnector> connector, std::shared_ptr<PgPool> pool,
                std::shared_ptr<ShardFence> fence, int32_t shard, uint32_t schema_version);

  std::unique_ptr<WriteBatch> NewBatch() const override;
  // One transaction, committed durably or not at all. UNAVAILABLE when the server
  // cannot be reached, when the connection is lost during the commit (the outcome is
  // unknown: it may have been applied), or when another ckptd took the store over (from
  // then on every write is refused); RESOURCE_EXHAUSTED when the database's disk is
  // full; DATA_LOSS when PostgreSQL reports corruption.
  absl::Status Write(WriteBatch* batch) override;
  // UNAVAILABLE when the server cannot be reached. The view holds a connection until
  // destroyed; destroy its iterators first.
  absl::StatusOr<std::unique_ptr<ReadView>> NewReadView() const override;
  uint32_t schema_version() const override { return schema_version_; }
  // Reached through the listener: false while the server cannot be reached or after
  // another ckptd took the store over.
  void SetAvailabilityListener(std::function<void(bool)> listener) override;
  // Always FAILED_PRECONDITION: a consistent copy of a PostgreSQL database is
  // PostgreSQL's job (pg_basebackup, or the cluster manager's backups under Patroni).
  absl::StatusOr<StoreCopy> Checkpoint(const std::string& dir) override;

  // Each read runs on its own; a Scan's pages may see writes made between them (use a
  // ReadView for one moment).
  absl::StatusOr<std::optional<std::string>> Get(Cf cf, absl::string_view key) const override;
  std::unique_ptr<StoreIterator> Scan(Cf cf, absl::string_view prefix,
                                      absl::string_view start = {}) const override;
  absl::StatusOr<std::optional<std::pair<std::string, std::string>>> Floor(
      Cf cf, absl::string_view prefix, absl::string_view key) const override;
  bool FloorIsCheap() const override { return true; }

  // "postgresql://user@host:port/dbname": the store's name in messages (no password).
  const std::string& display_name() const { return display_name_; }
  // This ckptd's epoch as the shard's owner.
  int64_t epoch() const;

 private:
  class View;
  // Lets the fence know what a failure says: fenced, or the server unreachable.
  // Returns the status to report.
  absl::Status Noted(absl::Status status) const;

  const std::shared_ptr<PgConnector> connector_;
  const std::shared_ptr<PgPool> pool_;
  const std::shared_ptr<ShardFence> fence_;
  const int32_t shard_;
  const std::string display_name_;
  const std::unique_ptr<PgReader> reader_;  // through the pool
  const uint32_t schema_version_;

  absl::Mutex write_mu_;
  std::unique_ptr<PgConnection> writer_ ABSL_GUARDED_BY(write_mu_);
};

struct PostgresDatabaseOptions {
  std::string conninfo;  // as PostgresStoreOptions::conninfo
  // How many shards a database initialised now gets (1..kMaxShards in
  // service/cluster/shard_map.h); an existing one keeps the number it was made with.
  int shards = 16;
  // Connections for reads, shared by every shard; each shard's writes have their own.
  size_t read_connections = 8;
  Clock* clock = Clock::Real();  // the schema record's create time
};

// A PostgreSQL store shared by replicas: the schema (created on a database without
// ckpt's tables, with the shard count; checked otherwise), the connections, the lease
// table, and the shards' stores. Thread-safe.
class PostgresDatabase : public ShardedStore {
 public:
  // Errors as PostgresStore::Open's, less the ownership ones.
  static absl::StatusOr<std::unique_ptr<PostgresDatabase>> Open(
      const PostgresDatabaseOptions& options);
  ~PostgresDatabase() override;

  int shards() const override { return shards_; }
  const std::string& display_name() const override;
  uint32_t schema_version() const { return schema_version_; }
  std::unique_ptr<ShardLeaseTable> NewLeaseTable(const MemberClaim& claim) override;
  std::unique_ptr<Store> OpenShard(int shard, std::shared_ptr<ShardFence> fence) override;

 private:
  PostgresDatabase(std::shared_ptr<PgConnector> connector, std::shared_ptr<PgPool> pool, int shards,
                   uint32_t schema_version, int64_t owners_oid);
  friend class PostgresStore;

  const std::shared_ptr<PgConnector> connector_;
  const std::shared_ptr<PgPool> pool_;
  const int shards_;
  const uint32_t schema_version_;
  const int64_t owners_oid_;
};

// How messages name the store at `conninfo`: "postgresql://user@host:port/dbname", no
// password; INVALID_ARGUMENT as in Open if it does not parse.
absl::StatusOr<std::string> PostgresDisplayName(absl::string_view conninfo);

}  // namespace ckpt

#endif  // CKPT_SERVICE_STORE_POSTGRES_STORE_H_
