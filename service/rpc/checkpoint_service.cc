#include "service/rpc/checkpoint_service.h"

#include <string>

namespace ckpt {
namespace {

template <typename Reactor>
Reactor* Unimplemented(Reactor* reactor, const char* rpc) {
  reactor->Finish(grpc::Status(grpc::StatusCode::UNIMPLEMENTED,
                               std::string(rpc) + " is not implemented yet"));
  return reactor;
}

class UnimplementedStream : public grpc::ServerWriteReactor<v1::WatchJobResponse> {
 public:
  UnimplementedStream() {
    Finish(grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "WatchJob is not implemented yet"));
  }
  void OnDone() override { delete this; }
};

}  // namespace

grpc::ServerUnaryReactor* CheckpointService::CreateJob(grpc::CallbackServerContext* context,
    const v1::CreateJobRequest* request, v1::CreateJobResponse* response) {
  return Unimplemented(context->DefaultReactor(), "CreateJob");
}

grpc::ServerUnaryReactor* CheckpointService::GetJob(grpc::CallbackServerContext* context,
    const v1::GetJobRequest* request, v1::GetJobResponse* response) {
  return Unimplemented(context->DefaultReactor(), "GetJob");
}

grpc::ServerUnaryReactor* CheckpointService::ListJobs(grpc::CallbackServerContext* context,
    const v1::ListJobsRequest* request, v1::ListJobsResponse* response) {
  return Unimplemented(context->DefaultReactor(), "ListJobs");
}

grpc::ServerUnaryReactor* CheckpointService::UpdateJob(grpc::CallbackServerContext* context,
    const v1::UpdateJobRequest* request, v1::UpdateJobResponse* response) {
  return Unimplemented(context->DefaultReactor(), "UpdateJob");
}

grpc::ServerUnaryReactor* CheckpointService::PauseJob(grpc::CallbackServerContext* context,
    const v1::PauseJobRequest* request, v1::PauseJobResponse* response) {
  return Unimplemented(context->DefaultReactor(), "PauseJob");
}

grpc::ServerUnaryReactor* CheckpointService::ResumeJob(grpc::CallbackServerContext* context,
    const v1::ResumeJobRequest* request, v1::ResumeJobResponse* response) {
  return Unimplemented(context->DefaultReactor(), "ResumeJob");
}

grpc::ServerUnaryReactor* CheckpointService::StopJob(grpc::CallbackServerContext* context,
    const v1::StopJobRequest* request, v1::StopJobResponse* response) {
  return Unimplemented(context->DefaultReactor(), "StopJob");
}

grpc::ServerUnaryReactor* CheckpointService::FinishJob(grpc::CallbackServerContext* context,
    const v1::FinishJobRequest* request, v1::FinishJobResponse* response) {
  return Unimplemented(context->DefaultReactor(), "FinishJob");
}

grpc::ServerUnaryReactor* CheckpointService::ResetJob(grpc::CallbackServerContext* context,
    const v1::ResetJobRequest* request, v1::ResetJobResponse* response) {
  return Unimplemented(context->DefaultReactor(), "ResetJob");
}

grpc::ServerUnaryReactor* CheckpointService::DeleteJob(grpc::CallbackServerContext* context,
    const v1::DeleteJobRequest* request, v1::DeleteJobResponse* response) {
  return Unimplemented(context->DefaultReactor(), "DeleteJob");
}

grpc::ServerUnaryReactor* CheckpointService::AddItems(grpc::CallbackServerContext* context,
    const v1::AddItemsRequest* request, v1::AddItemsResponse* response) {
  return Unimplemented(context->DefaultReactor(), "AddItems");
}

grpc::ServerUnaryReactor* CheckpointService::LeaseItems(grpc::CallbackServerContext* context,
    const v1::LeaseItemsRequest* request, v1::LeaseItemsResponse* response) {
  return Unimplemented(context->DefaultReactor(), "LeaseItems");
}

grpc::ServerUnaryReactor* CheckpointService::CompleteItems(grpc::CallbackServerContext* context,
    const v1::CompleteItemsRequest* request, v1::CompleteItemsResponse* response) {
  return Unimplemented(context->DefaultReactor(), "CompleteItems");
}

grpc::ServerUnaryReactor* CheckpointService::FailItems(grpc::CallbackServerContext* context,
    const v1::FailItemsRequest* request, v1::FailItemsResponse* response) {
  return Unimplemented(context->DefaultReactor(), "FailItems");
}

grpc::ServerUnaryReactor* CheckpointService::GetItem(grpc::CallbackServerContext* context,
    const v1::GetItemRequest* request, v1::GetItemResponse* response) {
  return Unimplemented(context->DefaultReactor(), "GetItem");
}

grpc::ServerUnaryReactor* CheckpointService::ListItems(grpc::CallbackServerContext* context,
    const v1::ListItemsRequest* request, v1::ListItemsResponse* response) {
  return Unimplemented(context->DefaultReactor(), "ListItems");
}

grpc::ServerUnaryReactor* CheckpointService::ResetItems(grpc::CallbackServerContext* context,
    const v1::ResetItemsRequest* request, v1::ResetItemsResponse* response) {
  return Unimplemented(context->DefaultReactor(), "ResetItems");
}

grpc::ServerUnaryReactor* CheckpointService::FindOutput(grpc::CallbackServerContext* context,
    const v1::FindOutputRequest* request, v1::FindOutputResponse* response) {
  return Unimplemented(context->DefaultReactor(), "FindOutput");
}

grpc::ServerUnaryReactor* CheckpointService::RegisterWorker(grpc::CallbackServerContext* context,
    const v1::RegisterWorkerRequest* request, v1::RegisterWorkerResponse* response) {
  return Unimplemented(context->DefaultReactor(), "RegisterWorker");
}

grpc::ServerUnaryReactor* CheckpointService::Heartbeat(grpc::CallbackServerContext* context,
    const v1::HeartbeatRequest* request, v1::HeartbeatResponse* response) {
  return Unimplemented(context->DefaultReactor(), "Heartbeat");
}

grpc::ServerUnaryReactor* CheckpointService::ListWorkers(grpc::CallbackServerContext* context,
    const v1::ListWorkersRequest* request, v1::ListWorkersResponse* response) {
  return Unimplemented(context->DefaultReactor(), "ListWorkers");
}

grpc::ServerUnaryReactor* CheckpointService::UnregisterWorker(grpc::CallbackServerContext* context,
    const v1::UnregisterWorkerRequest* request, v1::UnregisterWorkerResponse* response) {
  return Unimplemented(context->DefaultReactor(), "UnregisterWorker");
}

grpc::ServerUnaryReactor* CheckpointService::PutState(grpc::CallbackServerContext* context,
    const v1::PutStateRequest* request, v1::PutStateResponse* response) {
  return Unimplemented(context->DefaultReactor(), "PutState");
}

grpc::ServerUnaryReactor* CheckpointService::GetState(grpc::CallbackServerContext* context,
    const v1::GetStateRequest* request, v1::GetStateResponse* response) {
  return Unimplemented(context->DefaultReactor(), "GetState");
}

grpc::ServerUnaryReactor* CheckpointService::ListStates(grpc::CallbackServerContext* context,
    const v1::ListStatesRequest* request, v1::ListStatesResponse* response) {
  return Unimplemented(context->DefaultReactor(), "ListStates");
}

grpc::ServerWriteReactor<v1::WatchJobResponse>* CheckpointService::WatchJob(
    grpc::CallbackServerContext* context, const v1::WatchJobRequest* request) {
  return new UnimplementedStream;
}

}  // namespace ckpt
