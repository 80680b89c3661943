// RPC metrics for Prometheus, recorded by a gRPC server interceptor, so every call is
// counted whatever answers it: a handler, validation, or gRPC itself (a message over
// the size limit, a cancelled call):
//   ckpt_rpcs_total{method, code}        counter, calls answered
//   ckpt_rpc_duration_seconds{method}    histogram, from the call's start to its status
// `method` is the method of ckpt.v1.Checkpoint ("GetJob"), "Health.Check" and the like
// for the other services ckptd serves, or "other"; `code` is the gRPC status code name
// ("OK", "NOT_FOUND"). Both sets are fixed, so the number of series is bounded.
#ifndef CKPT_SERVICE_RPC_RPC_METRICS_H_
#define CKPT_SERVICE_RPC_RPC_METRICS_H_

#include <grpcpp/grpcpp.h>
#include <grpcpp/support/server_interceptor.h>

#include <array>
#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/time/time.h"
#include "service/metrics/registry.h"

namespace ckpt {

// Thread-safe. Must outlive the gRPC server that uses its interceptor factory.
class RpcMetrics {
 public:
  // Series are created in `registry` (which must outlive this) on first use.
  explicit RpcMetrics(Registry* registry);
  RpcMetrics(const RpcMetrics&) = delete;
  RpcMetrics& operator=(const RpcMetrics&) = delete;

  // A factory for grpc::ServerBuilder::experimental().SetInterceptorCreators.
  std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> NewInterceptorFactory();

  // Records one answered call. `method` is gRPC's full name ("/ckpt.v1.Checkpoint/GetJob").
  void Record(absl::string_view method, grpc::StatusCode code, absl::Duration latency);

 private:
  static constexpr int kCodes = 17;  // grpc::StatusCode values 0..16
  struct Method {
    std::string label;
    std::array<std::atomic<Counter*>, kCodes> calls{};  // created on first use
    std::atomic<Histogram*> latency{nullptr};
  };

  Method& Find(absl::string_view method);

  Registry* const registry_;
  // Built in the constructor and never changed: looked up without a lock.
  absl::flat_hash_map<std::string, std::unique_ptr<Method>> methods_;
  Method other_;
};

}  // namespace ckpt

#endif  // CKPT_SERVICE_RPC_RPC_METRICS_H_
