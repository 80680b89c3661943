#include "tools/bench/bench_runner.h"

#include <stdlib.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <iterator>
#include <memory>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "tests/testing/postgres_cluster.h"
#include "tools/bench/child.h"
#include "tools/bench/clients.h"
#include "tools/bench/measure.h"
#include "tools/bench/python_rows.h"
#include "tools/bench/secured_ckptd.h"
#include "tools/bench/targets.h"
#include "tools/bench/workloads.h"

namespace ckpt {
namespace bench {
namespace {

constexpr char kFlood[] = "flood";
constexpr char kWithReaders[] = "worker_loop_with_readers";
constexpr char kItemReads[] = "item_reads";  // after the worker loop, on its job
constexpr uint32_t kReadPage = 100;
constexpr int kLeaseBatch = 10;
constexpr int kFillBatch = 8192;

// Attributes a workload's cost: CPU used and peak RSS (VmHWM reset at the start) of
// the server child over the window, and the CPU of this process (the clients).
class ServerWindow {
 public:
  explicit ServerWindow(ChildServer* server) : server_(server) {
    server_->ResetPeakRss();
    cpu_ = server_->CpuSeconds();
    client_cpu_ = SelfCpuSeconds();
  }
  void Fill(Measurement* m) const {
    m->cpu_seconds = server_->CpuSeconds() - cpu_;
    m->peak_rss_mib = server_->PeakRssMib();
    m->client_cpu_seconds = SelfCpuSeconds() - client_cpu_;
  }

 private:
  ChildServer* const server_;
  double cpu_ = 0;
  double client_cpu_ = 0;
};

// CPU seconds of a postmaster and its backends since construction, for the notes of
// PostgreSQL rows: the database's work is in no CPU column.
class PgCpu {
 public:
  explicit PgCpu(pid_t postmaster) : postmaster_(postmaster), start_(Seconds()) {}
  std::string Note() const { return absl::StrFormat("PostgreSQL cpu %.2f s", Seconds() - start_); }

 private:
  double Seconds() const { return postmaster_ > 0 ? TreeCpuSeconds(postmaster_) : 0; }
  const pid_t postmaster_;
  const double start_;
};

// What the replica rows run: RunConfig's replica settings with its ckptd, items and
// batch.
ReplicaBenchOptions ReplicaOptions(const RunConfig& c, const std::string& schema_prefix) {
  ReplicaBenchOptions o = c.replicas;
  o.ckptd = c.ckptd;
  o.items = c.items;
  o.batch = c.batch;
  o.lease_next = c.lease_next;
  o.schema_prefix = schema_prefix;
  return o;
}

Measurement Row(const std::string& workload, const std::string& system, bool durable, int threads,
                ClientsResult* result) {
  Measurement m;
  m.workload = workload;
  m.system = system;
  m.durable = durable;
  m.threads = threads;
  Finish(result->items, result->wall, &result->latencies, &m);
  return m;
}

class Runner {
 public:
  Runner(const RunConfig& config, int round) : c_(config), round_(round) {}

  absl::Status Run() {
    char pattern[4096];
    std::snprintf(pattern, sizeof(pattern), "%s/ckpt_bench.XXXXXX", c_.work_dir.c_str());
    if (::mkdtemp(pattern) == nullptr) {
      return absl::FailedPreconditionError(
          absl::StrCat("cannot create a directory in ", c_.work_dir, "; set --work_dir"));
    }
    root_ = pattern;
    absl::Status status = RunAll();
    std::error_code ignored;
    std::filesystem::remove_all(root_, ignored);
    return status;
  }

  std::vector<Measurement>& measurements() { return measurements_; }
  std::vector<ReplicaRow>& replica_rows() { return replica_rows_; }

 private:
  static bool Selected(const std::set<std::string>& set, const std::string& name) {
    return set.empty() || set.count(name) > 0;
  }
  bool Wants(const std::string& system) const { return Selected(c_.systems, system); }
  bool WantsWorkload(const std::string& w) const { return Selected(c_.workloads, w); }

