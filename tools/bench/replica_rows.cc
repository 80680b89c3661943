#include "tools/bench/replica_rows.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "service/cluster/shard_map.h"
#include "service/store/pg_connection.h"
#include "tests/testing/postgres_cluster.h"
#include "tools/bench/child.h"
#include "tools/bench/clients.h"
#include "tools/bench/replica_set.h"
#include "tools/bench/workloads.h"

namespace ckpt {
namespace bench {
namespace {

using Owners = std::map<int, std::string>;

struct Job {
  std::string id;
  int shard = 0;
};

// `count` jobs on shards spread evenly over `shards` (job j on shard j*shards/count),
// each id the first of "bench-TAG-j-n" that hashes there.
std::vector<Job> SpreadJobs(const std::string& tag, int count, int shards) {
  std::vector<Job> jobs;
  for (int j = 0; j < count; ++j) {
    const int shard = static_cast<int>(static_cast<int64_t>(j) * shards / count);
    for (int n = 0;; ++n) {
      std::string id = absl::StrCat("bench-", tag, "-", j, "-", n);
      if (ShardOfJob(id, shards) == shard) {
        jobs.push_back({std::move(id), shard});
        break;
      }
    }
  }
  return jobs;
}

// Who calls where: job j's worker w calls replica (j*K + w) mod N ("any") or the
// owner of the job's shard. Sets `forwarded` to the share calling a non-owner.
// UNAVAILABLE if a job's shard has no owner now.
absl::StatusOr<std::vector<WorkerSeat>> Seats(const ReplicaBenchOptions& o, const ReplicaSet& set,
                                              const std::vector<Job>& jobs, const Owners& owners,
                                              const std::string& clients, double* forwarded) {
  std::vector<WorkerSeat> seats;
  int remote = 0;
  const auto& servers = set.servers();
  for (size_t j = 0; j < jobs.size(); ++j) {
    const auto owner = owners.find(jobs[j].shard);
    if (owner == owners.end()) {
      return absl::UnavailableError(absl::StrCat("shard ", jobs[j].shard, " has no owner"));
    }
    for (int w = 0; w < o.workers_per_job; ++w) {
      const size_t any = (j * o.workers_per_job + w) % servers.size();
      std::string address = clients == kClientsOwner ? owner->second : servers[any]->address();
      remote += address != owner->second;
      seats.push_back({std::move(address), jobs[j].id, /*unique_paths=*/true});
    }
  }
  *forwarded = seats.empty() ? 0 : static_cast<double>(remote) / seats.size();
  return seats;
}

// Every counter a row reports, read before and after the measurement.
struct Counters {
  std::vector<double> ckptd;
  double postgres = 0;
  double busy = 0;
  double clients = 0;
  ReplicaSet::DatabaseProgress database;
  absl::Time at;

