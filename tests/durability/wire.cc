#include "tests/durability/wire.h"

namespace ckpt {
namespace testutil {

using Stub = v1::Checkpoint::Stub;

absl::StatusOr<std::string> RegisterWorker(Stub& stub, const std::string& job_id) {
  v1::RegisterWorkerRequest request;
  request.set_job_id(job_id);
  request.set_hostname("durability-test");
  auto response = WireCall(stub, &Stub::RegisterWorker, request);
  if (!response.ok()) return response.status();
  return response->worker_id();
}

absl::StatusOr<v1::Job> GetJob(Stub& stub, const std::string& job_id) {
  v1::GetJobRequest request;
  request.set_job_id(job_id);
  auto response = WireCall(stub, &Stub::GetJob, request);
  if (!response.ok()) return response.status();
  return response->job();
}

absl::StatusOr<v1::Item> GetItem(Stub& stub, const std::string& job_id, uint64_t index) {
  v1::GetItemRequest request;
  request.set_job_id(job_id);
  request.mutable_key()->set_index(index);
  auto response = WireCall(stub, &Stub::GetItem, request);
  if (!response.ok()) return response.status();
  return response->item();
}

absl::StatusOr<std::vector<v1::Item>> ListAll(Stub& stub, const std::string& job_id,
                                              v1::ItemState state, bool keys_only) {
  std::vector<v1::Item> items;
  v1::ListItemsRequest request;
  request.set_job_id(job_id);
  request.set_state(state);
  request.set_limit(1000);
  request.set_keys_only(keys_only);
  for (int pages = 0; pages < 1000000; ++pages) {
    auto response = WireCall(stub, &Stub::ListItems, request);
    if (!response.ok()) return response.status();
    for (const v1::Item& item : response->items()) items.push_back(item);
    if (response->next_page_token().empty()) return items;
    request.set_page_token(response->next_page_token());
  }
  return absl::InternalError("ListItems never stopped paging");
}

}  // namespace testutil
}  // namespace ckpt
