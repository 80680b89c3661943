#include "client/client.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <utility>

#include "absl/random/random.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "service/common/clock.h"
#include "service/common/grpc_status.h"

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

bool AnyRecordModeFailure(const v1::FailItemsRequest& request) {
  return std::any_of(request.items().begin(), request.items().end(),
                     [](const v1::Failure& failure) { return failure.lease_token() == 0; });
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
  std::shared_ptr<grpc::Channel> channel =
      options.interceptors
          ? grpc::experimental::CreateCustomChannelWithInterceptors(
                options.target, grpc::InsecureChannelCredentials(), options.channel_args,
                options.interceptors())
          : grpc::CreateCustomChannel(options.target, grpc::InsecureChannelCredentials(),
                                      options.channel_args);
  if (channel == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("cannot make a channel to ", options.target));
  }
  return std::unique_ptr<Client>(new Client(std::move(options), std::move(channel)));
}

Client::Client(ClientOptions options, std::shared_ptr<grpc::Channel> channel)
    : options_(std::move(options)),
      channel_(std::move(channel)),
      stub_(v1::Checkpoint::NewStub(channel_)) {}

bool Client::BackoffBeforeRetry(const absl::Status& status, Retry retry, int attempt,
                                absl::Time first_attempt, absl::Duration retry_for,
                                absl::Duration retry_after) {
  const bool not_applied = absl::IsResourceExhausted(status) && retry_after > absl::ZeroDuration();
  const bool retryable = not_applied || absl::IsUnavailable(status) ||
                         (absl::IsDeadlineExceeded(status) && retry != Retry::kOnlyIfUnavailable);
  if (!retryable || attempt >= options_.retry.max_attempts) return false;
  const absl::Duration delay = std::max(BackoffDelay(options_.retry, attempt), retry_after);
  const absl::Duration budget = std::min(options_.retry.max_elapsed, retry_for);
  if (options_.clock->Now() + delay - first_attempt > budget) return false;
  if (options_.on_retry) options_.on_retry(status, attempt);
  options_.clock->SleepFor(delay);
  return true;
}

template <typename Request, typename Response>
absl::StatusOr<Response> Client::Call(Method<Request, Response> method, const Request& request,
                                      Retry retry, absl::Duration retry_for) {
  const absl::Time first_attempt = options_.clock->Now();
  for (int attempt = 1;; ++attempt) {
    grpc::ClientContext context;
    SetDeadline(&context, options_.call_timeout);
    Response response;
    const absl::Status status = FromGrpcStatus(((*stub_).*method)(&context, request, &response));
    if (status.ok()) return response;
    // A repeated DeleteJob answers NOT_FOUND when an attempt cut off earlier deleted the
    // job (or someone else did): either way it is gone, as the caller asked.
    if (retry == Retry::kDelete && attempt > 1 && absl::IsNotFound(status)) return response;
    if (!BackoffBeforeRetry(status, retry, attempt, first_attempt, retry_for,
                            RetryAfter(context))) {
      return status;
    }
  }
}

absl::StatusOr<v1::CreateJobResponse> Client::CreateJob(const v1::CreateJobRequest& request) {
  // Without a job_id a repeat creates a second job; with one, it resumes the first.
  return Call(&Stub::CreateJob, request,
              request.job_id().empty() ? Retry::kOnlyIfUnavailable : Retry::kAlways);
}

absl::StatusOr<v1::GetJobResponse> Client::GetJob(const v1::GetJobRequest& request) {
  return Call(&Stub::GetJob, request, Retry::kAlways);
}

absl::StatusOr<v1::ListJobsResponse> Client::ListJobs(const v1::ListJobsRequest& request) {
  return Call(&Stub::ListJobs, request, Retry::kAlways);
}

absl::StatusOr<v1::UpdateJobResponse> Client::UpdateJob(const v1::UpdateJobRequest& request) {
  return Call(&Stub::UpdateJob, request, Retry::kAlways);
}

absl::StatusOr<v1::PauseJobResponse> Client::PauseJob(const v1::PauseJobRequest& request) {
  return Call(&Stub::PauseJob, request, Retry::kAlways);
}

absl::StatusOr<v1::ResumeJobResponse> Client::ResumeJob(const v1::ResumeJobRequest& request) {
  return Call(&Stub::ResumeJob, request, Retry::kAlways);
}

absl::StatusOr<v1::StopJobResponse> Client::StopJob(const v1::StopJobRequest& request) {
  return Call(&Stub::StopJob, request, Retry::kAlways);
}

