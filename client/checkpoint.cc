#include "client/checkpoint.h"

#include <algorithm>
#include <iterator>
#include <utility>

#include "service/common/api_limits.h"
#include "service/common/status_macros.h"

namespace ckpt {
namespace {

// Items per ListItems page: well under the server's default --max_batch of 8192.
constexpr uint32_t kPageSize = 4096;

absl::Duration FromProto(const google::protobuf::Duration& d) {
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
}

}  // namespace

absl::StatusOr<std::unique_ptr<Checkpoint>> Checkpoint::Open(Client* client,
                                                             const v1::CreateJobRequest& job,
                                                             absl::string_view step) {
  CKPT_ASSIGN_OR_RETURN(v1::CreateJobResponse created, client->CreateJob(job));
  std::string step_name = step.empty() ? created.job().steps(0) : std::string(step);
  return std::unique_ptr<Checkpoint>(
      new Checkpoint(client, created.job().job_id(), std::move(step_name), created.resumed()));
}

absl::StatusOr<std::unique_ptr<Checkpoint>> Checkpoint::Attach(Client* client,
                                                               absl::string_view job_id,
                                                               absl::string_view step) {
  v1::GetJobRequest request;
  request.set_job_id(std::string(job_id));
  CKPT_ASSIGN_OR_RETURN(v1::GetJobResponse got, client->GetJob(request));
  std::string step_name = step.empty() ? got.job().steps(0) : std::string(step);
  return std::unique_ptr<Checkpoint>(
      new Checkpoint(client, got.job().job_id(), std::move(step_name), /*resumed=*/true));
}

absl::Status Checkpoint::AddIndices(uint64_t begin, uint64_t end, bool seal) {
  v1::AddItemsRequest request;
  request.set_job_id(job_id_);
  request.set_step(step_);
  v1::IndexRange* range = request.add_ranges();
  range->set_begin(begin);
  range->set_end(end);
  request.set_seal(seal);
  return client_->AddItems(request).status();
}

absl::Status Checkpoint::AddNames(const std::vector<std::string>& names, bool seal) {
  // Pages well under --max_batch; only the last one seals.
  size_t start = 0;
  do {
    const size_t end = std::min(names.size(), start + kPageSize);
    v1::AddItemsRequest request;
    request.set_job_id(job_id_);
    request.set_step(step_);
    for (size_t i = start; i < end; ++i) request.add_names(names[i]);
    request.set_seal(seal && end == names.size());
    CKPT_RETURN_IF_ERROR(client_->AddItems(request).status());
    start = end;
  } while (start < names.size());
  return absl::OkStatus();
}

absl::Status Checkpoint::Seal() {
  v1::UpdateJobRequest request;
  request.set_job_id(job_id_);
  request.set_seal(true);
  return client_->UpdateJob(request).status();
}

absl::StatusOr<bool> Checkpoint::IsCompleted(const v1::ItemKey& key, v1::ItemResult* result) {
  v1::GetItemRequest request;
  request.set_job_id(job_id_);
  request.set_step(step_);
  *request.mutable_key() = key;
  CKPT_ASSIGN_OR_RETURN(v1::GetItemResponse got, client_->GetItem(request));
  const bool completed = got.item().state() == v1::ITEM_STATE_COMPLETED;
  if (completed && result != nullptr) *result = std::move(*got.mutable_item()->mutable_result());
  return completed;
}

absl::Status Checkpoint::MarkInProgress(const v1::ItemKey& key) {
  v1::LeaseItemsRequest request;
  request.set_job_id(job_id_);
  request.set_step(step_);
  *request.add_keys() = key;
  CKPT_ASSIGN_OR_RETURN(v1::LeaseItemsResponse leased, client_->LeaseItems(request));
  if (leased.leases().empty()) {
    // The job is not RUNNING: the server says why in `message`.
    return absl::FailedPreconditionError(leased.message());
  }
  return absl::OkStatus();
}

absl::Status Checkpoint::MarkCompleted(const v1::ItemKey& key, const v1::ItemResult& result,
                                       absl::string_view worker_id) {
  v1::CompleteItemsRequest request;
  request.set_job_id(job_id_);
  request.set_step(step_);
  request.set_worker_id(std::string(worker_id));
  v1::Completion* completion = request.add_items();
  *completion->mutable_key() = key;
  *completion->mutable_result() = result;
  return client_->CompleteItems(request).status();
}

absl::Status Checkpoint::MarkFailed(const v1::ItemKey& key, absl::string_view error,
                                    absl::string_view worker_id) {
  v1::FailItemsRequest request;
  request.set_job_id(job_id_);
  request.set_step(step_);
  request.set_worker_id(std::string(worker_id));
  v1::Failure* failure = request.add_items();
  *failure->mutable_key() = key;
  failure->mutable_error()->set_message(std::string(error));
  return client_->FailItems(request).status();
}

absl::Status Checkpoint::Log(const v1::ItemKey& key, v1::LogLevel level, absl::string_view message,
                             absl::string_view worker_id) {
  v1::WriteLogsRequest request;
  request.set_job_id(job_id_);
  request.set_worker_id(std::string(worker_id));
  v1::ItemLogs* item = request.add_items();
  item->set_step(step_);
  *item->mutable_key() = key;
  v1::LogEntry* entry = item->add_entries();
  const int64_t nanos = absl::ToUnixNanos(client_->clock()->Now());
  entry->mutable_time()->set_seconds(nanos / 1'000'000'000);
  entry->mutable_time()->set_nanos(static_cast<int32_t>(nanos % 1'000'000'000));
  entry->set_level(level);
  std::string text = message.empty() ? std::string("-") : std::string(message);
  if (text.size() > kDefaultMaxLogMessageBytes) {
    size_t end = kDefaultMaxLogMessageBytes;
    while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) --end;
    text.resize(end);
  }
  entry->set_message(std::move(text));
  return client_->WriteLogs(request).status();
}

absl::StatusOr<std::vector<v1::Item>> Checkpoint::ListAll(v1::ItemState state, bool keys_only) {
  std::vector<v1::Item> items;
  v1::ListItemsRequest request;
  request.set_job_id(job_id_);
  request.set_step(step_);
  request.set_state(state);
  request.set_limit(kPageSize);
  request.set_keys_only(keys_only);
  do {
    CKPT_ASSIGN_OR_RETURN(v1::ListItemsResponse page, client_->ListItems(request));
    std::move(page.mutable_items()->begin(), page.mutable_items()->end(),
              std::back_inserter(items));
    request.set_page_token(page.next_page_token());
  } while (!request.page_token().empty());
  return items;
}

absl::StatusOr<std::vector<uint64_t>> Checkpoint::IndicesIn(v1::ItemState state) {
  CKPT_ASSIGN_OR_RETURN(std::vector<v1::Item> items, ListAll(state, /*keys_only=*/true));
  std::vector<uint64_t> indices;
  for (const v1::Item& item : items) {
    if (item.key().has_index()) indices.push_back(item.key().index());
  }
  return indices;
}

absl::StatusOr<std::vector<uint64_t>> Checkpoint::CompletedIndices() {
  return IndicesIn(v1::ITEM_STATE_COMPLETED);
}

absl::StatusOr<std::map<uint64_t, std::string>> Checkpoint::FailedIndices() {
  CKPT_ASSIGN_OR_RETURN(std::vector<v1::Item> items,
                        ListAll(v1::ITEM_STATE_FAILED, /*keys_only=*/false));
  std::map<uint64_t, std::string> failed;
  for (const v1::Item& item : items) {
    if (item.key().has_index()) failed[item.key().index()] = item.last_error().message();
  }
  return failed;
}

absl::StatusOr<std::vector<uint64_t>> Checkpoint::RemainingIndices() {
  CKPT_ASSIGN_OR_RETURN(std::vector<uint64_t> pending, IndicesIn(v1::ITEM_STATE_PENDING));
  CKPT_ASSIGN_OR_RETURN(std::vector<uint64_t> leased, IndicesIn(v1::ITEM_STATE_LEASED));
  std::vector<uint64_t> remaining;
  remaining.reserve(pending.size() + leased.size());
  std::merge(pending.begin(), pending.end(), leased.begin(), leased.end(),
             std::back_inserter(remaining));
  return remaining;
}

absl::StatusOr<std::vector<v1::Item>> Checkpoint::ListCompleted(v1::ListItemsRequest request,
                                                                size_t max_items) {
  request.set_job_id(job_id_);
  request.set_step(step_);
  std::vector<v1::Item> items;
  while (items.size() < max_items) {
    request.set_limit(static_cast<uint32_t>(std::min<size_t>(kPageSize, max_items - items.size())));
    CKPT_ASSIGN_OR_RETURN(v1::ListItemsResponse page, client_->ListItems(request));
    std::move(page.mutable_items()->begin(), page.mutable_items()->end(),
              std::back_inserter(items));
    if (page.next_page_token().empty()) break;
    request.set_page_token(page.next_page_token());
  }
  return items;
}

absl::StatusOr<std::vector<v1::Item>> Checkpoint::CompletedSince(absl::Time after,
                                                                 size_t max_items) {
  v1::ListItemsRequest request;
  request.set_order(v1::ITEM_ORDER_COMPLETED_OLDEST_FIRST);
  const int64_t nanos = absl::ToUnixNanos(after);
  request.mutable_completed_after()->set_seconds(nanos / 1000000000);
  request.mutable_completed_after()->set_nanos(static_cast<int32_t>(nanos % 1000000000));
  return ListCompleted(std::move(request), max_items);
}

absl::StatusOr<std::vector<v1::Item>> Checkpoint::LatestCompleted(size_t n) {
  v1::ListItemsRequest request;
  request.set_order(v1::ITEM_ORDER_COMPLETED_NEWEST_FIRST);
  return ListCompleted(std::move(request), n);
}

absl::StatusOr<JobSummary> Checkpoint::Summary() {
  v1::GetJobRequest get;
  get.set_job_id(job_id_);
  CKPT_ASSIGN_OR_RETURN(v1::GetJobResponse got, client_->GetJob(get));
  v1::ListItemsRequest list;
  list.set_job_id(job_id_);
  list.set_step(step_);
  list.set_state(v1::ITEM_STATE_FAILED);
  list.set_limit(1);
  list.set_keys_only(true);
  list.set_error_groups(10);
  CKPT_ASSIGN_OR_RETURN(v1::ListItemsResponse groups, client_->ListItems(list));

  const v1::Progress& progress = got.job().progress();
  JobSummary summary;
  summary.status = got.job().status();
  summary.total = progress.total();
  summary.completed = progress.completed();
  summary.failed = progress.failed();
  summary.remaining = progress.remaining();
  summary.percent = progress.percent();
  summary.errors.assign(groups.error_groups().begin(), groups.error_groups().end());
  summary.avg_time = FromProto(progress.item_time_avg());
  summary.elapsed = FromProto(progress.elapsed());
  summary.rate = progress.recent_rate();
  summary.workers = progress.active_workers();
  return summary;
}

absl::Status Checkpoint::Reset() {
  v1::ResetJobRequest request;
  request.set_job_id(job_id_);
  return client_->ResetJob(request).status();
}

absl::Status Checkpoint::Resume() {
  v1::ResumeJobRequest request;
  request.set_job_id(job_id_);
  return client_->ResumeJob(request).status();
}

absl::Status Checkpoint::SetFailureBudget(const v1::FailureBudget& budget) {
  v1::UpdateJobRequest request;
  request.set_job_id(job_id_);
  *request.mutable_failure_budget() = budget;
  return client_->UpdateJob(request).status();
}

absl::Status Checkpoint::ResetIndex(uint64_t index) {
  v1::ResetItemsRequest request;
  request.set_job_id(job_id_);
  request.set_step(step_);
  *request.add_keys() = IndexKey(index);
  return client_->ResetItems(request).status();
}

absl::StatusOr<std::vector<v1::Worker>> Checkpoint::ActiveWorkers() {
  v1::ListWorkersRequest request;
  request.set_job_id(job_id_);
  CKPT_ASSIGN_OR_RETURN(v1::ListWorkersResponse listed, client_->ListWorkers(request));
  std::vector<v1::Worker> active;
  for (const v1::Worker& worker : listed.workers()) {
    if (worker.state() == v1::WORKER_STATE_ACTIVE) active.push_back(worker);
  }
  return active;
}

}  // namespace ckpt
