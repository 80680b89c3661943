#include "service/rpc/checkpoint_service.h"

#include "service/common/grpc_status.h"

namespace ckpt {

CheckpointService::CheckpointService(Engine* engine, const Limits& limits)
    : engine_(engine), limits_(limits), watch_hub_(engine) {
  SetMessageAllocatorFor_AddItems(&add_items_allocator_);
  SetMessageAllocatorFor_LeaseItems(&lease_items_allocator_);
  SetMessageAllocatorFor_CompleteItems(&complete_items_allocator_);
  SetMessageAllocatorFor_FailItems(&fail_items_allocator_);
  SetMessageAllocatorFor_Heartbeat(&heartbeat_allocator_);
}

template <typename Request, typename Response>
grpc::ServerUnaryReactor* CheckpointService::Write(grpc::CallbackServerContext* context,
                                                   const Request* request, Response* response,
                                                   void (Engine::*method)(const Request&, Response*,
                                                                          Engine::Done)) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  const absl::Status valid = ValidateRequest(*request, limits_);
  if (!valid.ok()) {
    reactor->Finish(ToGrpcStatus(valid));
    return reactor;
  }
  (engine_->*method)(*request, response,
                     [reactor](absl::Status status) { reactor->Finish(ToGrpcStatus(status)); });
  return reactor;
}

template <typename Request, typename Response>
grpc::ServerUnaryReactor* CheckpointService::Read(grpc::CallbackServerContext* context,
                                                  const Request* request, Response* response,
                                                  absl::Status (Engine::*method)(const Request&,
                                                                                 Response*) const) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::Status status = ValidateRequest(*request, limits_);
  if (status.ok()) status = (engine_->*method)(*request, response);
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

grpc::ServerUnaryReactor* CheckpointService::CreateJob(grpc::CallbackServerContext* context,
                                                       const v1::CreateJobRequest* request,
                                                       v1::CreateJobResponse* response) {
  return Write(context, request, response, &Engine::CreateJob);
}

grpc::ServerUnaryReactor* CheckpointService::GetJob(grpc::CallbackServerContext* context,
                                                    const v1::GetJobRequest* request,
                                                    v1::GetJobResponse* response) {
  return Read(context, request, response, &Engine::GetJob);
}

grpc::ServerUnaryReactor* CheckpointService::ListJobs(grpc::CallbackServerContext* context,
                                                      const v1::ListJobsRequest* request,
                                                      v1::ListJobsResponse* response) {
  return Read(context, request, response, &Engine::ListJobs);
}

grpc::ServerUnaryReactor* CheckpointService::UpdateJob(grpc::CallbackServerContext* context,
                                                       const v1::UpdateJobRequest* request,
                                                       v1::UpdateJobResponse* response) {
  return Write(context, request, response, &Engine::UpdateJob);
}

grpc::ServerUnaryReactor* CheckpointService::PauseJob(grpc::CallbackServerContext* context,
                                                      const v1::PauseJobRequest* request,
                                                      v1::PauseJobResponse* response) {
  return Write(context, request, response, &Engine::PauseJob);
}

grpc::ServerUnaryReactor* CheckpointService::ResumeJob(grpc::CallbackServerContext* context,
                                                       const v1::ResumeJobRequest* request,
                                                       v1::ResumeJobResponse* response) {
  return Write(context, request, response, &Engine::ResumeJob);
}

grpc::ServerUnaryReactor* CheckpointService::StopJob(grpc::CallbackServerContext* context,
                                                     const v1::StopJobRequest* request,
                                                     v1::StopJobResponse* response) {
  return Write(context, request, response, &Engine::StopJob);
}

grpc::ServerUnaryReactor* CheckpointService::FinishJob(grpc::CallbackServerContext* context,
                                                       const v1::FinishJobRequest* request,
                                                       v1::FinishJobResponse* response) {
  return Write(context, request, response, &Engine::FinishJob);
}

grpc::ServerUnaryReactor* CheckpointService::ResetJob(grpc::CallbackServerContext* context,
                                                      const v1::ResetJobRequest* request,
                                                      v1::ResetJobResponse* response) {
  return Write(context, request, response, &Engine::ResetJob);
}

grpc::ServerUnaryReactor* CheckpointService::DeleteJob(grpc::CallbackServerContext* context,
                                                       const v1::DeleteJobRequest* request,
                                                       v1::DeleteJobResponse* response) {
  return Write(context, request, response, &Engine::DeleteJob);
}

grpc::ServerUnaryReactor* CheckpointService::AddItems(grpc::CallbackServerContext* context,
                                                      const v1::AddItemsRequest* request,
                                                      v1::AddItemsResponse* response) {
  return Write(context, request, response, &Engine::AddItems);
}

