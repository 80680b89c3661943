#include "service/rpc/checkpoint_service.h"

#include <memory>

#include "google/protobuf/arena.h"
#include "google/protobuf/descriptor.h"
#include "service/auth/roles.h"
#include "service/common/grpc_status.h"
#include "service/common/status_macros.h"
#include "service/engine/write_queue.h"
#include "service/rpc/call_auth.h"
#include "service/rpc/wire_message.h"

namespace ckpt {
namespace {

using grpc::ByteBuffer;
using grpc::CallbackServerContext;
using grpc::ServerUnaryReactor;
using RawUnaryHandler = grpc::internal::CallbackUnaryHandler<ByteBuffer, ByteBuffer>;

const grpc::Status kShuttingDown(grpc::StatusCode::UNAVAILABLE,
                                 "ckptd is shutting down; retry against the new instance");

// The method's index in the service, as the generated code numbers them.
int MethodIndex(absl::string_view name) {
  const auto* service =
      google::protobuf::DescriptorPool::generated_pool()->FindServiceByName("ckpt.v1.Checkpoint");
  const auto* method = service->FindMethodByName(std::string(name));
  return method->index();
}

// One unary call's messages, on one arena freed when the call is answered.
template <typename Request, typename Response>
struct UnaryCall {
  google::protobuf::Arena arena;
  Request* request = google::protobuf::Arena::CreateMessage<Request>(&arena);
  Response* response = google::protobuf::Arena::CreateMessage<Response>(&arena);
};

// The job a request names, for a confined principal; ListJobs and FindOutput name none
// (their answers are filtered instead).
template <typename Request>
absl::string_view JobIdOf(const Request& request) {
  return request.job_id();
}
absl::string_view JobIdOf(const v1::ListJobsRequest&) { return ""; }
absl::string_view JobIdOf(const v1::FindOutputRequest&) { return ""; }
absl::string_view JobIdOf(const v1::BackupStoreRequest&) { return ""; }

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

// Admit, then ValidateRequest; on failure answers the call and returns null. An admin
// action refused by validation is logged, as one the engine decides is.
template <typename Request, typename Response>
std::unique_ptr<UnaryCall<Request, Response>> Accept(const auth::Authorizer* authorizer,
                                                     const grpc::ServerContextBase& context,
                                                     absl::string_view rpc, const ByteBuffer* wire,
                                                     const Limits& limits,
                                                     ServerUnaryReactor* reactor,
                                                     auth::PrincipalRef* principal) {
  auto call = std::make_unique<UnaryCall<Request, Response>>();
  absl::StatusOr<auth::PrincipalRef> admitted =
      Admit(authorizer, context, rpc, wire, call->request);
  absl::Status status = admitted.status();
  if (status.ok()) {
    *principal = std::move(*admitted);
    status = ValidateRequest(*call->request, limits);
    if (!status.ok() && IsAdminAction(rpc, *principal)) {
      LogAdminAction(rpc, **principal, JobIdOf(*call->request), status);
    }
  }
  if (status.ok()) return call;
  reactor->Finish(ToGrpcStatus(status));
  return nullptr;
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

void Answer(CallbackServerContext* context, ServerUnaryReactor* reactor,
            const google::protobuf::MessageLite& response, absl::Status status, ByteBuffer* wire) {
  if (status.ok()) status = SerializeWireMessage(response, wire);
  if (auto retry_after = status.GetPayload(kRetryAfterPayload)) {
    context->AddTrailingMetadata(kRetryAfterMetadataKey, std::string(*retry_after));
  }
  reactor->Finish(ToGrpcStatus(status));
}

}  // namespace

CheckpointService::CheckpointService(Engine* engine, const Limits& limits,
                                     const auth::Authorizer* authorizer)
    : engine_(engine), limits_(limits), authorizer_(authorizer), watch_hub_(engine) {
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
  // Blocks its RPC thread for the copy; one at a time (the store refuses a second).
  ServeRead("BackupStore", &Engine::BackupStore);
  ServeWatch();
}

template <typename Request, typename Response>
void CheckpointService::ServeWrite(absl::string_view name, WriteMethod<Request, Response> method) {
  MarkMethodRawCallback(
      MethodIndex(name),
      new RawUnaryHandler([this, name, method](CallbackServerContext* context,
                                               const ByteBuffer* request, ByteBuffer* response) {
        return Write<Request, Response>(name, method, context, request, response);
      }));
}

template <typename Request, typename Response>
void CheckpointService::ServeRead(absl::string_view name, ReadMethod<Request, Response> method) {
  ServeReadFn<Request, Response>(
      name, [this, method](const Request& request, Response* response, absl::string_view) {
        return (engine_->*method)(request, response);
      });
}

template <typename Request, typename Response>
void CheckpointService::ServeReadAcrossJobs(absl::string_view name,
                                            CrossJobReadMethod<Request, Response> method) {
  ServeReadFn<Request, Response>(name, [this, method](const Request& request, Response* response,
                                                      absl::string_view job_prefix) {
    return (engine_->*method)(request, response, job_prefix);
  });
}

template <typename Request, typename Response>
void CheckpointService::ServeReadFn(absl::string_view name, ReadFn<Request, Response> read) {
  MarkMethodRawCallback(MethodIndex(name),
                        new RawUnaryHandler([this, name, read = std::move(read)](
                                                CallbackServerContext* context,
                                                const ByteBuffer* request, ByteBuffer* response) {
                          return Read<Request, Response>(name, read, context, request, response);
                        }));
}

template <typename Request, typename Response>
ServerUnaryReactor* CheckpointService::Write(absl::string_view name,
                                             WriteMethod<Request, Response> method,
                                             CallbackServerContext* context,
                                             const ByteBuffer* request, ByteBuffer* response) {
  ServerUnaryReactor* reactor = context->DefaultReactor();
  if (!Enter()) {
    reactor->Finish(kShuttingDown);
    return reactor;
  }
  auth::PrincipalRef principal;
  auto call =
      Accept<Request, Response>(authorizer_, *context, name, request, limits_, reactor, &principal);
  if (call == nullptr) {
    Leave();
    return reactor;
  }
  UnaryCall<Request, Response>* raw = call.release();
  (engine_->*method)(
      *raw->request, raw->response,
      [this, context, reactor, raw, response,
       audit = AdminAudit(name, principal, JobIdOf(*raw->request))](absl::Status status) {
        if (audit) audit(status);
        Answer(context, reactor, *raw->response, std::move(status), response);
        delete raw;
        Leave();
      });
  return reactor;
}

template <typename Request, typename Response>
ServerUnaryReactor* CheckpointService::Read(absl::string_view name,
                                            const ReadFn<Request, Response>& read,
                                            CallbackServerContext* context,
                                            const ByteBuffer* request, ByteBuffer* response) {
  ServerUnaryReactor* reactor = context->DefaultReactor();
  if (!Enter()) {
    reactor->Finish(kShuttingDown);
    return reactor;
  }
  auth::PrincipalRef principal;
  auto call =
      Accept<Request, Response>(authorizer_, *context, name, request, limits_, reactor, &principal);
  if (call != nullptr) {
    const absl::string_view job_prefix =
        principal != nullptr ? absl::string_view(principal->job_prefix) : "";
    const absl::Status status = read(*call->request, call->response, job_prefix);
    if (IsAdminAction(name, principal)) {
      LogAdminAction(name, *principal, JobIdOf(*call->request), status);
    }
    Answer(context, reactor, *call->response, status, response);
  }
  Leave();
  return reactor;
}

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
            return watch_hub_.Watch(request);
          }));
}

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
  watch_hub_.Shutdown();
}

bool CheckpointService::AwaitIdle(absl::Time deadline) {
  absl::MutexLock lock(&mu_);
  auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return in_flight_ == 0; };
  return mu_.AwaitWithDeadline(absl::Condition(&idle), deadline);
}

}  // namespace ckpt
