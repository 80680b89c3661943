// Which shards a replica should take and which it should hand over, given the lease
// table as last read (ClusterView, with only the live members): a pure function, so that every
// replica, reading the same table, reaches the same conclusion without talking to the others.
//
// Fair share: the live members, sorted by id, split the shards as evenly as they go;
// the first (shards % members) take one more. A member below its share takes free
// shards: never owned, released, expired, or owned by a member that is gone (its
// session to the database closed: it died). A member that is frozen or leaving drops out
// of the shares, but its shards are free only once their leases run out or it releases
// them. A member above its share releases one shard per round, and only while some
// other member is below its own share (so a shard is never released with nobody to take
// it). A shard that stays free for long (the members disagree about who is live) may be
// taken by anyone.
#ifndef CKPT_SERVICE_CLUSTER_SHARD_PLAN_H_
#define CKPT_SERVICE_CLUSTER_SHARD_PLAN_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "service/store/shard_leases.h"

namespace ckpt {

struct ShardPlan {
  std::vector<int> take;
  std::vector<int> release;
};

struct PlanInput {
  std::string me;                         // this replica's member id
  bool leaving = false;                   // shutting down: release everything, take nothing
  absl::flat_hash_set<int> mine;          // shards this replica holds (serving or loading)
  absl::flat_hash_set<int> overdue;       // free for longer than a lease: anyone may take them
  absl::flat_hash_set<std::string> gone;  // members whose session closed: their leases are void
};

// A shard is free for input.me when its lease is not held, or its owner is gone; never
// when input.me holds it.
bool IsFree(const ShardLease& lease, const PlanInput& input);

// This member's share of `shards` among the live members plus `me` (0 if `me` is
// leaving).
int FairShare(const ClusterView& view, const PlanInput& input);

ShardPlan PlanShards(const ClusterView& view, const PlanInput& input);

}  // namespace ckpt

#endif  // CKPT_SERVICE_CLUSTER_SHARD_PLAN_H_
