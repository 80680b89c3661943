// Gives memory that ckptd freed back to the system. glibc keeps freed heap memory for
// reuse; after a burst (e.g. an HTTP/2 flood, whose calls gRPC frees only once it has
// processed them all) a process would keep gigabytes it no longer uses. Every
// `interval`, if the heap holds more than `free_threshold_bytes` free, this calls
// malloc_trim(0), which returns every free page.
#ifndef CKPT_SERVICE_SERVER_MEMORY_RECLAIMER_H_
#define CKPT_SERVICE_SERVER_MEMORY_RECLAIMER_H_

#include <cstddef>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace ckpt {

// Thread-safe.
class MemoryReclaimer {
 public:
  MemoryReclaimer(absl::Duration interval, size_t free_threshold_bytes);
  ~MemoryReclaimer();  // stops the thread
  MemoryReclaimer(const MemoryReclaimer&) = delete;
  MemoryReclaimer& operator=(const MemoryReclaimer&) = delete;

 private:
  void Loop();

  const absl::Duration interval_;
  const size_t free_threshold_bytes_;
  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace ckpt

#endif  // CKPT_SERVICE_SERVER_MEMORY_RECLAIMER_H_
