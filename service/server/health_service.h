// grpc.health.v1.Health, generated from Debian's health.proto so server reflection can
// describe it (gRPC's built-in health service is invisible to reflection).
#ifndef CKPT_SERVICE_SERVER_HEALTH_SERVICE_H_
#define CKPT_SERVICE_SERVER_HEALTH_SERVICE_H_

#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "grpc/health/v1/health.grpc.pb.h"

namespace ckpt {

// Answers for the whole server ("") and for "ckpt.v1.Checkpoint"; any other service
// name is NOT_FOUND (Check) or SERVICE_UNKNOWN (Watch). Thread-safe.
class HealthService final : public grpc::health::v1::Health::CallbackService {
 public:
  HealthService() = default;
  ~HealthService() override;

  // SERVING or NOT_SERVING. Watchers get the new status; when not serving, their
  // streams then end, so a graceful shutdown does not wait for them.
  void SetServing(bool serving);
  // Blocks until every Watch stream has ended (its last message sent), or until
  // `deadline`. Returns true if none is left.
  bool AwaitNoWatchers(absl::Time deadline);
  // While false (the store cannot be reached), NOT_SERVING whatever SetServing said.
  // Watchers get each change and their streams stay open. True until told otherwise.
  void SetStoreAvailable(bool available);

  grpc::ServerUnaryReactor* Check(grpc::CallbackServerContext* context,
                                  const grpc::health::v1::HealthCheckRequest* request,
                                  grpc::health::v1::HealthCheckResponse* response) override;
  grpc::ServerWriteReactor<grpc::health::v1::HealthCheckResponse>* Watch(
      grpc::CallbackServerContext* context,
      const grpc::health::v1::HealthCheckRequest* request) override;

 private:
  class Watcher;

  static bool Known(const std::string& service);
  grpc::health::v1::HealthCheckResponse::ServingStatus StatusLocked() const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Remove(Watcher* watcher);

  absl::Mutex mu_;
  bool serving_ ABSL_GUARDED_BY(mu_) = false;
  bool store_available_ ABSL_GUARDED_BY(mu_) = true;
  absl::flat_hash_set<Watcher*> watchers_ ABSL_GUARDED_BY(mu_);
};

}  // namespace ckpt

#endif  // CKPT_SERVICE_SERVER_HEALTH_SERVICE_H_
