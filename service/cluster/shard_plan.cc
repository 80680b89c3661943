#include "service/cluster/shard_plan.h"

#include <algorithm>

#include "absl/container/flat_hash_map.h"

namespace ckpt {
namespace {

// The live members' ids plus `me` (unless leaving), sorted.
std::vector<std::string> Ranked(const ClusterView& view, const PlanInput& input) {
  std::vector<std::string> ids;
  for (const ClusterMember& member : view.members) {
    if (member.id != input.me) ids.push_back(member.id);
  }
  if (!input.leaving) ids.push_back(input.me);
  std::sort(ids.begin(), ids.end());
  return ids;
}

int ShareOfRank(int shards, int members, int rank) {
  return shards / members + (rank < shards % members ? 1 : 0);
}

// Whether a live member other than `me` holds fewer shards than its share.
bool SomeoneWants(const ClusterView& view, const std::vector<std::string>& ranked,
                  const std::string& me) {
  absl::flat_hash_map<std::string, int> held;
  for (const ShardLease& lease : view.shards) {
    if (lease.held) ++held[lease.owner];
  }
  const int shards = static_cast<int>(view.shards.size());
  for (size_t rank = 0; rank < ranked.size(); ++rank) {
    if (ranked[rank] == me) continue;
    const int share = ShareOfRank(shards, static_cast<int>(ranked.size()), static_cast<int>(rank));
    if (held[ranked[rank]] < share) return true;
  }
  return false;
}

}  // namespace

bool IsFree(const ShardLease& lease, const PlanInput& input) {
  if (lease.held && lease.owner == input.me) return false;
  return !lease.held || input.gone.contains(lease.owner);
}

int FairShare(const ClusterView& view, const PlanInput& input) {
  if (input.leaving) return 0;
  const std::vector<std::string> ranked = Ranked(view, input);
  const auto rank = std::find(ranked.begin(), ranked.end(), input.me) - ranked.begin();
  return ShareOfRank(static_cast<int>(view.shards.size()), static_cast<int>(ranked.size()),
                     static_cast<int>(rank));
}

ShardPlan PlanShards(const ClusterView& view, const PlanInput& input) {
  ShardPlan plan;
  const int shards = static_cast<int>(view.shards.size());
  if (input.leaving) {
    plan.release.assign(input.mine.begin(), input.mine.end());
    std::sort(plan.release.begin(), plan.release.end());
    return plan;
  }
  const std::vector<std::string> ranked = Ranked(view, input);
  const int rank =
      static_cast<int>(std::find(ranked.begin(), ranked.end(), input.me) - ranked.begin());
  const int share = ShareOfRank(shards, static_cast<int>(ranked.size()), rank);
  const int held = static_cast<int>(input.mine.size());
  // Each member scans from its own starting point, so that members taking at the same
  // moment mostly go for different shards.
  const int start = shards * rank / static_cast<int>(ranked.size());
  for (int i = 0; i < shards; ++i) {
    const int shard = (start + i) % shards;
    if (input.mine.contains(shard) || !IsFree(view.shards[shard], input)) continue;
    const bool wanted = held + static_cast<int>(plan.take.size()) < share;
    if (wanted || input.overdue.contains(shard)) plan.take.push_back(shard);
  }
  if (held > share && plan.take.empty() && SomeoneWants(view, ranked, input.me)) {
    plan.release.push_back(*std::max_element(input.mine.begin(), input.mine.end()));
  }
  return plan;
}

}  // namespace ckpt
