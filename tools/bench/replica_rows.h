// Scale-out, measured (ckpt_bench --store=replicas): the worker loop over several jobs
// spread over the shards, against 1, 2 and 3 ckptd replicas (ReplicaSet) on the same
// PostgreSQL, with clients calling any replica (calls for another replica's shards are
// forwarded) or each job's owner (none are), next to one ckptd without --advertise.
// Each row also says what the machine did meanwhile: each ckptd's CPU, PostgreSQL's,
// how many cores were busy in all, and the load average. docs/performance.md,
// "Replicas", has a run and what limits it.
#ifndef CKPT_TOOLS_BENCH_REPLICA_ROWS_H_
#define CKPT_TOOLS_BENCH_REPLICA_ROWS_H_

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "tools/bench/measure.h"

namespace ckpt {
namespace bench {

// The workload name of every replica row.
inline constexpr char kReplicasWorkload[] = "replicas";
// Where clients call: any replica (job j's worker w calls replica (j*K + w) mod N), or
// the replica owning the job's shard.
inline constexpr char kClientsAny[] = "any";
inline constexpr char kClientsOwner[] = "owner";

struct ReplicaBenchOptions {
  std::string ckptd;
  // The database, a postgresql:// URI; empty: the bench starts a PostgreSQL of its own
  // (fsync on) for the run. Each replica count gets a fresh schema in it.
  std::string database_uri;
  // Postmasters whose process trees' CPU the rows report (the bench's own PostgreSQL's
  // is added); empty: PostgreSQL's CPU is not measured.
  std::vector<pid_t> postgres_pids;
  std::string schema_prefix = "bench";     // schemas are PREFIX_rN; unique per run
  std::vector<int> counts = {0, 1, 2, 3};  // 0: one ckptd without --advertise
  std::vector<std::string> clients = {kClientsAny, kClientsOwner};
  int shards = 16;
  int jobs = 8;             // on shards spread evenly: job j on shard j*shards/jobs
  int workers_per_job = 2;  // client threads per job, each on its own channel
  uint64_t items = 300000;  // over all jobs
  int batch = 100;          // lease `batch` + complete them, per round
  bool lease_next = true;   // each completion leases the next batch (one call per round)
};

// One measurement: a Measurement for the common table and JSON (workload "replicas",
// server CPU = all the ckptd's), and what only replicas have.
struct ReplicaRow {
  int replicas = 0;               // 0: one ckptd without --advertise
  std::string clients;            // kClientsAny or kClientsOwner
  Measurement m;                  // m.note repeats the fields below
  std::vector<double> ckptd_cpu;  // each ckptd's CPU seconds over the measurement
  double postgres_cpu = -1;       // -1: not measured
  double busy_cores = -1;         // the whole machine's, over the measurement
  double own_cores = -1;          // of which ckptd, PostgreSQL (if measured), clients
  int64_t transactions = 0;       // write transactions the PostgreSQL server committed
  int64_t wal_bytes = 0;          // and the WAL it wrote
  double load = -1;               // 1-minute load average at the start
  double forwarded = 0;           // share of clients calling a replica that does not
                                  // own their job's shard
};

// Runs every count in `options.counts` (a fresh ReplicaSet each) with every entry of
// `options.clients` (fresh jobs each; one ckptd, replica or not, only with the first:
// its clients all call the owner). Checks that
// every job ends with all its items completed. The first failure ends it.
absl::StatusOr<std::vector<ReplicaRow>> RunReplicaRows(const ReplicaBenchOptions& options);

// The replica table: per (count, clients) the round with the median rate, its rate
// relative to one replica's (median), its cost columns, and every round's rate; a header
// saying what was run.
std::string FormatReplicaTable(const ReplicaBenchOptions& options,
                               const std::vector<ReplicaRow>& rows);

}  // namespace bench
}  // namespace ckpt

#endif  // CKPT_TOOLS_BENCH_REPLICA_ROWS_H_
