// The whole benchmark run: starts each server as a child, drives every workload
// against it with the same counts and threads, runs the peers, then prints the table,
// the targets (met or missed) and one JSON object per measurement.
#ifndef CKPT_TOOLS_BENCH_BENCH_RUNNER_H_
#define CKPT_TOOLS_BENCH_BENCH_RUNNER_H_

#include <cstdint>
#include <set>
#include <string>

#include "tools/bench/replica_rows.h"

namespace ckpt {
namespace bench {

struct RunConfig {
  int threads = 8;
  uint64_t items = 300000;        // worker loop, ceilings at 100 per call, SQLite batched
  uint64_t record_items = 30000;  // one item per call / per transaction
  uint64_t json_items = 2000;     // the JSON checkpoint peer
  // The Python SQLite peer, one row per transaction, and the Python SDK's one call per
  // item: the same count, compared in a target.
  uint64_t python_record_items = 5000;
  uint64_t range_items = 10000000;
  int batch = 100;
  // The worker loop's CompleteItems also lease the next batch (lease_next); false: a
  // LeaseItems and a CompleteItems per round, as before lease_next.
  bool lease_next = true;
  // Whole same-run sequences, one after another; targets are judged on the median of
  // their ratios, so a neighbour's burst on a shared VM moves one round, not the verdict.
  int rounds = 1;
  int latency_calls = 2000;     // GetJob calls per job in the range workload
  int lease_calls = 300;        // LeaseItems calls per job in the range workload
  int flood_clients = 64;       // flood: clients sending big CompleteItems calls
  int flood_calls = 3;          // calls per flood client
  int flood_batch = 8192;       // items per flood call (about 1 MiB with results)
  std::set<std::string> modes;  // "durable", "off"; empty: both
  // echo, writebatch, ckpt, ckpt_tls, sqlite, json, python; with postgres: bare_postgres,
  // skip_locked; empty: all
  std::set<std::string> systems;
  // worker_loop, reads, record_mode, readers, range, flood; empty: all
  std::set<std::string> workloads;
  // "rocksdb" (ckptd's default store, with its ceilings and peers) and/or "postgres"
  // (ckpt on PostgreSQL next to a bare PostgreSQL ceiling and a SKIP LOCKED queue, on a
  // PostgreSQL cluster the bench starts; workloads named "..._pg") and/or "replicas"
  // (the worker loop on 1, 2, 3 replicas: replica_rows.h); empty: rocksdb.
  std::set<std::string> stores;
  // The replica rows' settings; ckptd, items and batch come from the fields here.
  ReplicaBenchOptions replicas;
  std::string ckptd;                   // the ckptd binary
  std::string self;                    // this binary, for --serve and --peer children
  std::string python;                  // runs sqlite_script; empty: no Python peer
  std::string sqlite_script;           // tools/bench/sqlite_peer.py
  std::string pki_script;              // tests/testing/make_test_pki.sh, for the TLS rows
  std::string python_sdk_script;       // tools/bench/python_sdk_peer.py; empty: no SDK rows
  std::string python_sdk_path;         // PYTHONPATH for it: where `import ckpt` is found
  uint64_t python_sdk_items = 200000;  // Python Worker and track() rows
  std::string work_dir;                // temporary directories go under it
};

// The smoke-test sizes: every workload, in seconds.
RunConfig QuickConfig(RunConfig config);

// Runs everything and prints to stdout. Returns the exit code: 0 when every
// measurement ran (missed targets are reported, not failed), 1 otherwise.
int RunBench(const RunConfig& config);

}  // namespace bench
}  // namespace ckpt

#endif  // CKPT_TOOLS_BENCH_BENCH_RUNNER_H_
