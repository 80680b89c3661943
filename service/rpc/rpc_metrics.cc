#include "service/rpc/rpc_metrics.h"

#include <chrono>

#include "absl/strings/str_cat.h"
#include "ckpt/v1/checkpoint.pb.h"
#include "google/protobuf/descriptor.h"

namespace ckpt {
namespace {

constexpr absl::string_view kCallsName = "ckpt_rpcs_total";
constexpr absl::string_view kCallsHelp = "gRPC calls answered, by method and status code.";
constexpr absl::string_view kLatencyName = "ckpt_rpc_duration_seconds";
constexpr absl::string_view kLatencyHelp =
    "Time from the start of a gRPC call to its status, by method.";

// 100 us to ~26 s, doubling: a synced write is ~0.2-2 ms, a big batch tens of ms.
const std::vector<double>& LatencyBounds() {
  static const auto* bounds = new std::vector<double>(Histogram::ExponentialBounds(1e-4, 2, 19));
  return *bounds;
}

const char* CodeName(grpc::StatusCode code) {
  static constexpr const char* kNames[] = {"OK",
                                           "CANCELLED",
                                           "UNKNOWN",
                                           "INVALID_ARGUMENT",
                                           "DEADLINE_EXCEEDED",
                                           "NOT_FOUND",
                                           "ALREADY_EXISTS",
                                           "PERMISSION_DENIED",
                                           "RESOURCE_EXHAUSTED",
                                           "FAILED_PRECONDITION",
                                           "ABORTED",
                                           "OUT_OF_RANGE",
                                           "UNIMPLEMENTED",
                                           "INTERNAL",
                                           "UNAVAILABLE",
                                           "DATA_LOSS",
                                           "UNAUTHENTICATED"};
  const int index = static_cast<int>(code);
  return index >= 0 && index < 17 ? kNames[index] : "UNKNOWN";
}

// Times one call; records it when its status is sent, or as CANCELLED if the call ends
// without one.
class Interceptor final : public grpc::experimental::Interceptor {
 public:
  Interceptor(RpcMetrics* metrics, std::string method)
      : metrics_(metrics), method_(std::move(method)), start_(std::chrono::steady_clock::now()) {}
  ~Interceptor() override {
    if (!recorded_) Record(grpc::StatusCode::CANCELLED);
  }

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_STATUS)) {
      Record(methods->GetSendStatus().error_code());
    }
    methods->Proceed();
  }

 private:
  void Record(grpc::StatusCode code) {
    recorded_ = true;
    metrics_->Record(method_, code, absl::FromChrono(std::chrono::steady_clock::now() - start_));
  }

  RpcMetrics* const metrics_;
  const std::string method_;
  const std::chrono::steady_clock::time_point start_;
  bool recorded_ = false;
};

class Factory final : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit Factory(RpcMetrics* metrics) : metrics_(metrics) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    return new Interceptor(metrics_, info->method());
  }

 private:
  RpcMetrics* const metrics_;
};

}  // namespace

RpcMetrics::RpcMetrics(Registry* registry) : registry_(registry) {
  other_.label = "other";
  const auto* pool = google::protobuf::DescriptorPool::generated_pool();
  const struct {
    const char* service;
    const char* prefix;  // of the label
  } kServices[] = {{"ckpt.v1.Checkpoint", ""},
                   {"grpc.health.v1.Health", "Health."},
                   {"grpc.reflection.v1alpha.ServerReflection", "ServerReflection."}};
  for (const auto& [service_name, prefix] : kServices) {
    const google::protobuf::ServiceDescriptor* service = pool->FindServiceByName(service_name);
    if (service == nullptr) continue;  // not linked into this binary
    for (int i = 0; i < service->method_count(); ++i) {
      auto method = std::make_unique<Method>();
      method->label = absl::StrCat(prefix, service->method(i)->name());
      methods_[absl::StrCat("/", service_name, "/", service->method(i)->name())] =
          std::move(method);
    }
  }
}

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
RpcMetrics::NewInterceptorFactory() {
  return std::make_unique<Factory>(this);
}

RpcMetrics::Method& RpcMetrics::Find(absl::string_view method) {
  auto it = methods_.find(method);
  return it == methods_.end() ? other_ : *it->second;
}

void RpcMetrics::Record(absl::string_view method_name, grpc::StatusCode code,
                        absl::Duration latency) {
  Method& method = Find(method_name);
  const int index = static_cast<int>(code) >= 0 && static_cast<int>(code) < kCodes
                        ? static_cast<int>(code)
                        : static_cast<int>(grpc::StatusCode::UNKNOWN);
  Counter* calls = method.calls[index].load(std::memory_order_acquire);
  if (calls == nullptr) {  // first call with this code: the registry returns the same one
    calls = registry_->GetCounter(
        kCallsName, kCallsHelp,
        {{"method", method.label}, {"code", CodeName(static_cast<grpc::StatusCode>(index))}});
    method.calls[index].store(calls, std::memory_order_release);
  }
  Histogram* histogram = method.latency.load(std::memory_order_acquire);
  if (histogram == nullptr) {
    histogram = registry_->GetHistogram(kLatencyName, kLatencyHelp, LatencyBounds(),
                                        {{"method", method.label}});
    method.latency.store(histogram, std::memory_order_release);
  }
  calls->Add();
  histogram->Observe(absl::ToDoubleSeconds(latency));
}

}  // namespace ckpt
