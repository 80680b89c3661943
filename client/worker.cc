#include "client/worker.h"

#include <unistd.h>

#include <exception>
#include <iterator>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "service/common/api_limits.h"
#include "service/common/clock.h"
#include "service/common/status_macros.h"

namespace ckpt {
namespace {

std::string Hostname() {
  char name[256] = {};
  if (gethostname(name, sizeof(name) - 1) != 0) return "";
  return name;
}

// A message the server accepts as ItemError.message: not empty, cut to the limit on a
// UTF-8 character boundary.
std::string ErrorMessage(const absl::Status& status) {
  std::string message(status.message());
  if (message.empty()) {
    message = absl::StrCat("the handler failed with ", absl::StatusCodeToString(status.code()),
                           " and no message");
  }
  if (message.size() > kMaxErrorMessageBytes) {
    size_t end = kMaxErrorMessageBytes;
    while (end > 0 && (static_cast<unsigned char>(message[end]) & 0xC0) == 0x80) --end;
    message.resize(end);
  }
  return message;
}

// Entries an item keeps waiting to be sent (ckptd keeps 1000 per item by default).
constexpr size_t kMaxWaitingLogs = 1000;

// `text` cut to `max` bytes on a UTF-8 character boundary.
std::string CutUtf8(absl::string_view text, size_t max) {
  if (text.size() <= max) return std::string(text);
  size_t end = max;
  while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) --end;
  return std::string(text.substr(0, end));
}

// Runs the handler, turning exceptions into errors carrying their message.
absl::Status CallHandler(const ItemHandler& handler, WorkItem& item) {
  try {
    return handler(item);
  } catch (const std::exception& e) {
    return absl::UnknownError(e.what());
  } catch (...) {
    return absl::UnknownError("the handler threw something that is not a std::exception");
  }
}

}  // namespace

void WorkItem::SaveCursor(std::string cursor) {
  absl::MutexLock lock(&worker_->mu_);
  auto it = worker_->held_.find(lease_.lease_token());
  if (it == worker_->held_.end()) return;
  it->second.cursor = std::move(cursor);
  it->second.cursor_unsent = true;
}