grpc::ServerUnaryReactor* CheckpointService::LeaseItems(grpc::CallbackServerContext* context,
                                                        const v1::LeaseItemsRequest* request,
                                                        v1::LeaseItemsResponse* response) {
  return Write(context, request, response, &Engine::LeaseItems);
}

grpc::ServerUnaryReactor* CheckpointService::CompleteItems(grpc::CallbackServerContext* context,
                                                           const v1::CompleteItemsRequest* request,
                                                           v1::CompleteItemsResponse* response) {
  return Write(context, request, response, &Engine::CompleteItems);
}

grpc::ServerUnaryReactor* CheckpointService::FailItems(grpc::CallbackServerContext* context,
                                                       const v1::FailItemsRequest* request,
                                                       v1::FailItemsResponse* response) {
  return Write(context, request, response, &Engine::FailItems);
}

grpc::ServerUnaryReactor* CheckpointService::GetItem(grpc::CallbackServerContext* context,
                                                     const v1::GetItemRequest* request,
                                                     v1::GetItemResponse* response) {
  return Read(context, request, response, &Engine::GetItem);
}

grpc::ServerUnaryReactor* CheckpointService::ListItems(grpc::CallbackServerContext* context,
                                                       const v1::ListItemsRequest* request,
                                                       v1::ListItemsResponse* response) {
  return Read(context, request, response, &Engine::ListItems);
}

grpc::ServerUnaryReactor* CheckpointService::ResetItems(grpc::CallbackServerContext* context,
                                                        const v1::ResetItemsRequest* request,
                                                        v1::ResetItemsResponse* response) {
  return Write(context, request, response, &Engine::ResetItems);
}

grpc::ServerUnaryReactor* CheckpointService::FindOutput(grpc::CallbackServerContext* context,
                                                        const v1::FindOutputRequest* request,
                                                        v1::FindOutputResponse* response) {
  return Read(context, request, response, &Engine::FindOutput);
}

grpc::ServerUnaryReactor* CheckpointService::RegisterWorker(
    grpc::CallbackServerContext* context, const v1::RegisterWorkerRequest* request,
    v1::RegisterWorkerResponse* response) {
  return Write(context, request, response, &Engine::RegisterWorker);
}

grpc::ServerUnaryReactor* CheckpointService::Heartbeat(grpc::CallbackServerContext* context,
                                                       const v1::HeartbeatRequest* request,
                                                       v1::HeartbeatResponse* response) {
  return Write(context, request, response, &Engine::Heartbeat);
}

grpc::ServerUnaryReactor* CheckpointService::ListWorkers(grpc::CallbackServerContext* context,
                                                         const v1::ListWorkersRequest* request,
                                                         v1::ListWorkersResponse* response) {
  return Write(context, request, response, &Engine::ListWorkers);
}

grpc::ServerUnaryReactor* CheckpointService::UnregisterWorker(
    grpc::CallbackServerContext* context, const v1::UnregisterWorkerRequest* request,
    v1::UnregisterWorkerResponse* response) {
  return Write(context, request, response, &Engine::UnregisterWorker);
}

grpc::ServerUnaryReactor* CheckpointService::PutState(grpc::CallbackServerContext* context,
                                                      const v1::PutStateRequest* request,
                                                      v1::PutStateResponse* response) {
  return Write(context, request, response, &Engine::PutState);
}

grpc::ServerUnaryReactor* CheckpointService::GetState(grpc::CallbackServerContext* context,
                                                      const v1::GetStateRequest* request,
                                                      v1::GetStateResponse* response) {
  return Read(context, request, response, &Engine::GetState);
}

grpc::ServerUnaryReactor* CheckpointService::ListStates(grpc::CallbackServerContext* context,
                                                        const v1::ListStatesRequest* request,
                                                        v1::ListStatesResponse* response) {
  return Read(context, request, response, &Engine::ListStates);
}

grpc::ServerWriteReactor<v1::WatchJobResponse>* CheckpointService::WatchJob(
    grpc::CallbackServerContext* context, const v1::WatchJobRequest* request) {
  const absl::Status valid = ValidateRequest(*request, limits_);
  if (!valid.ok()) {
    class Refused : public grpc::ServerWriteReactor<v1::WatchJobResponse> {
     public:
      explicit Refused(const absl::Status& status) { Finish(ToGrpcStatus(status)); }
      void OnDone() override { delete this; }
    };
    return new Refused(valid);
  }
  return watch_hub_.Watch(*request);
}

}  // namespace ckpt
