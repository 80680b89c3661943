#include "client/client.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <utility>

#include "absl/random/random.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "client/channel_credentials.h"
#include "client/retry_table.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "service/common/clock.h"
#include "service/common/grpc_status.h"
#include "service/common/status_macros.h"

namespace ckpt {
namespace {

using Stub = v1::Checkpoint::Stub;

constexpr char kDefaultTarget[] = "127.0.0.1:7700";

// The n-th wait (n >= 1): uniform in [0, min(max_backoff, initial * multiplier^(n-1))].
absl::Duration BackoffDelay(const RetryPolicy& policy, int attempt) {
  const double scale = std::pow(std::max(policy.multiplier, 1.0), attempt - 1);
  const absl::Duration cap = std::min(policy.max_backoff, policy.initial_backoff * scale);
  thread_local absl::BitGen gen;
  return cap * absl::Uniform(gen, 0.0, 1.0);
}

void SetDeadline(grpc::ClientContext* context, absl::Duration timeout) {
  context->set_deadline(absl::ToChronoTime(Clock::Real()->Now() + timeout));
}

// ckptd's retry hint (kRetryAfterMetadataKey) in a call's trailing metadata, or zero.
absl::Duration RetryAfter(const grpc::ClientContext& context) {
  const auto& trailers = context.GetServerTrailingMetadata();
  const auto hint = trailers.find(kRetryAfterMetadataKey);
  int64_t millis = 0;
  if (hint == trailers.end() ||
      !absl::SimpleAtoi(absl::string_view(hint->second.data(), hint->second.size()), &millis) ||
      millis <= 0) {
    return absl::ZeroDuration();
  }
  return absl::Milliseconds(millis);
}

}  // namespace

std::string DefaultTarget() {
  const char* env = std::getenv("CKPT_SERVER");
  return env != nullptr && *env != '\0' ? std::string(env) : std::string(kDefaultTarget);
}

v1::ItemKey IndexKey(uint64_t index) {
  v1::ItemKey key;
  key.set_index(index);
  return key;
}

v1::ItemKey NameKey(absl::string_view name) {
  v1::ItemKey key;
  key.set_name(std::string(name));
  return key;
}

std::string KeyToString(const v1::ItemKey& key) {
  return key.has_index() ? absl::StrCat(key.index()) : key.name();
}

absl::StatusOr<std::unique_ptr<Client>> Client::Connect(ClientOptions options) {
  if (options.target.empty()) options.target = DefaultTarget();
  if (options.target.find_first_of(" \t\n") != std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("target \"", options.target, "\" is not host:port"));
  }
  const ClientSecurity security =
      WithEnvironmentDefaults({options.tls, options.tls_ca_file, options.tls_cert_file,
                               options.tls_key_file, options.token});
  CKPT_ASSIGN_OR_RETURN(std::string authorization, AuthorizationValue(security.token));
  CKPT_ASSIGN_OR_RETURN(std::shared_ptr<grpc::ChannelCredentials> credentials,
                        ChannelCredentialsFor(security));
  std::shared_ptr<grpc::Channel> channel =
      options.interceptors
          ? grpc::experimental::CreateCustomChannelWithInterceptors(
                options.target, credentials, options.channel_args, options.interceptors())
          : grpc::CreateCustomChannel(options.target, credentials, options.channel_args);
  if (channel == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("cannot make a channel to ", options.target));
  }
  options.token.clear();  // only authorization keeps it
  return std::unique_ptr<Client>(new Client(std::move(options), std::move(channel),
                                            std::move(authorization), UsesTls(security)));
}

Client::Client(ClientOptions options, std::shared_ptr<grpc::Channel> channel,
               std::string authorization, bool uses_tls)
    : options_(std::move(options)),
      channel_(std::move(channel)),
      stub_(v1::Checkpoint::NewStub(channel_)),
      authorization_(std::move(authorization)),
      uses_tls_(uses_tls) {}