void WorkItem::Log(v1::LogLevel level, absl::string_view message, absl::string_view logger) {
  v1::LogEntry entry;
  const int64_t nanos = absl::ToUnixNanos(worker_->client_->clock()->Now());
  entry.mutable_time()->set_seconds(nanos / 1'000'000'000);
  entry.mutable_time()->set_nanos(static_cast<int32_t>(nanos % 1'000'000'000));
  entry.set_level(level);
  entry.set_logger(CutUtf8(logger, kMaxLoggerBytes));
  entry.set_message(message.empty() ? "-" : CutUtf8(message, kDefaultMaxLogMessageBytes));
  absl::MutexLock lock(&worker_->mu_);
  auto it = worker_->held_.find(lease_.lease_token());
  if (it == worker_->held_.end()) return;
  std::vector<v1::LogEntry>& logs = it->second.logs;
  if (logs.size() >= kMaxWaitingLogs) logs.erase(logs.begin());
  logs.push_back(std::move(entry));
}

bool WorkItem::lease_lost() const {
  absl::MutexLock lock(&worker_->mu_);
  auto it = worker_->held_.find(lease_.lease_token());
  return it == worker_->held_.end() || it->second.lost;
}

absl::StatusOr<std::unique_ptr<Worker>> Worker::Register(Client* client, WorkerOptions options) {
  std::unique_ptr<Worker> worker(new Worker(client, std::move(options)));
  CKPT_RETURN_IF_ERROR(worker->RegisterWithServer());
  worker->heartbeat_thread_ = std::thread([w = worker.get()] { w->HeartbeatLoop(); });
  return worker;
}

Worker::Worker(Client* client, WorkerOptions options)
    : client_(client), options_(std::move(options)) {}

Worker::~Worker() {
  {
    absl::MutexLock lock(&mu_);
    shutting_down_ = true;
  }
  if (heartbeat_thread_.joinable()) heartbeat_thread_.join();
  UnregisterFromServer(options_.unregister_retry_for).IgnoreError();
}

absl::Status Worker::UnregisterFromServer(absl::Duration retry_for) {
  v1::UnregisterWorkerRequest request;
  request.set_job_id(options_.job_id);
  request.set_worker_id(worker_id());
  return client_->UnregisterWorker(request, retry_for).status();
}

absl::Status Worker::RegisterWithServer() {
  v1::RegisterWorkerRequest request;
  request.set_job_id(options_.job_id);
  request.set_hostname(Hostname());
  request.set_pid(static_cast<uint32_t>(getpid()));
  request.set_invocation_id(options_.invocation_id);
  request.mutable_labels()->insert(options_.labels.begin(), options_.labels.end());
  CKPT_ASSIGN_OR_RETURN(v1::RegisterWorkerResponse response, client_->RegisterWorker(request));
  absl::MutexLock lock(&mu_);
  worker_id_ = response.worker_id();
  heartbeat_interval_ = options_.heartbeat_interval > absl::ZeroDuration()
                            ? options_.heartbeat_interval
                            : absl::Seconds(response.heartbeat_interval().seconds()) +
                                  absl::Nanoseconds(response.heartbeat_interval().nanos());
  if (heartbeat_interval_ <= absl::ZeroDuration()) heartbeat_interval_ = absl::Seconds(1);
  ++stats_.registrations;
  return absl::OkStatus();
}

std::string Worker::worker_id() const {
  absl::MutexLock lock(&mu_);
  return worker_id_;
}

v1::ControlWord Worker::control() const {
  absl::MutexLock lock(&mu_);
  return control_;
}

WorkerStats Worker::stats() const {
  absl::MutexLock lock(&mu_);
  return stats_;
}

bool Worker::AwaitStats(const std::function<bool(const WorkerStats&)>& condition,
                        absl::Duration timeout) const {
  absl::MutexLock lock(&mu_);
  auto holds = [this, &condition]()
                   ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return condition(stats_); };
  return mu_.AwaitWithTimeout(absl::Condition(&holds), timeout);
}

void Worker::Stop() {
  absl::MutexLock lock(&mu_);
  stop_requested_ = true;
}

void Worker::SetControl(v1::ControlWord control) {
  if (control == v1::CONTROL_WORD_UNSPECIFIED || control == control_) return;
  control_ = control;
  if (options_.on_control) options_.on_control(control);
}

// ---- Heartbeats ----

void Worker::HeartbeatLoop() {
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      mu_.AwaitWithTimeout(absl::Condition(&shutting_down_), heartbeat_interval_);
      if (shutting_down_) return;
    }
    const absl::Status status = HeartbeatOnce();
    if (absl::IsFailedPrecondition(status)) {
      // Declared lost (or unregistered): a new id; our tokens stay valid until expiry.
      const absl::Status registered = RegisterWithServer();
      if (absl::IsNotFound(registered)) {
        absl::MutexLock lock(&mu_);
        fatal_ = registered;
      }
    } else if (absl::IsNotFound(status)) {
      absl::MutexLock lock(&mu_);
      fatal_ = status;  // the job was deleted
    }
    // Anything else (ckptd away past the retry policy): try again at the next beat.
  }
}

absl::Status Worker::HeartbeatOnce() {
  v1::HeartbeatRequest request;
  absl::flat_hash_map<uint64_t, std::string> sent_cursors;
  {
    absl::MutexLock lock(&mu_);
    request.set_job_id(options_.job_id);
    request.set_worker_id(worker_id_);
    for (auto& [token, held] : held_) {
      if (held.lost) continue;
      v1::HeldLease* lease = request.add_leases();
      lease->set_step(held.step);
      *lease->mutable_key() = held.key;
      lease->set_lease_token(token);
      if (held.cursor_unsent) {
        lease->set_cursor(held.cursor);
        sent_cursors[token] = held.cursor;
      }
      for (v1::LogEntry& entry : held.logs) *lease->add_logs() = std::move(entry);
      held.logs.clear();
    }
  }
  absl::Duration retry_for;
  {
    absl::MutexLock lock(&mu_);
    retry_for = heartbeat_interval_;
  }
  absl::StatusOr<v1::HeartbeatResponse> answered = client_->Heartbeat(request, retry_for);
  absl::MutexLock lock(&mu_);
  if (!answered.ok()) {
    // The entries wait for the next heartbeat (or the completion), in front of newer ones.
    for (v1::HeldLease& lease : *request.mutable_leases()) {
      auto it = held_.find(lease.lease_token());
      if (it == held_.end() || lease.logs().empty()) continue;
      std::vector<v1::LogEntry> logs(std::make_move_iterator(lease.mutable_logs()->begin()),
                                     std::make_move_iterator(lease.mutable_logs()->end()));
      for (v1::LogEntry& newer : it->second.logs) logs.push_back(std::move(newer));
      it->second.logs = std::move(logs);
    }
    return answered.status();
  }
  const v1::HeartbeatResponse& response = *answered;
  ++stats_.heartbeats;
  for (const v1::LostLease& lost : response.lost()) {
    auto it = held_.find(lost.lease_token());
    if (it != held_.end()) it->second.lost = true;
  }
  for (const auto& [token, cursor] : sent_cursors) {
    auto it = held_.find(token);
    if (it != held_.end() && it->second.cursor == cursor) it->second.cursor_unsent = false;
  }
  SetControl(response.control());
  return absl::OkStatus();
}

