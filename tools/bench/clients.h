// Client-side pieces every workload shares: one channel per client thread, the
// completion message every system receives, and a runner that starts N client threads
// together and times them.
#ifndef CKPT_TOOLS_BENCH_CLIENTS_H_
#define CKPT_TOOLS_BENCH_CLIENTS_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "ckpt/v1/checkpoint.grpc.pb.h"
#include "tools/bench/measure.h"

namespace ckpt {
namespace bench {

// What clients of a secured ckptd present: TLS trusting `ca_pem`, and `token` as the
// bearer token of every call.
struct ClientSecurity {
  std::string ca_pem;
  std::string token;
};

// The security ConnectedStub uses from now on: `security`, or plaintext (nullopt, the
// default). Not thread-safe: call only between workloads, while no client runs.
void SetClientSecurity(std::optional<ClientSecurity> security);

// A stub on its own channel (a local subchannel pool, so threads never share a
// connection), connected before it is returned, with the security SetClientSecurity set.
// UNAVAILABLE if it cannot connect in 10 s.
absl::StatusOr<std::unique_ptr<v1::Checkpoint::Stub>> ConnectedStub(const std::string& address);

// The result a completion carries: an output path, a small payload and metrics,
// about 100 bytes serialized. Built once for 1000 indices and reused (index % 1000),
// so clients spend their CPU on calls, not on formatting. Thread-safe.
const v1::ItemResult& ResultFor(uint64_t index);

// A completion of `index` as a worker (token != 0) or record mode (token == 0) sends it.
void FillCompletion(uint64_t index, uint64_t token, v1::Completion* out);

// Runs `threads` client threads. Each first runs prepare(t) (untimed: connect,
// register); once all are prepared they start run(t, latencies) together, each
// returning how many items it did. Returns the total, the wall time from the start to
// the last thread's end, and all latencies. The first error of any thread wins.
struct ClientsResult {
  uint64_t items = 0;
  absl::Duration wall;
  Latencies latencies;
};
absl::StatusOr<ClientsResult> RunClients(
    int threads, const std::function<absl::Status(int)>& prepare,
    const std::function<absl::StatusOr<uint64_t>(int, Latencies*)>& run);

// The status of a failed call, saying which call.
absl::Status CallFailed(const std::string& what, const grpc::Status& status);

}  // namespace bench
}  // namespace ckpt

#endif  // CKPT_TOOLS_BENCH_CLIENTS_H_
