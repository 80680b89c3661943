// What ckptd's --idle_exit needs to know: whether anyone is using the server, and since
// when nobody has. Every call (any service) counts from its start to its end.
#ifndef CKPT_SERVICE_SERVER_ACTIVITY_H_
#define CKPT_SERVICE_SERVER_ACTIVITY_H_

#include <grpcpp/support/server_interceptor.h>

#include <cstdint>
#include <memory>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "service/common/clock.h"

namespace ckpt {

// Counts the calls in flight and remembers when the last one ended. Starts idle as of
// its construction. Thread-safe.
class ActivityTracker {
 public:
  explicit ActivityTracker(Clock* clock);
  ActivityTracker(const ActivityTracker&) = delete;
  ActivityTracker& operator=(const ActivityTracker&) = delete;

  void CallStarted();
  // REQUIRES: a matching CallStarted().
  void CallEnded();

  // How long no call has been in flight; zero while one is.
  absl::Duration IdleFor() const;

  // Blocks until IdleFor() reaches `idle` (true) or Cancel() is called (false). Between
  // checks it waits on real time, so use it with the real clock.
  bool WaitUntilIdleFor(absl::Duration idle);
  // Makes every WaitUntilIdleFor return false, now and later.
  void Cancel();

 private:
  absl::Duration IdleForLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  Clock* const clock_;
  mutable absl::Mutex mu_;
  int64_t in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t changes_ ABSL_GUARDED_BY(mu_) = 0;  // wakes waiters when a call starts or ends
  absl::Time idle_since_ ABSL_GUARDED_BY(mu_);
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
};

// A gRPC server interceptor factory whose interceptors tell `tracker` when each call
// starts (the interceptor is made) and ends (it is destroyed). `tracker` must outlive
// the server.
std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
MakeActivityInterceptorFactory(ActivityTracker* tracker);

}  // namespace ckpt

#endif  // CKPT_SERVICE_SERVER_ACTIVITY_H_
