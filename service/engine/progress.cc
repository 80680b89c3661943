#include "service/engine/progress.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "service/common/proto_time.h"

namespace ckpt {
namespace {

constexpr double kBucketBase = 1.1;

}  // namespace

void RateMeter::Advance(int64_t second) {
  if (second <= current_second_) return;
  const int64_t gap = std::min<int64_t>(second - current_second_, kWindowSeconds);
  for (int64_t s = 1; s <= gap; ++s) {
    slots_[(current_second_ + s) % kWindowSeconds] = 0;
  }
  current_second_ = second;
}

void RateMeter::Add(absl::Time now, uint64_t count) {
  const int64_t second = absl::ToUnixSeconds(now);
  if (first_second_ < 0) {
    first_second_ = second;
    current_second_ = second;
  }
  Advance(second);
  if (second > current_second_ - kWindowSeconds) {
    slots_[second % kWindowSeconds] += count;
  }
}

double RateMeter::PerSecond(absl::Time now) const {
  if (first_second_ < 0) return 0;
  const int64_t second = absl::ToUnixSeconds(now);
  uint64_t sum = 0;
  for (int64_t s = second - kWindowSeconds + 1; s <= second; ++s) {
    if (s > current_second_ || s <= current_second_ - kWindowSeconds) continue;
    sum += slots_[((s % kWindowSeconds) + kWindowSeconds) % kWindowSeconds];
  }
  const int64_t span = std::clamp<int64_t>(second - first_second_ + 1, 1, kWindowSeconds);
  return static_cast<double>(sum) / static_cast<double>(span);
}

uint32_t WallTimeBucket(uint64_t micros) {
  if (micros == 0) return 0;
  return 1 + static_cast<uint32_t>(std::log(static_cast<double>(micros)) / std::log(kBucketBase));
}

uint64_t WallTimeBucketValue(uint32_t bucket) {
  if (bucket == 0) return 0;
  return static_cast<uint64_t>(std::llround(std::pow(kBucketBase, bucket - 0.5)));
}

uint64_t WallTimeQuantile(const storage::v1::StepCounters& counters, double q) {
  if (counters.wall_time_count() == 0) return 0;
  const std::map<uint32_t, uint64_t> ordered(counters.wall_time_buckets().begin(),
                                             counters.wall_time_buckets().end());
  const double rank = q * static_cast<double>(counters.wall_time_count());
  uint64_t seen = 0;
  for (const auto& [bucket, count] : ordered) {
    seen += count;
    if (static_cast<double>(seen) >= rank) return WallTimeBucketValue(bucket);
  }
  return WallTimeBucketValue(ordered.rbegin()->first);
}

void AddWallTime(storage::v1::StepCounters* counters, uint64_t micros) {
  counters->set_wall_time_sum_micros(counters->wall_time_sum_micros() + micros);
  counters->set_wall_time_count(counters->wall_time_count() + 1);
  (*counters->mutable_wall_time_buckets())[WallTimeBucket(micros)] += 1;
}

void AddCounters(const storage::v1::StepCounters& from, storage::v1::StepCounters* into) {
  into->set_total(into->total() + from.total());
  into->set_pending(into->pending() + from.pending());
  into->set_leased(into->leased() + from.leased());
  into->set_completed(into->completed() + from.completed());
  into->set_failed(into->failed() + from.failed());
  into->set_wall_time_sum_micros(into->wall_time_sum_micros() + from.wall_time_sum_micros());
  into->set_wall_time_count(into->wall_time_count() + from.wall_time_count());
  for (const auto& [bucket, count] : from.wall_time_buckets()) {
    (*into->mutable_wall_time_buckets())[bucket] += count;
  }
}

v1::Progress ComputeProgress(const storage::v1::StepCounters& c, double rate,
                             absl::Duration elapsed, bool finished) {
  v1::Progress p;
  p.set_total(c.total());
  p.set_pending(c.pending());
  p.set_leased(c.leased());
  p.set_completed(c.completed());
  p.set_failed(c.failed());
  p.set_remaining(c.pending() + c.leased());
  if (c.total() > 0) {
    p.set_percent(100.0 * static_cast<double>(c.completed() + c.failed()) /
                  static_cast<double>(c.total()));
  }
  *p.mutable_elapsed() = ToProtoDuration(std::max(elapsed, absl::ZeroDuration()));
  p.set_recent_rate(rate);
  if (!finished && rate > 0 && p.remaining() > 0) {
    *p.mutable_eta() = ToProtoDuration(absl::Seconds(static_cast<double>(p.remaining()) / rate));
  }
  if (c.wall_time_count() > 0) {
    *p.mutable_item_time_avg() =
        ToProtoDuration(absl::Microseconds(c.wall_time_sum_micros() / c.wall_time_count()));
    *p.mutable_item_time_p50() = ToProtoDuration(absl::Microseconds(WallTimeQuantile(c, 0.50)));
    *p.mutable_item_time_p95() = ToProtoDuration(absl::Microseconds(WallTimeQuantile(c, 0.95)));
  }
  return p;
}

}  // namespace ckpt
