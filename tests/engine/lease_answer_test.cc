#include "service/engine/lease_answer.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/common/proto_time.h"
#include "service/store/keys.h"

namespace ckpt {
namespace {

const absl::Time kExpire = absl::FromUnixSeconds(1700000000);

std::string Index(uint64_t i) { return keys::EncodeIndex(i); }

TEST(LeaseAnswerTest, UnpackedEveryLeaseIsALease) {
  v1::LeaseItemsResponse out;
  {
    LeaseAnswer answer("main", /*packed=*/false, /*token_step=*/1, &out);
    for (uint64_t i = 0; i < 3; ++i) answer.Add(Index(i), 10 + i, 1, "", kExpire);
  }
  EXPECT_EQ(out.lease_runs_size(), 0);
  ASSERT_EQ(out.leases_size(), 3);
  EXPECT_EQ(out.leases(2).key().index(), 2u);
  EXPECT_EQ(out.leases(2).lease_token(), 12u);
  EXPECT_EQ(out.leases(2).step(), "main");
  EXPECT_EQ(out.leases(2).attempt(), 1u);
  EXPECT_EQ(FromProtoTime(out.leases(2).expire_time()), kExpire);
}

TEST(LeaseAnswerTest, PackedConsecutiveIndicesAndTokensAreOneRun) {
  v1::LeaseItemsResponse out;
  {
    LeaseAnswer answer("main", /*packed=*/true, /*token_step=*/1, &out);
    for (uint64_t i = 0; i < 100; ++i) answer.Add(Index(40 + i), 7 + i, 1, "", kExpire);
  }
  EXPECT_EQ(out.leases_size(), 0);
  ASSERT_EQ(out.lease_runs_size(), 1);
  const v1::LeaseRun& run = out.lease_runs(0);
  EXPECT_EQ(run.step(), "main");
  EXPECT_EQ(run.first_index(), 40u);
  EXPECT_EQ(run.count(), 100u);
  EXPECT_EQ(run.first_lease_token(), 7u);
  EXPECT_EQ(run.attempt(), 1u);
  EXPECT_EQ(FromProtoTime(run.expire_time()), kExpire);
  EXPECT_EQ(run.token_step(), 0u);  // 1, left out
}

// A shard of replicas issues every third token (three shards): its runs say so.
TEST(LeaseAnswerTest, PackedRunsFollowTheTokenStepOfAShard) {
  v1::LeaseItemsResponse out;
  {
    LeaseAnswer answer("main", /*packed=*/true, /*token_step=*/3, &out);
    for (uint64_t i = 0; i < 4; ++i) answer.Add(Index(10 + i), 2 + 3 * i, 1, "", kExpire);
    answer.Add(Index(14), 15, 1, "", kExpire);  // 14 would be next: alone
  }
  ASSERT_EQ(out.lease_runs_size(), 1);
  EXPECT_EQ(out.lease_runs(0).first_index(), 10u);
  EXPECT_EQ(out.lease_runs(0).count(), 4u);
  EXPECT_EQ(out.lease_runs(0).first_lease_token(), 2u);
  EXPECT_EQ(out.lease_runs(0).token_step(), 3u);
  ASSERT_EQ(out.leases_size(), 1);
  EXPECT_EQ(out.leases(0).lease_token(), 15u);
}

// A run breaks at a gap in the indices or the tokens, another attempt or expire time;
// names, leases with a cursor and lone indices stay Leases.
TEST(LeaseAnswerTest, PackedRunsBreakWhereTheLeasesDiffer) {
  v1::LeaseItemsResponse out;
  {
    LeaseAnswer answer("s", /*packed=*/true, /*token_step=*/1, &out);
    answer.Add(Index(0), 1, 1, "", kExpire);
    answer.Add(Index(1), 2, 1, "", kExpire);                     // run [0, 2)
    answer.Add(Index(3), 3, 1, "", kExpire);                     // index gap
    answer.Add(Index(4), 4, 1, "", kExpire);                     // run [3, 5)
    answer.Add(Index(5), 6, 1, "", kExpire);                     // token gap: alone
    answer.Add(Index(6), 7, 2, "", kExpire);                     // another attempt
    answer.Add(Index(7), 8, 2, "", kExpire);                     // run [6, 8), attempt 2
    answer.Add(Index(8), 9, 2, "", kExpire + absl::Seconds(1));  // another expiry: alone
    answer.Add(Index(9), 10, 1, "cursor", kExpire);              // a cursor
    answer.Add(keys::EncodeName("a.txt"), 11, 1, "", kExpire);   // a name
  }
  ASSERT_EQ(out.lease_runs_size(), 3);
  EXPECT_EQ(out.lease_runs(0).first_index(), 0u);
  EXPECT_EQ(out.lease_runs(0).count(), 2u);
  EXPECT_EQ(out.lease_runs(1).first_index(), 3u);
  EXPECT_EQ(out.lease_runs(1).first_lease_token(), 3u);
  EXPECT_EQ(out.lease_runs(1).count(), 2u);
  EXPECT_EQ(out.lease_runs(2).first_index(), 6u);
  EXPECT_EQ(out.lease_runs(2).attempt(), 2u);
  ASSERT_EQ(out.leases_size(), 4);
  EXPECT_EQ(out.leases(0).key().index(), 5u);
  EXPECT_EQ(out.leases(0).lease_token(), 6u);
  EXPECT_EQ(out.leases(1).key().index(), 8u);
  EXPECT_EQ(FromProtoTime(out.leases(1).expire_time()), kExpire + absl::Seconds(1));
  EXPECT_EQ(out.leases(2).cursor(), "cursor");
  EXPECT_EQ(out.leases(3).key().name(), "a.txt");
  EXPECT_EQ(out.leases(3).step(), "s");
}

}  // namespace
}  // namespace ckpt
