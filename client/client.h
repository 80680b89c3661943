// ckpt::Client: a typed method per RPC of ckpt.v1.Checkpoint on one channel, with a
// deadline on every call and retries where a retry is safe.
//
//   ckpt::ClientOptions options;
//   options.target = "127.0.0.1:7700";
//   CKPT_ASSIGN_OR_RETURN(std::unique_ptr<ckpt::Client> client, ckpt::Client::Connect(options));
//   v1::GetJobRequest request;
//   request.set_job_id("batch_20251214");
//   CKPT_ASSIGN_OR_RETURN(v1::GetJobResponse job, client->GetJob(request));
//
// Results are absl::Status / StatusOr with the server's code and message unchanged
// (docs/api.md lists them). The client adds no rules of its own: it checks nothing the
// server checks, and every answer, including a refusal, is the server's.
//
// Retries (docs/api.md, "Retrying a write", the table both SDKs follow: retry_table.h):
// a call that fails UNAVAILABLE or DEADLINE_EXCEEDED is tried again with exponential
// backoff and full jitter until RetryPolicy::max_elapsed when the table says a repeat
// does no harm (every read, and most writes). The others (LeaseItems, RegisterWorker,
// CreateJob without a job_id, FailItems with a token-0 item, ResetJob, ResetItems,
// DeleteJob, DeleteJobs but a dry run, PutState with an expected_version, BackupStore)
// are sent only once ckptd answers a health check, waiting for it under the same policy
// (nothing has been sent, so waiting for a restarted ckptd is safe), and then once: a
// lost answer is returned, its message saying that the write may have been applied.
#ifndef CKPT_CLIENT_CLIENT_H_
#define CKPT_CLIENT_CLIENT_H_

#include <grpcpp/grpcpp.h>
#include <grpcpp/support/client_interceptor.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "ckpt/v1/checkpoint.grpc.pb.h"
#include "service/common/clock.h"

namespace ckpt {

// Exponential backoff with full jitter: the n-th wait is uniform in
// [0, min(max_backoff, initial_backoff * multiplier^n)].
struct RetryPolicy {
  absl::Duration initial_backoff = absl::Milliseconds(50);
  absl::Duration max_backoff = absl::Seconds(2);
  double multiplier = 2.0;
  // No new attempt starts once this much time has passed since the first. The default
  // carries a client across a ckptd restart or redeploy.
  absl::Duration max_elapsed = absl::Minutes(2);
  // 1 turns retries off.
  int max_attempts = 1000;
};

struct ClientOptions {
  // host:port of ckptd; empty means $CKPT_SERVER, else 127.0.0.1:7700.
  std::string target;
  // The deadline of each attempt. WatchJob has none.
  absl::Duration call_timeout = absl::Seconds(30);
  RetryPolicy retry;
  // Time for the retry budget, the backoff waits and the Worker's batching delays (not
  // for gRPC deadlines, which are real time). Tests pass a FakeClock, so backoffs pass
  // at once. Must outlive the client.
  Clock* clock = Clock::Real();
  // Called before each retry's wait, with the failed attempt's status and its number
  // (1 for the first). For logging and tests; must not block.
  std::function<void(const absl::Status& status, int attempt)> on_retry;
  // Who the client is and whom it trusts (docs/api.md, "Authentication, roles and TLS").
  // An empty field is taken from $CKPT_TLS_CA, $CKPT_TLS_CERT, $CKPT_TLS_KEY or
  // $CKPT_TOKEN. Any TLS file, or `tls`, makes the channel TLS; the token travels as
  // "authorization: Bearer TOKEN" with every call, WatchJob included, and never appears
  // in an error.
  bool tls = false;           // TLS with the system's CAs when no tls_ca_file is given
  std::string tls_ca_file;    // PEM: the CA that signed ckptd's certificate
  std::string tls_cert_file;  // PEM: this client's certificate, for mutual TLS
  std::string tls_key_file;   // PEM: its private key
  std::string token;          // a bearer token of ckptd's auth file
  // Applied to the channel, e.g. GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL to give a client its
  // own connection.
  grpc::ChannelArguments channel_args;
  // Makes the channel's interceptors (gRPC's client interceptors: tracing, auth headers,
  // fault injection in tests); called once by Connect. Empty: none.
  std::function<
      std::vector<std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>>()>
      interceptors;
};

// The default target: $CKPT_SERVER if set and not empty, else "127.0.0.1:7700".
std::string DefaultTarget();

// Keys, as the API spells them.
v1::ItemKey IndexKey(uint64_t index);
v1::ItemKey NameKey(absl::string_view name);
// "7" for an index, "name" for a name: how people read a key.
std::string KeyToString(const v1::ItemKey& key);

// Thread-safe: any number of threads may call any method at once; they share one
// channel (one connection, multiplexed).
class Client {
 public:
  // Makes the channel; connecting happens on the first call, so this fails only for an
  // unusable target or token (INVALID_ARGUMENT), or TLS files that cannot be read
  // (their errors, naming the file).
  static absl::StatusOr<std::unique_ptr<Client>> Connect(ClientOptions options);