// ---- Run ----

bool Worker::ShouldReturn() const {
  absl::MutexLock lock(&mu_);
  return stop_requested_ || control_ == v1::CONTROL_WORD_STOP || !fatal_.ok();
}

void Worker::Wait(absl::Duration timeout, bool until_not_paused) {
  absl::MutexLock lock(&mu_);
  auto done = [this, until_not_paused]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return stop_requested_ || control_ == v1::CONTROL_WORD_STOP || !fatal_.ok() ||
           (until_not_paused && control_ != v1::CONTROL_WORD_PAUSE);
  };
  mu_.AwaitWithTimeout(absl::Condition(&done), timeout);
}

absl::Status Worker::WaitWhilePaused() {
  while (control() == v1::CONTROL_WORD_PAUSE && !ShouldReturn()) {
    CKPT_RETURN_IF_ERROR(FlushCompletions());
    Wait(options_.idle_wait, /*until_not_paused=*/true);
    // Ask rather than wait for the next beat (up to a third of the lease timeout) to
    // learn of a resume. Errors are the heartbeat thread's to handle.
    if (control() == v1::CONTROL_WORD_PAUSE) HeartbeatOnce().IgnoreError();
  }
  return absl::OkStatus();
}

absl::Status Worker::Run(const ItemHandler& handler) {
  std::optional<v1::LeaseItemsResponse> next;  // leased with the last batch's completions
  while (!ShouldReturn()) {
    CKPT_RETURN_IF_ERROR(WaitWhilePaused());
    if (ShouldReturn()) break;
    v1::LeaseItemsResponse leased;
    if (next.has_value()) {
      leased = std::move(*next);
      next.reset();
    } else {
      CKPT_ASSIGN_OR_RETURN(leased, Lease());
    }
    int processed = 0;
    for (const v1::Lease& lease : leased.leases()) {
      CKPT_RETURN_IF_ERROR(WaitWhilePaused());
      if (ShouldReturn()) break;
      Process(handler, lease);
      // The batch's last completions wait for the end of the batch: they carry the next
      // lease (WantsNext).
      if (++processed == leased.leases_size()) break;
      if (pending_completions_.size() >= options_.max_pending_completions ||
          client_->clock()->Now() - oldest_pending_ >= options_.max_completion_delay) {
        CKPT_RETURN_IF_ERROR(FlushCompletions());
      }
    }
    if (WantsNext(leased, processed)) {
      CKPT_ASSIGN_OR_RETURN(next, FlushAndLease());
      continue;
    }
    CKPT_RETURN_IF_ERROR(FlushCompletions());
    switch (leased.shortfall()) {
      case v1::LEASE_SHORTFALL_JOB_STOPPED:
      case v1::LEASE_SHORTFALL_JOB_FINISHED:
      case v1::LEASE_SHORTFALL_STEP_DRAINED:
        return absl::OkStatus();
      case v1::LEASE_SHORTFALL_NONE_PENDING:
        if (leased.leases().empty()) Wait(options_.idle_wait, /*until_not_paused=*/false);
        break;
      default:
        break;
    }
  }
  CKPT_RETURN_IF_ERROR(FlushCompletions());
  absl::MutexLock lock(&mu_);
  return fatal_;
}

bool Worker::WantsNext(const v1::LeaseItemsResponse& leased, int processed) const {
  const bool more = leased.shortfall() == v1::LEASE_SHORTFALL_UNSPECIFIED ||
                    leased.shortfall() == v1::LEASE_SHORTFALL_NONE_PENDING;
  return more && processed > 0 && processed == leased.leases_size() && !ShouldReturn() &&
         control() == v1::CONTROL_WORD_RUN;
}

