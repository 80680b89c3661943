// Who owns a shard of a PostgreSQL store, and the proof that it still does.
//
// The row ckpt_owners(shard, owner, address, epoch, expires) names the owner. Taking a
// shard raises its epoch; every write transaction of the owner first runs
// ckpt_check_owner(shard, epoch), which share-locks the row and fails (SQLSTATE CK001)
// once the epoch moved on, so a deposed owner, however frozen, never commits again.
// The owner renews `expires` every lease/5 and, for as long as it is connected, holds a
// session advisory lock keyed by (table, shard, epoch). Another ckptd may take the shard
// when the lease has expired (the owner is frozen or cut off) or when that lock is free
// (the owner exited or died: PostgreSQL drops a session's locks with its connection, so
// a restart after a crash takes over at once); otherwise it is refused. Internal to
// service/store; the replicas' per-shard leases build on the same row.
#ifndef CKPT_SERVICE_STORE_PG_OWNER_H_
#define CKPT_SERVICE_STORE_PG_OWNER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "service/store/pg_pool.h"
#include "service/store/shard_leases.h"

namespace ckpt {

struct OwnerClaim {
  int32_t shard = 0;
  std::string owner;    // who, for the one who finds the shard taken: "ckptd on HOST pid N"
  std::string address;  // the owner's gRPC address
  absl::Duration lease = absl::Seconds(10);
  int64_t owners_oid = 0;  // PgSchema::owners_oid
};

// Thread-safe.
class PgOwnership : public ShardFence {
 public:
  // Takes the shard (epoch + 1, or 1 for a new store), then renews it on a thread of
  // its own. FAILED_PRECONDITION naming the owner if another ckptd holds it (lease not
  // expired and its lock held); UNAVAILABLE if the owner row stays locked by a write in
  // flight, or the connection fails.
  static absl::StatusOr<std::unique_ptr<PgOwnership>> Take(PgConnector* connector,
                                                           const OwnerClaim& claim);
  // Stops renewing and closes its connection, which frees the lock: a successor may
  // take over at once.
  ~PgOwnership() override;

  int64_t epoch() const override { return epoch_; }
  // OK while this process owns the shard; UNAVAILABLE naming the new owner once a
  // renewal or a write found the epoch moved on.
  absl::Status Owned() const override;
  // A write was fenced (SQLSTATE CK001): the shard is someone else's now.
  void Deposed() override;
  // A connection to the server failed: report the store unreachable until a renewal
  // succeeds, and try one now.
  void Unreachable() override;
  // Called with false when the store becomes unreachable or the shard is lost, and with
  // true when it is reachable again; at once with the current state. Called on the
  // renewing thread or the caller's, under a lock that SetListener(nullptr) waits for.
  void SetListener(std::function<void(bool)> listener) override;

 private:
  PgOwnership(PgConnector* connector, OwnerClaim claim, int64_t epoch,
              std::unique_ptr<PgConnection> session, bool locked);
  void RenewLoop();
  absl::Status Renew();
  void SetAvailable(bool available);
  void SetDeposed(absl::Status why);
  absl::Status DeposedStatus(PgConnection& c);

  PgConnector* const connector_;
  const OwnerClaim claim_;
  const int64_t epoch_;
  // The renewing thread's; holds the lock while connected.
  std::unique_ptr<PgConnection> session_;
  bool locked_;

  mutable absl::Mutex mu_;
  absl::Status deposed_ ABSL_GUARDED_BY(mu_);
  bool available_ ABSL_GUARDED_BY(mu_) = true;
  bool wake_ ABSL_GUARDED_BY(mu_) = false;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;

  absl::Mutex listener_mu_;
  std::function<void(bool)> listener_ ABSL_GUARDED_BY(listener_mu_);

  std::thread renewer_;
};

// The advisory lock key of a shard's owner at `epoch` (FNV-1a-64 of
// "ckpt_owners/<oid>/<shard>/<epoch>").
int64_t OwnerLockKey(int64_t owners_oid, int32_t shard, int64_t epoch);

}  // namespace ckpt

#endif  // CKPT_SERVICE_STORE_PG_OWNER_H_