  absl::Status RunAll() {
    if (c_.stores.count("replicas") > 0) {
      if (absl::Status s = Replicas(); !s.ok()) return s;
      if (c_.stores.size() == 1) return absl::OkStatus();
    }
    if (c_.stores.count("postgres") > 0) {
      if (absl::Status s = Postgres(); !s.ok()) return s;
      if (c_.stores.count("rocksdb") == 0) return absl::OkStatus();
    }
    for (bool durable : {true, false}) {
      if (!Selected(c_.modes, durable ? "durable" : "off")) continue;
      if (absl::Status s = Ceilings(durable); !s.ok()) return s;
      if (Wants("ckpt")) {
        if (absl::Status s = Ckpt(durable); !s.ok()) return s;
      }
      if (durable && Wants("ckpt_tls")) {
        if (absl::Status s = CkptSecured(); !s.ok()) return s;
      }
      if (durable) {
        if (absl::Status s = Peers(); !s.ok()) return s;
        if (absl::Status s = PythonSdk(); !s.ok()) return s;
      }
    }
    return absl::OkStatus();
  }

  // 1, 2 and 3 replicas over one PostgreSQL (replica_rows.h), in schemas of this run.
  absl::Status Replicas() {
    absl::StatusOr<std::vector<ReplicaRow>> rows =
        RunReplicaRows(ReplicaOptions(c_, absl::StrCat("bench_", ::getpid(), "_", round_)));
    if (!rows.ok()) return rows.status();
    for (ReplicaRow& row : *rows) {
      measurements_.push_back(row.m);
      replica_rows_.push_back(std::move(row));
    }
    return absl::OkStatus();
  }

  std::string NewDir(const std::string& name) {
    const std::string dir = absl::StrCat(root_, "/", name, "-", ++dirs_);
    std::filesystem::create_directories(dir);
    return dir;
  }

  void Add(Measurement m) {
    std::fprintf(stderr, "ckpt_bench: %-24s %-34s %-7s %12.1f %s/s  p50 %.0f us  p99 %.0f us\n",
                 m.workload.c_str(), m.system.c_str(), m.durable ? "durable" : "off", m.items_per_s,
                 m.unit.c_str(), m.p50_us, m.p99_us);
    measurements_.push_back(std::move(m));
  }

  // A workload's name: on PostgreSQL with kPostgresSuffix, so its rows compare among
  // themselves.
  std::string Workload(const char* base) const { return absl::StrCat(base, pg_suffix_); }

  // ckpt on PostgreSQL (worker loop, record mode) next to a bare PostgreSQL server
  // and a SKIP LOCKED queue, each in its own database of one fresh cluster, fsync on.
  absl::Status Postgres() {
    testutil::PostgresClusterOptions options;
    options.fsync = true;
    absl::StatusOr<std::unique_ptr<testutil::PostgresCluster>> cluster =
        testutil::PostgresCluster::Start(options);
    if (!cluster.ok()) return cluster.status();
    for (const char* db : {"ckpt", "bare_postgres", "queue"}) {
      if (absl::Status s = (*cluster)->Sql(absl::StrCat("CREATE DATABASE ", db)); !s.ok()) return s;
    }
    pg_suffix_ = kPostgresSuffix;
    pg_pid_ = (*cluster)->postmaster_pid();
    absl::Status status = PostgresSystems(**cluster);
    pg_suffix_.clear();
    pg_pid_ = -1;
    return status;
  }

