// The bench's targets (the issues' speed goals as ratios of rows of the same run), and
// how they are judged over several rounds and printed.
#ifndef CKPT_TOOLS_BENCH_TARGETS_H_
#define CKPT_TOOLS_BENCH_TARGETS_H_

#include <string>
#include <vector>

#include "tools/bench/measure.h"

namespace ckpt {
namespace bench {

// Workload names the targets compare rows of. On PostgreSQL the same workloads are
// named with kPostgresSuffix, so that their rows compare among themselves.
inline constexpr char kWorkerLoop[] = "worker_loop";
inline constexpr char kRecordMode[] = "record_mode";
inline constexpr char kRangeJob[] = "range_job";
inline constexpr char kPostgresSuffix[] = "_pg";

struct Target {
  std::string what;
  double value = -1;  // -1: not measured; with several rounds, their median
  double bound = 0;
  bool at_least = true;
  std::vector<double> rounds;  // each round's value, when there are several
};

// The targets of one round's measurements: ckpt on RocksDB against its ceilings and
// peers if RocksDB rows were measured, ckpt on PostgreSQL against its own if those were.
std::vector<Target> AllTargets(const std::vector<Measurement>& ms);

// Each target's median over the rounds' values (the rounds' targets, in order).
std::vector<Target> MedianTargets(const std::vector<std::vector<Target>>& rounds);

// The "targets" block of the output: value, bound, met or missed, each round's value.
std::string FormatTargets(const std::vector<Target>& targets);

}  // namespace bench
}  // namespace ckpt

#endif  // CKPT_TOOLS_BENCH_TARGETS_H_
