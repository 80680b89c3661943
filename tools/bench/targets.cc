#include "tools/bench/targets.h"

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "tools/bench/python_rows.h"

namespace ckpt {
namespace bench {
namespace {

double Ratio(const std::vector<Measurement>& ms, const char* workload, const char* a,
             const char* b) {
  const Measurement* x = FindMeasurement(ms, workload, a, true);
  const Measurement* y = FindMeasurement(ms, workload, b, true);
  if (x == nullptr || y == nullptr || y->items_per_s <= 0) return -1;
  return x->items_per_s / y->items_per_s;
}

// ckpt on RocksDB against its ceilings and peers, and the range job's bounds.
std::vector<Target> Targets(const std::vector<Measurement>& ms) {
  std::vector<Target> t;
  t.push_back({"worker loop: ckpt / bare synced WriteBatch server",
               Ratio(ms, kWorkerLoop, "ckpt", "bare_writebatch"), 0.60, true});
  t.push_back({"worker loop: ckpt / SQLite FULL, 100 per transaction (C)",
               Ratio(ms, kWorkerLoop, "ckpt", "sqlite_full_batch100"), 1.0, true});
  t.push_back({"worker loop: ckpt / SQLite FULL, 100 per transaction (Python)",
               Ratio(ms, kWorkerLoop, "ckpt", "sqlite_py_full_batch100"), 1.0, true});
  t.push_back(
      {"record mode: ckpt / gRPC echo", Ratio(ms, kRecordMode, "ckpt", "grpc_echo"), 0.65, true});
  t.push_back({"worker loop: ckpt over TLS with a token / plaintext",
               Ratio(ms, kWorkerLoop, "ckpt_tls", "ckpt"), 0.90, true});
  t.push_back({"record mode: ckpt / SQLite FULL, one transaction per item (C)",
               Ratio(ms, kRecordMode, "ckpt", "sqlite_full_txn_per_item"), 10.0, true});
  t.push_back({"record mode: ckpt / SQLite FULL, one transaction per item (Python)",
               Ratio(ms, kRecordMode, "ckpt", "sqlite_py_full_txn_per_item"), 10.0, true});
  t.push_back({"python: Worker() / C++ worker loop", Ratio(ms, kWorkerLoop, kPythonWorker, "ckpt"),
               0.5, true});
  t.push_back({"python: aio Worker() / C++ worker loop",
               Ratio(ms, kWorkerLoop, kPythonWorkerAio, "ckpt"), 0.5, true});
  t.push_back({"python: mark_completed per item / Python SQLite per item",
               Ratio(ms, kRecordMode, kPythonRecord, "sqlite_py_full_txn_per_item"), 1.5, true});
  const Measurement* per_item = FindMeasurement(ms, kRecordMode, kPythonRecord, true);
  t.push_back({"python: mark_completed per item, max latency ms",
               per_item != nullptr ? per_item->max_us / 1000 : -1, 100, false});
  const Measurement* small = FindMeasurement(ms, kRangeJob, "ckpt GetJob, 100-item job", true);
  const Measurement* big = FindMeasurement(ms, kRangeJob, "ckpt GetJob, range job half done", true);
  t.push_back(
      {"GetJob p50: range job half done / 100-item job",
       small != nullptr && big != nullptr && small->p50_us > 0 ? big->p50_us / small->p50_us : -1,
       1.5, false});
  const Measurement* fill =
      FindMeasurement(ms, kRangeJob, "ckpt fill: record mode, 8192/call", true);
  t.push_back({"ckptd peak RSS (MiB) while the range job is half done",
               fill != nullptr ? fill->peak_rss_mib : -1, 512, false});
  return t;
}

// ckpt on PostgreSQL against the bare PostgreSQL server and the SKIP LOCKED queue.
std::vector<Target> PostgresTargets(const std::vector<Measurement>& ms) {
  const std::string loop = absl::StrCat(kWorkerLoop, kPostgresSuffix);
  std::vector<Target> t;
  t.push_back({"worker loop on PostgreSQL: ckpt / bare PostgreSQL server",
               Ratio(ms, loop.c_str(), "ckpt", "bare_postgres"), 0.60, true});
  t.push_back({"worker loop on PostgreSQL: ckpt / SKIP LOCKED queue in SQL",
               Ratio(ms, loop.c_str(), "ckpt", "postgres_skip_locked"), 2.0, true});
  return t;
}

}  // namespace

std::vector<Target> AllTargets(const std::vector<Measurement>& ms) {
  auto on_postgres = [](const Measurement& m) {
    return absl::EndsWith(m.workload, kPostgresSuffix);
  };
  std::vector<Target> t;
  if (ms.empty() || !std::all_of(ms.begin(), ms.end(), on_postgres)) t = Targets(ms);
  if (std::any_of(ms.begin(), ms.end(), on_postgres)) {
    std::vector<Target> pg = PostgresTargets(ms);
    t.insert(t.end(), pg.begin(), pg.end());
  }
  return t;
}

std::vector<Target> MedianTargets(const std::vector<std::vector<Target>>& rounds) {
  std::vector<Target> out = rounds.front();
  if (rounds.size() < 2) return out;
  for (size_t i = 0; i < out.size(); ++i) {
    std::vector<double> values;
    for (const auto& round : rounds) values.push_back(round[i].value);
    out[i].rounds = values;
    std::sort(values.begin(), values.end());
    const size_t n = values.size();
    out[i].value = n % 2 == 1 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
  }
  return out;
}

std::string FormatTargets(const std::vector<Target>& targets) {
  const size_t rounds = targets.empty() ? 0 : targets.front().rounds.size();
  std::string out = rounds > 1 ? absl::StrCat("\ntargets (durable, same run; median of ", rounds,
                                              " rounds, then each round)\n")
                               : "\ntargets (durable, same run)\n";
  for (const Target& t : targets) {
    const bool met = t.value >= 0 && (t.at_least ? t.value >= t.bound : t.value < t.bound);
    absl::StrAppend(&out, absl::StrFormat("  %-60s %9.2f  %s %-6g %-12s", t.what, t.value,
                                          t.at_least ? ">=" : "< ", t.bound,
                                          t.value < 0 ? "NOT MEASURED"
                                          : met       ? "met"
                                                      : "MISSED"));
    if (t.value >= 0) {
      for (double v : t.rounds) absl::StrAppend(&out, absl::StrFormat(" %.2f", v));
    }
    out += "\n";
  }
  return out;
}

}  // namespace bench
}  // namespace ckpt
