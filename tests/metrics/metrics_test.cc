// The metrics library: values, histogram buckets, the text format's escaping and
// layout, the registry's families, and the process metrics read from /proc.
#include <cmath>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/metrics/exposition.h"
#include "service/metrics/metric.h"
#include "service/metrics/process_metrics.h"
#include "service/metrics/registry.h"
#include "tests/testing/status_matchers.h"

namespace ckpt {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(HistogramTest, CountsEachValueInTheFirstBucketItFits) {
  Histogram histogram({1, 2, 4});
  for (double v : {0.5, 1.0, 1.5, 4.0, 4.5, 100.0}) histogram.Observe(v);
  const HistogramSnapshot snapshot = histogram.Snapshot();
  // le=1: 0.5 and 1 (bounds are inclusive); le=2: 1.5; le=4: 4; +Inf: 4.5 and 100.
  EXPECT_THAT(snapshot.counts, ElementsAre(2, 1, 1, 2));
  EXPECT_DOUBLE_EQ(snapshot.sum, 111.5);
}

TEST(HistogramTest, ExponentialBounds) {
  EXPECT_THAT(Histogram::ExponentialBounds(1, 2, 4), ElementsAre(1, 2, 4, 8));
}

TEST(MetricTest, ConcurrentUpdatesAreAllCounted) {
  Counter counter;
  Gauge gauge;
  Histogram histogram({10});
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10000; ++i) {
        counter.Add();
        gauge.Add(0.5);
        histogram.Observe(1);
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(counter.Value(), 40000u);
  EXPECT_DOUBLE_EQ(gauge.Value(), 20000);
  EXPECT_EQ(histogram.Snapshot().counts[0], 40000u);
  EXPECT_DOUBLE_EQ(histogram.Snapshot().sum, 40000);
}

TEST(ExpositionTest, FormatsValuesAsTheTextFormatSpellsThem) {
  EXPECT_EQ(FormatSampleValue(3), "3");
  EXPECT_EQ(FormatSampleValue(0.25), "0.25");
  EXPECT_EQ(FormatSampleValue(5e-05), "5e-05");
  EXPECT_EQ(FormatSampleValue(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(FormatSampleValue(-std::numeric_limits<double>::infinity()), "-Inf");
  EXPECT_EQ(FormatSampleValue(std::nan("")), "NaN");
}

TEST(ExpositionTest, EscapesHelpAndLabelValues) {
  std::string out;
  ExpositionWriter writer(&out);
  writer.Family("ckpt_x", "a \\ b\nc \"q\"", MetricType::kGauge);
  writer.Sample("ckpt_x", {{"job_id", "a\"b\\c\nd"}, {"state", "ok"}}, uint64_t{7});
  EXPECT_EQ(out,
            "# HELP ckpt_x a \\\\ b\\nc \"q\"\n"
            "# TYPE ckpt_x gauge\n"
            "ckpt_x{job_id=\"a\\\"b\\\\c\\nd\",state=\"ok\"} 7\n");
}

TEST(ExpositionTest, HistogramBucketsAreCumulativeWithSumAndCount) {
  Histogram histogram({0.5, 1});
  histogram.Observe(0.1);
  histogram.Observe(0.7);
  histogram.Observe(3);
  std::string out;
  ExpositionWriter writer(&out);
  writer.HistogramSamples("ckpt_h_seconds", {{"method", "GetJob"}}, histogram.Snapshot());
  EXPECT_EQ(out,
            "ckpt_h_seconds_bucket{method=\"GetJob\",le=\"0.5\"} 1\n"
            "ckpt_h_seconds_bucket{method=\"GetJob\",le=\"1\"} 2\n"
            "ckpt_h_seconds_bucket{method=\"GetJob\",le=\"+Inf\"} 3\n"
            "ckpt_h_seconds_sum{method=\"GetJob\"} 3.8\n"
            "ckpt_h_seconds_count{method=\"GetJob\"} 3\n");
}

TEST(RegistryTest, SameNameAndLabelsIsTheSameMetric) {
  Registry registry;
  Counter* a = registry.GetCounter("ckpt_calls_total", "Calls.", {{"code", "OK"}});
  Counter* b = registry.GetCounter("ckpt_calls_total", "Calls.", {{"code", "OK"}});
  Counter* c = registry.GetCounter("ckpt_calls_total", "Calls.", {{"code", "NOT_FOUND"}});
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
}

TEST(RegistryTest, RendersEachFamilyOnceWithItsSamplesThenCollectors) {
  Registry registry;
  registry.GetCounter("ckpt_calls_total", "Calls.", {{"code", "OK"}})->Add(2);
  registry.GetCounter("ckpt_calls_total", "Calls.", {{"code", "NOT_FOUND"}})->Add();
  registry.GetGauge("ckpt_depth", "Depth.")->Set(4);
  registry.AddCollector([](ExpositionWriter& writer) {
    writer.Family("ckpt_late", "Read at scrape time.", MetricType::kGauge);
    writer.Sample("ckpt_late", {}, uint64_t{9});
  });
  EXPECT_EQ(registry.Render(),
            "# HELP ckpt_calls_total Calls.\n"
            "# TYPE ckpt_calls_total counter\n"
            "ckpt_calls_total{code=\"OK\"} 2\n"
            "ckpt_calls_total{code=\"NOT_FOUND\"} 1\n"
            "# HELP ckpt_depth Depth.\n"
            "# TYPE ckpt_depth gauge\n"
            "ckpt_depth 4\n"
            "# HELP ckpt_late Read at scrape time.\n"
            "# TYPE ckpt_late gauge\n"
            "ckpt_late 9\n");
}

TEST(ProcessMetricsTest, ReadsThisProcess) {
  absl::StatusOr<ProcessStats> stats = ReadProcessStats();
  CKPT_ASSERT_OK(stats);
  EXPECT_GT(stats->resident_bytes, 1u << 20);
  EXPECT_GE(stats->virtual_bytes, stats->resident_bytes);
  EXPECT_GE(stats->open_fds, 3u);  // stdin, stdout, stderr at least
  EXPECT_GE(stats->max_fds, stats->open_fds);
  EXPECT_GT(stats->start_time_seconds, 1.6e9);
  // CPU time only grows.
  volatile double spin = 0;
  for (int i = 0; i < 20'000'000; ++i) spin = spin + 1;
  absl::StatusOr<ProcessStats> later = ReadProcessStats();
  CKPT_ASSERT_OK(later);
  EXPECT_GE(later->cpu_seconds, stats->cpu_seconds);

  std::string out;
  ExpositionWriter writer(&out);
  WriteProcessMetrics(writer);
  for (const char* name : {"process_cpu_seconds_total", "process_resident_memory_bytes",
                           "process_virtual_memory_bytes", "process_open_fds", "process_max_fds",
                           "process_start_time_seconds"}) {
    EXPECT_THAT(out, HasSubstr(std::string("\n") + name + " ")) << name;
  }
}

}  // namespace
}  // namespace ckpt