  static absl::StatusOr<Counters> Read(const ReplicaSet& set,
                                       const std::vector<pid_t>& postgres_pids) {
    Counters c;
    absl::StatusOr<ReplicaSet::DatabaseProgress> database = set.Progress();
    if (!database.ok()) return database.status();
    c.database = *database;
    for (const auto& server : set.servers()) c.ckptd.push_back(server->CpuSeconds());
    for (pid_t pid : postgres_pids) c.postgres += TreeCpuSeconds(pid);
    c.busy = MachineBusySeconds();
    c.clients = SelfCpuSeconds();
    c.at = absl::Now();
    return c;
  }
};

std::string SystemName(int replicas, const std::string& clients) {
  if (replicas == 0) return "ckpt_single";
  return absl::StrCat("ckpt_", replicas, replicas == 1 ? "_replica_" : "_replicas_", clients);
}

// CPU seconds of everything the row ran: ckptd, PostgreSQL (if measured), clients.
double OwnCpuSeconds(const ReplicaRow& row) {
  return row.m.cpu_seconds + std::max(0.0, row.postgres_cpu) + row.m.client_cpu_seconds;
}

void FillCosts(const Counters& before, const Counters& after, bool postgres_measured,
               ReplicaRow* row) {
  double total = 0;
  for (size_t i = 0; i < after.ckptd.size(); ++i) {
    row->ckptd_cpu.push_back(after.ckptd[i] - before.ckptd[i]);
    total += row->ckptd_cpu.back();
  }
  row->m.cpu_seconds = total;
  row->m.client_cpu_seconds = after.clients - before.clients;
  if (postgres_measured) row->postgres_cpu = after.postgres - before.postgres;
  const double wall = absl::ToDoubleSeconds(after.at - before.at);
  if (before.busy >= 0 && after.busy >= 0 && wall > 0) {
    row->busy_cores = (after.busy - before.busy) / wall;
  }
  if (wall > 0) row->own_cores = OwnCpuSeconds(*row) / wall;
  // The later reading's txid_current() took one more.
  row->transactions = after.database.xid - before.database.xid - 1;
  row->wal_bytes = after.database.wal_bytes - before.database.wal_bytes;
  std::vector<std::string> each;
  for (double cpu : row->ckptd_cpu) each.push_back(absl::StrFormat("%.2f", cpu));
  row->m.note = absl::StrFormat(
      "ckptd cpu s %s; PostgreSQL cpu s %s; %d write transactions, %d WAL bytes; machine busy "
      "%.2f cores, %.2f of them this run's; load %.2f; %.0f%% of clients on a non-owner",
      absl::StrJoin(each, " + "),
      row->postgres_cpu >= 0 ? absl::StrFormat("%.2f", row->postgres_cpu) : "-", row->transactions,
      row->wal_bytes, row->busy_cores, row->own_cores, row->load, 100 * row->forwarded);
}

// One measurement: fresh jobs, created untimed through the first ckptd, then the
// worker loop on all of them at once.
absl::StatusOr<ReplicaRow> Measure(const ReplicaBenchOptions& o, const ReplicaSet& set,
                                   int replicas, const std::string& clients,
                                   const std::vector<pid_t>& postgres_pids) {
  absl::StatusOr<Owners> owners = set.Owners();
  if (!owners.ok()) return owners.status();
  const std::vector<Job> jobs = SpreadJobs(clients, o.jobs, o.shards);
  const uint64_t per_job = o.items / static_cast<uint64_t>(o.jobs);
  absl::StatusOr<std::unique_ptr<v1::Checkpoint::Stub>> stub =
      ConnectedStub(set.servers().front()->address());
  if (!stub.ok()) return stub.status();
  for (const Job& job : jobs) {
    if (absl::Status s = CreateRangeJob(stub->get(), job.id, per_job); !s.ok()) return s;
  }
  ReplicaRow row;
  row.replicas = replicas;
  row.clients = clients;
  const absl::StatusOr<std::vector<WorkerSeat>> seats =
      Seats(o, set, jobs, *owners, clients, &row.forwarded);
  if (!seats.ok()) return seats.status();
  row.load = LoadAverage();
  const absl::StatusOr<Counters> before = Counters::Read(set, postgres_pids);
  if (!before.ok()) return before.status();
  absl::StatusOr<ClientsResult> result = WorkerLoop(*seats, o.batch, o.lease_next, nullptr);
  if (!result.ok()) return result.status();
  const absl::StatusOr<Counters> after = Counters::Read(set, postgres_pids);
  if (!after.ok()) return after.status();
  row.m.workload = kReplicasWorkload;
  row.m.system = SystemName(replicas, clients);
  row.m.threads = static_cast<int>(seats->size());
  Finish(result->items, result->wall, &result->latencies, &row.m);
  FillCosts(*before, *after, !postgres_pids.empty(), &row);
  return row;
}

absl::Status RunCounts(const ReplicaBenchOptions& o, const std::string& uri,
                       const std::vector<pid_t>& postgres_pids, std::vector<ReplicaRow>* rows) {
  for (int count : o.counts) {
    ReplicaSetOptions set_options;
    set_options.ckptd = o.ckptd;
    set_options.database_uri = uri;
    set_options.schema = absl::StrCat(o.schema_prefix, "_r", count);
    set_options.replicas = count;
    set_options.shards = o.shards;
    absl::StatusOr<std::unique_ptr<ReplicaSet>> set = ReplicaSet::Start(set_options);
    if (!set.ok()) return set.status();
    for (const std::string& clients : o.clients) {
      absl::StatusOr<ReplicaRow> row = Measure(o, **set, count, clients, postgres_pids);
      if (!row.ok()) return row.status();
      std::fprintf(stderr, "ckpt_bench: %-28s %10.0f items/s  p50 %.0f us  %s\n",
                   row->m.system.c_str(), row->m.items_per_s, row->m.p50_us, row->m.note.c_str());
      rows->push_back(std::move(*row));
      if (count <= 1) break;  // one ckptd: every client calls the owner
    }
    if (absl::Status s = (*set)->Stop(); !s.ok()) return s;
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::vector<ReplicaRow>> RunReplicaRows(const ReplicaBenchOptions& options) {
  if (options.jobs < 1 || options.workers_per_job < 1 || options.shards < 1 ||
      options.items < static_cast<uint64_t>(options.jobs) || options.batch < 1) {
    return absl::InvalidArgumentError(
        "replicas: jobs, workers per job, shards and batch must be >= 1, items >= jobs");
  }
  std::vector<ReplicaRow> rows;
  std::vector<pid_t> postgres_pids = options.postgres_pids;
  if (!options.database_uri.empty()) {
    if (absl::Status s = RunCounts(options, options.database_uri, postgres_pids, &rows); !s.ok()) {
      return s;
    }
    return rows;
  }
  testutil::PostgresClusterOptions pg;
  pg.fsync = true;
  absl::StatusOr<std::unique_ptr<testutil::PostgresCluster>> cluster =
      testutil::PostgresCluster::Start(pg);
  if (!cluster.ok()) return cluster.status();
  if (absl::Status s = (*cluster)->Sql("CREATE DATABASE replicas"); !s.ok()) return s;
  postgres_pids.push_back((*cluster)->postmaster_pid());
  if (absl::Status s = RunCounts(options, (*cluster)->Uri("replicas"), postgres_pids, &rows);
      !s.ok()) {
    return s;
  }
  return rows;
}

namespace {

// The rows of one (count, clients), the rounds in order.
using Group = std::vector<const ReplicaRow*>;

// The group's row with the median rate (the lower of the two middle ones).
const ReplicaRow& MedianRow(Group group) {
  std::sort(group.begin(), group.end(), [](const ReplicaRow* a, const ReplicaRow* b) {
    return a->m.items_per_s < b->m.items_per_s;
  });
  return *group[(group.size() - 1) / 2];
}

std::string StoreName(const ReplicaBenchOptions& o) {
  if (o.database_uri.empty()) return "the bench's own PostgreSQL 15, fsync on";
  absl::StatusOr<PgTarget> target = PgTarget::Parse(o.database_uri);
  return target.ok() ? target->display() : "the given PostgreSQL";
}

std::string CountName(int replicas) {
  if (replicas == 0) return "1, no --advertise";
  return absl::StrCat(replicas, replicas == 1 ? " replica" : " replicas");
}

}  // namespace

namespace {

// One format for the header and the rows.
constexpr char kTableRow[] = "  %-17s %-7s %9s %5s %7s %7s %4s %-16s %6s %6s %7s %9s %9s %5s  %s\n";

// A group's line: its median round, its rate over `one_rate` (if > 0), every round's rate.
std::string GroupLine(const Group& group, double one_rate) {
  const ReplicaRow& row = MedianRow(group);
  std::vector<std::string> each, rates;
  for (double cpu : row.ckptd_cpu) each.push_back(absl::StrFormat("%.2f", cpu));
  for (const ReplicaRow* r : group) rates.push_back(absl::StrFormat("%.0f", r->m.items_per_s));
  auto fixed = [](double v, int decimals) { return absl::StrFormat("%.*f", decimals, v); };
  return absl::StrFormat(
      kTableRow, CountName(row.replicas), row.replicas <= 1 ? "-" : row.clients,
      fixed(row.m.items_per_s, 0), one_rate > 0 ? fixed(row.m.items_per_s / one_rate, 2) : "",
      fixed(row.m.p50_us / 1000, 1), fixed(row.m.p99_us / 1000, 1),
      absl::StrCat(fixed(100 * row.forwarded, 0), "%"), absl::StrJoin(each, "+"),
      row.postgres_cpu >= 0 ? fixed(row.postgres_cpu, 2) : "-", fixed(row.m.client_cpu_seconds, 2),
      row.m.items > 0 ? fixed(OwnCpuSeconds(row) * 1e6 / row.m.items, 1) : "-",
      row.transactions > 0 ? fixed(static_cast<double>(row.m.items) / row.transactions, 1) : "-",
      absl::StrCat(fixed(row.own_cores, 2), "/", fixed(row.busy_cores, 2)), fixed(row.load, 1),
      absl::StrJoin(rates, " "));
}

}  // namespace

std::string FormatReplicaTable(const ReplicaBenchOptions& o, const std::vector<ReplicaRow>& rows) {
  std::vector<std::pair<int, std::string>> order;  // (count, clients) as first measured
  std::map<std::pair<int, std::string>, Group> groups;
  for (const ReplicaRow& row : rows) {
    const auto key = std::make_pair(row.replicas, row.clients);
    if (groups[key].empty()) order.push_back(key);
    groups[key].push_back(&row);
  }
  double one_rate = 0;  // one replica's median
  for (const auto& key : order) {
    if (key.first == 1) one_rate = MedianRow(groups[key]).m.items_per_s;
  }
  std::string out = absl::StrFormat(
      "\nreplicas on %s: %d jobs on %d of %d shards, %d workers each (%d clients), %d items, "
      "%s; per row the median of %d round(s)\n",
      StoreName(o), o.jobs, std::min(o.jobs, o.shards), o.shards, o.workers_per_job,
      o.jobs * o.workers_per_job, o.items,
      o.lease_next
          ? absl::StrFormat("complete %d leasing the next %d, one call per round", o.batch, o.batch)
          : absl::StrFormat("lease %d + complete %d per round", o.batch, o.batch),
      order.empty() ? 0 : groups[order.front()].size());
  absl::StrAppend(&out,
                  absl::StrFormat(kTableRow, "ckptd", "clients", "items/s", "vs 1", "p50 ms",
                                  "p99 ms", "fwd", "ckptd cpu s", "pg cpu", "cli cpu", "us/item",
                                  "items/txn", "cores", "load", "rounds' items/s"),
                  "  (cpu: seconds over the run; us/item: ckptd + PostgreSQL + clients CPU per "
                  "item; items/txn: per PostgreSQL write transaction; cores: this run's / the "
                  "whole machine's, busy; load: 1 min, at the start)\n");
  for (const auto& key : order) absl::StrAppend(&out, GroupLine(groups[key], one_rate));
  return out;
}

}  // namespace bench
}  // namespace ckpt
