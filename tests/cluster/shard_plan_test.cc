#include "service/cluster/shard_plan.h"

#include <map>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/cluster/shard_map.h"

namespace ckpt {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::SizeIs;

ClusterView View(int shards, const std::vector<std::string>& members) {
  ClusterView view;
  for (int i = 0; i < shards; ++i) view.shards.push_back({i, "", "", 0, false});
  for (const std::string& id : members) view.members.push_back({id, id + ":7700", true, true});
  return view;
}

void Own(ClusterView& view, int shard, const std::string& owner) {
  view.shards[shard] = {shard, owner, owner + ":7700", view.shards[shard].epoch + 1, true};
}

PlanInput Me(const std::string& me, const ClusterView& view) {
  PlanInput input;
  input.me = me;
  for (const ShardLease& lease : view.shards) {
    if (lease.held && lease.owner == me) input.mine.insert(lease.shard);
  }
  return input;
}

TEST(ShardMapTest, StableAndSpread) {
  EXPECT_EQ(ShardOfJob("anything", 1), 0);
  std::map<int, int> per_shard;
  for (int i = 0; i < 1600; ++i) ++per_shard[ShardOfJob("job-" + std::to_string(i), 16)];
  ASSERT_THAT(per_shard, SizeIs(16));
  for (const auto& [shard, count] : per_shard) {
    EXPECT_GT(count, 50) << "shard " << shard;  // 100 each on average
    EXPECT_LT(count, 150) << "shard " << shard;
  }
  // Ids differing only in the high bits of a byte still spread (FNV-1a alone would not).
  std::map<int, int> letters;
  for (char c = 'a'; c <= 'z'; ++c) ++letters[ShardOfJob(std::string("job-") + c, 16)];
  EXPECT_GT(letters.size(), 8u);
}

TEST(ShardMapTest, KnownValues) {
  // Frozen: a change here moves every job of every existing cluster to another shard.
  EXPECT_EQ(ShardOfJob("job-1", 16), 5);
  EXPECT_EQ(ShardOfJob("curate-2025-12-14", 16), 1);
  EXPECT_EQ(ShardOfJob("a", 16), 11);
  EXPECT_EQ(ShardOfJob("job-1", 64), 21);
  EXPECT_EQ(ShardOfJob("curate-2025-12-14", 64), 17);
}

TEST(ShardPlanTest, AloneTakesEverything) {
  const ClusterView view = View(16, {"a"});
  const ShardPlan plan = PlanShards(view, Me("a", view));
  EXPECT_THAT(plan.take, SizeIs(16));
  EXPECT_THAT(plan.release, IsEmpty());
}

TEST(ShardPlanTest, SharesAddUpAndFirstRanksTakeTheRemainder) {
  const ClusterView view = View(16, {"a", "b", "c"});
  EXPECT_EQ(FairShare(view, Me("a", view)), 6);
  EXPECT_EQ(FairShare(view, Me("b", view)), 5);
  EXPECT_EQ(FairShare(view, Me("c", view)), 5);
}

TEST(ShardPlanTest, MembersStartAtDifferentShards) {
  const ClusterView view = View(16, {"a", "b"});
  const ShardPlan a = PlanShards(view, Me("a", view));
  const ShardPlan b = PlanShards(view, Me("b", view));
  ASSERT_THAT(a.take, SizeIs(8));
  ASSERT_THAT(b.take, SizeIs(8));
  EXPECT_EQ(a.take.front(), 0);
  EXPECT_EQ(b.take.front(), 8);
}

TEST(ShardPlanTest, JoinerTakesFreeOnesAndOwnerAboveShareReleasesOne) {
  ClusterView view = View(4, {"a", "b"});
  for (int i = 0; i < 4; ++i) Own(view, i, "a");
  // b has just joined: a holds 4 of a share of 2 and b wants 2, so a releases one...
  const ShardPlan a = PlanShards(view, Me("a", view));
  EXPECT_THAT(a.take, IsEmpty());
  EXPECT_THAT(a.release, ElementsAre(3));
  // ...and b, finding nothing free yet, takes nothing.
  EXPECT_THAT(PlanShards(view, Me("b", view)).take, IsEmpty());
  view.shards[3].held = false;  // released
  EXPECT_THAT(PlanShards(view, Me("b", view)).take, ElementsAre(3));
}

TEST(ShardPlanTest, NoReleaseWithNobodyToTakeIt) {
  ClusterView view = View(4, {"a"});
  for (int i = 0; i < 4; ++i) Own(view, i, "a");
  EXPECT_THAT(PlanShards(view, Me("a", view)).release, IsEmpty());
}

TEST(ShardPlanTest, ShardsOfAGoneMemberAreFree) {
  ClusterView view = View(4, {"a", "b"});
  Own(view, 0, "a");
  Own(view, 1, "a");
  Own(view, 2, "c");  // c's lease still runs, but c's session is gone: it died
  Own(view, 3, "c");
  PlanInput b = Me("b", view);
  b.gone.insert("c");
  EXPECT_THAT(PlanShards(view, b).take, ElementsAre(2, 3));
  PlanInput a = Me("a", view);
  a.gone.insert("c");
  EXPECT_THAT(PlanShards(view, a).take, IsEmpty());
}

TEST(ShardPlanTest, AFrozenOrLeavingMembersShardsWaitForTheirLeases) {
  ClusterView view = View(4, {"a", "b"});  // c is not live (not renewing) but not gone
  Own(view, 0, "a");
  Own(view, 1, "b");
  Own(view, 2, "c");
  Own(view, 3, "c");
  EXPECT_EQ(FairShare(view, Me("b", view)), 2);  // c no longer counts
  EXPECT_THAT(PlanShards(view, Me("b", view)).take, IsEmpty());
  view.shards[3].held = false;  // released (or run out)
  EXPECT_THAT(PlanShards(view, Me("b", view)).take, ElementsAre(3));
}

TEST(ShardPlanTest, OverdueShardsAreTakenBeyondTheShare) {
  ClusterView view = View(2, {"a", "b"});
  Own(view, 0, "a");
  PlanInput a = Me("a", view);
  EXPECT_THAT(PlanShards(view, a).take, IsEmpty());  // shard 1 is b's share
  a.overdue.insert(1);
  EXPECT_THAT(PlanShards(view, a).take, ElementsAre(1));
}

TEST(ShardPlanTest, LeavingReleasesEverythingAndTakesNothing) {
  ClusterView view = View(4, {"a", "b"});
  Own(view, 0, "a");
  Own(view, 2, "a");
  PlanInput a = Me("a", view);
  a.leaving = true;
  const ShardPlan plan = PlanShards(view, a);
  EXPECT_THAT(plan.take, IsEmpty());
  EXPECT_THAT(plan.release, ElementsAre(0, 2));
  // Without a, b's share is everything.
  view.members.erase(view.members.begin());
  EXPECT_EQ(FairShare(view, Me("b", view)), 4);
}

TEST(ShardPlanTest, ExpiredLeaseOfALiveMemberIsFree) {
  ClusterView view = View(2, {"a", "b"});
  Own(view, 0, "a");
  Own(view, 1, "b");
  view.shards[1].held = false;  // b was frozen past its lease
  EXPECT_TRUE(IsFree(view.shards[1], Me("a", view)));
  EXPECT_FALSE(IsFree(view.shards[0], Me("a", view)));
  EXPECT_FALSE(IsFree(view.shards[0], Me("b", view)));
}

}  // namespace
}  // namespace ckpt