void Client::Prepare(grpc::ClientContext* context, absl::Duration timeout) const {
  if (timeout != absl::InfiniteDuration()) SetDeadline(context, timeout);
  if (!authorization_.empty()) context->AddMetadata("authorization", authorization_);
}

bool Client::BackoffBeforeRetry(const absl::Status& status, bool deadline_too, int attempt,
                                absl::Time first_attempt, absl::Duration retry_for,
                                absl::Duration retry_after) {
  const bool not_applied = absl::IsResourceExhausted(status) && retry_after > absl::ZeroDuration();
  const bool retryable = not_applied || absl::IsUnavailable(status) ||
                         (deadline_too && absl::IsDeadlineExceeded(status));
  if (!retryable || attempt >= options_.retry.max_attempts) return false;
  const absl::Duration delay = std::max(BackoffDelay(options_.retry, attempt), retry_after);
  const absl::Duration budget = std::min(options_.retry.max_elapsed, retry_for);
  if (options_.clock->Now() + delay - first_attempt > budget) return false;
  if (options_.on_retry) options_.on_retry(status, attempt);
  options_.clock->SleepFor(delay);
  return true;
}

absl::Status Client::AwaitServing(absl::Time first_attempt, absl::Duration retry_for) {
  const auto health = grpc::health::v1::Health::NewStub(channel_);
  for (int probe = 1;; ++probe) {
    grpc::ClientContext context;
    Prepare(&context, options_.call_timeout);
    grpc::health::v1::HealthCheckResponse response;
    absl::Status status = FromGrpcStatus(health->Check(&context, {}, &response));
    if (status.ok() && response.status() != grpc::health::v1::HealthCheckResponse::SERVING) {
      status = absl::UnavailableError("ckptd is not serving (shutting down?)");
    }
    // Any other answer means ckptd is there (a server without the health service).
    if (status.ok() || !(absl::IsUnavailable(status) || absl::IsDeadlineExceeded(status))) {
      return absl::OkStatus();
    }
    if (!BackoffBeforeRetry(absl::UnavailableError(status.message()), false, probe, first_attempt,
                            retry_for, absl::ZeroDuration())) {
      return absl::UnavailableError(absl::StrCat("no connection to ckptd at ", options_.target,
                                                 " (", status.message(), "); nothing was sent"));
    }
  }
}

template <typename Request, typename Response>
absl::StatusOr<Response> Client::Call(Method<Request, Response> method, absl::string_view name,
                                      const Request& request, absl::Duration retry_for) {
  const bool resend = ResendAfterLostAnswer(name, request);
  const absl::Time first_attempt = options_.clock->Now();
  if (!resend) CKPT_RETURN_IF_ERROR(AwaitServing(first_attempt, retry_for));
  for (int attempt = 1;; ++attempt) {
    grpc::ClientContext context;
    Prepare(&context, options_.call_timeout);
    Response response;
    const absl::Status status = FromGrpcStatus(((*stub_).*method)(&context, request, &response));
    if (status.ok()) return response;
    const absl::Duration retry_after = RetryAfter(context);
    if (!resend && (absl::IsUnavailable(status) || absl::IsDeadlineExceeded(status))) {
      return absl::Status(status.code(), absl::StrCat(status.message(), " (", name,
                                                      " may have been applied: its answer was "
                                                      "lost; docs/api.md, \"Retrying a write\")"));
    }
    if (!BackoffBeforeRetry(status, resend, attempt, first_attempt, retry_for, retry_after)) {
      return status;
    }
  }
}

absl::StatusOr<v1::CreateJobResponse> Client::CreateJob(const v1::CreateJobRequest& request) {
  return Call(&Stub::CreateJob, "CreateJob", request);
}

absl::StatusOr<v1::GetJobResponse> Client::GetJob(const v1::GetJobRequest& request) {
  return Call(&Stub::GetJob, "GetJob", request);
}

