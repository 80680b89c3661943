// ckptd replicas the bench starts over one PostgreSQL database (docs/deploy.md): N
// ckptd with --advertise on free loopback ports, in a schema of their own so that
// every replica count starts from an empty store on the same database server, and
// the lease table read to know when the shards are split fairly and who owns which.
#ifndef CKPT_TOOLS_BENCH_REPLICA_SET_H_
#define CKPT_TOOLS_BENCH_REPLICA_SET_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "tools/bench/child.h"

namespace ckpt {
class PgConnection;

namespace bench {

struct ReplicaSetOptions {
  std::string ckptd;  // the ckptd binary
  // The database: a postgresql:// URI (a query string is kept); a password may come
  // from PGPASSFILE, which the replicas inherit.
  std::string database_uri;
  std::string schema;  // created by Start (must not exist), dropped by the destructor
  // 0: ONE ckptd with --store and no --advertise (one engine for every job; not a
  // replica), the reference the replica counts compare with.
  int replicas = 1;
  int shards = 16;  // --shards of the store the replicas initialise
};

// Thread-compatible (one owner).
class ReplicaSet {
 public:
  // Creates the schema, starts the ckptd processes at once, and returns when every
  // shard is held and each replica holds its fair share. UNAVAILABLE with a ckptd's
  // stderr if one does not start; DEADLINE_EXCEEDED if the shares never settle (a bound
  // for a broken cluster, 120 s).
  static absl::StatusOr<std::unique_ptr<ReplicaSet>> Start(const ReplicaSetOptions& options);
  // Stops what still runs and drops the schema.
  ~ReplicaSet();
  ReplicaSet(const ReplicaSet&) = delete;
  ReplicaSet& operator=(const ReplicaSet&) = delete;

  const std::vector<std::unique_ptr<ChildServer>>& servers() const { return servers_; }
  // The address serving each shard now (shard -> address); every shard maps to the
  // single ckptd when replicas == 0.
  absl::StatusOr<std::map<int, std::string>> Owners() const;
  // Write transactions started on the whole PostgreSQL server so far (txid_current(),
  // which takes one itself) and WAL bytes written (pg_current_wal_lsn()): the difference
  // of two readings is what happened between them.
  struct DatabaseProgress {
    int64_t xid = 0;
    int64_t wal_bytes = 0;
  };
  absl::StatusOr<DatabaseProgress> Progress() const;
  // SIGTERM to each ckptd in turn, the last started first (each hands its shards to
  // those still running), waiting for each. The first failure, with its stderr.
  absl::Status Stop();

 private:
  ReplicaSet(ReplicaSetOptions options, std::unique_ptr<PgConnection> admin);
  absl::Status StartServers();
  absl::Status AwaitFairShares() const;

  const ReplicaSetOptions options_;
  std::unique_ptr<PgConnection> admin_;  // in the database, outside the schema
  std::string store_uri_;                // database_uri with the schema as search_path
  std::vector<std::unique_ptr<ChildServer>> servers_;
};

}  // namespace bench
}  // namespace ckpt

#endif  // CKPT_TOOLS_BENCH_REPLICA_SET_H_
