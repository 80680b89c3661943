// The writer's queue: bounded, so that no client can make ckptd hold writes without
// limit, and fair to small writes.
//
// - Admission: an op is refused RESOURCE_EXHAUSTED, and not queued, when the queue
//   already holds max_ops ops or its bytes would pass max_bytes (an op alone larger
//   than max_bytes is admitted into an empty queue, so every valid request can run).
//   The status carries a retry hint (kRetryAfterPayload, milliseconds as text) that
//   the RPC layer sends as trailing metadata and both SDKs honour: the write was not
//   applied, so retrying it is always safe.
// - Fairness: the writer takes, for each group, every small op queued (at most
//   small_op_bytes each), then large ops in arrival order while the group stays under
//   group_bytes (at least one). A one-item PutState thus waits for at most one group of
//   large batches, not for all of them. Ops from one client are never reordered: a
//   client waits for an answer before its next write, and concurrent calls have no order.
// - Closing: StopAccepting() refuses new ops UNAVAILABLE and lets the writer drain what
//   is queued; TakeAll() hands back what is still queued (to be answered UNAVAILABLE).
//
// `Op` needs a `size_t bytes` member. Thread-safe.
#ifndef CKPT_SERVICE_ENGINE_WRITE_QUEUE_H_
#define CKPT_SERVICE_ENGINE_WRITE_QUEUE_H_

#include <cstddef>
#include <deque>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace ckpt {

// The payload of a RESOURCE_EXHAUSTED that may be retried: milliseconds to wait.
inline constexpr char kRetryAfterPayload[] = "ckpt.retry_after_ms";

struct WriteQueueLimits {
  size_t max_ops = 4096;
  size_t max_bytes = size_t{32} << 20;
  size_t small_op_bytes = size_t{64} << 10;
  size_t group_bytes = size_t{1} << 20;
  // The retry hint: this much, plus retry_after_per_mib for each MiB queued (roughly
  // what the writer needs to get through it), so refused clients come back when there
  // is room instead of re-sending megabytes that are refused again.
  absl::Duration retry_after = absl::Milliseconds(100);
  absl::Duration retry_after_per_mib = absl::Milliseconds(25);
};

template <typename Op>
class WriteQueue {
 public:
  explicit WriteQueue(const WriteQueueLimits& limits) : limits_(limits) {}

  // Queues `op` (moved from only on success) or returns why not: RESOURCE_EXHAUSTED
  // with a retry hint when full, UNAVAILABLE once StopAccepting() was called.
  absl::Status Push(Op& op) {
    absl::MutexLock lock(&mu_);
    if (stopped_) {
      return absl::UnavailableError("ckptd is shutting down; retry against the new instance");
    }
    const size_t ops = small_.size() + large_.size();
    if (ops >= limits_.max_ops || (ops > 0 && bytes_ + op.bytes > limits_.max_bytes)) {
      absl::Status full = absl::ResourceExhaustedError(
          absl::StrCat("ckptd's write queue is full (", ops, " writes, ", bytes_ >> 10,
                       " KiB waiting; limits --max_queued_writes=", limits_.max_ops,
                       ", --max_queued_write_bytes=", limits_.max_bytes,
                       "): this write was not applied; retry in ",
                       absl::ToInt64Milliseconds(limits_.retry_after), " ms"));
      full.SetPayload(kRetryAfterPayload,
                      absl::Cord(absl::StrCat(absl::ToInt64Milliseconds(limits_.retry_after))));
      return full;
    }
    bytes_ += op.bytes;
    (op.bytes <= limits_.small_op_bytes ? small_ : large_).push_back(std::move(op));
    return absl::OkStatus();
  }

  // Waits up to `timeout` for an op (or a stop), then takes the next group (see the
  // header comment) into `out`. Returns false once stopped and empty: the writer ends.
  bool TakeGroup(absl::Duration timeout, std::vector<Op>* out) {
    absl::MutexLock lock(&mu_);
    auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return !small_.empty() || !large_.empty() || stopped_;
    };
    mu_.AwaitWithTimeout(absl::Condition(&ready), timeout);
    if (stopped_ && small_.empty() && large_.empty()) return false;
    out->reserve(small_.size() + 1);
    for (Op& op : small_) Take(op, out);
    small_.clear();
    size_t group = 0;
    while (!large_.empty() && (group == 0 || group + large_.front().bytes <= limits_.group_bytes)) {
      group += large_.front().bytes;
      Take(large_.front(), out);
      large_.pop_front();
    }
    return true;
  }

  size_t size() const {
    absl::MutexLock lock(&mu_);
    return small_.size() + large_.size();
  }

  // New ops are refused UNAVAILABLE from now on; queued ones stay for the writer.
  void StopAccepting() {
    absl::MutexLock lock(&mu_);
    stopped_ = true;
  }

  // Stops accepting and returns every op still queued, for the caller to answer.
  std::vector<Op> TakeAll() {
    absl::MutexLock lock(&mu_);
    stopped_ = true;
    std::vector<Op> all;
    for (Op& op : small_) all.push_back(std::move(op));
    for (Op& op : large_) all.push_back(std::move(op));
    small_.clear();
    large_.clear();
    bytes_ = 0;
    return all;
  }

 private:
  absl::Status Full(size_t ops) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    const int64_t retry_ms = absl::ToInt64Milliseconds(
        limits_.retry_after + limits_.retry_after_per_mib * static_cast<double>(bytes_ >> 20));
    absl::Status full = absl::ResourceExhaustedError(absl::StrCat(
        "ckptd's write queue is full (", ops, " writes, ", bytes_ >> 10,
        " KiB waiting; limits --max_queued_writes=", limits_.max_ops, ", --max_queued_write_bytes=",
        limits_.max_bytes, "): this write was not applied; retry in ", retry_ms, " ms"));
    full.SetPayload(kRetryAfterPayload, absl::Cord(absl::StrCat(retry_ms)));
    return full;
  }

  void Take(Op& op, std::vector<Op>* out) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    bytes_ -= op.bytes;
    out->push_back(std::move(op));
  }

  const WriteQueueLimits limits_;
  mutable absl::Mutex mu_;
  std::deque<Op> small_ ABSL_GUARDED_BY(mu_);
  std::deque<Op> large_ ABSL_GUARDED_BY(mu_);
  size_t bytes_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace ckpt

#endif  // CKPT_SERVICE_ENGINE_WRITE_QUEUE_H_