absl::StatusOr<v1::ListJobsResponse> Client::ListJobs(const v1::ListJobsRequest& request) {
  return Call(&Stub::ListJobs, "ListJobs", request);
}

absl::StatusOr<v1::UpdateJobResponse> Client::UpdateJob(const v1::UpdateJobRequest& request) {
  return Call(&Stub::UpdateJob, "UpdateJob", request);
}

absl::StatusOr<v1::PauseJobResponse> Client::PauseJob(const v1::PauseJobRequest& request) {
  return Call(&Stub::PauseJob, "PauseJob", request);
}

absl::StatusOr<v1::ResumeJobResponse> Client::ResumeJob(const v1::ResumeJobRequest& request) {
  return Call(&Stub::ResumeJob, "ResumeJob", request);
}

absl::StatusOr<v1::StopJobResponse> Client::StopJob(const v1::StopJobRequest& request) {
  return Call(&Stub::StopJob, "StopJob", request);
}

absl::StatusOr<v1::FinishJobResponse> Client::FinishJob(const v1::FinishJobRequest& request) {
  return Call(&Stub::FinishJob, "FinishJob", request);
}

absl::StatusOr<v1::ResetJobResponse> Client::ResetJob(const v1::ResetJobRequest& request) {
  return Call(&Stub::ResetJob, "ResetJob", request);
}

absl::StatusOr<v1::DeleteJobResponse> Client::DeleteJob(const v1::DeleteJobRequest& request) {
  return Call(&Stub::DeleteJob, "DeleteJob", request);
}

absl::StatusOr<v1::AddItemsResponse> Client::AddItems(const v1::AddItemsRequest& request) {
  return Call(&Stub::AddItems, "AddItems", request);
}

absl::StatusOr<v1::LeaseItemsResponse> Client::LeaseItems(const v1::LeaseItemsRequest& request) {
  // A repeat leases a second set; the first would expire unseen, costing an attempt each.
  return Call(&Stub::LeaseItems, "LeaseItems", request);
}

absl::StatusOr<v1::CompleteItemsResponse> Client::CompleteItems(
    const v1::CompleteItemsRequest& request) {
  return Call(&Stub::CompleteItems, "CompleteItems", request);
}

absl::StatusOr<v1::FailItemsResponse> Client::FailItems(const v1::FailItemsRequest& request) {
  // With tokens a repeat is refused (lease lost); in record mode it counts again.
  return Call(&Stub::FailItems, "FailItems", request);
}

absl::StatusOr<v1::GetItemResponse> Client::GetItem(const v1::GetItemRequest& request) {
  return Call(&Stub::GetItem, "GetItem", request);
}

absl::StatusOr<v1::ListItemsResponse> Client::ListItems(const v1::ListItemsRequest& request) {
  return Call(&Stub::ListItems, "ListItems", request);
}

absl::StatusOr<v1::ResetItemsResponse> Client::ResetItems(const v1::ResetItemsRequest& request) {
  return Call(&Stub::ResetItems, "ResetItems", request);
}

absl::StatusOr<v1::FindOutputResponse> Client::FindOutput(const v1::FindOutputRequest& request) {
  return Call(&Stub::FindOutput, "FindOutput", request);
}

absl::StatusOr<v1::RegisterWorkerResponse> Client::RegisterWorker(
    const v1::RegisterWorkerRequest& request) {
  // A repeat registers a second worker.
  return Call(&Stub::RegisterWorker, "RegisterWorker", request);
}

absl::StatusOr<v1::HeartbeatResponse> Client::Heartbeat(const v1::HeartbeatRequest& request,
                                                        absl::Duration retry_for) {
  return Call(&Stub::Heartbeat, "Heartbeat", request, retry_for);
}

absl::StatusOr<v1::ListWorkersResponse> Client::ListWorkers(const v1::ListWorkersRequest& request) {
  return Call(&Stub::ListWorkers, "ListWorkers", request);
}

