// The Python SDK's rows: tools/bench/python_sdk_peer.py drives a fresh ckptd
// (--sync=true) from N processes through the `ckpt` package, the way Python pipelines
// do, in each of six modes: the Worker loop at its defaults, ckpt.track(), and one
// mark_completed per item (physicsnemo-curator's record mode), each blocking and on
// ckpt.aio. Their rows go next to the C++ clients' and the Python SQLite peer's.
#ifndef CKPT_TOOLS_BENCH_PYTHON_ROWS_H_
#define CKPT_TOOLS_BENCH_PYTHON_ROWS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "tools/bench/child.h"
#include "tools/bench/measure.h"

namespace ckpt {
namespace bench {

// Workload names of the rows (worker_loop and record_mode are the C++ clients' too).
inline constexpr char kWorkerLoopWorkload[] = "worker_loop";
inline constexpr char kRecordModeWorkload[] = "record_mode";
inline constexpr char kTrackWorkload[] = "record_mode_batched";

// System names of the rows.
inline constexpr char kPythonWorker[] = "python_sdk_worker";
inline constexpr char kPythonWorkerAio[] = "python_sdk_worker_aio";
inline constexpr char kPythonRecord[] = "python_sdk_record";
inline constexpr char kPythonRecordAio[] = "python_sdk_record_aio";

struct PythonSdkOptions {
  std::string python;      // an interpreter with grpcio and protobuf
  std::string script;      // tools/bench/python_sdk_peer.py
  std::string pythonpath;  // the directory `import ckpt` is found in
  std::string ckptd;
  std::string data_dir;       // an empty directory for ckptd's data
  int threads = 8;            // processes
  uint64_t items = 0;         // Worker and track() rows
  uint64_t record_items = 0;  // one call per item rows
};

// Runs ckptd and the six modes against it, one after another. Each row's server CPU
// and peak RSS are ckptd's over that mode; its client CPU is the Python processes'
// (interpreter start-up included).
absl::StatusOr<std::vector<Measurement>> RunPythonSdkRows(const PythonSdkOptions& options);

// Fills `m` (items, seconds, rate, p50/p99/max, cpu and rss of the run) from a peer
// run that printed "RESULT <items> <seconds> <p50_us> <p99_us> <max_us>"; INTERNAL
// with its output if it failed or printed no such line.
absl::Status ParsePeerResult(const ChildRun& run, Measurement* m);

}  // namespace bench
}  // namespace ckpt

#endif  // CKPT_TOOLS_BENCH_PYTHON_ROWS_H_
