// ckpt_bench: ckptd against this machine's ceilings and against what pipelines use
// today, side by side in one run. docs/performance.md explains the output.
//
//   ckpt_bench [--threads=8] [--items=300000] [--record_items=30000] [--json_items=2000]
//              [--range_items=10000000] [--python_sdk_items=200000] [--quick]
//              [--ckptd=PATH] [--work_dir=DIR]
//              [--modes=durable,off] [--systems=...] [--workloads=...]
//              [--store=rocksdb|postgres|replicas|...,...]
//              [--replicas=0,1,2,3] [--replica_clients=any,owner] [--replica_jobs=8]
//              [--replica_workers=2] [--replica_shards=16] [--replica_store=URI]
//              [--replica_postgres_pids=PID,...]
//
// Internal modes (the bench runs itself as a child for these):
//   --serve=echo|writebatch [--data_dir=DIR] [--sync=true]   a ceiling server
//   --serve=postgres --pg_uri=URI                              the PostgreSQL ceiling
//   --peer=sqlite|json --dir=DIR [--per_txn=N]                 a peer run
//   --peer=pg_skip_locked --pg_uri=URI [--per_txn=N]           the SKIP LOCKED queue
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "tools/bench/bench_runner.h"
#include "tools/bench/ceiling_servers.h"
#include "tools/bench/child.h"
#include "tools/bench/peers.h"
#include "tools/bench/postgres_systems.h"

ABSL_FLAG(int, threads, 8, "Concurrent client threads, each on its own channel.");
ABSL_FLAG(int64_t, items, 300000,
          "Items of the batched workloads (worker loop: 100 per call; SQLite 100 per "
          "transaction).");
ABSL_FLAG(int64_t, record_items, 30000,
          "Items of the one-item-per-call workloads (record mode, SQLite one transaction "
          "per item).");
ABSL_FLAG(int64_t, json_items, 2000,
          "Items of the JSON checkpoint peer (O(N^2) bytes written: keep it small).");
ABSL_FLAG(int64_t, range_items, 10000000, "Size of the range job; half of it is completed.");
ABSL_FLAG(int, batch, 100, "Items per lease and per completion call in the worker loop.");
ABSL_FLAG(bool, lease_next, true,
          "The worker loop's CompleteItems also lease the next batch (one call per round, as the "
          "SDK workers do); false: LeaseItems then CompleteItems each round. Against a ckptd "
          "that predates lease_next the loop leases with LeaseItems by itself.");
ABSL_FLAG(int, rounds, 1,
          "Whole runs one after another; targets are judged on the median of the rounds' "
          "ratios (robust to a shared machine's neighbours).");
ABSL_FLAG(bool, quick, false, "A seconds-long smoke run: small counts, same workloads.");
ABSL_FLAG(std::string, modes, "durable,off",
          "Durability modes to run: durable (the default --sync=true) and/or off "
          "(--sync=false).");
ABSL_FLAG(std::string, systems,
          "echo,writebatch,ckpt,ckpt_tls,sqlite,json,python,bare_postgres,skip_locked",
          "Systems to run (a subset, e.g. for profiling one of them).");
ABSL_FLAG(std::string, workloads, "worker_loop,reads,record_mode,readers,range,flood",
          "ckpt workloads to run (a subset, e.g. for profiling); reads (GetItem, ListItems, "
          "FindOutput) run on the worker loop's job, so only with worker_loop.");
ABSL_FLAG(std::string, ckptd, "", "Path of ckptd; default: from this binary's runfiles.");
ABSL_FLAG(std::string, python, "/usr/bin/python3",
          "Python with the sqlite3 module, grpcio and protobuf, for the Python SQLite peer and "
          "the Python SDK rows; empty: skip them.");
ABSL_FLAG(int64_t, python_record_items, 5000,
          "Items of the Python SQLite peer at one transaction per item (its writers starve: "
          "keep it small), and of the Python SDK's one call per item (the same, compared).");
ABSL_FLAG(int64_t, python_sdk_items, 200000,
          "Items of the Python SDK's Worker and track() rows (8 processes through the `ckpt` "
          "package).");
