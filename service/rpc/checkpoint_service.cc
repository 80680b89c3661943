#include "service/rpc/checkpoint_service.h"

#include <algorithm>
#include <iterator>
#include <memory>
#include <utility>

#include "absl/algorithm/container.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "google/protobuf/arena.h"
#include "google/protobuf/descriptor.h"
#include "service/auth/roles.h"
#include "service/common/grpc_status.h"
#include "service/common/status_macros.h"
#include "service/engine/write_queue.h"
#include "service/rpc/call_auth.h"
#include "service/rpc/fanout.h"
#include "service/rpc/wire_message.h"

namespace ckpt {
namespace {

using grpc::ByteBuffer;
using grpc::CallbackServerContext;
using grpc::ServerUnaryReactor;
using RawUnaryHandler = grpc::internal::CallbackUnaryHandler<ByteBuffer, ByteBuffer>;

// A forwarded call refused by the owner as not its own is sent again after the router
// looked again, at most this many times in all.
constexpr int kMaxAttempts = 3;
// Routes again after an owner that could not be reached, each after a round of the
// coordinator (so about this many lease/10 intervals: a killed owner's shards are taken
// well within it); then the call is answered UNAVAILABLE.
constexpr int kMaxUnreachedRoutes = 64;

const grpc::Status kShuttingDown(grpc::StatusCode::UNAVAILABLE,
                                 "ckptd is shutting down; retry against the new instance");

// The method's index in the service, as the generated code numbers them.
int MethodIndex(absl::string_view name) {
  const auto* service =
      google::protobuf::DescriptorPool::generated_pool()->FindServiceByName("ckpt.v1.Checkpoint");
  const auto* method = service->FindMethodByName(std::string(name));
  return method->index();
}

// The job a request names, for a confined principal; ListJobs and FindOutput name none
// (their answers are filtered instead).
template <typename Request>
absl::string_view JobIdOf(const Request& request) {
  return request.job_id();
}
absl::string_view JobIdOf(const v1::ListJobsRequest&) { return ""; }
absl::string_view JobIdOf(const v1::FindOutputRequest&) { return ""; }
absl::string_view JobIdOf(const v1::BackupStoreRequest&) { return ""; }
absl::string_view JobIdOf(const v1::DeleteJobsRequest&) { return ""; }

bool IsAdminAction(absl::string_view rpc, const auth::PrincipalRef& principal) {
  return principal != nullptr && auth::FindRpcRule(rpc)->role == auth::Role::kAdmin;
}

// Authenticates the call, parses its request into `request` and authorizes it: the
// principal (null without an auth file), or the refusal. Credentials are checked before
// the request is even parsed.
template <typename Request>
absl::StatusOr<auth::PrincipalRef> Admit(const auth::Authorizer* authorizer,
                                         const grpc::ServerContextBase& context,
                                         absl::string_view rpc, const ByteBuffer* wire,
                                         Request* request) {
  CKPT_ASSIGN_OR_RETURN(auth::PrincipalRef principal, AuthenticateCall(authorizer, context, rpc));
  CKPT_RETURN_IF_ERROR(ParseWireMessage(const_cast<ByteBuffer*>(wire), request));
  if (principal != nullptr) {
    CKPT_RETURN_IF_ERROR(auth::Authorizer::Authorize(*principal, rpc, JobIdOf(*request)));
  }
  return principal;
}

// For an admin RPC by a principal: logs the action's outcome. Otherwise empty.
std::function<void(const absl::Status&)> AdminAudit(absl::string_view rpc,
                                                    const auth::PrincipalRef& principal,
                                                    absl::string_view job_id) {
  if (!IsAdminAction(rpc, principal)) return nullptr;
  return [rpc, principal, job_id = std::string(job_id)](const absl::Status& outcome) {
    LogAdminAction(rpc, *principal, job_id, outcome);
  };
}

absl::Time DeadlineOf(const CallbackServerContext& context) {
  const auto deadline = context.deadline();
  if (deadline == std::chrono::system_clock::time_point::max()) return absl::InfiniteFuture();
  return absl::FromChrono(deadline);
}

// The shards a fan-out sub-call (kShardsKey) asks for; empty if none or malformed.
std::vector<int> ShardsAskedFor(const CallbackServerContext& context, int shards) {
  std::vector<int> out;
  const std::string listed = ClientMetadata(context, kShardsKey);
  if (listed.empty()) return out;
  for (absl::string_view part : absl::StrSplit(listed, ',')) {
    int shard = -1;
    if (!absl::SimpleAtoi(part, &shard) || shard < 0 || shard >= shards) return {};
    out.push_back(shard);
  }
  return out;
}

// CreateJob without an id gets one before it is routed: the id picks the shard.
void NameJob(v1::CreateJobRequest* request) {
  if (request->job_id().empty()) request->set_job_id(GenerateJobId(absl::Now()));
}
template <typename Request>
void NameJob(Request*) {}

// A write spanning jobs as each shard gets it: a DeleteJobs deletes its share of the limit.
void SpreadOverShards(v1::DeleteJobsRequest* request, int shards) {
  request->set_limit(ShardDeleteLimit(*request, shards));
}

// Merges the answers of several shards to a call that spans jobs.
absl::StatusOr<v1::ListJobsResponse> Merge(
    const v1::ListJobsRequest& request, std::vector<absl::StatusOr<v1::ListJobsResponse>> parts) {
  std::vector<v1::ListJobsResponse> ok;
  for (auto& part : parts) {
    if (!part.ok()) return part.status();
    ok.push_back(std::move(*part));
  }
  return MergeListJobs(request, std::move(ok));
}
absl::StatusOr<v1::FindOutputResponse> Merge(
    const v1::FindOutputRequest&, std::vector<absl::StatusOr<v1::FindOutputResponse>> parts) {
  return MergeFindOutput(std::move(parts));
}
absl::StatusOr<v1::DeleteJobsResponse> Merge(
    const v1::DeleteJobsRequest& request,
    std::vector<absl::StatusOr<v1::DeleteJobsResponse>> parts) {
  return MergeDeleteJobsParts(request, std::move(parts));
}

}  // namespace

// One unary call's messages, on one arena freed when the call is answered, and how to
// run it on a local engine.
template <typename Request, typename Response>
struct CheckpointService::Call {
  google::protobuf::Arena arena;
  Request* request = google::protobuf::Arena::CreateMessage<Request>(&arena);
  Response* response = google::protobuf::Arena::CreateMessage<Response>(&arena);
  CallbackServerContext* context = nullptr;
  ServerUnaryReactor* reactor = nullptr;
  ByteBuffer* wire_response = nullptr;
  std::string method;            // "/ckpt.v1.Checkpoint/Name"
  auth::PrincipalRef principal;  // null without an auth file
  // Runs the call on the held engine; calls Finish.
  std::function<void(const ShardHold&)> run_local;
  // For calls spanning jobs: answers for the held engine's shard into `out`, then calls
  // `done` (at once for a read; after the engine's commits for a write).
  std::function<void(const ShardHold&, Response* out, Engine::Done done)> run_part;
  // For an admin call spanning jobs: logs its outcome (Finish calls it).
  std::function<void(const absl::Status&)> audit;
  // A call spanning jobs sent again because shards moved: the parts answered before,
  // and their shards, which are not asked again (a DeleteJobs part has deleted its jobs,
  // and the answer must tell them).
  std::vector<absl::StatusOr<Response>> answered;
  absl::flat_hash_set<int> answered_shards;
  ByteBuffer forwarded;  // the request, as sent to the owner
  int attempts = 0;
  int unreached = 0;  // routes to an owner that could not be reached
};

CheckpointService::CheckpointService(ShardSet* shards, Forwarder* forwarder, const Limits& limits,
                                     const auth::Authorizer* authorizer)
    : shards_(shards), forwarder_(forwarder), limits_(limits), authorizer_(authorizer) {
  shards_->AddListener(&hubs_);
  ServeWrite("CreateJob", &Engine::CreateJob);
  ServeRead("GetJob", &Engine::GetJob);
  ServeReadAcrossJobs("ListJobs", &Engine::ListJobsWithPrefix);
  ServeWrite("UpdateJob", &Engine::UpdateJob);
  ServeWrite("PauseJob", &Engine::PauseJob);
  ServeWrite("ResumeJob", &Engine::ResumeJob);
  ServeWrite("StopJob", &Engine::StopJob);
  ServeWrite("FinishJob", &Engine::FinishJob);
  ServeWrite("ResetJob", &Engine::ResetJob);
  ServeWrite("DeleteJob", &Engine::DeleteJob);
  ServeWrite("AddItems", &Engine::AddItems);
  ServeWrite("LeaseItems", &Engine::LeaseItems);
  ServeWrite("CompleteItems", &Engine::CompleteItems);
  ServeWrite("FailItems", &Engine::FailItems);
  ServeRead("GetItem", &Engine::GetItem);
  ServeRead("ListItems", &Engine::ListItems);
  ServeWrite("ResetItems", &Engine::ResetItems);
  ServeReadAcrossJobs("FindOutput", &Engine::FindOutputWithPrefix);
  ServeWrite("RegisterWorker", &Engine::RegisterWorker);
  ServeWrite("Heartbeat", &Engine::Heartbeat);
  ServeWrite("ListWorkers", &Engine::ListWorkers);
  ServeWrite("UnregisterWorker", &Engine::UnregisterWorker);
  ServeWrite("PutState", &Engine::PutState);
  ServeRead("GetState", &Engine::GetState);
  ServeRead("ListStates", &Engine::ListStates);
  ServeWrite("WriteLogs", &Engine::WriteLogs);
  ServeRead("ListLogs", &Engine::ListLogs);
  ServeBackup();
  ServeWriteAcrossJobs("DeleteJobs", &Engine::DeleteJobsWithPrefix);
  ServeWatch();
}

CheckpointService::~CheckpointService() { shards_->RemoveListener(&hubs_); }

// ---------------------------------------------------------------- registration

template <typename Request, typename Response>
void CheckpointService::ServeWrite(absl::string_view name, WriteMethod<Request, Response> method) {
  MarkMethodRawCallback(
      MethodIndex(name),
      new RawUnaryHandler([this, name, method](CallbackServerContext* context,
                                               const ByteBuffer* request, ByteBuffer* response) {
        ServerUnaryReactor* reactor = context->DefaultReactor();
        auto* call = Accept<Request, Response>(name, context, request, response, reactor);
        if (call == nullptr) return reactor;
        call->run_local = [this, call, method,
                           audit = AdminAudit(name, call->principal, JobIdOf(*call->request))](
                              const ShardHold& hold) {
          (hold.engine().*method)(*call->request, call->response,
                                  [this, call, hold, audit](absl::Status status) {
                                    if (audit) audit(status);
                                    Finish(call, status);
                                  });
        };
        Dispatch(call);
        return reactor;
      }));
}

template <typename Request, typename Response>
void CheckpointService::ServeRead(absl::string_view name, ReadMethod<Request, Response> method) {
  MarkMethodRawCallback(
      MethodIndex(name),
      new RawUnaryHandler([this, name, method](CallbackServerContext* context,
                                               const ByteBuffer* request, ByteBuffer* response) {
        ServerUnaryReactor* reactor = context->DefaultReactor();
        auto* call = Accept<Request, Response>(name, context, request, response, reactor);
        if (call == nullptr) return reactor;
        call->run_local = [this, call, method](const ShardHold& hold) {
          Finish(call, (hold.engine().*method)(*call->request, call->response));
        };
        Dispatch(call);
        return reactor;
      }));
}

template <typename Request, typename Response>
void CheckpointService::ServeReadAcrossJobs(absl::string_view name,
                                            CrossJobReadMethod<Request, Response> method) {
  MarkMethodRawCallback(
      MethodIndex(name),
      new RawUnaryHandler([this, name, method](CallbackServerContext* context,
                                               const ByteBuffer* request, ByteBuffer* response) {
        ServerUnaryReactor* reactor = context->DefaultReactor();
        auto* call = Accept<Request, Response>(name, context, request, response, reactor);
        if (call == nullptr) return reactor;
        call->run_part = [call, method](const ShardHold& hold, Response* out, Engine::Done done) {
          const auth::PrincipalRef& principal = call->principal;
          done((hold.engine().*method)(*call->request, out,
                                       principal != nullptr ? principal->job_prefix : ""));
        };
        FanOut(call);
        return reactor;
      }));
}

template <typename Request, typename Response>
void CheckpointService::ServeWriteAcrossJobs(absl::string_view name,
                                             CrossJobWriteMethod<Request, Response> method) {
  MarkMethodRawCallback(
      MethodIndex(name),
      new RawUnaryHandler([this, name, method](CallbackServerContext* context,
                                               const ByteBuffer* request, ByteBuffer* response) {
        ServerUnaryReactor* reactor = context->DefaultReactor();
        auto* call = Accept<Request, Response>(name, context, request, response, reactor);
        if (call == nullptr) return reactor;
        // Each shard's share of the call's limit (a sub-call from a replica has it already).
        if (!IsForwarded(*context)) SpreadOverShards(call->request, shards_->shards());
        call->audit = AdminAudit(name, call->principal, "");
        call->run_part = [call, method](const ShardHold& hold, Response* out, Engine::Done done) {
          const auth::PrincipalRef& principal = call->principal;
          // The hold keeps the engine open until its writes are answered.
          (hold.engine().*method)(
              *call->request, out, principal != nullptr ? principal->job_prefix : "",
              [hold, done = std::move(done)](absl::Status status) { done(std::move(status)); });
        };
        FanOut(call);
        return reactor;
      }));
}

template <typename Request, typename Response>
CheckpointService::Call<Request, Response>* CheckpointService::Accept(
    absl::string_view name, CallbackServerContext* context, const ByteBuffer* wire,
    ByteBuffer* response, ServerUnaryReactor* reactor) {
  if (!Enter()) {
    reactor->Finish(kShuttingDown);
    return nullptr;
  }
  auto call = std::make_unique<Call<Request, Response>>();
  absl::StatusOr<auth::PrincipalRef> admitted =
      Admit(authorizer_, *context, name, wire, call->request);
  absl::Status status = admitted.status();
  if (status.ok()) {
    call->principal = std::move(*admitted);
    status = ValidateRequest(*call->request, limits_);
    // An admin action refused by validation is logged, as one the engine decides is.
    if (!status.ok() && IsAdminAction(name, call->principal)) {
      LogAdminAction(name, *call->principal, JobIdOf(*call->request), status);
    }
  }
  if (!status.ok()) {
    reactor->Finish(ToGrpcStatus(status));
    Leave();
    return nullptr;
  }
  call->context = context;
  call->reactor = reactor;
  call->wire_response = response;
  call->method = absl::StrCat("/ckpt.v1.Checkpoint/", name);
  return call.release();
}

// ---------------------------------------------------------------- job-scoped calls

template <typename Request, typename Response>
void CheckpointService::Dispatch(Call<Request, Response>* call) {
  if (shards_->shards() > 1) NameJob(call->request);
  const int shard = shards_->ShardOf(call->request->job_id());
  auto then = [this, call](ShardRoute route) { OnRoute(call, std::move(route)); };
  if (IsForwarded(*call->context)) {
    shards_->RouteHere(shard, DeadlineOf(*call->context), std::move(then));
  } else {
    shards_->Route(shard, DeadlineOf(*call->context), std::move(then));
  }
}

template <typename Request, typename Response>
void CheckpointService::OnRoute(Call<Request, Response>* call, ShardRoute route) {
  if (route.local) return call->run_local(route.local);
  if (!route.owner.empty() && forwarder_ != nullptr) return Forward(call, std::move(route));
  Refuse(call, route);
}

template <typename Request, typename Response>
void CheckpointService::Refuse(Call<Request, Response>* call, const ShardRoute& route) {
  absl::Status status = route.status.ok() ? absl::UnavailableError("no route") : route.status;
  if (absl::IsFailedPrecondition(status)) {
    // Forwarded here by a replica whose view is stale: nothing was applied.
    call->context->AddTrailingMetadata(kNotOwnerKey, absl::StrCat(route.shard));
    status = absl::UnavailableError(status.message());
  }
  Finish(call, status);
}

template <typename Request, typename Response>
void CheckpointService::Forward(Call<Request, Response>* call, ShardRoute route) {
  call->forwarded.Clear();
  const absl::Status serialized = SerializeWireMessage(*call->request, &call->forwarded);
  if (!serialized.ok()) return Finish(call, serialized);
  forwarder_->Unary(
      *call->context, call->method, call->forwarded, route.owner, {route.shard}, {},
      call->wire_response,
      [this, call, shard = route.shard, owner = route.owner](PeerAnswer answer) {
        if (answer.not_owner >= 0 && ++call->attempts < kMaxAttempts) {
          shards_->NoteStale(shard, owner);
          return Dispatch(call);
        }
        // The owner died or is not up yet: wait (parked, within the call's deadline) for
        // the lease table to name one that answers.
        if (answer.unreached && ++call->unreached < kMaxUnreachedRoutes) {
          shards_->NoteStale(shard, owner, /*wake=*/false);
          return Dispatch(call);
        }
        AddTrailers(call->context, answer);
        if (answer.not_owner >= 0) {
          answer.status =
              grpc::Status(grpc::StatusCode::UNAVAILABLE, answer.status.error_message());
        }
        call->reactor->Finish(answer.status);  // the response, if any, is already in place
        delete call;
        Leave();
      });
}

template <typename Request, typename Response>
void CheckpointService::Finish(Call<Request, Response>* call, absl::Status status) {
  if (call->audit) call->audit(status);
  if (status.ok()) status = SerializeWireMessage(*call->response, call->wire_response);
  if (auto retry_after = status.GetPayload(kRetryAfterPayload)) {
    call->context->AddTrailingMetadata(kRetryAfterMetadataKey, std::string(*retry_after));
  }
  call->reactor->Finish(ToGrpcStatus(status));
  delete call;
  Leave();
}

// ---------------------------------------------------------------- BackupStore

void CheckpointService::ServeBackup() {
  using Request = v1::BackupStoreRequest;
  using Response = v1::BackupStoreResponse;
  MarkMethodRawCallback(
      MethodIndex("BackupStore"),
      new RawUnaryHandler([this](CallbackServerContext* context, const ByteBuffer* request,
                                 ByteBuffer* response) {
        ServerUnaryReactor* reactor = context->DefaultReactor();
        auto* call = Accept<Request, Response>("BackupStore", context, request, response, reactor);
        if (call == nullptr) return reactor;
        // Blocks this RPC thread for the copy; one at a time (the store refuses a second).
        const absl::Status status = BackUpHere(*call->request, call->response);
        if (auto audit = AdminAudit("BackupStore", call->principal, "")) audit(status);
        Finish(call, status);
        return reactor;
      }));
}

absl::Status CheckpointService::BackUpHere(const v1::BackupStoreRequest& request,
                                           v1::BackupStoreResponse* response) {
  if (forwarder_ != nullptr || shards_->shards() != 1) {
    return absl::FailedPreconditionError(absl::StrCat(
        "this ckptd is a replica serving ", shards_->shards(),
        " shards of a shared PostgreSQL store, which ckptd does not copy itself: back the "
        "database up with PostgreSQL's tools (pg_basebackup, or point-in-time recovery with "
        "WAL archiving; under Patroni, its backup tooling)"));
  }
  const ShardRoute route = shards_->RouteNow(0, /*here_only=*/true);
  if (!route.local) return route.status;
  return route.local.engine().BackupStore(request, response);
}

// ---------------------------------------------------------------- calls spanning jobs

template <typename Request, typename Response>
void CheckpointService::FanOut(Call<Request, Response>* call) {
  if (!IsForwarded(*call->context)) {
    shards_->RouteAll(DeadlineOf(*call->context), [this, call](std::vector<ShardRoute> routes) {
      Gather(call, std::move(routes));
    });
    return;
  }
  // A sub-call from another replica: answer for the shards it lists, all of them here.
  std::vector<ShardRoute> routes;
  for (int shard : ShardsAskedFor(*call->context, shards_->shards())) {
    routes.push_back(shards_->RouteNow(shard, /*here_only=*/true));
  }
  if (routes.empty()) {
    return Finish(call, absl::InvalidArgumentError(absl::StrCat(kShardsKey, " lists no shard")));
  }
  Gather(call, std::move(routes));
}

template <typename Request, typename Response>
void CheckpointService::Gather(Call<Request, Response>* call, std::vector<ShardRoute> routes) {
  // The answers so far, and the sub-calls to owners still out.
  struct State {
    absl::Mutex mu;
    std::vector<absl::StatusOr<Response>> parts ABSL_GUARDED_BY(mu);
    std::vector<std::pair<int, std::string>> stale ABSL_GUARDED_BY(mu);
    std::vector<std::pair<int, std::string>> unreached ABSL_GUARDED_BY(mu);
    std::vector<int> answered_shards ABSL_GUARDED_BY(mu);  // those of `parts`
    int pending ABSL_GUARDED_BY(mu) = 0;
    std::vector<std::unique_ptr<std::pair<ByteBuffer, ByteBuffer>>> wires;  // request, response
  };
  routes.erase(std::remove_if(routes.begin(), routes.end(),
                              [call](const ShardRoute& route) {
                                return call->answered_shards.contains(route.shard);
                              }),
               routes.end());
  // Answers with the parts answered, and `failure` unless it is OK (a shard unanswered).
  auto finish = [this, call](absl::Status failure) {
    std::vector<absl::StatusOr<Response>> parts = std::move(call->answered);
    if (!failure.ok()) parts.push_back(std::move(failure));
    absl::StatusOr<Response> merged = Merge(*call->request, std::move(parts));
    if (merged.ok()) *call->response = std::move(*merged);
    Finish(call, merged.status());
  };
  for (ShardRoute& route : routes) {
    if (!route.local && (route.owner.empty() || forwarder_ == nullptr)) {
      // No owner in time, or not owned here.
      if (call->answered.empty()) return Refuse(call, route);
      return finish(route.status.ok() ? absl::UnavailableError("no route") : route.status);
    }
  }
  auto state = std::make_shared<State>();
  absl::flat_hash_map<std::string, std::vector<int>> remote;
  std::vector<std::pair<int, ShardHold>> local;
  for (ShardRoute& route : routes) {
    if (!route.local) {
      remote[route.owner].push_back(route.shard);
      continue;
    }
    local.emplace_back(route.shard, std::move(route.local));
  }
  {
    absl::MutexLock lock(&state->mu);
    state->pending = static_cast<int>(remote.size() + local.size()) + 1;
  }
  // Completes the call once every part is in: merged, or sent again if an owner said
  // it no longer owns a shard.
  auto part_done = [this, call, state, finish] {
    std::vector<std::pair<int, std::string>> stale;
    std::vector<std::pair<int, std::string>> unreached;
    {
      absl::MutexLock lock(&state->mu);
      if (--state->pending > 0) return;
      for (auto& part : state->parts) call->answered.push_back(std::move(part));
      call->answered_shards.insert(state->answered_shards.begin(), state->answered_shards.end());
      stale = std::move(state->stale);
      unreached = std::move(state->unreached);
    }
    // Sent again to the shards that moved only.
    if (stale.empty() && !unreached.empty() && ++call->unreached < kMaxUnreachedRoutes) {
      for (const auto& [shard, owner] : unreached) shards_->NoteStale(shard, owner, false);
      return FanOut(call);
    }
    if (!stale.empty() && ++call->attempts < kMaxAttempts) {
      for (const auto& [shard, owner] : stale) shards_->NoteStale(shard, owner);
      for (const auto& [shard, owner] : unreached) shards_->NoteStale(shard, owner, false);
      return FanOut(call);
    }
    finish(stale.empty() && unreached.empty()
               ? absl::OkStatus()
               : absl::UnavailableError("shards moved while this call was answered; retry"));
  };
  for (const auto& [owner, shards] : remote) {
    state->wires.push_back(std::make_unique<std::pair<ByteBuffer, ByteBuffer>>());
    auto* wire = state->wires.back().get();
    SerializeWireMessage(*call->request, &wire->first).IgnoreError();  // never fails
    forwarder_->Unary(*call->context, call->method, wire->first, owner, shards,
                      {{kShardsKey, absl::StrJoin(shards, ",")}}, &wire->second,
                      [state, wire, owner = owner, shards = shards, part_done](PeerAnswer answer) {
                        {
                          absl::MutexLock lock(&state->mu);
                          if (answer.not_owner >= 0) {
                            for (int shard : shards) state->stale.emplace_back(shard, owner);
                          } else if (answer.unreached) {
                            for (int shard : shards) state->unreached.emplace_back(shard, owner);
                          } else if (!answer.status.ok()) {
                            state->parts.push_back(FromGrpcStatus(answer.status));
                            absl::c_copy(shards, std::back_inserter(state->answered_shards));
                          } else {
                            Response part;
                            absl::Status parsed = ParseWireMessage(&wire->second, &part);
                            state->parts.push_back(
                                parsed.ok() ? absl::StatusOr<Response>(std::move(part)) : parsed);
                            absl::c_copy(shards, std::back_inserter(state->answered_shards));
                          }
                        }
                        part_done();
                      });
  }
  for (const auto& [shard, hold] : local) {
    auto part = std::make_shared<Response>();
    call->run_part(hold, part.get(), [state, shard = shard, part, part_done](absl::Status status) {
      {
        absl::MutexLock lock(&state->mu);
        state->parts.push_back(status.ok() ? absl::StatusOr<Response>(std::move(*part))
                                           : absl::StatusOr<Response>(std::move(status)));
        state->answered_shards.push_back(shard);
      }
      part_done();
    });
  }
  part_done();  // every part has been started
}

// ---------------------------------------------------------------- WatchJob

void CheckpointService::ServeWatch() {
  // A stream that ends at once with `status`.
  class Refused : public grpc::ServerWriteReactor<ByteBuffer> {
   public:
    explicit Refused(const grpc::Status& status) { Finish(status); }
    void OnDone() override { delete this; }
  };
  MarkMethodRawCallback(
      MethodIndex("WatchJob"),
      new grpc::internal::CallbackServerStreamingHandler<ByteBuffer, ByteBuffer>(
          [this](CallbackServerContext* context,
                 const ByteBuffer* wire) -> grpc::ServerWriteReactor<ByteBuffer>* {
            v1::WatchJobRequest request;
            absl::Status status = Admit(authorizer_, *context, "WatchJob", wire, &request).status();
            if (status.ok()) status = ValidateRequest(request, limits_);
            if (!status.ok()) return new Refused(ToGrpcStatus(status));
            // A stream does not wait for a moving shard: it is refused UNAVAILABLE and
            // the client watches again.
            ShardRoute route =
                shards_->RouteNow(shards_->ShardOf(request.job_id()), IsForwarded(*context));
            if (route.local) {
              WatchHub* hub = hubs_.For(route.local);
              if (hub != nullptr) return hub->Watch(request);
              route.status = absl::UnavailableError("the job's shard is moving; watch again");
            } else if (!route.owner.empty() && forwarder_ != nullptr) {
              ByteBuffer forwarded;
              status = SerializeWireMessage(request, &forwarded);
              if (!status.ok()) return new Refused(ToGrpcStatus(status));
              return forwarder_->RelayWatch(context, forwarded, route.owner, route.shard);
            }
            if (absl::IsFailedPrecondition(route.status)) {
              context->AddTrailingMetadata(kNotOwnerKey, absl::StrCat(route.shard));
              route.status = absl::UnavailableError(route.status.message());
            }
            return new Refused(ToGrpcStatus(route.status));
          }));
}

WatchHub* CheckpointService::watch_hub() {
  ShardRoute route = shards_->RouteNow(0, /*here_only=*/true);
  return route.local ? hubs_.For(route.local) : nullptr;
}

// ---------------------------------------------------------------- shutdown

bool CheckpointService::Enter() {
  absl::MutexLock lock(&mu_);
  if (shutting_down_) return false;
  ++in_flight_;
  return true;
}

void CheckpointService::Leave() {
  absl::MutexLock lock(&mu_);
  --in_flight_;
}

void CheckpointService::BeginShutdown() {
  {
    absl::MutexLock lock(&mu_);
    shutting_down_ = true;
  }
  hubs_.Shutdown();
}

bool CheckpointService::AwaitNoWatchers(absl::Time deadline) {
  return hubs_.AwaitNoWatchers(deadline);
}

bool CheckpointService::AwaitIdle(absl::Time deadline) {
  absl::MutexLock lock(&mu_);
  auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return in_flight_ == 0; };
  return mu_.AwaitWithDeadline(absl::Condition(&idle), deadline);
}

}  // namespace ckpt
