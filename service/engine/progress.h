// Progress arithmetic: counters in, v1::Progress out. Pure functions and small value
// types; nothing here scans items.
#ifndef CKPT_SERVICE_ENGINE_PROGRESS_H_
#define CKPT_SERVICE_ENGINE_PROGRESS_H_

#include <array>
#include <cstdint>

#include "absl/time/time.h"
#include "ckpt/storage/v1/records.pb.h"
#include "ckpt/v1/checkpoint.pb.h"

namespace ckpt {

// Completions per second over the last minute, in one-second slots. Not thread-safe;
// copied into snapshots for readers. Not persisted: after a restart the rate starts
// again from zero.
class RateMeter {
 public:
  static constexpr int kWindowSeconds = 60;

  void Add(absl::Time now, uint64_t count);
  // Mean rate over the window, or over the time since the first Add if shorter.
  double PerSecond(absl::Time now) const;
  void Reset() { *this = RateMeter(); }

 private:
  void Advance(int64_t second);

  std::array<uint64_t, kWindowSeconds> slots_{};
  int64_t current_second_ = 0;  // unix second of slots_[current_second_ % window]
  int64_t first_second_ = -1;   // first Add, or -1
};

// Item wall times go into log buckets 10% wide, so quantiles have about 5% relative
// error and a step's summary stays a few hundred integers at most.
uint32_t WallTimeBucket(uint64_t micros);
// A representative value (the geometric middle) of a bucket, in microseconds.
uint64_t WallTimeBucketValue(uint32_t bucket);
// The q-quantile (0 < q <= 1) of the wall times in `counters`, in microseconds; 0 if
// none were recorded.
uint64_t WallTimeQuantile(const storage::v1::StepCounters& counters, double q);
// Records one completed item's wall time.
void AddWallTime(storage::v1::StepCounters* counters, uint64_t micros);

// Adds `from`'s counts and wall-time summary into `into` (job totals from steps).
void AddCounters(const storage::v1::StepCounters& from, storage::v1::StepCounters* into);

// Fills counts, percent, item times, rate and ETA. `elapsed` is since the job's
// start; `finished` leaves the ETA unset.
v1::Progress ComputeProgress(const storage::v1::StepCounters& counters, double rate,
                             absl::Duration elapsed, bool finished);

}  // namespace ckpt

#endif  // CKPT_SERVICE_ENGINE_PROGRESS_H_