  const std::string& target() const { return options_.target; }
  // Whether the channel is TLS (ClientOptions' TLS fields or $CKPT_TLS_*).
  bool uses_tls() const { return uses_tls_; }
  Clock* clock() const { return options_.clock; }

  // ---- Jobs ----
  absl::StatusOr<v1::CreateJobResponse> CreateJob(const v1::CreateJobRequest& request);
  absl::StatusOr<v1::GetJobResponse> GetJob(const v1::GetJobRequest& request);
  absl::StatusOr<v1::ListJobsResponse> ListJobs(const v1::ListJobsRequest& request);
  absl::StatusOr<v1::UpdateJobResponse> UpdateJob(const v1::UpdateJobRequest& request);
  absl::StatusOr<v1::PauseJobResponse> PauseJob(const v1::PauseJobRequest& request);
  absl::StatusOr<v1::ResumeJobResponse> ResumeJob(const v1::ResumeJobRequest& request);
  absl::StatusOr<v1::StopJobResponse> StopJob(const v1::StopJobRequest& request);
  absl::StatusOr<v1::FinishJobResponse> FinishJob(const v1::FinishJobRequest& request);
  absl::StatusOr<v1::ResetJobResponse> ResetJob(const v1::ResetJobRequest& request);
  absl::StatusOr<v1::DeleteJobResponse> DeleteJob(const v1::DeleteJobRequest& request);

  // ---- Items ----
  absl::StatusOr<v1::AddItemsResponse> AddItems(const v1::AddItemsRequest& request);
  absl::StatusOr<v1::LeaseItemsResponse> LeaseItems(const v1::LeaseItemsRequest& request);
  absl::StatusOr<v1::CompleteItemsResponse> CompleteItems(const v1::CompleteItemsRequest& request);
  absl::StatusOr<v1::FailItemsResponse> FailItems(const v1::FailItemsRequest& request);
  absl::StatusOr<v1::GetItemResponse> GetItem(const v1::GetItemRequest& request);
  absl::StatusOr<v1::ListItemsResponse> ListItems(const v1::ListItemsRequest& request);
  absl::StatusOr<v1::ResetItemsResponse> ResetItems(const v1::ResetItemsRequest& request);
  absl::StatusOr<v1::FindOutputResponse> FindOutput(const v1::FindOutputRequest& request);

  // ---- Workers ----
  absl::StatusOr<v1::RegisterWorkerResponse> RegisterWorker(
      const v1::RegisterWorkerRequest& request);
  // `retry_for` caps how long these two retry UNAVAILABLE (the policy's max_elapsed
  // otherwise): a heartbeat is worth retrying only until the next one is due, and an
  // unregister on the way out should not hold a process for minutes.
  absl::StatusOr<v1::HeartbeatResponse> Heartbeat(
      const v1::HeartbeatRequest& request, absl::Duration retry_for = absl::InfiniteDuration());
  absl::StatusOr<v1::ListWorkersResponse> ListWorkers(const v1::ListWorkersRequest& request);
  absl::StatusOr<v1::UnregisterWorkerResponse> UnregisterWorker(
      const v1::UnregisterWorkerRequest& request,
      absl::Duration retry_for = absl::InfiniteDuration());