  absl::Status PostgresSystems(const testutil::PostgresCluster& cluster) {
    if (Wants("bare_postgres")) {
      absl::StatusOr<std::unique_ptr<ChildServer>> bare = ChildServer::Start(
          {c_.self, "--serve=postgres", "--pg_uri=" + cluster.Uri("bare_postgres")},
          absl::Seconds(30));
      if (!bare.ok()) return bare.status();
      if (absl::Status s = CeilingWorkloads(bare->get(), "bare_postgres", true); !s.ok()) return s;
      if (absl::Status s = (*bare)->Stop(); !s.ok()) return s;
    }
    if (Wants("ckpt")) {
      if (absl::Status s = Ckpt(true, {"--store=" + cluster.Uri("ckpt")}); !s.ok()) return s;
    }
    if (!Wants("skip_locked") || !WantsWorkload(kWorkerLoop)) return absl::OkStatus();
    const PgCpu cpu(pg_pid_);
    absl::StatusOr<ChildRun> run =
        RunChild({c_.self, "--peer=pg_skip_locked", "--pg_uri=" + cluster.Uri("queue"),
                  absl::StrCat("--threads=", c_.threads), absl::StrCat("--items=", c_.items),
                  absl::StrCat("--per_txn=", c_.batch)});
    if (!run.ok()) return run.status();
    absl::StatusOr<Measurement> m =
        PeerRow(Workload(kWorkerLoop).c_str(), "postgres_skip_locked", *run);
    if (!m.ok()) return m.status();
    m->note = absl::StrCat("one transaction per lease of ", c_.batch, " and per completion; ",
                           cpu.Note(), "; cpu, rss: the queue's clients");
    Add(std::move(*m));
    return absl::OkStatus();
  }

  // Echo (durable only: it has no disk) and the bare WriteBatch server.
  absl::Status Ceilings(bool durable) {
    if (durable && Wants("echo") && (WantsWorkload(kWorkerLoop) || WantsWorkload(kRecordMode))) {
      absl::StatusOr<std::unique_ptr<ChildServer>> echo =
          ChildServer::Start({c_.self, "--serve=echo"}, absl::Seconds(30));
      if (!echo.ok()) return echo.status();
      if (absl::Status s = CeilingWorkloads(echo->get(), "grpc_echo", true); !s.ok()) return s;
      if (absl::Status s = (*echo)->Stop(); !s.ok()) return s;
    }
    if (!Wants("writebatch") || !(WantsWorkload(kWorkerLoop) || WantsWorkload(kRecordMode))) {
      return absl::OkStatus();
    }
    absl::StatusOr<std::unique_ptr<ChildServer>> bare =
        ChildServer::Start({c_.self, "--serve=writebatch", "--data_dir=" + NewDir("writebatch"),
                            absl::StrCat("--sync=", durable ? "true" : "false")},
                           absl::Seconds(30));
    if (!bare.ok()) return bare.status();
    if (absl::Status s = CeilingWorkloads(bare->get(), "bare_writebatch", durable); !s.ok()) {
      return s;
    }
    return (*bare)->Stop();
  }

  // The worker loop's completions (c_.batch items per call, with a lease token) and
  // record mode's (one item per call, no token), sent to a ceiling.
  absl::Status CeilingWorkloads(ChildServer* server, const std::string& system, bool durable) {
    struct Shape {
      const char* workload;
      uint64_t items;
      int per_call;
      uint64_t token;
    };
    for (const Shape& shape :
         {Shape{kWorkerLoop, c_.items, c_.batch, 1}, Shape{kRecordMode, c_.record_items, 1, 0}}) {
      if (!WantsWorkload(shape.workload)) continue;
      ServerWindow window(server);
      const PgCpu pg_cpu(pg_pid_);
      absl::StatusOr<ClientsResult> result = CompleteInCalls(
          server->address(), "bench", c_.threads, shape.items, shape.per_call, shape.token, true);
      if (!result.ok()) return result.status();
      Measurement m = Row(Workload(shape.workload), system, durable, c_.threads, &*result);
      window.Fill(&m);
      if (system == "grpc_echo") m.note = "no disk";
      if (pg_pid_ > 0) m.note = pg_cpu.Note();
      Add(std::move(m));
    }
    return absl::OkStatus();
  }

  std::vector<std::string> CkptdArgv(bool durable) {
    return {c_.ckptd, "--listen=127.0.0.1:0", "--http_listen=", "--data_dir=" + NewDir("ckptd"),
            absl::StrCat("--sync=", durable ? "true" : "false")};
  }

