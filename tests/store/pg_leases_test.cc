// The replicas' lease table and fence on a real PostgreSQL: a take raises the epoch and
// only one taker wins, renewals stop at a take, and a deposed owner's write is refused
// inside its transaction and changes nothing.
#include <algorithm>
#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/store/postgres_store.h"
#include "service/store/shard_leases.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/test_stores.h"

namespace ckpt {
namespace {

using ::ckpt::testutil::StatusIs;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

constexpr int kShards = 4;

// A fence at a fixed epoch that remembers being deposed.
class TestFence : public ShardFence {
 public:
  explicit TestFence(int64_t epoch) : epoch_(epoch) {}
  int64_t epoch() const override { return epoch_; }
  absl::Status Owned() const override {
    return deposed_ ? absl::UnavailableError("deposed") : absl::OkStatus();
  }
  void Deposed() override { deposed_ = true; }
  void Unreachable() override {}
  void SetListener(std::function<void(bool)>) override {}
  bool deposed() const { return deposed_; }

 private:
  const int64_t epoch_;
  std::atomic<bool> deposed_{false};
};

class PgLeasesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    PostgresDatabaseOptions options;
    options.conninfo = testutil::StoreLocation::New(testutil::StoreKind::kPostgres).address();
    options.shards = kShards;
    auto opened = PostgresDatabase::Open(options);
    ASSERT_TRUE(opened.ok()) << opened.status();
    database_ = std::move(*opened);
  }

  std::unique_ptr<ShardLeaseTable> Member(const std::string& id) {
    MemberClaim claim;
    claim.id = id;
    claim.address = id + ":7700";
    claim.lease = absl::Seconds(30);
    return database_->NewLeaseTable(claim);
  }

  std::unique_ptr<PostgresDatabase> database_;
};

TEST_F(PgLeasesTest, ANewStoreHasItsShardsUnownedAndBothMembersSeeEachOther) {
  auto a = Member("a");
  auto b = Member("b");
  CKPT_ASSERT_OK(a->Read().status());
  auto view = b->Read();
  CKPT_ASSERT_OK(view);
  EXPECT_EQ(database_->shards(), kShards);
  ASSERT_EQ(view->shards.size(), static_cast<size_t>(kShards));
  for (const ShardLease& lease : view->shards) {
    EXPECT_FALSE(lease.held);
    EXPECT_EQ(lease.epoch, 0);
  }
  std::vector<std::string> ids;
  for (const ClusterMember& m : view->members) {
    ids.push_back(m.id);
    EXPECT_TRUE(m.renewed && m.connected) << m.id;
  }
  std::sort(ids.begin(), ids.end());
  EXPECT_THAT(ids, ElementsAre("a", "b"));
}

TEST_F(PgLeasesTest, OneTakerWinsAndAHeldLeaseIsTakenOnlyFromAGoneOwner) {
  auto a = Member("a");
  auto b = Member("b");
  CKPT_ASSERT_OK(a->Read().status());
  CKPT_ASSERT_OK(b->Read().status());
  auto taken = a->Take(2, /*seen_epoch=*/0, /*owner_gone=*/false);
  CKPT_ASSERT_OK(taken);
  EXPECT_EQ(*taken, 1);
  // b saw the same epoch 0: too late. Then the lease runs: not without owner_gone.
  EXPECT_THAT(b->Take(2, 0, false), StatusIs(absl::StatusCode::kFailedPrecondition, testing::_));
  EXPECT_THAT(b->Take(2, 1, false), StatusIs(absl::StatusCode::kFailedPrecondition, testing::_));
  auto view = b->Read();
  CKPT_ASSERT_OK(view);
  EXPECT_TRUE(view->shards[2].held);
  EXPECT_EQ(view->shards[2].owner, "a");
  EXPECT_EQ(view->shards[2].address, "a:7700");
  auto retaken = b->Take(2, 1, /*owner_gone=*/true);
  CKPT_ASSERT_OK(retaken);
  EXPECT_EQ(*retaken, 2);
  // a's renewal finds the epoch moved on: shard 2 is no longer a's.
  auto renewed = a->Renew({{2, 1}});
  CKPT_ASSERT_OK(renewed);
  EXPECT_THAT(*renewed, IsEmpty());
  auto b_renewed = b->Renew({{2, 2}});
  CKPT_ASSERT_OK(b_renewed);
  EXPECT_THAT(*b_renewed, ElementsAre(2));
}

TEST_F(PgLeasesTest, ADeposedOwnersWriteIsRefusedAndChangesNothing) {
  auto a = Member("a");
  auto b = Member("b");
  CKPT_ASSERT_OK(a->Read().status());
  auto epoch = a->Take(1, 0, false);
  CKPT_ASSERT_OK(epoch);
  auto fence = std::make_shared<TestFence>(*epoch);
  std::unique_ptr<Store> store = database_->OpenShard(1, fence);
  auto batch = store->NewBatch();
  batch->Put(Cf::kStates, "k", "by a");
  CKPT_ASSERT_OK(store->Write(batch.get()));

  CKPT_ASSERT_OK(b->Read().status());
  CKPT_ASSERT_OK(b->Take(1, *epoch, /*owner_gone=*/true).status());
  batch = store->NewBatch();
  batch->Put(Cf::kStates, "k", "by a, deposed");
  batch->Put(Cf::kStates, "other", "x");
  EXPECT_THAT(store->Write(batch.get()), StatusIs(absl::StatusCode::kUnavailable, testing::_));
  EXPECT_TRUE(fence->deposed());
  auto value = store->Get(Cf::kStates, "k");
  CKPT_ASSERT_OK(value);
  EXPECT_EQ(value->value_or(""), "by a");
  auto other = store->Get(Cf::kStates, "other");
  CKPT_ASSERT_OK(other);
  EXPECT_FALSE(other->has_value());
  // Another shard's rows are its own: shard 1's key is not in shard 0.
  std::unique_ptr<Store> shard0 = database_->OpenShard(0, std::make_shared<TestFence>(0));
  auto elsewhere = shard0->Get(Cf::kStates, "k");
  CKPT_ASSERT_OK(elsewhere);
  EXPECT_FALSE(elsewhere->has_value());
}

TEST_F(PgLeasesTest, AReleasedShardIsFreeAtOnceAndALeftMemberIsGone) {
  auto a = Member("a");
  auto b = Member("b");
  CKPT_ASSERT_OK(a->Read().status());
  auto epoch = a->Take(3, 0, false);
  CKPT_ASSERT_OK(epoch);
  CKPT_ASSERT_OK(a->Release(3, *epoch));
  CKPT_ASSERT_OK(a->Leave());
  auto view = b->Read();
  CKPT_ASSERT_OK(view);
  EXPECT_FALSE(view->shards[3].held);
  for (const ClusterMember& m : view->members) EXPECT_NE(m.id, "a");
  auto taken = b->Take(3, *epoch, false);
  CKPT_ASSERT_OK(taken);
  EXPECT_EQ(*taken, *epoch + 1);
}

}  // namespace
}  // namespace ckpt
