// What pipelines use today, run in process by N threads on the same items and results:
//   SQLite (Debian's libsqlite3) in WAL mode, synchronous=FULL, one row per completed
//     index in physicsnemo-curator's completed_indices shape (idx INTEGER PRIMARY KEY,
//     run_id, output_paths JSON, completed_at, elapsed_ns, error), each thread on its own
//     connection, `per_txn` rows per transaction (BEGIN IMMEDIATE ... COMMIT).
//   A JSON checkpoint rewritten whole per completed item: write a temp file, fsync it,
//     rename it over the checkpoint (the seeds' pattern); threads share the file under
//     one lock, as they would have to. O(N^2) in bytes written.
// The bench runs each in a child process (--peer=...) so its CPU and peak RSS are its own.
#ifndef CKPT_TOOLS_BENCH_PEERS_H_
#define CKPT_TOOLS_BENCH_PEERS_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "tools/bench/clients.h"

namespace ckpt {
namespace bench {

struct PeerOptions {
  std::string dir;  // an existing empty directory for the database or checkpoint
  int threads = 8;
  uint64_t items = 0;
  int per_txn = 1;  // SQLite only
};

absl::StatusOr<ClientsResult> RunSqlitePeer(const PeerOptions& options);
absl::StatusOr<ClientsResult> RunJsonPeer(const PeerOptions& options);

}  // namespace bench
}  // namespace ckpt

#endif  // CKPT_TOOLS_BENCH_PEERS_H_