  // ---- State blobs ----
  absl::StatusOr<v1::PutStateResponse> PutState(const v1::PutStateRequest& request);
  absl::StatusOr<v1::GetStateResponse> GetState(const v1::GetStateRequest& request);
  absl::StatusOr<v1::ListStatesResponse> ListStates(const v1::ListStatesRequest& request);

  // ---- Logs ----
  absl::StatusOr<v1::WriteLogsResponse> WriteLogs(const v1::WriteLogsRequest& request);
  absl::StatusOr<v1::ListLogsResponse> ListLogs(const v1::ListLogsRequest& request);

  // ---- Administration ----
  // The copy is made within the call: one on another filesystem than the data dir
  // copies every file, and may need a longer ClientOptions::call_timeout.
  absl::StatusOr<v1::BackupStoreResponse> BackupStore(const v1::BackupStoreRequest& request);
  // One page: at most request.limit jobs deleted (or, with dry_run, listed); call again
  // with next_page_token while it is set (`ckpt gc` does).
  absl::StatusOr<v1::DeleteJobsResponse> DeleteJobs(const v1::DeleteJobsRequest& request);

  // ---- Progress ----

  // Streams snapshots of a job to `on_snapshot` until the job ends (OK after its final
  // snapshot), `on_snapshot` returns false (OK), or the stream fails. A stream cut by
  // UNAVAILABLE is opened again under the retry policy, and starts with a fresh
  // snapshot. NOT_FOUND for a missing or deleted job. Blocks the calling thread;
  // `on_snapshot` runs on it.
  absl::Status WatchJob(const v1::WatchJobRequest& request,
                        const std::function<bool(const v1::Job&)>& on_snapshot);

 private:
  template <typename Request, typename Response>
  using Method = grpc::Status (v1::Checkpoint::Stub::*)(grpc::ClientContext*, const Request&,
                                                        Response*);

  Client(ClientOptions options, std::shared_ptr<grpc::Channel> channel, std::string authorization,
         bool uses_tls);

  // A call's context: the bearer token, and a deadline `timeout` from now unless infinite.
  void Prepare(grpc::ClientContext* context, absl::Duration timeout) const;

  // Calls `method` (named `name`, for the retry table) under the retry policy, retrying
  // for at most `retry_for`.
  template <typename Request, typename Response>
  absl::StatusOr<Response> Call(Method<Request, Response> method, absl::string_view name,
                                const Request& request,
                                absl::Duration retry_for = absl::InfiniteDuration());

  // Returns once ckptd answers a health check SERVING; UNAVAILABLE ("nothing was sent")
  // if it does not within the policy, counted from `first_attempt`.
  absl::Status AwaitServing(absl::Time first_attempt, absl::Duration retry_for);

  // Whether to try again after `status` from attempt number `attempt` (1 for the
  // first), the first having started at `first_attempt`, within `retry_for`: UNAVAILABLE,
  // DEADLINE_EXCEEDED too if `deadline_too`, and a RESOURCE_EXHAUSTED with ckptd's hint
  // `retry_after` (a write it did not queue: not applied, so always safe to send again; at
  // least that long is waited; zero without a hint). If so, waits the backoff.
  bool BackoffBeforeRetry(const absl::Status& status, bool deadline_too, int attempt,
                          absl::Time first_attempt, absl::Duration retry_for,
                          absl::Duration retry_after);

  const ClientOptions options_;
  const std::shared_ptr<grpc::Channel> channel_;
  const std::unique_ptr<v1::Checkpoint::Stub> stub_;
  const std::string authorization_;  // "Bearer TOKEN", or empty
  const bool uses_tls_;
};

// Moves the leases of `answer`'s lease_runs into its `leases`, a Lease each, and clears
// the runs: for code that takes leases one at a time. The leases end up in the order
// they were handed out (retries first, then key order: the tokens' order). Only an
// answer asked for with `packed` (LeaseItemsRequest, LeaseNext) has runs.
void UnpackLeaseRuns(v1::LeaseItemsResponse* answer);

}  // namespace ckpt

#endif  // CKPT_CLIENT_CLIENT_H_