  // ckptd on RocksDB, or on the store `store_flags` give (PostgreSQL: worker loop and
  // record mode only).
  absl::Status Ckpt(bool durable, const std::vector<std::string>& store_flags = {}) {
    std::vector<std::string> argv = CkptdArgv(durable);
    if (!store_flags.empty()) {
      argv = {c_.ckptd, "--listen=127.0.0.1:0", "--http_listen="};
      argv.insert(argv.end(), store_flags.begin(), store_flags.end());
    }
    absl::StatusOr<std::unique_ptr<ChildServer>> ckptd =
        ChildServer::Start(argv, absl::Seconds(60));
    if (!ckptd.ok()) return ckptd.status();
    ChildServer* server = ckptd->get();
    absl::StatusOr<std::unique_ptr<v1::Checkpoint::Stub>> stub = ConnectedStub(server->address());
    if (!stub.ok()) return stub.status();
    using Step =
        absl::Status (Runner::*)(ChildServer*, v1::Checkpoint::Stub*, bool, const std::string&);
    for (auto [name, step] : {std::make_pair("worker_loop", Step{&Runner::CkptWorkerLoop}),
                              std::make_pair("record_mode", Step{&Runner::CkptRecordMode}),
                              std::make_pair("readers", Step{&Runner::CkptWithReaders})}) {
      if (!WantsWorkload(name) || (pg_pid_ > 0 && name == std::string("readers"))) continue;
      if (absl::Status s = (this->*step)(server, stub->get(), durable, "ckpt"); !s.ok()) return s;
    }
    if (durable && WantsWorkload("range") && pg_pid_ < 0) {
      if (absl::Status s = CkptRangeJob(server, stub->get()); !s.ok()) return s;
    }
    if (durable && WantsWorkload(kFlood) && pg_pid_ < 0) {
      if (absl::Status s = CkptFlood(server, stub->get()); !s.ok()) return s;
    }
    stub->reset();
    return server->Stop();
  }

  // The worker loop and record mode again (durable), over TLS with a bearer token as
  // README's "Securing ckptd" sets it up: what security costs next to the plaintext rows.
  absl::Status CkptSecured() {
    if (!WantsWorkload(kWorkerLoop) && !WantsWorkload(kRecordMode)) return absl::OkStatus();
    absl::StatusOr<SecuredCkptd> secured = MakeSecuredCkptd(c_.pki_script, NewDir("pki"));
    if (!secured.ok()) return secured.status();
    std::vector<std::string> argv = CkptdArgv(true);
    argv.insert(argv.end(), secured->flags.begin(), secured->flags.end());
    absl::StatusOr<std::unique_ptr<ChildServer>> ckptd =
        ChildServer::Start(argv, absl::Seconds(60));
    if (!ckptd.ok()) return ckptd.status();
    SetClientSecurity(secured->client);
    absl::Status status = CkptSecuredWorkloads(ckptd->get());
    SetClientSecurity(std::nullopt);
    if (!status.ok()) return status;
    return (*ckptd)->Stop();
  }

  absl::Status CkptSecuredWorkloads(ChildServer* server) {
    absl::StatusOr<std::unique_ptr<v1::Checkpoint::Stub>> stub = ConnectedStub(server->address());
    if (!stub.ok()) return stub.status();
    if (WantsWorkload(kWorkerLoop)) {
      if (absl::Status s = CkptWorkerLoop(server, stub->get(), true, "ckpt_tls"); !s.ok()) {
        return s;
      }
    }
    if (WantsWorkload(kRecordMode)) {
      return CkptRecordMode(server, stub->get(), true, "ckpt_tls");
    }
    return absl::OkStatus();
  }

