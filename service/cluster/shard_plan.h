// Which shards a replica should take and which it should hand over, given the lease
// table as last read: a pure function, so that every replica, reading the same table,
// reaches the same conclusion without talking to the others.
//
// Fair share: the live members, sorted by id, split the shards as evenly as they go;
// the first (shards % members) take one more. A member below its share takes free
// shards (never owned, released, expired, or owned by a member that is gone); a member
// above it releases one shard per round, and only while some other member is below its
// own share (so a shard is never released with nobody to take it). A shard that stays
// free for long (the members disagree about who is live) may be taken by anyone.
#ifndef CKPT_SERVICE_CLUSTER_SHARD_PLAN_H_
#define CKPT_SERVICE_CLUSTER_SHARD_PLAN_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"

namespace ckpt {

// A shard's lease row.
struct ShardLease {
  int shard = 0;
  std::string owner;    // the owning member's id; empty if never owned
  std::string address;  // the owner's gRPC address
  int64_t epoch = 0;    // raised by every take; 0 if never owned
  bool held = false;    // the lease runs (not expired, not released)
};

// A replica that takes part: its member row is renewed and its session is alive.
struct ClusterMember {
  std::string id;
  std::string address;
};

struct ClusterView {
  std::vector<ShardLease> shards;      // shards[i].shard == i, for every shard
  std::vector<ClusterMember> members;  // the live ones
};

struct ShardPlan {
  std::vector<int> take;
  std::vector<int> release;
};

struct PlanInput {
  std::string me;                    // this replica's member id
  bool leaving = false;              // shutting down: release everything, take nothing
  absl::flat_hash_set<int> mine;     // shards this replica holds (serving or loading)
  absl::flat_hash_set<int> overdue;  // free for longer than a lease: anyone may take them
};

// A shard is free for `me` when its lease is not held, or its owner is not a live
// member; never when `me` holds it.
bool IsFree(const ClusterView& view, const ShardLease& lease, const std::string& me);

// This member's share of `shards` among the live members plus `me` (0 if `me` is
// leaving).
int FairShare(const ClusterView& view, const PlanInput& input);

ShardPlan PlanShards(const ClusterView& view, const PlanInput& input);

}  // namespace ckpt

#endif  // CKPT_SERVICE_CLUSTER_SHARD_PLAN_H_
