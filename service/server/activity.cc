#include "service/server/activity.h"

#include <algorithm>

namespace ckpt {
namespace {

// Lives exactly as long as its call: gRPC makes it when the call arrives and destroys
// it once the call is done.
class ActivityInterceptor final : public grpc::experimental::Interceptor {
 public:
  explicit ActivityInterceptor(ActivityTracker* tracker) : tracker_(tracker) {
    tracker_->CallStarted();
  }
  ~ActivityInterceptor() override { tracker_->CallEnded(); }

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    methods->Proceed();
  }

 private:
  ActivityTracker* const tracker_;
};

class ActivityInterceptorFactory final
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit ActivityInterceptorFactory(ActivityTracker* tracker) : tracker_(tracker) {}

  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    return new ActivityInterceptor(tracker_);
  }

 private:
  ActivityTracker* const tracker_;
};

}  // namespace

ActivityTracker::ActivityTracker(Clock* clock) : clock_(clock), idle_since_(clock->Now()) {}

void ActivityTracker::CallStarted() {
  absl::MutexLock lock(&mu_);
  ++in_flight_;
  ++changes_;
}

void ActivityTracker::CallEnded() {
  absl::MutexLock lock(&mu_);
  if (--in_flight_ == 0) idle_since_ = clock_->Now();
  ++changes_;
}

absl::Duration ActivityTracker::IdleFor() const {
  absl::MutexLock lock(&mu_);
  return IdleForLocked();
}

absl::Duration ActivityTracker::IdleForLocked() const {
  if (in_flight_ > 0) return absl::ZeroDuration();
  return std::max(absl::ZeroDuration(), clock_->Now() - idle_since_);
}

bool ActivityTracker::WaitUntilIdleFor(absl::Duration idle) {
  absl::MutexLock lock(&mu_);
  while (!cancelled_) {
    const absl::Duration idle_for = IdleForLocked();
    if (in_flight_ == 0 && idle_for >= idle) return true;
    // Wake when a call starts or ends, or when the idle time would be reached.
    const uint64_t seen = changes_;
    auto changed = [this, seen]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return cancelled_ || changes_ != seen;
    };
    mu_.AwaitWithTimeout(absl::Condition(&changed),
                         in_flight_ > 0 ? absl::InfiniteDuration() : idle - idle_for);
  }
  return false;
}

void ActivityTracker::Cancel() {
  absl::MutexLock lock(&mu_);
  cancelled_ = true;
}

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
MakeActivityInterceptorFactory(ActivityTracker* tracker) {
  return std::make_unique<ActivityInterceptorFactory>(tracker);
}

}  // namespace ckpt