absl::StatusOr<v1::FinishJobResponse> Client::FinishJob(const v1::FinishJobRequest& request) {
  return Call(&Stub::FinishJob, request, Retry::kAlways);
}

absl::StatusOr<v1::ResetJobResponse> Client::ResetJob(const v1::ResetJobRequest& request) {
  return Call(&Stub::ResetJob, request, Retry::kAlways);
}

absl::StatusOr<v1::DeleteJobResponse> Client::DeleteJob(const v1::DeleteJobRequest& request) {
  return Call(&Stub::DeleteJob, request, Retry::kDelete);
}

absl::StatusOr<v1::AddItemsResponse> Client::AddItems(const v1::AddItemsRequest& request) {
  return Call(&Stub::AddItems, request, Retry::kAlways);
}

absl::StatusOr<v1::LeaseItemsResponse> Client::LeaseItems(const v1::LeaseItemsRequest& request) {
  // A repeat leases a second set; the first would expire unseen, costing an attempt each.
  return Call(&Stub::LeaseItems, request, Retry::kOnlyIfUnavailable);
}

absl::StatusOr<v1::CompleteItemsResponse> Client::CompleteItems(
    const v1::CompleteItemsRequest& request) {
  return Call(&Stub::CompleteItems, request, Retry::kAlways);
}

absl::StatusOr<v1::FailItemsResponse> Client::FailItems(const v1::FailItemsRequest& request) {
  // With tokens a repeat is refused (lease lost); in record mode it counts again.
  return Call(&Stub::FailItems, request,
              AnyRecordModeFailure(request) ? Retry::kOnlyIfUnavailable : Retry::kAlways);
}

absl::StatusOr<v1::GetItemResponse> Client::GetItem(const v1::GetItemRequest& request) {
  return Call(&Stub::GetItem, request, Retry::kAlways);
}

absl::StatusOr<v1::ListItemsResponse> Client::ListItems(const v1::ListItemsRequest& request) {
  return Call(&Stub::ListItems, request, Retry::kAlways);
}

absl::StatusOr<v1::ResetItemsResponse> Client::ResetItems(const v1::ResetItemsRequest& request) {
  return Call(&Stub::ResetItems, request, Retry::kAlways);
}

absl::StatusOr<v1::FindOutputResponse> Client::FindOutput(const v1::FindOutputRequest& request) {
  return Call(&Stub::FindOutput, request, Retry::kAlways);
}

absl::StatusOr<v1::RegisterWorkerResponse> Client::RegisterWorker(
    const v1::RegisterWorkerRequest& request) {
  // A repeat registers a second worker.
  return Call(&Stub::RegisterWorker, request, Retry::kOnlyIfUnavailable);
}

absl::StatusOr<v1::HeartbeatResponse> Client::Heartbeat(const v1::HeartbeatRequest& request,
                                                        absl::Duration retry_for) {
  return Call(&Stub::Heartbeat, request, Retry::kAlways, retry_for);
}

absl::StatusOr<v1::ListWorkersResponse> Client::ListWorkers(const v1::ListWorkersRequest& request) {
  return Call(&Stub::ListWorkers, request, Retry::kAlways);
}

absl::StatusOr<v1::UnregisterWorkerResponse> Client::UnregisterWorker(
    const v1::UnregisterWorkerRequest& request, absl::Duration retry_for) {
  return Call(&Stub::UnregisterWorker, request, Retry::kAlways, retry_for);
}

absl::StatusOr<v1::PutStateResponse> Client::PutState(const v1::PutStateRequest& request) {
  // A repeated compare-and-set answers ABORTED even though the first one applied.
  return Call(&Stub::PutState, request,
              request.has_expected_version() ? Retry::kOnlyIfUnavailable : Retry::kAlways);
}

absl::StatusOr<v1::GetStateResponse> Client::GetState(const v1::GetStateRequest& request) {
  return Call(&Stub::GetState, request, Retry::kAlways);
}

absl::StatusOr<v1::ListStatesResponse> Client::ListStates(const v1::ListStatesRequest& request) {
  return Call(&Stub::ListStates, request, Retry::kAlways);
}

absl::Status Client::WatchJob(const v1::WatchJobRequest& request,
                              const std::function<bool(const v1::Job&)>& on_snapshot) {
  absl::Time first_attempt = options_.clock->Now();
  for (int attempt = 1;; ++attempt) {
    grpc::ClientContext context;
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
    if (!BackoffBeforeRetry(status, Retry::kOnlyIfUnavailable, attempt, first_attempt,
                            absl::InfiniteDuration(), absl::ZeroDuration())) {
      return status;
    }
  }
}

}  // namespace ckpt