  absl::Status CkptWorkerLoop(ChildServer* server, v1::Checkpoint::Stub* stub, bool durable,
                              const std::string& system) {
    const std::string job = absl::StrCat("bench-worker-loop-", durable);
    if (absl::Status s = CreateRangeJob(stub, job, c_.items); !s.ok()) return s;
    ServerWindow window(server);
    const PgCpu pg_cpu(pg_pid_);
    std::atomic<uint64_t> leased_alone{0};
    absl::StatusOr<ClientsResult> result =
        WorkerLoop(server->address(), job, c_.threads, c_.batch, c_.lease_next, &leased_alone);
    if (!result.ok()) return result.status();
    Measurement m = Row(Workload(kWorkerLoop), system, durable, c_.threads, &*result);
    window.Fill(&m);
    // One LeaseItems per thread to start, then none: every round was one call.
    m.note = leased_alone.load() <= static_cast<uint64_t>(c_.threads)
                 ? absl::StrCat("complete ", c_.batch, " + lease next ", c_.batch, " per call")
                 : absl::StrCat("lease ", c_.batch, " + complete ", c_.batch, " per round");
    if (system == "ckpt_tls") absl::StrAppend(&m.note, "; TLS, bearer token");
    if (pg_pid_ > 0) absl::StrAppend(&m.note, "; ", pg_cpu.Note());
    Add(std::move(m));
    if (!durable || system != "ckpt" || pg_pid_ > 0 || !WantsWorkload("reads")) {
      return absl::OkStatus();
    }
    return CkptItemReads(server, job);
  }

  // GetItem, ListItems and FindOutput on the worker loop's job, all of it completed.
  absl::Status CkptItemReads(ChildServer* server, const std::string& job) {
    absl::StatusOr<ItemReads> reads =
        ReadCompletedItems(server->address(), job, c_.items, c_.latency_calls, kReadPage);
    if (!reads.ok()) return reads.status();
    const std::string page = absl::StrCat(kReadPage, " items with results per page");
    for (auto [name, result, note] :
         {std::make_tuple("ckpt GetItem", &reads->get_item, std::string("a random index")),
          std::make_tuple("ckpt ListItems COMPLETED", &reads->list_by_key, "key order, " + page),
          std::make_tuple("ckpt ListItems newest first", &reads->list_newest,
                          "by completion time, " + page),
          std::make_tuple("ckpt FindOutput", &reads->find_output,
                          std::string("a random output path"))}) {
      Measurement m = Row(kItemReads, name, true, 1, result);
      m.unit = "calls";
      m.note = absl::StrCat(note, "; one client, the four in turn, on the ", c_.items,
                            "-item job the worker loop completed");
      Add(std::move(m));
    }
    return absl::OkStatus();
  }

  absl::Status CkptRecordMode(ChildServer* server, v1::Checkpoint::Stub* stub, bool durable,
                              const std::string& system) {
    const std::string job = absl::StrCat("bench-record-mode-", durable);
    if (absl::Status s = CreateRangeJob(stub, job, c_.record_items); !s.ok()) return s;
    ServerWindow window(server);
    const PgCpu pg_cpu(pg_pid_);
    absl::StatusOr<ClientsResult> result =
        CompleteInCalls(server->address(), job, c_.threads, c_.record_items, 1, 0, true);
    if (!result.ok()) return result.status();
    Measurement m = Row(Workload(kRecordMode), system, durable, c_.threads, &*result);
    window.Fill(&m);
    if (system == "ckpt_tls") m.note = "TLS, bearer token";
    if (pg_pid_ > 0) m.note = pg_cpu.Note();
    Add(std::move(m));
    return absl::OkStatus();
  }

