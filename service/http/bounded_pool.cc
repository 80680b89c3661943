#include "service/http/bounded_pool.h"

#include <utility>

namespace ckpt {

BoundedPool::BoundedPool(size_t threads) {
  threads_.reserve(threads);
  for (size_t i = 0; i < threads; ++i) threads_.emplace_back([this] { Work(); });
}

BoundedPool::~BoundedPool() { shutdown(); }

void BoundedPool::enqueue(std::function<void()> fn) {
  absl::MutexLock lock(&mu_);
  // A task handed over but not yet picked up holds one idle thread.
  auto free_thread = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
    return idle_ > tasks_.size() || stopping_;
  };
  mu_.Await(absl::Condition(&free_thread));
  tasks_.push_back(std::move(fn));
}

void BoundedPool::shutdown() {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_ && threads_.empty()) return;
    stopping_ = true;
  }
  for (std::thread& thread : threads_) thread.join();
  threads_.clear();
}

void BoundedPool::Work() {
  for (;;) {
    std::function<void()> task;
    {
      absl::MutexLock lock(&mu_);
      ++idle_;
      auto ready = [this]()
                       ABSL_SHARED_LOCKS_REQUIRED(mu_) { return !tasks_.empty() || stopping_; };
      mu_.Await(absl::Condition(&ready));
      --idle_;
      if (tasks_.empty()) return;  // stopping, nothing left to run
      task = std::move(tasks_.front());
      tasks_.pop_front();
    }
    task();
  }
}

}  // namespace ckpt
