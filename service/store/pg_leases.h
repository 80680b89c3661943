// The replicas' lease table on PostgreSQL (shard_leases.h): ckpt_owners' rows as
// per-shard leases, ckpt_members' rows as the replicas taking part. One session
// connection per replica holds the member's advisory lock for as long as it is open:
// PostgreSQL drops it with the connection, so a replica that dies is seen gone at once,
// while one that is frozen keeps its lock and is seen gone when its row's lease runs
// out. Every SQL statement is in pg_sql.h. Internal to service/store.
#ifndef CKPT_SERVICE_STORE_PG_LEASES_H_
#define CKPT_SERVICE_STORE_PG_LEASES_H_

#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "service/store/pg_pool.h"
#include "service/store/shard_leases.h"

namespace ckpt {

// Not thread-safe (ShardLeaseTable).
class PgShardLeases : public ShardLeaseTable {
 public:
  // `connector` must outlive the table; `shards` is the store's shard count.
  PgShardLeases(PgConnector* connector, MemberClaim claim, int shards);
  // Closes the session, which frees the member's lock.
  ~PgShardLeases() override;

  absl::StatusOr<ClusterView> Read() override;
  absl::StatusOr<int64_t> Take(int shard, int64_t seen_epoch, bool owner_gone) override;
  absl::StatusOr<std::vector<int>> Renew(
      const std::vector<std::pair<int, int64_t>>& owned) override;
  absl::Status Release(int shard, int64_t epoch) override;
  absl::Status Leave() override;

 private:
  // The session, connected and joined (lock taken, member row written) if it was not.
  absl::StatusOr<PgConnection*> Session();
  absl::Status Join(PgConnection& c);
  // Drops a session that failed, so that the next call connects and joins again.
  template <typename T>
  T Checked(T result);

  PgConnector* const connector_;
  const MemberClaim claim_;
  const int shards_;
  const int64_t lock_key_;
  std::unique_ptr<PgConnection> session_;
};

// The member's advisory lock key: FNV-1a-64 of "ckpt_members/<id>".
int64_t MemberLockKey(const std::string& member_id);

}  // namespace ckpt

#endif  // CKPT_SERVICE_STORE_PG_LEASES_H_
