// JobImporter: a job rebuilt through the public API. See job_importer.h.
#include "tools/cli/job_importer.h"

#include <algorithm>
#include <map>
#include <utility>

#include "absl/strings/str_cat.h"
#include "service/common/status_macros.h"
#include "tools/cli/format.h"

namespace ckpt {
namespace cli {
namespace {

// The error of a failed try the source counted but did not describe.
constexpr char kEarlierAttempt[] = "an attempt before the import";

bool IsPending(const v1::Item& item) {
  return item.state() == v1::ITEM_STATE_PENDING || item.state() == v1::ITEM_STATE_LEASED;
}

v1::ItemError ErrorOf(const v1::Item& item) {
  v1::ItemError error;
  error.set_message(item.last_error().message().empty() ? kEarlierAttempt
                                                        : item.last_error().message());
  return error;
}

}  // namespace

absl::StatusOr<std::unique_ptr<JobImporter>> JobImporter::Start(Client* client,
                                                                const v1::Job& job) {
  v1::CreateJobRequest request;
  request.set_job_id(job.job_id());
  request.set_display_name(job.display_name());
  request.set_config(job.config());
  request.set_fingerprint(job.fingerprint());
  *request.mutable_labels() = job.labels();
  (*request.mutable_labels())[kImportLabel] = "incomplete";
  *request.mutable_params() = job.params();
  *request.mutable_steps() = job.steps();
  if (job.has_lease_timeout()) *request.mutable_lease_timeout() = job.lease_timeout();
  request.set_max_attempts(job.max_attempts());
  if (job.has_max_run_time()) *request.mutable_max_run_time() = job.max_run_time();
  // Counted from the imported job's own finish (the source's finish_time is not kept).
  if (job.has_retention()) *request.mutable_retention() = job.retention();
  CKPT_ASSIGN_OR_RETURN(const v1::CreateJobResponse created, client->CreateJob(request));
  if (!created.created()) {
    return absl::FailedPreconditionError(
        absl::StrCat("job \"", created.job().job_id(),
                     "\" exists already; import under another id (--job ID) or delete it first"));
  }
  return std::unique_ptr<JobImporter>(
      new JobImporter(client, created.job().job_id(), created.job().max_attempts()));
}

absl::Status JobImporter::PutState(const v1::State& state) {
  v1::PutStateRequest request;
  request.set_job_id(job_id_);
  request.set_name(state.name());
  request.set_value(state.value());
  CKPT_RETURN_IF_ERROR(client_->PutState(request).status());
  ++states_;
  return absl::OkStatus();
}

absl::Status JobImporter::AddIndexRange(const std::string& step, uint64_t begin, uint64_t end) {
  if (begin >= end) return absl::OkStatus();
  v1::AddItemsRequest request;
  request.set_job_id(job_id_);
  request.set_step(step);
  v1::IndexRange* range = request.add_ranges();
  range->set_begin(begin);
  range->set_end(end);
  return client_->AddItems(request).status();
}

absl::Status JobImporter::AddItem(v1::Item item) {
  if (!batch_.empty() && (item.step() != step_ || batch_.size() >= kBatch)) {
    CKPT_RETURN_IF_ERROR(Flush());
  }
  step_ = item.step();
  batch_.push_back(std::move(item));
  ++items_;
  return absl::OkStatus();
}

absl::Status JobImporter::Flush() {
  if (batch_.empty()) return absl::OkStatus();
  CKPT_RETURN_IF_ERROR(Register());
  uint32_t rounds = 0;
  for (const v1::Item& item : batch_) rounds = std::max(rounds, FailuresBefore(item));
  for (uint32_t round = 1; round <= rounds; ++round) CKPT_RETURN_IF_ERROR(FailRound(round));
  CKPT_RETURN_IF_ERROR(CompleteBatch());
  batch_.clear();
  return absl::OkStatus();
}

absl::Status JobImporter::Register() {
  v1::AddItemsRequest request;
  request.set_job_id(job_id_);
  request.set_step(step_);
  for (const v1::Item& item : batch_) {
    if (item.key().has_index()) {
      request.add_indices(item.key().index());
    } else {
      request.add_names(item.key().name());
    }
  }
  // Keys a range registered already are duplicates here, as they should be.
  return client_->AddItems(request).status();
}

uint32_t JobImporter::FailuresBefore(const v1::Item& item) const {
  switch (item.state()) {
    case v1::ITEM_STATE_COMPLETED:
      return item.attempts();
    case v1::ITEM_STATE_FAILED:
      return std::max<uint32_t>(item.attempts(), 1);
    default:
      // A pending item out of attempts would fail at its last round: it keeps one try.
      return std::min(item.attempts(), max_attempts_ - 1);
  }
}

absl::Status JobImporter::FailRound(uint32_t round) {
  std::map<std::string, v1::FailItemsRequest> recorded;          // by worker
  std::map<std::string, std::vector<const v1::Item*>> to_retry;  // by worker
  for (const v1::Item& item : batch_) {
    if (FailuresBefore(item) < round) continue;
    if (IsPending(item)) {
      to_retry[item.worker_id()].push_back(&item);
      continue;
    }
    v1::FailItemsRequest& request = recorded[item.worker_id()];
    v1::Failure* failure = request.add_items();
    *failure->mutable_key() = item.key();
    *failure->mutable_error() = ErrorOf(item);
  }
  for (auto& [worker, request] : recorded) {
    request.set_job_id(job_id_);
    request.set_step(step_);
    request.set_worker_id(worker);
    CKPT_RETURN_IF_ERROR(client_->FailItems(request).status());
  }
  for (const auto& [worker, items] : to_retry) CKPT_RETURN_IF_ERROR(ClaimAndRetry(worker, items));
  return absl::OkStatus();
}

// A pending item's failed try: claimed, then failed retryable with the claim's token,
// which returns it to PENDING with one more attempt.
absl::Status JobImporter::ClaimAndRetry(const std::string& worker,
                                        const std::vector<const v1::Item*>& items) {
  v1::LeaseItemsRequest claim;
  claim.set_job_id(job_id_);
  claim.set_step(step_);
  std::map<std::string, const v1::Item*> by_key;
  for (const v1::Item* item : items) {
    *claim.add_keys() = item->key();
    by_key[item->key().SerializeAsString()] = item;
  }
  CKPT_ASSIGN_OR_RETURN(const v1::LeaseItemsResponse leased, client_->LeaseItems(claim));
  if (leased.leases_size() != claim.keys_size()) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot claim items of job \"", job_id_, "\" to count their attempts: ",
                     leased.message().empty() ? "the job is not running" : leased.message()));
  }
  v1::FailItemsRequest fail;
  fail.set_job_id(job_id_);
  fail.set_step(step_);
  fail.set_worker_id(worker);
  for (const v1::Lease& lease : leased.leases()) {
    v1::Failure* failure = fail.add_items();
    *failure->mutable_key() = lease.key();
    failure->set_lease_token(lease.lease_token());
    *failure->mutable_error() = ErrorOf(*by_key.at(lease.key().SerializeAsString()));
    failure->mutable_error()->set_retryable(true);
  }
  return client_->FailItems(fail).status();
}