  absl::Status CkptWithReaders(ChildServer* server, v1::Checkpoint::Stub* stub, bool durable,
                               const std::string& system) {
    const std::string job = absl::StrCat("bench-with-readers-", durable);
    if (absl::Status s = CreateRangeJob(stub, job, c_.items); !s.ok()) return s;
    ServerWindow window(server);
    absl::StatusOr<ReadsDuringLoop> result =
        WorkerLoopWithReaders(server->address(), job, c_.threads, c_.batch, c_.lease_next);
    if (!result.ok()) return result.status();
    Measurement workers = Row(kWithReaders, system, durable, c_.threads, &result->workers);
    window.Fill(&workers);
    workers.note = "worker loop, while GetJob and WatchJob run";
    Add(std::move(workers));
    Measurement get = Row(kWithReaders, "ckpt GetJob (1 client)", durable, 1, &result->get_job);
    get.unit = "calls";
    Add(std::move(get));
    Measurement watch =
        Row(kWithReaders, "ckpt WatchJob (1 stream)", durable, 1, &result->watch_job);
    watch.unit = "snapshots";
    watch.note = "latency = gap between snapshots";
    Add(std::move(watch));
    return absl::OkStatus();
  }

  // A 10^7-index job next to a 100-item one: registering the range, completing half
  // of it, then GetJob and LeaseItems latency on both, and ckptd's memory.
  absl::Status CkptRangeJob(ChildServer* server, v1::Checkpoint::Stub* stub) {
    const std::string big = "bench-range-big", small = "bench-range-100";
    ServerWindow window(server);
    const absl::Time start = absl::Now();
    if (absl::Status s = CreateRangeJob(stub, big, c_.range_items); !s.ok()) return s;
    const absl::Duration create = absl::Now() - start;
    if (absl::Status s = CreateRangeJob(stub, small, 100); !s.ok()) return s;
    const uint64_t half = c_.range_items / 2;
    absl::StatusOr<ClientsResult> fill =
        CompleteInCalls(server->address(), big, c_.threads, half, kFillBatch, 0, false);
    if (!fill.ok()) return fill.status();
    Measurement filled =
        Row(kRangeJob, "ckpt fill: record mode, 8192/call", true, c_.threads, &*fill);
    window.Fill(&filled);
    filled.note = absl::StrFormat(
        "completes half of %d indices (no results); CreateJob+AddItems of the range took %.1f ms; "
        "RSS after: %.0f MiB",
        c_.range_items, absl::ToDoubleMilliseconds(create), server->RssMib());
    Add(std::move(filled));
    return RangeLatencies(server, JobRef{small, 100}, JobRef{big, c_.range_items - half});
  }

  // Admission control: many clients sending ~1 MiB batches at once while one sends
  // one-item writes; ckptd's defaults bound its queue (64 MiB, 4096 writes).
  absl::Status CkptFlood(ChildServer* server, v1::Checkpoint::Stub* stub) {
    const std::string job = "bench-flood";
    const uint64_t items =
        static_cast<uint64_t>(c_.flood_clients) * c_.flood_calls * c_.flood_batch;
    if (absl::Status s = CreateRangeJob(stub, job, items); !s.ok()) return s;
    ServerWindow window(server);
    absl::StatusOr<FloodResult> result = FloodWithSmallWrites(
        server->address(), job, c_.flood_clients, c_.flood_calls, c_.flood_batch);
    if (!result.ok()) return result.status();
    Measurement flood =
        Row(kFlood, "ckpt flood: CompleteItems", true, c_.flood_clients, &result->flood);
    window.Fill(&flood);
    flood.note = absl::StrFormat(
        "%d clients x %d calls of %d items with results; %d refused RESOURCE_EXHAUSTED "
        "(queue full) and sent again after the hint",
        c_.flood_clients, c_.flood_calls, c_.flood_batch, result->refused);
    Add(std::move(flood));
    Measurement small = Row(kFlood, "ckpt PutState(1) during flood", true, 1, &result->small);
    small.unit = "calls";
    small.peak_rss_mib = server->PeakRssMib();
    small.note = "one client, back to back; peak RSS is ckptd's over the whole flood";
    Add(std::move(small));
    return absl::OkStatus();
  }

