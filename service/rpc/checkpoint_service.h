// ckpt.v1.Checkpoint over gRPC's callback API: thin handlers that validate the request,
// call the engine and convert its status once. No RPC thread waits for a disk sync:
// a write's reactor is finished by the engine's writer after the group commit.
#ifndef CKPT_SERVICE_RPC_CHECKPOINT_SERVICE_H_
#define CKPT_SERVICE_RPC_CHECKPOINT_SERVICE_H_

#include <memory>

#include "ckpt/v1/checkpoint.grpc.pb.h"
#include "service/engine/engine.h"
#include "service/rpc/arena_allocator.h"
#include "service/rpc/validate.h"
#include "service/rpc/watch_hub.h"

namespace ckpt {

// Thread-safe.
class CheckpointService final : public v1::Checkpoint::CallbackService {
 public:
  // `engine` must outlive the service.
  CheckpointService(Engine* engine, const Limits& limits);

  // Ends WatchJob streams so a graceful shutdown need not wait for them.
  void Shutdown() { watch_hub_.Shutdown(); }

  grpc::ServerUnaryReactor* CreateJob(grpc::CallbackServerContext* context,
                                      const v1::CreateJobRequest* request,
                                      v1::CreateJobResponse* response) override;
  grpc::ServerUnaryReactor* GetJob(grpc::CallbackServerContext* context,
                                   const v1::GetJobRequest* request,
                                   v1::GetJobResponse* response) override;
  grpc::ServerUnaryReactor* ListJobs(grpc::CallbackServerContext* context,
                                     const v1::ListJobsRequest* request,
                                     v1::ListJobsResponse* response) override;
  grpc::ServerUnaryReactor* UpdateJob(grpc::CallbackServerContext* context,
                                      const v1::UpdateJobRequest* request,
                                      v1::UpdateJobResponse* response) override;
  grpc::ServerUnaryReactor* PauseJob(grpc::CallbackServerContext* context,
                                     const v1::PauseJobRequest* request,
                                     v1::PauseJobResponse* response) override;
  grpc::ServerUnaryReactor* ResumeJob(grpc::CallbackServerContext* context,
                                      const v1::ResumeJobRequest* request,
                                      v1::ResumeJobResponse* response) override;
  grpc::ServerUnaryReactor* StopJob(grpc::CallbackServerContext* context,
                                    const v1::StopJobRequest* request,
                                    v1::StopJobResponse* response) override;
  grpc::ServerUnaryReactor* FinishJob(grpc::CallbackServerContext* context,
                                      const v1::FinishJobRequest* request,
                                      v1::FinishJobResponse* response) override;
  grpc::ServerUnaryReactor* ResetJob(grpc::CallbackServerContext* context,
                                     const v1::ResetJobRequest* request,
                                     v1::ResetJobResponse* response) override;
  grpc::ServerUnaryReactor* DeleteJob(grpc::CallbackServerContext* context,
                                      const v1::DeleteJobRequest* request,
                                      v1::DeleteJobResponse* response) override;
  grpc::ServerUnaryReactor* AddItems(grpc::CallbackServerContext* context,
                                     const v1::AddItemsRequest* request,
                                     v1::AddItemsResponse* response) override;
  grpc::ServerUnaryReactor* LeaseItems(grpc::CallbackServerContext* context,
                                       const v1::LeaseItemsRequest* request,
                                       v1::LeaseItemsResponse* response) override;
  grpc::ServerUnaryReactor* CompleteItems(grpc::CallbackServerContext* context,
                                          const v1::CompleteItemsRequest* request,
                                          v1::CompleteItemsResponse* response) override;
  grpc::ServerUnaryReactor* FailItems(grpc::CallbackServerContext* context,
                                      const v1::FailItemsRequest* request,
                                      v1::FailItemsResponse* response) override;
  grpc::ServerUnaryReactor* GetItem(grpc::CallbackServerContext* context,
                                    const v1::GetItemRequest* request,
                                    v1::GetItemResponse* response) override;
  grpc::ServerUnaryReactor* ListItems(grpc::CallbackServerContext* context,
                                      const v1::ListItemsRequest* request,
                                      v1::ListItemsResponse* response) override;
  grpc::ServerUnaryReactor* ResetItems(grpc::CallbackServerContext* context,
                                       const v1::ResetItemsRequest* request,
                                       v1::ResetItemsResponse* response) override;
  grpc::ServerUnaryReactor* FindOutput(grpc::CallbackServerContext* context,
                                       const v1::FindOutputRequest* request,
                                       v1::FindOutputResponse* response) override;
  grpc::ServerUnaryReactor* RegisterWorker(grpc::CallbackServerContext* context,
                                           const v1::RegisterWorkerRequest* request,
                                           v1::RegisterWorkerResponse* response) override;
  grpc::ServerUnaryReactor* Heartbeat(grpc::CallbackServerContext* context,
                                      const v1::HeartbeatRequest* request,
                                      v1::HeartbeatResponse* response) override;
  grpc::ServerUnaryReactor* ListWorkers(grpc::CallbackServerContext* context,
                                        const v1::ListWorkersRequest* request,
                                        v1::ListWorkersResponse* response) override;
  grpc::ServerUnaryReactor* UnregisterWorker(grpc::CallbackServerContext* context,
                                             const v1::UnregisterWorkerRequest* request,
                                             v1::UnregisterWorkerResponse* response) override;
  grpc::ServerUnaryReactor* PutState(grpc::CallbackServerContext* context,
                                     const v1::PutStateRequest* request,
                                     v1::PutStateResponse* response) override;
  grpc::ServerUnaryReactor* GetState(grpc::CallbackServerContext* context,
                                     const v1::GetStateRequest* request,
                                     v1::GetStateResponse* response) override;
  grpc::ServerUnaryReactor* ListStates(grpc::CallbackServerContext* context,
                                       const v1::ListStatesRequest* request,
                                       v1::ListStatesResponse* response) override;
  grpc::ServerWriteReactor<v1::WatchJobResponse>* WatchJob(
      grpc::CallbackServerContext* context, const v1::WatchJobRequest* request) override;

 private:
  template <typename Request, typename Response>
  grpc::ServerUnaryReactor* Write(grpc::CallbackServerContext* context, const Request* request,
                                  Response* response,
                                  void (Engine::*method)(const Request&, Response*, Engine::Done));
  template <typename Request, typename Response>
  grpc::ServerUnaryReactor* Read(grpc::CallbackServerContext* context, const Request* request,
                                 Response* response,
                                 absl::Status (Engine::*method)(const Request&, Response*) const);

  Engine* const engine_;
  const Limits limits_;
  WatchHub watch_hub_;
  // The calls that carry batches of items, on arenas.
  ArenaMessageAllocator<v1::AddItemsRequest, v1::AddItemsResponse> add_items_allocator_;
  ArenaMessageAllocator<v1::LeaseItemsRequest, v1::LeaseItemsResponse> lease_items_allocator_;
  ArenaMessageAllocator<v1::CompleteItemsRequest, v1::CompleteItemsResponse>
      complete_items_allocator_;
  ArenaMessageAllocator<v1::FailItemsRequest, v1::FailItemsResponse> fail_items_allocator_;
  ArenaMessageAllocator<v1::HeartbeatRequest, v1::HeartbeatResponse> heartbeat_allocator_;
};

}  // namespace ckpt

#endif  // CKPT_SERVICE_RPC_CHECKPOINT_SERVICE_H_
