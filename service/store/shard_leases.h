// A store shared by several ckptd replicas (PostgreSQL): its jobs split into shards,
// each owned by one replica at a time through a lease row fenced by epoch
// (STORAGE_FORMAT.md, "Replicas"). This is what a replica's coordinator
// (service/cluster/shard_coordinator.h) needs from such a store, free of SQL: the lease
// table, and a Store for one shard whose writes commit only while its epoch is current.
#ifndef CKPT_SERVICE_STORE_SHARD_LEASES_H_
#define CKPT_SERVICE_STORE_SHARD_LEASES_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "service/store/store.h"

namespace ckpt {

// A shard's lease row as last read.
struct ShardLease {
  int shard = 0;
  std::string owner;    // the owning member's id; empty if never owned
  std::string address;  // the owner's gRPC address
  int64_t epoch = 0;    // raised by every take; 0 if never owned
  bool held = false;    // the lease runs: not expired, not released
};

// A replica taking part in the cluster, as the member table shows it.
struct ClusterMember {
  std::string id;
  std::string address;
  bool renewed = false;    // its row's lease runs
  bool connected = false;  // its session to the database is open (it holds its lock)
};

// Everything a replica plans with, read at one moment.
struct ClusterView {
  std::vector<ShardLease> shards;      // shards[i].shard == i, for every shard
  std::vector<ClusterMember> members;  // the live ones (after the coordinator's filter)
};

// Who this replica is in the lease table.
struct MemberClaim {
  std::string id;       // unique per process: "ADDRESS/INCARNATION"
  std::string address;  // where other replicas forward calls (--advertise)
  absl::Duration lease = absl::Seconds(10);
};

// The shard leases and the member rows. Not thread-safe: one coordinator thread uses it.
// Every method may fail UNAVAILABLE (the database cannot be reached now); the next call
// connects again and rejoins.
class ShardLeaseTable {
 public:
  virtual ~ShardLeaseTable() = default;
  // Registers (or re-registers after a lost connection) this member, renews its row,
  // and reads every shard's lease and every member.
  virtual absl::StatusOr<ClusterView> Read() = 0;
  // Takes `shard` if its epoch is still `seen_epoch` and (unless `owner_gone`) its
  // lease is not held: returns the new epoch, or FAILED_PRECONDITION if someone else
  // took or renewed it first.
  virtual absl::StatusOr<int64_t> Take(int shard, int64_t seen_epoch, bool owner_gone) = 0;
  // Extends the leases of `owned` (shard -> epoch) by the lease time from now; returns
  // those still this member's at that epoch (the others were taken).
  virtual absl::StatusOr<std::vector<int>> Renew(
      const std::vector<std::pair<int, int64_t>>& owned) = 0;
  // Ends this member's lease on `shard` at `epoch` at once: anyone may take it now.
  virtual absl::Status Release(int shard, int64_t epoch) = 0;
  // Removes this member's row: the others stop counting it at once.
  virtual absl::Status Leave() = 0;
};

// The proof that a shard's writes may commit: its epoch, checked inside every write
// transaction. Thread-safe.
class ShardFence {
 public:
  virtual ~ShardFence() = default;
  virtual int64_t epoch() const = 0;
  // OK while the owner has no reason to think it lost the shard; once it knows, the
  // status to refuse writes with (UNAVAILABLE).
  virtual absl::Status Owned() const = 0;
  // A write was refused by the fence: the shard is someone else's now.
  virtual void Deposed() = 0;
  // A connection to the database failed.
  virtual void Unreachable() = 0;
  // Store::SetAvailabilityListener of the fenced store.
  virtual void SetListener(std::function<void(bool)> listener) = 0;
};

// A store several replicas share, split into shards. Thread-safe.
class ShardedStore {
 public:
  virtual ~ShardedStore() = default;
  // Fixed when the store was first initialised.
  virtual int shards() const = 0;
  // "postgresql://user@host:port/dbname": the store's name in messages (no password).
  virtual const std::string& display_name() const = 0;
  // The lease table, on a connection of its own, for the member `claim`.
  virtual std::unique_ptr<ShardLeaseTable> NewLeaseTable(const MemberClaim& claim) = 0;
  // The records of `shard`; its writes commit only while `fence`'s epoch is the
  // shard's. Reads share the store's connections.
  virtual std::unique_ptr<Store> OpenShard(int shard, std::shared_ptr<ShardFence> fence) = 0;
};

}  // namespace ckpt

#endif  // CKPT_SERVICE_STORE_SHARD_LEASES_H_
