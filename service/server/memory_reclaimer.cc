#include "service/server/memory_reclaimer.h"

#include <malloc.h>

namespace ckpt {

MemoryReclaimer::MemoryReclaimer(absl::Duration interval, size_t free_threshold_bytes)
    : interval_(interval),
      free_threshold_bytes_(free_threshold_bytes),
      thread_([this] { Loop(); }) {}

MemoryReclaimer::~MemoryReclaimer() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  thread_.join();
}

void MemoryReclaimer::Loop() {
  for (;;) {
    {
      absl::MutexLock lock(&mu_);
      if (mu_.AwaitWithTimeout(absl::Condition(&stopping_), interval_)) return;
    }
    // fordblks: free bytes in the main heap and the other arenas.
    if (::mallinfo2().fordblks > free_threshold_bytes_) ::malloc_trim(0);
  }
}

}  // namespace ckpt
