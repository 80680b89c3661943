// The thread pool behind ckptd's HTTP listener: a fixed number of threads, each serving
// one connection at a time, and an acceptor that waits for a free thread before it
// accepts the next connection. Connections beyond the pool wait in the kernel's listen
// backlog instead of piling up in memory, so threads, memory and fds stay bounded
// whatever clients do. (cpp-httplib's own ThreadPool queues accepted connections
// without a bound.)
#ifndef CKPT_SERVICE_HTTP_BOUNDED_POOL_H_
#define CKPT_SERVICE_HTTP_BOUNDED_POOL_H_

#include <httplib.h>

#include <deque>
#include <functional>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace ckpt {

// Thread-safe. cpp-httplib calls enqueue from its acceptor thread and shutdown once, at
// the end of its accept loop.
class BoundedPool final : public httplib::TaskQueue {
 public:
  explicit BoundedPool(size_t threads);
  ~BoundedPool() override;

  // Blocks until a thread is free (or the pool is shutting down), then hands `fn` to it.
  void enqueue(std::function<void()> fn) override;
  // Runs what was handed over, then joins the threads.
  void shutdown() override;

 private:
  void Work();

  absl::Mutex mu_;
  std::deque<std::function<void()>> tasks_ ABSL_GUARDED_BY(mu_);
  size_t idle_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace ckpt

#endif  // CKPT_SERVICE_HTTP_BOUNDED_POOL_H_
