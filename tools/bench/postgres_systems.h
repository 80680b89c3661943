// What ckpt on PostgreSQL is measured against, on the same PostgreSQL server in the
// same run (ckpt_bench --store=postgres):
//   bare_postgres:         ceiling. A gRPC server with ckptd's callback API that writes
//                          each CompleteItems request's items (key -> serialized
//                          completion) as ONE multi-row upsert, one transaction per call,
//                          synchronous_commit=on, then answers. 16 writer threads with a
//                          connection each, so PostgreSQL's commits share WAL flushes:
//                          the least a durable service on PostgreSQL must do.
//   postgres_skip_locked:  a job queue written directly in SQL, as job queues on
//                          PostgreSQL do it: one row per item, a partial index on pending
//                          rows; each client thread (its own connection) leases `batch`
//                          items in one transaction (UPDATE ... WHERE id IN (SELECT ...
//                          FOR UPDATE SKIP LOCKED)) and completes them with their results
//                          in another, until none is pending. In process, like the SQLite
//                          peer (no gRPC in its way).
// Both use the store's own client code (service/store/pg_connection.h): prepared
// statements, binary parameters, arrays.
#ifndef CKPT_TOOLS_BENCH_POSTGRES_SYSTEMS_H_
#define CKPT_TOOLS_BENCH_POSTGRES_SYSTEMS_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "tools/bench/clients.h"

namespace ckpt {
namespace bench {

// Serves bare_postgres on 127.0.0.1:0 against the database at `uri` (its table is
// created), says "serving on 127.0.0.1:PORT" on stderr, runs until SIGTERM or SIGINT.
// Returns the process exit code.
int ServePostgresCeiling(const std::string& uri);

// Runs the SKIP LOCKED queue over `items` items with `threads` threads leasing and
// completing `batch` at a time, on the database at `uri` (its table is created and
// filled first, untimed). Latency: one lease + complete round.
absl::StatusOr<ClientsResult> RunSkipLockedQueue(const std::string& uri, int threads,
                                                 uint64_t items, int batch);

}  // namespace bench
}  // namespace ckpt

#endif  // CKPT_TOOLS_BENCH_POSTGRES_SYSTEMS_H_