ABSL_FLAG(std::string, work_dir, "",
          "Where the temporary data directories go; default $TEST_TMPDIR or /tmp.");
ABSL_FLAG(std::string, store, "rocksdb",
          "Stores to measure ckpt on, comma-separated: rocksdb (with its ceilings and peers), "
          "postgres (ckpt on PostgreSQL next to a bare PostgreSQL server and a SKIP LOCKED queue, "
          "on a cluster the bench starts from /usr/lib/postgresql/15), replicas (the worker loop "
          "over several jobs on 1, 2, 3 ckptd replicas of one PostgreSQL: --replica_* flags).");
ABSL_FLAG(std::string, replicas, "0,1,2,3",
          "--store=replicas: how many ckptd replicas, in turn; 0 is one ckptd without "
          "--advertise (one engine for every job), the reference.");
ABSL_FLAG(std::string, replica_clients, "any,owner",
          "--store=replicas: where clients call: any (job j's worker w calls replica (j*K+w) mod "
          "N, so most calls are forwarded) and/or owner (each job's owning replica).");
ABSL_FLAG(int, replica_jobs, 8,
          "--store=replicas: jobs, spread evenly over the shards; --items are split among them.");
ABSL_FLAG(int, replica_workers, 2, "--store=replicas: worker threads per job.");
ABSL_FLAG(int, replica_shards, 16, "--store=replicas: --shards of the replicas' store.");
ABSL_FLAG(std::string, replica_store, "",
          "--store=replicas: a postgresql:// URI of the database to run the replicas on (e.g. "
          "the Patroni cluster of tools/cluster/cluster.sh; a password from PGPASSFILE); the "
          "bench makes a schema per replica count and drops it. Empty: a PostgreSQL the bench "
          "starts (fsync on).");
ABSL_FLAG(std::string, replica_postgres_pids, "",
          "--store=replicas with --replica_store: postmaster pids whose CPU (with their "
          "backends') to report; empty: PostgreSQL's CPU is not measured.");
ABSL_FLAG(std::string, serve, "", "Internal: serve a ceiling (echo, writebatch or postgres).");
ABSL_FLAG(std::string, pg_uri, "",
          "Internal: --serve=postgres's and --peer=pg_skip_locked's database.");
ABSL_FLAG(std::string, data_dir, "", "Internal: --serve=writebatch's RocksDB directory.");
ABSL_FLAG(bool, sync, true, "Internal: --serve=writebatch syncs each write.");
ABSL_FLAG(std::string, peer, "", "Internal: run a peer (sqlite or json) and print RESULT.");
ABSL_FLAG(std::string, dir, "", "Internal: the peer's directory.");
ABSL_FLAG(int, per_txn, 1,
          "Internal: SQLite rows per transaction; the SKIP LOCKED queue's items per lease.");

