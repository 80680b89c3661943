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
#include "service/store/store.h"

namespace ckpt {

class PgConnection;
class PgConnector;
class PgOwnership;
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

  // "postgresql://user@host:port/dbname": the store's name in messages (no password).
  const std::string& display_name() const { return display_name_; }
  // This ckptd's epoch as the store's owner.
  int64_t epoch() const;

 private:
  class View;
  PostgresStore(std::unique_ptr<PgConnector> connector, std::unique_ptr<PgOwnership> ownership,
                std::unique_ptr<PgConnection> writer, size_t read_connections,
                uint32_t schema_version);
  // Lets the ownership know what a failure says: fenced, or the server unreachable.
  // Returns the status to report.
  absl::Status Noted(absl::Status status) const;

  const int32_t shard_ = 0;  // the replicas issue adds owned shards
  const std::unique_ptr<PgConnector> connector_;
  const std::string display_name_;
  const std::unique_ptr<PgOwnership> ownership_;
  const std::unique_ptr<PgPool> pool_;
  const std::unique_ptr<PgReader> reader_;  // through the pool
  const uint32_t schema_version_;

  absl::Mutex write_mu_;
  std::unique_ptr<PgConnection> writer_ ABSL_GUARDED_BY(write_mu_);
};

// How messages name the store at `conninfo`: "postgresql://user@host:port/dbname", no
// password; INVALID_ARGUMENT as in Open if it does not parse.
absl::StatusOr<std::string> PostgresDisplayName(absl::string_view conninfo);

}  // namespace ckpt

#endif  // CKPT_SERVICE_STORE_POSTGRES_STORE_H_