absl::StatusOr<v1::UnregisterWorkerResponse> Client::UnregisterWorker(
    const v1::UnregisterWorkerRequest& request, absl::Duration retry_for) {
  return Call(&Stub::UnregisterWorker, "UnregisterWorker", request, retry_for);
}

absl::StatusOr<v1::PutStateResponse> Client::PutState(const v1::PutStateRequest& request) {
  // A repeated compare-and-set answers ABORTED even though the first one applied.
  return Call(&Stub::PutState, "PutState", request);
}

absl::StatusOr<v1::GetStateResponse> Client::GetState(const v1::GetStateRequest& request) {
  return Call(&Stub::GetState, "GetState", request);
}

absl::StatusOr<v1::ListStatesResponse> Client::ListStates(const v1::ListStatesRequest& request) {
  return Call(&Stub::ListStates, "ListStates", request);
}

absl::StatusOr<v1::WriteLogsResponse> Client::WriteLogs(const v1::WriteLogsRequest& request) {
  // A repeat stores the entries again: a duplicate line beats a lost one.
  return Call(&Stub::WriteLogs, "WriteLogs", request);
}

absl::StatusOr<v1::ListLogsResponse> Client::ListLogs(const v1::ListLogsRequest& request) {
  return Call(&Stub::ListLogs, "ListLogs", request);
}

absl::StatusOr<v1::BackupStoreResponse> Client::BackupStore(const v1::BackupStoreRequest& request) {
  return Call(&Stub::BackupStore, "BackupStore", request);
}

absl::StatusOr<v1::DeleteJobsResponse> Client::DeleteJobs(const v1::DeleteJobsRequest& request) {
  return Call(&Stub::DeleteJobs, "DeleteJobs", request);
}

absl::Status Client::WatchJob(const v1::WatchJobRequest& request,
                              const std::function<bool(const v1::Job&)>& on_snapshot) {
  absl::Time first_attempt = options_.clock->Now();
  for (int attempt = 1;; ++attempt) {
    grpc::ClientContext context;
    Prepare(&context, absl::InfiniteDuration());
    std::unique_ptr<grpc::ClientReader<v1::WatchJobResponse>> reader =
        stub_->WatchJob(&context, request);
    v1::WatchJobResponse snapshot;
    bool received = false;
    while (reader->Read(&snapshot)) {
      received = true;
      if (!on_snapshot(snapshot.job())) {
        context.TryCancel();
        reader->Finish().IgnoreError();
        return absl::OkStatus();
      }
    }
    const absl::Status status = FromGrpcStatus(reader->Finish());
    if (status.ok()) return status;
    // A stream that delivered snapshots was healthy: its retries start afresh.
    if (received) {
      attempt = 1;
      first_attempt = options_.clock->Now();
    }
    if (!BackoffBeforeRetry(status, false, attempt, first_attempt, absl::InfiniteDuration(),
                            absl::ZeroDuration())) {
      return status;
    }
  }
}

void UnpackLeaseRuns(v1::LeaseItemsResponse* answer) {
  if (answer->lease_runs().empty()) return;
  const bool mixed = !answer->leases().empty();
  for (const v1::LeaseRun& run : answer->lease_runs()) {
    const uint64_t token_step = run.token_step() == 0 ? 1 : run.token_step();
    for (uint32_t i = 0; i < run.count(); ++i) {
      v1::Lease* lease = answer->add_leases();
      lease->mutable_key()->set_index(run.first_index() + i);
      lease->set_step(run.step());
      lease->set_lease_token(run.first_lease_token() + i * token_step);
      lease->set_attempt(run.attempt());
      *lease->mutable_expire_time() = run.expire_time();
    }
  }
  answer->clear_lease_runs();
  if (mixed) {  // a name leased after the run, or a retry: back in hand-out order
    std::sort(
        answer->mutable_leases()->begin(), answer->mutable_leases()->end(),
        [](const v1::Lease& a, const v1::Lease& b) { return a.lease_token() < b.lease_token(); });
  }
}

}  // namespace ckpt
