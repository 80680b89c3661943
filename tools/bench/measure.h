// What one benchmark measurement is, how latencies are collected, and how results are
// printed: a table for people and one JSON object per line for machines.
#ifndef CKPT_TOOLS_BENCH_MEASURE_H_
#define CKPT_TOOLS_BENCH_MEASURE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/time/time.h"

namespace ckpt {
namespace bench {

// Latency samples of one client thread. Not thread-safe: one per thread, merged after.
class Latencies {
 public:
  void Add(absl::Duration d) { samples_us_.push_back(absl::ToDoubleMicroseconds(d)); }
  void Merge(const Latencies& other);
  size_t count() const { return samples_us_.size(); }
  // The q-quantile (0..1) in microseconds; 0 when there are no samples. Sorts lazily.
  double QuantileUs(double q);

 private:
  std::vector<double> samples_us_;
  bool sorted_ = false;
};

// One row of the results.
struct Measurement {
  std::string workload;        // e.g. "worker_loop": rows with the same workload compare
  std::string system;          // e.g. "ckpt", "bare_writebatch", "sqlite_full_batch100"
  bool durable = true;         // false: --sync=false (or a peer's equivalent); echo: true
  std::string unit = "items";  // what items_per_s counts ("items", "calls", "snapshots")
  uint64_t items = 0;
  double seconds = 0;
  double items_per_s = 0;
  double p50_us = 0;
  double p99_us = 0;
  double max_us = 0;  // the worst stall
  // Of the process that serves (ckptd or a ceiling server); for in-process peers the
  // whole process, clients included. Negative: not measured.
  double cpu_seconds = -1;
  double peak_rss_mib = -1;
  // CPU of the bench's own client threads over the same window; negative: not measured.
  double client_cpu_seconds = -1;
  int threads = 0;
  int round = 0;  // with --rounds=N > 1: which round (1..N); 0: the only one
  std::string note;
};

// Fills items_per_s, p50_us and p99_us from the counts and samples.
void Finish(uint64_t items, absl::Duration wall, Latencies* latencies, Measurement* m);

// `{"workload":..., "system":..., "items_per_s":..., "p50_us":..., "p99_us":..., ...}`.
std::string ToJsonLine(const Measurement& m);

// A table of the measurements grouped by workload, each row with the ratio of ckpt
// (same workload and durability) to it.
std::string FormatTable(const std::vector<Measurement>& measurements);

// The measurement with this workload, system and durability, or nullptr.
const Measurement* FindMeasurement(const std::vector<Measurement>& measurements,
                                   const std::string& workload, const std::string& system,
                                   bool durable);

}  // namespace bench
}  // namespace ckpt

#endif  // CKPT_TOOLS_BENCH_MEASURE_H_