absl::StatusOr<v1::LeaseItemsResponse> Worker::Lease() {
  v1::LeaseItemsRequest request;
  request.set_job_id(options_.job_id);
  request.set_step(options_.step);
  request.set_max_items(options_.lease_batch);
  request.set_worker_id(worker_id());
  request.set_packed(true);
  absl::StatusOr<v1::LeaseItemsResponse> leased = client_->LeaseItems(request);
  if (absl::IsFailedPrecondition(leased.status())) {
    // This worker was declared lost or unregistered: register again, once.
    CKPT_RETURN_IF_ERROR(RegisterWithServer());
    request.set_worker_id(worker_id());
    leased = client_->LeaseItems(request);
  } else if (absl::IsDeadlineExceeded(leased.status()) || absl::IsUnavailable(leased.status())) {
    // The answer was lost, perhaps after ckptd granted leases this worker never saw.
    // Nothing else is held now (completions are sent before leasing), so unregistering
    // returns exactly those to PENDING, without counting an attempt, instead of leaving
    // them to expire one lease timeout later as failed attempts. Then register again.
    {
      absl::MutexLock lock(&mu_);
      ++stats_.lost_lease_answers;
    }
    CKPT_RETURN_IF_ERROR(UnregisterFromServer());
    CKPT_RETURN_IF_ERROR(RegisterWithServer());
    request.set_worker_id(worker_id());
    leased = client_->LeaseItems(request);
  }
  if (!leased.ok()) return leased.status();
  UnpackLeaseRuns(&*leased);
  Hold(*leased);
  return leased;
}

void Worker::Hold(const v1::LeaseItemsResponse& leased) {
  absl::MutexLock lock(&mu_);
  for (const v1::Lease& lease : leased.leases()) {
    held_[lease.lease_token()] = Held{lease.key(), lease.step(), lease.cursor()};
  }
  SetControl(leased.control());
}

absl::StatusOr<v1::LeaseItemsResponse> Worker::FlushAndLease() {
  if (pending_completions_.empty()) return Lease();  // the batch's items all failed
  std::vector<v1::Completion> completions;
  completions.swap(pending_completions_);
  v1::CompleteItemsRequest request = CompletionRequest(std::move(completions));
  request.mutable_lease_next()->set_max_items(options_.lease_batch);
  request.mutable_lease_next()->set_packed(true);
  // A repeat after a lost answer is answered the same leases (docs/api.md), so the
  // client's retries are safe here too.
  absl::StatusOr<v1::CompleteItemsResponse> response = client_->CompleteItems(request);
  if (response.ok()) {
    absl::MutexLock lock(&mu_);
    Completed(request, *response);
  }
  if (response.ok() && response->has_leased()) {
    {
      absl::MutexLock lock(&mu_);
      ++stats_.leased_with_completions;
    }
    UnpackLeaseRuns(response->mutable_leased());
    Hold(response->leased());
    return std::move(*response->mutable_leased());
  }
  if (!response.ok()) {
    const absl::Status& refused = response.status();
    if (!absl::IsInvalidArgument(refused) && !absl::IsFailedPrecondition(refused) &&
        !absl::IsNotFound(refused)) {
      absl::MutexLock lock(&mu_);  // unrecorded, as in FlushCompletions
      for (const v1::Completion& completion : request.items()) {
        held_.erase(completion.lease_token());
      }
      return refused;
    }
    // Refused whole, nothing applied (a bad result, a worker declared lost): the
    // completions go alone, as ever, and Lease() registers again if it must.
    pending_completions_.assign(std::make_move_iterator(request.mutable_items()->begin()),
                                std::make_move_iterator(request.mutable_items()->end()));
    CKPT_RETURN_IF_ERROR(FlushCompletions());
  }
  {
    absl::MutexLock lock(&mu_);
    ++stats_.lease_next_fallbacks;
  }
  return Lease();
}

