#include "tools/bench/clients.h"

#include <grpcpp/grpcpp.h>

#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/blocking_counter.h"
#include "absl/synchronization/notification.h"

namespace ckpt {
namespace bench {

namespace {

// Set between workloads only (SetClientSecurity's contract), read by client threads.
std::optional<ClientSecurity>& CurrentSecurity() {
  static std::optional<ClientSecurity>* const security = new std::optional<ClientSecurity>();
  return *security;
}

std::shared_ptr<grpc::ChannelCredentials> ChannelCredentials() {
  const std::optional<ClientSecurity>& security = CurrentSecurity();
  if (!security.has_value()) return grpc::InsecureChannelCredentials();
  grpc::SslCredentialsOptions tls;
  tls.pem_root_certs = security->ca_pem;
  return grpc::CompositeChannelCredentials(grpc::SslCredentials(tls),
                                           grpc::AccessTokenCredentials(security->token));
}

}  // namespace

void SetClientSecurity(std::optional<ClientSecurity> security) {
  CurrentSecurity() = std::move(security);
}

absl::StatusOr<std::unique_ptr<v1::Checkpoint::Stub>> ConnectedStub(const std::string& address) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  args.SetMaxReceiveMessageSize(64 << 20);
  auto channel = grpc::CreateCustomChannel(address, ChannelCredentials(), args);
  if (!channel->WaitForConnected(absl::ToChronoTime(absl::Now() + absl::Seconds(10)))) {
    return absl::UnavailableError(absl::StrCat("cannot connect to ", address));
  }
  return v1::Checkpoint::NewStub(channel);
}

namespace {

constexpr uint64_t kDistinctResults = 1000;

v1::ItemResult BuildResult(uint64_t index) {
  v1::ItemResult result;
  result.add_output_paths(
      absl::StrFormat("/data/out/shard-%04d/item-%08d.parquet", index % 1000, index));
  result.set_payload(absl::StrFormat("rows=%06d", index % 1000000));
  v1::ItemMetrics* metrics = result.mutable_metrics();
  metrics->mutable_wall_time()->set_seconds(1 + static_cast<int64_t>(index % 3));
  metrics->mutable_wall_time()->set_nanos(static_cast<int32_t>(index % 1000) * 1000);
  metrics->set_peak_memory_bytes(512ull << 20);
  (*metrics->mutable_stage_times())["read"].set_nanos(250000000);
  return result;
}

}  // namespace

const v1::ItemResult& ResultFor(uint64_t index) {
  static const std::vector<v1::ItemResult>* const results = [] {
    auto* built = new std::vector<v1::ItemResult>();
    for (uint64_t i = 0; i < kDistinctResults; ++i) built->push_back(BuildResult(i));
    return built;
  }();
  return (*results)[index % kDistinctResults];
}

void FillCompletion(uint64_t index, uint64_t token, v1::Completion* out) {
  out->mutable_key()->set_index(index);
  out->set_lease_token(token);
  *out->mutable_result() = ResultFor(index);
}

absl::StatusOr<ClientsResult> RunClients(
    int threads, const std::function<absl::Status(int)>& prepare,
    const std::function<absl::StatusOr<uint64_t>(int, Latencies*)>& run) {
  std::vector<absl::Status> statuses(threads);
  std::vector<uint64_t> items(threads, 0);
  std::vector<Latencies> latencies(threads);
  std::vector<absl::Time> ends(threads);
  absl::BlockingCounter prepared(threads);
  absl::Notification go;
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      statuses[t] = prepare(t);
      prepared.DecrementCount();
      go.WaitForNotification();
      if (statuses[t].ok()) {
        absl::StatusOr<uint64_t> done = run(t, &latencies[t]);
        if (done.ok()) {
          items[t] = *done;
        } else {
          statuses[t] = done.status();
        }
      }
      ends[t] = absl::Now();
    });
  }
  prepared.Wait();
  const absl::Time start = absl::Now();
  go.Notify();
  for (std::thread& thread : pool) thread.join();
  ClientsResult result;
  absl::Time end = start;
  for (int t = 0; t < threads; ++t) {
    if (!statuses[t].ok()) return statuses[t];
    result.items += items[t];
    result.latencies.Merge(latencies[t]);
    end = std::max(end, ends[t]);
  }
  result.wall = end - start;
  return result;
}

absl::Status CallFailed(const std::string& what, const grpc::Status& status) {
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      absl::StrCat(what, ": ", status.error_message()));
}

}  // namespace bench
}  // namespace ckpt
