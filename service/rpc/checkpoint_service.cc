#include "service/rpc/checkpoint_service.h"

#include <memory>

#include "google/protobuf/arena.h"
#include "google/protobuf/descriptor.h"
#include "service/common/grpc_status.h"
#include "service/engine/write_queue.h"
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

// Parses and validates the request; on failure answers the call and returns null.
template <typename Request, typename Response>
std::unique_ptr<UnaryCall<Request, Response>> Accept(const ByteBuffer* wire, const Limits& limits,
                                                     ServerUnaryReactor* reactor) {
  auto call = std::make_unique<UnaryCall<Request, Response>>();
  absl::Status status = ParseWireMessage(const_cast<ByteBuffer*>(wire), call->request);
  if (status.ok()) status = ValidateRequest(*call->request, limits);
  if (status.ok()) return call;
  reactor->Finish(ToGrpcStatus(status));
  return nullptr;
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

CheckpointService::CheckpointService(Engine* engine, const Limits& limits)
    : engine_(engine), limits_(limits), watch_hub_(engine) {
  ServeWrite("CreateJob", &Engine::CreateJob);
  ServeRead("GetJob", &Engine::GetJob);
  ServeRead("ListJobs", &Engine::ListJobs);
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
  ServeRead("FindOutput", &Engine::FindOutput);
  ServeWrite("RegisterWorker", &Engine::RegisterWorker);
  ServeWrite("Heartbeat", &Engine::Heartbeat);
  ServeWrite("ListWorkers", &Engine::ListWorkers);
  ServeWrite("UnregisterWorker", &Engine::UnregisterWorker);
  ServeWrite("PutState", &Engine::PutState);
  ServeRead("GetState", &Engine::GetState);
  ServeRead("ListStates", &Engine::ListStates);
  ServeWatch();
}

template <typename Request, typename Response>
void CheckpointService::ServeWrite(absl::string_view name, WriteMethod<Request, Response> method) {
  MarkMethodRawCallback(
      MethodIndex(name),
      new RawUnaryHandler([this, method](CallbackServerContext* context, const ByteBuffer* request,
                                         ByteBuffer* response) {
        return Write<Request, Response>(method, context, request, response);
      }));
}

template <typename Request, typename Response>
void CheckpointService::ServeRead(absl::string_view name, ReadMethod<Request, Response> method) {
  MarkMethodRawCallback(
      MethodIndex(name),
      new RawUnaryHandler([this, method](CallbackServerContext* context, const ByteBuffer* request,
                                         ByteBuffer* response) {
        return Read<Request, Response>(method, context, request, response);
      }));
}

template <typename Request, typename Response>
ServerUnaryReactor* CheckpointService::Write(WriteMethod<Request, Response> method,
                                             CallbackServerContext* context,
                                             const ByteBuffer* request, ByteBuffer* response) {
  ServerUnaryReactor* reactor = context->DefaultReactor();
  if (!Enter()) {
    reactor->Finish(kShuttingDown);
    return reactor;
  }
  auto call = Accept<Request, Response>(request, limits_, reactor);
  if (call == nullptr) {
    Leave();
    return reactor;
  }
  UnaryCall<Request, Response>* raw = call.release();
  (engine_->*method)(*raw->request, raw->response,
                     [this, context, reactor, raw, response](absl::Status status) {
                       Answer(context, reactor, *raw->response, std::move(status), response);
                       delete raw;
                       Leave();
                     });
  return reactor;
}

template <typename Request, typename Response>
ServerUnaryReactor* CheckpointService::Read(ReadMethod<Request, Response> method,
                                            CallbackServerContext* context,
                                            const ByteBuffer* request, ByteBuffer* response) {
  ServerUnaryReactor* reactor = context->DefaultReactor();
  if (!Enter()) {
    reactor->Finish(kShuttingDown);
    return reactor;
  }
  auto call = Accept<Request, Response>(request, limits_, reactor);
  if (call != nullptr) {
    Answer(context, reactor, *call->response, (engine_->*method)(*call->request, call->response),
           response);
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
            absl::Status status = ParseWireMessage(const_cast<ByteBuffer*>(wire), &request);
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