  absl::Status RangeLatencies(ChildServer* server, const JobRef& small, const JobRef& big) {
    absl::StatusOr<PairedLatency> get =
        GetJobLatency(server->address(), small.id, big.id, c_.latency_calls);
    if (!get.ok()) return get.status();
    absl::StatusOr<PairedLatency> lease =
        LeaseLatency(server->address(), small, big, c_.lease_calls, kLeaseBatch);
    if (!lease.ok()) return lease.status();
    const std::string n = absl::StrCat(big.pending * 2);
    for (auto [name, result] :
         {std::make_pair("ckpt GetJob, 100-item job", &get->a),
          std::make_pair("ckpt GetJob, range job half done", &get->b),
          std::make_pair("ckpt LeaseItems(10), 100-item job", &lease->a),
          std::make_pair("ckpt LeaseItems(10), range job half done", &lease->b)}) {
      Measurement m = Row(kRangeJob, name, true, 1, result);
      m.unit = "calls";
      m.peak_rss_mib = server->PeakRssMib();
      m.note = absl::StrCat("range job: ", n, " indices");
      Add(std::move(m));
    }
    return absl::OkStatus();
  }

  absl::Status Peers() {
    struct PeerRun {
      const char* workload;
      const char* system;
      const char* kind;  // sqlite (C, threads), sqlite_py (Python, processes), json
      uint64_t items;
      int per_txn;
    };
    for (const PeerRun& p :
         {PeerRun{kWorkerLoop, "sqlite_full_batch100", "sqlite", c_.items, c_.batch},
          PeerRun{kWorkerLoop, "sqlite_py_full_batch100", "sqlite_py", c_.items, c_.batch},
          PeerRun{kRecordMode, "sqlite_full_txn_per_item", "sqlite", c_.record_items, 1},
          PeerRun{kRecordMode, "sqlite_py_full_txn_per_item", "sqlite_py", c_.python_record_items,
                  1},
          PeerRun{kRecordMode, "json_rewrite_fsync", "json", c_.json_items, 1}}) {
      const std::string kind = p.kind;
      if (!Wants(kind == "sqlite_py" ? "sqlite" : kind) || !WantsWorkload(p.workload)) continue;
      if (kind == "sqlite_py" && c_.python.empty()) continue;
      std::vector<std::string> argv = {c_.self, absl::StrCat("--peer=", kind)};
      if (kind == "sqlite_py") argv = {c_.python, c_.sqlite_script};
      for (std::string arg :
           {"--dir=" + NewDir(kind), absl::StrCat("--threads=", c_.threads),
            absl::StrCat("--items=", p.items), absl::StrCat("--per_txn=", p.per_txn)}) {
        argv.push_back(std::move(arg));
      }
      absl::StatusOr<ChildRun> run = RunChild(argv);
      if (!run.ok()) return run.status();
      absl::StatusOr<Measurement> m = PeerRow(p.workload, p.system, *run);
      if (!m.ok()) return m.status();
      if (kind == "json") m->note = absl::StrCat("N=", p.items, " only: O(N^2)");
      if (kind == "sqlite_py") {
        m->note = absl::StrCat("Python sqlite3, ", c_.threads, " processes",
                               p.items != c_.items && p.per_txn == 1
                                   ? absl::StrCat(", N=", p.items, " only: writers starve")
                                   : "",
                               "; cpu, rss: all its processes");
      }
      Add(std::move(*m));
    }
    return absl::OkStatus();
  }

  absl::StatusOr<Measurement> PeerRow(const char* workload, const char* system,
                                      const ChildRun& run) {
    Measurement m;
    m.workload = workload;
    m.system = system;
    m.threads = c_.threads;
    if (absl::Status s = ParsePeerResult(run, &m); !s.ok()) return s;
    m.note = "in process: cpu and rss include its clients";
    return m;
  }

  // The Python SDK's rows (python_rows.h), against a ckptd of their own.
  absl::Status PythonSdk() {
    if (!Wants("python") || c_.python.empty() || c_.python_sdk_script.empty()) {
      return absl::OkStatus();
    }
    PythonSdkOptions options;
    options.python = c_.python;
    options.script = c_.python_sdk_script;
    options.pythonpath = c_.python_sdk_path;
    options.ckptd = c_.ckptd;
    options.data_dir = NewDir("ckptd-python");
    options.threads = c_.threads;
    options.items = c_.python_sdk_items;
    options.record_items = c_.python_record_items;
    absl::StatusOr<std::vector<Measurement>> rows = RunPythonSdkRows(options);
    if (!rows.ok()) return rows.status();
    for (Measurement& m : *rows) Add(std::move(m));
    return absl::OkStatus();
  }

