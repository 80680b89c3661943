// Time for everything below main(): libraries take a Clock* so tests move time by hand.
#ifndef CKPT_SERVICE_COMMON_CLOCK_H_
#define CKPT_SERVICE_COMMON_CLOCK_H_

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace ckpt {

// Thread-safe.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual absl::Time Now() const = 0;
  // Waits `d` of this clock's time: really sleeps on the real clock; on a fake one,
  // moves time forward at once.
  virtual void SleepFor(absl::Duration d) = 0;

  // The process-wide real clock. Never destroyed.
  static Clock* Real();
};

// A clock that moves only when told. Thread-safe.
class FakeClock : public Clock {
 public:
  explicit FakeClock(absl::Time start = absl::FromUnixSeconds(1'700'000'000)) : now_(start) {}

  absl::Time Now() const override;
  void SleepFor(absl::Duration d) override { Advance(d); }
  void Advance(absl::Duration d);
  void Set(absl::Time t);

 private:
  mutable absl::Mutex mu_;
  absl::Time now_ ABSL_GUARDED_BY(mu_);
};

}  // namespace ckpt

#endif  // CKPT_SERVICE_COMMON_CLOCK_H_