namespace ckpt {
namespace bench {
namespace {

int Serve(const std::string& kind) {
  if (kind == "postgres") {
    return ServePostgresCeiling(absl::GetFlag(FLAGS_pg_uri));
  }
  if (kind != "echo" && kind != "writebatch") {
    std::fprintf(stderr, "ckpt_bench: --serve must be echo, writebatch or postgres, not %s\n",
                 kind.c_str());
    return 2;
  }
  return ServeCeiling(kind == "echo" ? CeilingKind::kEcho : CeilingKind::kWriteBatch,
                      absl::GetFlag(FLAGS_data_dir), absl::GetFlag(FLAGS_sync));
}

// Prints "RESULT <items> <seconds> <p50_us> <p99_us> <max_us>" for the parent.
int RunPeer(const std::string& kind) {
  PeerOptions options;
  options.dir = absl::GetFlag(FLAGS_dir);
  options.threads = absl::GetFlag(FLAGS_threads);
  options.items = static_cast<uint64_t>(absl::GetFlag(FLAGS_items));
  options.per_txn = absl::GetFlag(FLAGS_per_txn);
  absl::StatusOr<ClientsResult> result =
      kind == "sqlite" ? RunSqlitePeer(options)
      : kind == "json" ? RunJsonPeer(options)
      : kind == "pg_skip_locked"
          ? RunSkipLockedQueue(absl::GetFlag(FLAGS_pg_uri), options.threads, options.items,
                               options.per_txn)
          : absl::InvalidArgumentError(
                absl::StrCat("--peer must be sqlite, json or pg_skip_locked, not ", kind));
  if (!result.ok()) {
    std::fprintf(stderr, "ckpt_bench: peer %s: %s\n", kind.c_str(),
                 std::string(result.status().message()).c_str());
    return 1;
  }
  std::printf("RESULT %llu %.6f %.1f %.1f %.1f\n", static_cast<unsigned long long>(result->items),
              absl::ToDoubleSeconds(result->wall), result->latencies.QuantileUs(0.5),
              result->latencies.QuantileUs(0.99), result->latencies.QuantileUs(1.0));
  return 0;
}

std::string DefaultWorkDir() {
  const char* test_tmp = std::getenv("TEST_TMPDIR");
  return test_tmp != nullptr ? test_tmp : "/tmp";
}

// A data file of this binary (`path` in the workspace) from its runfiles (bazel-bin or
// a test), else relative to bazel-bin.
std::string FindRunfile(const std::string& path) {
  std::vector<std::string> roots;
  for (const char* env : {"RUNFILES_DIR", "TEST_SRCDIR"}) {
    if (const char* dir = std::getenv(env); dir != nullptr) roots.push_back(dir);
  }
  const std::string self = SelfPath();
  roots.push_back(self + ".runfiles");
  for (const std::string& root : roots) {
    if (std::filesystem::exists(root + "/ckpt/" + path)) return root + "/ckpt/" + path;
  }
  // bazel-bin/tools/bench/ckpt_bench -> bazel-bin/<path>
  return (std::filesystem::path(self).parent_path() / "../.." / path).string();
}

RunConfig ConfigFromFlags() {
  RunConfig config;
  config.threads = absl::GetFlag(FLAGS_threads);
  config.items = static_cast<uint64_t>(absl::GetFlag(FLAGS_items));
  config.record_items = static_cast<uint64_t>(absl::GetFlag(FLAGS_record_items));
  config.json_items = static_cast<uint64_t>(absl::GetFlag(FLAGS_json_items));
  config.python_record_items = static_cast<uint64_t>(absl::GetFlag(FLAGS_python_record_items));
  config.python = absl::GetFlag(FLAGS_python);
  config.python_sdk_items = static_cast<uint64_t>(absl::GetFlag(FLAGS_python_sdk_items));
  config.range_items = static_cast<uint64_t>(absl::GetFlag(FLAGS_range_items));
  config.batch = absl::GetFlag(FLAGS_batch);
  config.lease_next = absl::GetFlag(FLAGS_lease_next);
  config.rounds = absl::GetFlag(FLAGS_rounds);
  for (absl::string_view m : absl::StrSplit(absl::GetFlag(FLAGS_modes), ',', absl::SkipEmpty())) {
    config.modes.insert(std::string(m));
  }
  for (absl::string_view s : absl::StrSplit(absl::GetFlag(FLAGS_systems), ',', absl::SkipEmpty())) {
    config.systems.insert(std::string(s));
  }
  for (absl::string_view w :
       absl::StrSplit(absl::GetFlag(FLAGS_workloads), ',', absl::SkipEmpty())) {
    config.workloads.insert(std::string(w));
  }
  for (absl::string_view store :
       absl::StrSplit(absl::GetFlag(FLAGS_store), ',', absl::SkipEmpty())) {
    config.stores.insert(std::string(store));
  }
  config.replicas.jobs = absl::GetFlag(FLAGS_replica_jobs);
  config.replicas.workers_per_job = absl::GetFlag(FLAGS_replica_workers);
  config.replicas.shards = absl::GetFlag(FLAGS_replica_shards);
  config.replicas.database_uri = absl::GetFlag(FLAGS_replica_store);
  config.replicas.clients.clear();
  for (absl::string_view c :
       absl::StrSplit(absl::GetFlag(FLAGS_replica_clients), ',', absl::SkipEmpty())) {
    config.replicas.clients.push_back(std::string(c));
  }
  if (absl::GetFlag(FLAGS_quick)) config = QuickConfig(config);
  const std::string ckptd = absl::GetFlag(FLAGS_ckptd);
  config.ckptd = ckptd.empty() ? FindRunfile("service/server/ckptd") : ckptd;
  config.sqlite_script = FindRunfile("tools/bench/sqlite_peer.py");
  config.pki_script = FindRunfile("tests/testing/make_test_pki.sh");
  config.python_sdk_script = FindRunfile("tools/bench/python_sdk_peer.py");
  // client/python, holding the `ckpt` package with its generated ckpt.v1 modules.
  config.python_sdk_path = std::filesystem::path(FindRunfile("client/python/ckpt/__init__.py"))
                               .parent_path()
                               .parent_path()
                               .string();
  config.self = SelfPath();
  const std::string work = absl::GetFlag(FLAGS_work_dir);
  config.work_dir = work.empty() ? DefaultWorkDir() : work;
  return config;
}

// Reads the --replica* lists into `config` and checks every replica setting; returns
// what is wrong, or "".
std::string ReplicaSettings(RunConfig* config) {
  ReplicaBenchOptions& r = config->replicas;
  r.counts.clear();
  for (absl::string_view n :
       absl::StrSplit(absl::GetFlag(FLAGS_replicas), ',', absl::SkipEmpty())) {
    int count = -1;
    if (!absl::SimpleAtoi(n, &count) || count < 0 || count > 16) {
      return absl::StrCat("--replicas takes counts in 0..16, not \"", n, "\"");
    }
    r.counts.push_back(count);
  }
  for (absl::string_view p :
       absl::StrSplit(absl::GetFlag(FLAGS_replica_postgres_pids), ',', absl::SkipEmpty())) {
    int pid = 0;
    if (!absl::SimpleAtoi(p, &pid) || pid <= 0) {
      return absl::StrCat("--replica_postgres_pids takes process ids, not \"", p, "\"");
    }
    r.postgres_pids.push_back(pid);
  }
  for (const std::string& c : r.clients) {
    if (c != kClientsAny && c != kClientsOwner) {
      return absl::StrCat("--replica_clients takes any and/or owner, not \"", c, "\"");
    }
  }
  if (r.counts.empty() || r.clients.empty() || r.jobs < 1 || r.workers_per_job < 1 ||
      r.shards < 1 || r.shards > 256 || config->items < static_cast<uint64_t>(r.jobs)) {
    return "--replicas and --replica_clients need an entry, --replica_jobs and "
           "--replica_workers must be >= 1, --replica_shards in 1..256, --items >= "
           "--replica_jobs";
  }
  return "";
}

}  // namespace
}  // namespace bench
}  // namespace ckpt

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "ckpt_bench: ckptd against this machine's ceilings and today's SQLite/JSON "
      "checkpoints, in one run. See docs/performance.md.");
  absl::ParseCommandLine(argc, argv);
  if (!absl::GetFlag(FLAGS_serve).empty()) return ckpt::bench::Serve(absl::GetFlag(FLAGS_serve));
  if (!absl::GetFlag(FLAGS_peer).empty()) return ckpt::bench::RunPeer(absl::GetFlag(FLAGS_peer));
  ckpt::bench::RunConfig config = ckpt::bench::ConfigFromFlags();
  if (config.stores.count("replicas") > 0) {
    if (const std::string wrong = ckpt::bench::ReplicaSettings(&config); !wrong.empty()) {
      std::fprintf(stderr, "ckpt_bench: %s\n", wrong.c_str());
      return 2;
    }
  }
  if (config.threads < 1 || config.batch < 1 || config.batch > 8192 || config.items < 1 ||
      config.record_items < 1 || config.json_items < 1 || config.range_items < 2 ||
      config.python_sdk_items < 1 || config.rounds < 1 || config.rounds > 99) {
    std::fprintf(stderr,
                 "ckpt_bench: --threads, --items, --record_items, --json_items, "
                 "--python_sdk_items must be >= 1, "
                 "--range_items >= 2, --batch in 1..8192, --rounds in 1..99\n");
    return 2;
  }
  return ckpt::bench::RunBench(config);
}