  const RunConfig c_;
  const int round_;
  std::string pg_suffix_;  // "_pg" while measuring on PostgreSQL
  pid_t pg_pid_ = -1;      // its postmaster then
  std::string root_;
  int dirs_ = 0;
  std::vector<Measurement> measurements_;
  std::vector<ReplicaRow> replica_rows_;
};

std::string Header(const RunConfig& c) {
  utsname u{};
  ::uname(&u);
  return absl::StrFormat(
      "ckpt_bench %s on %s (%s %s), %ld cpus\n"
      "threads %d; worker loop %d items (%d per call); record mode %d items (Python SQLite "
      "peer and Python SDK one call per item %d); JSON peer %d items; range job %d indices; "
      "Python SDK %d items\nckptd: %s\n",
      absl::FormatTime("%Y-%m-%d %H:%M:%S %Z", absl::Now(), absl::LocalTimeZone()), u.nodename,
      u.sysname, u.release, ::sysconf(_SC_NPROCESSORS_ONLN), c.threads, c.items, c.batch,
      c.record_items, c.python_record_items, c.json_items, c.range_items, c.python_sdk_items,
      c.ckptd);
}

}  // namespace

RunConfig QuickConfig(RunConfig config) {
  config.items = 4000;
  config.record_items = 400;
  config.json_items = 40;
  config.python_record_items = 200;
  config.python_sdk_items = 2000;
  config.range_items = 100000;
  config.latency_calls = 50;
  config.lease_calls = 20;
  config.flood_clients = 8;
  config.flood_calls = 2;
  config.flood_batch = 1024;
  return config;
}

int RunBench(const RunConfig& config) {
  std::string header = Header(config);
  std::fputs(header.c_str(), stderr);
  const int rounds = std::max(1, config.rounds);
  absl::Status status;
  std::string out = header;
  std::vector<std::vector<Target>> targets;
  std::vector<Measurement> all;
  std::vector<ReplicaRow> replica_rows;
  for (int round = 1; round <= rounds && status.ok(); ++round) {
    Runner runner(config, round);
    status = runner.Run();
    std::vector<Measurement>& ms = runner.measurements();
    if (rounds > 1) {
      absl::StrAppend(&out, "\nround ", round, " of ", rounds, "\n");
      for (Measurement& m : ms) m.round = round;
    }
    absl::StrAppend(&out, FormatTable(ms));
    std::vector<Measurement> judged;  // the replica rows have no targets
    std::copy_if(ms.begin(), ms.end(), std::back_inserter(judged),
                 [](const Measurement& m) { return m.workload != kReplicasWorkload; });
    if (!judged.empty() || ms.empty()) targets.push_back(AllTargets(judged));
    all.insert(all.end(), ms.begin(), ms.end());
    replica_rows.insert(replica_rows.end(), runner.replica_rows().begin(),
                        runner.replica_rows().end());
  }
  if (!targets.empty()) absl::StrAppend(&out, FormatTargets(MedianTargets(targets)));
  if (!replica_rows.empty()) {
    absl::StrAppend(&out, FormatReplicaTable(ReplicaOptions(config, ""), replica_rows));
  }
  absl::StrAppend(&out, "\n");
  for (const Measurement& m : all) absl::StrAppend(&out, ToJsonLine(m), "\n");
  std::fputs(out.c_str(), stdout);
  std::fflush(stdout);
  if (!status.ok()) {
    std::fprintf(stderr, "ckpt_bench: %s\n", std::string(status.message()).c_str());
    return 1;
  }
  return 0;
}

}  // namespace bench
}  // namespace ckpt
