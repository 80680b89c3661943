// The machine's ceilings as servers: the same gRPC callback API and the same
// ckpt.v1.Checkpoint messages as ckptd, doing the least a service must do.
//   echo:        answers CompleteItems with one COMPLETED outcome per item; no disk.
//   writebatch:  writes each CompleteItems request's items (key -> serialized
//                completion) as one RocksDB WriteBatch, synced unless --sync=false,
//                then answers. Up to 16 calls write concurrently (a writer pool), so
//                RocksDB's own group commit shares their syncs: the least any durable
//                service must do.
// Every other method is UNIMPLEMENTED.
#ifndef CKPT_TOOLS_BENCH_CEILING_SERVERS_H_
#define CKPT_TOOLS_BENCH_CEILING_SERVERS_H_

#include <string>

namespace ckpt {
namespace bench {

enum class CeilingKind { kEcho, kWriteBatch };

// Serves `kind` on 127.0.0.1:0, says "serving on 127.0.0.1:PORT" on stderr, and runs
// until SIGTERM or SIGINT. `data_dir` (writebatch only) must be an empty or missing
// directory. Returns the process exit code.
int ServeCeiling(CeilingKind kind, const std::string& data_dir, bool sync);

}  // namespace bench
}  // namespace ckpt

#endif  // CKPT_TOOLS_BENCH_CEILING_SERVERS_H_
