#include "service/server/health_service.h"

namespace ckpt {

using grpc::health::v1::HealthCheckRequest;
using grpc::health::v1::HealthCheckResponse;

// One Watch stream. Owned by gRPC until OnDone, when it unlinks and deletes itself.
// Its methods run under the service's mu_ (Notify) or on gRPC's threads; mu_ here
// guards the write state.
class HealthService::Watcher : public grpc::ServerWriteReactor<HealthCheckResponse> {
 public:
  Watcher(HealthService* service, bool known) : service_(service), known_(known) {}

  // Sends `status` (coalescing with any write in flight); ends the stream after it when
  // `last`.
  void Notify(HealthCheckResponse::ServingStatus status, bool last) {
    absl::MutexLock lock(&mu_);
    if (!known_) status = HealthCheckResponse::SERVICE_UNKNOWN;
    next_ = status;
    has_next_ = true;
    finish_after_ = finish_after_ || last;
    if (!writing_) WriteNextLocked();
  }

  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&mu_);
    writing_ = false;
    if (!ok) return FinishLocked(grpc::Status::CANCELLED);
    if (has_next_) return WriteNextLocked();
    if (finish_after_) FinishLocked(grpc::Status::OK);
  }

  void OnCancel() override {
    absl::MutexLock lock(&mu_);
    FinishLocked(grpc::Status::CANCELLED);
  }

  void OnDone() override {
    service_->Remove(this);
    delete this;
  }

 private:
  void WriteNextLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finished_) return;
    response_.set_status(next_);
    has_next_ = false;
    writing_ = true;
    StartWrite(&response_);
  }

  void FinishLocked(const grpc::Status& status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finished_) return;
    finished_ = true;
    Finish(status);
  }

  HealthService* const service_;
  const bool known_;
  absl::Mutex mu_;
  HealthCheckResponse response_ ABSL_GUARDED_BY(mu_);
  HealthCheckResponse::ServingStatus next_ ABSL_GUARDED_BY(mu_) = HealthCheckResponse::UNKNOWN;
  bool has_next_ ABSL_GUARDED_BY(mu_) = false;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finish_after_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
};

HealthService::~HealthService() {
  absl::MutexLock lock(&mu_);
  // The server is shut down before its services are destroyed, so no stream is left.
  watchers_.clear();
}

bool HealthService::Known(const std::string& service) {
  return service.empty() || service == "ckpt.v1.Checkpoint";
}

HealthCheckResponse::ServingStatus HealthService::StatusLocked() const {
  return serving_ && store_available_ ? HealthCheckResponse::SERVING
                                      : HealthCheckResponse::NOT_SERVING;
}

void HealthService::SetServing(bool serving) {
  absl::MutexLock lock(&mu_);
  serving_ = serving;
  for (Watcher* watcher : watchers_) watcher->Notify(StatusLocked(), !serving);
}

void HealthService::SetStoreAvailable(bool available) {
  absl::MutexLock lock(&mu_);
  if (store_available_ == available) return;
  store_available_ = available;
  for (Watcher* watcher : watchers_) watcher->Notify(StatusLocked(), /*last=*/false);
}

grpc::ServerUnaryReactor* HealthService::Check(grpc::CallbackServerContext* context,
                                               const HealthCheckRequest* request,
                                               HealthCheckResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (!Known(request->service())) {
    reactor->Finish(grpc::Status(grpc::StatusCode::NOT_FOUND,
                                 "unknown service \"" + request->service() + "\""));
    return reactor;
  }
  {
    absl::MutexLock lock(&mu_);
    response->set_status(StatusLocked());
  }
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerWriteReactor<HealthCheckResponse>* HealthService::Watch(
    grpc::CallbackServerContext* context, const HealthCheckRequest* request) {
  auto* watcher = new Watcher(this, Known(request->service()));
  absl::MutexLock lock(&mu_);
  watchers_.insert(watcher);
  watcher->Notify(StatusLocked(), !serving_);
  return watcher;
}

void HealthService::Remove(Watcher* watcher) {
  absl::MutexLock lock(&mu_);
  watchers_.erase(watcher);
}

bool HealthService::AwaitNoWatchers(absl::Time deadline) {
  absl::MutexLock lock(&mu_);
  auto none = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return watchers_.empty(); };
  return mu_.AwaitWithDeadline(absl::Condition(&none), deadline);
}

}  // namespace ckpt
