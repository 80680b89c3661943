// The bench's arithmetic and output format: quantiles, rates, the JSON line and the
// ratio column.
#include "tools/bench/measure.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ckpt {
namespace bench {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(LatenciesTest, QuantilesOfMergedSamples) {
  Latencies a, b;
  for (int i = 1; i <= 50; ++i) a.Add(absl::Microseconds(i));
  for (int i = 51; i <= 101; ++i) b.Add(absl::Microseconds(i));
  a.Merge(b);
  EXPECT_EQ(a.count(), 101u);
  EXPECT_DOUBLE_EQ(a.QuantileUs(0.0), 1);
  EXPECT_DOUBLE_EQ(a.QuantileUs(0.5), 51);
  EXPECT_DOUBLE_EQ(a.QuantileUs(0.99), 100);
  EXPECT_DOUBLE_EQ(a.QuantileUs(1.0), 101);
}

TEST(LatenciesTest, EmptyIsZero) {
  Latencies none;
  EXPECT_EQ(none.QuantileUs(0.5), 0);
}

TEST(FinishTest, RateIsItemsOverWallTime) {
  Latencies l;
  l.Add(absl::Microseconds(10));
  Measurement m;
  Finish(500, absl::Milliseconds(250), &l, &m);
  EXPECT_EQ(m.items, 500u);
  EXPECT_DOUBLE_EQ(m.items_per_s, 2000);
  EXPECT_DOUBLE_EQ(m.p50_us, 10);
}

TEST(ToJsonLineTest, HasTheMachineKeysAndEscapes) {
  Measurement m;
  m.workload = "record_mode";
  m.system = "say \"hi\"\\";
  m.items_per_s = 1234.5;
  m.p50_us = 10;
  m.p99_us = 20;
  const std::string line = ToJsonLine(m);
  EXPECT_EQ(line.front(), '{');
  EXPECT_EQ(line.back(), '}');
  EXPECT_THAT(line, HasSubstr("\"workload\":\"record_mode\""));
  EXPECT_THAT(line, HasSubstr("\"system\":\"say \\\"hi\\\"\\\\\""));
  EXPECT_THAT(line, HasSubstr("\"items_per_s\":1234.5"));
  EXPECT_THAT(line, HasSubstr("\"p50_us\":10.0"));
  EXPECT_THAT(line, HasSubstr("\"p99_us\":20.0"));
  EXPECT_THAT(line, Not(HasSubstr("server_cpu_s")));  // not measured: left out
  EXPECT_THAT(line, Not(HasSubstr("round")));         // the only round: left out
  EXPECT_THAT(line, Not(HasSubstr("\n")));
  m.round = 2;
  EXPECT_THAT(ToJsonLine(m), HasSubstr("\"round\":2"));
}

TEST(FormatTableTest, RatioIsCkptOverEachRowOfTheSameWorkloadAndDurability) {
  std::vector<Measurement> ms(4);
  ms[0].workload = ms[1].workload = ms[2].workload = "worker_loop";
  ms[3].workload = "record_mode";
  ms[0].system = "ckpt";
  ms[0].items_per_s = 300;
  ms[1].system = "peer";
  ms[1].items_per_s = 100;
  ms[2].system = "peer_off";
  ms[2].durable = false;  // no ckpt row with durable=false: no ratio
  ms[2].items_per_s = 50;
  ms[3].system = "ckpt";
  ms[3].items_per_s = 7;
  const std::string table = FormatTable(ms);
  EXPECT_THAT(table, HasSubstr("worker_loop\n"));
  EXPECT_THAT(table, HasSubstr("record_mode\n"));
  EXPECT_THAT(table, HasSubstr("3.00"));
  EXPECT_THAT(table, HasSubstr("ckpt/this"));  // the header row
  EXPECT_THAT(table, HasSubstr("peer_off"));   // every row
  EXPECT_THAT(table, Not(HasSubstr("6.00")));
  EXPECT_EQ(FindMeasurement(ms, "worker_loop", "peer", true), &ms[1]);
  EXPECT_EQ(FindMeasurement(ms, "worker_loop", "peer", false), nullptr);
}

}  // namespace
}  // namespace bench
}  // namespace ckpt
