// The three metric kinds ckptd exports, as lock-free values: a Counter only goes up, a
// Gauge goes anywhere, a Histogram counts observations into fixed buckets. Updating one
// is a few relaxed atomic operations and never allocates or locks, so the engine's
// writer thread and the RPC threads can record on every call.
//
// Thread-safe: every method may be called from any thread.
#ifndef CKPT_SERVICE_METRICS_METRIC_H_
#define CKPT_SERVICE_METRICS_METRIC_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

namespace ckpt {

class Counter {
 public:
  void Add(uint64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

class Gauge {
 public:
  void Set(double value) { value_.store(value, std::memory_order_relaxed); }
  void Add(double delta);
  double Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

// Counts per bucket (not cumulative), their total and the sum of observed values, as read
// at one moment.
struct HistogramSnapshot {
  std::vector<double> bounds;    // upper bounds, ascending; +Inf is implicit
  std::vector<uint64_t> counts;  // bounds.size() + 1 entries, the last for +Inf
  double sum = 0;
};

class Histogram {
 public:
  // `bounds`: the buckets' upper bounds (inclusive), strictly ascending and finite.
  explicit Histogram(std::vector<double> bounds);

  void Observe(double value);
  HistogramSnapshot Snapshot() const;
  const std::vector<double>& bounds() const { return bounds_; }

  // Bounds from `start` multiplied by `factor`, `count` of them: ExponentialBounds(1, 2, 4)
  // is {1, 2, 4, 8}.
  static std::vector<double> ExponentialBounds(double start, double factor, int count);

 private:
  const std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> counts_;  // bounds_.size() + 1
  std::atomic<double> sum_{0};
};

}  // namespace ckpt

#endif  // CKPT_SERVICE_METRICS_METRIC_H_