void Worker::Process(const ItemHandler& handler, const v1::Lease& lease) {
  WorkItem item(this, lease);
  const absl::Time start = client_->clock()->Now();
  const absl::Status status = CallHandler(handler, item);
  const absl::Duration wall_time = client_->clock()->Now() - start;
  if (item.lease_lost()) {
    absl::MutexLock lock(&mu_);
    ++stats_.lease_lost;
    held_.erase(lease.lease_token());
    return;
  }
  if (!status.ok()) {
    const absl::Status failed = Fail(lease.key(), lease.lease_token(), status);
    if (!failed.ok()) {
      absl::MutexLock lock(&mu_);
      fatal_ = failed;
    }
    return;
  }
  v1::ItemMetrics* metrics = item.result().mutable_metrics();
  if (!metrics->has_wall_time()) {
    const int64_t nanos = absl::ToInt64Nanoseconds(wall_time);
    metrics->mutable_wall_time()->set_seconds(nanos / 1'000'000'000);
    metrics->mutable_wall_time()->set_nanos(static_cast<int32_t>(nanos % 1'000'000'000));
  }
  if (pending_completions_.empty()) oldest_pending_ = client_->clock()->Now();
  v1::Completion& completion = pending_completions_.emplace_back();
  *completion.mutable_key() = lease.key();
  completion.set_lease_token(lease.lease_token());
  *completion.mutable_result() = std::move(item.result());
  absl::MutexLock lock(&mu_);
  for (v1::LogEntry& entry : TakeLogs(lease.lease_token())) {
    *completion.add_logs() = std::move(entry);
  }
}

std::vector<v1::LogEntry> Worker::TakeLogs(uint64_t token) {
  auto it = held_.find(token);
  if (it == held_.end()) return {};
  std::vector<v1::LogEntry> logs;
  logs.swap(it->second.logs);
  return logs;
}

absl::Status Worker::Fail(const v1::ItemKey& key, uint64_t token, const absl::Status& why) {
  v1::FailItemsRequest request;
  request.set_job_id(options_.job_id);
  request.set_step(options_.step);
  request.set_worker_id(worker_id());
  v1::Failure* failure = request.add_items();
  *failure->mutable_key() = key;
  failure->set_lease_token(token);
  failure->mutable_error()->set_message(ErrorMessage(why));
  failure->mutable_error()->set_retryable(!absl::IsInvalidArgument(why));
  {
    absl::MutexLock lock(&mu_);
    for (v1::LogEntry& entry : TakeLogs(token)) *failure->add_logs() = std::move(entry);
  }
  const absl::Status status = client_->FailItems(request).status();
  absl::MutexLock lock(&mu_);
  held_.erase(token);
  if (status.ok()) {
    ++stats_.failed;
  } else if (absl::IsFailedPrecondition(status)) {
    ++stats_.lease_lost;  // someone else holds it now: drop it
  } else {
    return status;
  }
  return absl::OkStatus();
}

v1::CompleteItemsRequest Worker::CompletionRequest(std::vector<v1::Completion> completions) const {
  v1::CompleteItemsRequest request;
  request.set_job_id(options_.job_id);
  request.set_step(options_.step);
  request.set_worker_id(worker_id());
  request.set_skip_lost_leases(true);
  for (v1::Completion& completion : completions) *request.add_items() = std::move(completion);
  return request;
}

void Worker::Completed(const v1::CompleteItemsRequest& request,
                       const v1::CompleteItemsResponse& answer) {
  for (int i = 0; i < request.items_size(); ++i) {
    held_.erase(request.items(i).lease_token());
    if (answer.outcomes(i) == v1::COMPLETION_OUTCOME_LEASE_LOST) {
      ++stats_.lease_lost;
    } else {
      ++stats_.completed;
    }
  }
}

absl::Status Worker::FlushCompletions() {
  if (pending_completions_.empty()) return absl::OkStatus();
  std::vector<v1::Completion> completions;
  completions.swap(pending_completions_);
  const v1::CompleteItemsRequest request = CompletionRequest(std::move(completions));
  absl::StatusOr<v1::CompleteItemsResponse> response = client_->CompleteItems(request);
  if (absl::IsInvalidArgument(response.status()) && request.items_size() > 1) {
    // One bad result refuses the whole batch: find it, record the rest.
    return CompleteOneByOne({request.items().begin(), request.items().end()});
  }
  if (absl::IsInvalidArgument(response.status())) {
    const v1::Completion& only = request.items(0);
    return Fail(only.key(), only.lease_token(),
                absl::InvalidArgumentError(
                    absl::StrCat("ckptd refused the result: ", response.status().message())));
  }
  absl::MutexLock lock(&mu_);
  if (!response.ok()) {
    // Unrecorded: the leases expire and the items go to a worker again.
    for (const v1::Completion& completion : request.items()) held_.erase(completion.lease_token());
    return response.status();
  }
  Completed(request, *response);
  return absl::OkStatus();
}

absl::Status Worker::CompleteOneByOne(std::vector<v1::Completion> completions) {
  for (v1::Completion& completion : completions) {
    pending_completions_.push_back(std::move(completion));
    CKPT_RETURN_IF_ERROR(FlushCompletions());
  }
  return absl::OkStatus();
}

}  // namespace ckpt