absl::Status JobImporter::CompleteBatch() {
  std::map<std::string, v1::CompleteItemsRequest> by_worker;
  for (const v1::Item& item : batch_) {
    if (item.state() != v1::ITEM_STATE_COMPLETED) continue;
    v1::Completion* completion = by_worker[item.worker_id()].add_items();
    *completion->mutable_key() = item.key();
    *completion->mutable_result() = item.result();
  }
  for (auto& [worker, request] : by_worker) {
    request.set_job_id(job_id_);
    request.set_step(step_);
    request.set_worker_id(worker);
    CKPT_ASSIGN_OR_RETURN(const v1::CompleteItemsResponse done, client_->CompleteItems(request));
    for (int i = 0; i < done.outcomes_size(); ++i) {
      if (done.outcomes(i) != v1::COMPLETION_OUTCOME_COMPLETED) {
        return absl::InvalidArgumentError(absl::StrCat("step \"", step_, "\" item ",
                                                       KeyText(request.items(i).key()),
                                                       " appears twice in the source"));
      }
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<v1::Job> JobImporter::Finish(const v1::Job& final) {
  CKPT_RETURN_IF_ERROR(Flush());
  v1::UpdateJobRequest update;
  update.set_job_id(job_id_);
  if (!final.stage().empty()) update.set_stage(final.stage());
  update.set_seal(final.sealed());
  if (final.has_failure_budget()) *update.mutable_failure_budget() = final.failure_budget();
  update.add_remove_labels(kImportLabel);
  CKPT_RETURN_IF_ERROR(client_->UpdateJob(update).status());
  CKPT_RETURN_IF_ERROR(ApplyStatus(final));
  v1::GetJobRequest get;
  get.set_job_id(job_id_);
  CKPT_ASSIGN_OR_RETURN(const v1::GetJobResponse job, client_->GetJob(get));
  return job.job();
}

// The source's status, unless sealing (or the failure budget) has already set it.
absl::Status JobImporter::ApplyStatus(const v1::Job& final) {
  v1::GetJobRequest get;
  get.set_job_id(job_id_);
  CKPT_ASSIGN_OR_RETURN(const v1::GetJobResponse now, client_->GetJob(get));
  if (now.job().status() == final.status()) return absl::OkStatus();
  switch (final.status()) {
    case v1::JOB_STATUS_PAUSED: {
      v1::PauseJobRequest request;
      request.set_job_id(job_id_);
      request.set_reason(final.status_reason());
      return client_->PauseJob(request).status();
    }
    case v1::JOB_STATUS_STOPPED: {
      v1::StopJobRequest request;
      request.set_job_id(job_id_);
      request.set_reason(final.status_reason());
      return client_->StopJob(request).status();
    }
    case v1::JOB_STATUS_COMPLETED:
    case v1::JOB_STATUS_FAILED: {
      v1::FinishJobRequest request;
      request.set_job_id(job_id_);
      request.set_status(final.status());
      request.set_reason(final.status_reason());
      return client_->FinishJob(request).status();
    }
    default:
      return absl::OkStatus();
  }
}

}  // namespace cli
}  // namespace ckpt
