// A short history of each live job's completed count, for the dashboard's throughput
// chart, so a page opened now shows the last hour and not only what happens while it is
// open. One thread samples the engine's published jobs (Engine::JobSummaries: no item
// read, nothing waits for the writer) every `interval`, whatever the number of viewers.
//
// Bounded: `samples` per job, for at most `max_jobs` jobs. RUNNING and PAUSED jobs are
// sampled; a job that ends keeps its history until more than `max_jobs` jobs have one
// (then the one sampled longest ago goes) or it is deleted. At the defaults that is at
// most 256 x 720 samples of 16 bytes (about 3 MB). Not persisted: it starts empty.
#ifndef CKPT_SERVICE_HTTP_THROUGHPUT_HISTORY_H_
#define CKPT_SERVICE_HTTP_THROUGHPUT_HISTORY_H_

#include <cstdint>
#include <deque>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "service/engine/engine.h"

namespace ckpt {

struct ThroughputHistoryOptions {
  // Zero: no thread; the owner calls SampleOnce (tests).
  absl::Duration interval = absl::Seconds(5);
  size_t samples = 720;  // an hour at 5 s
  size_t max_jobs = 256;
};

// Thread-safe.
class ThroughputHistory {
 public:
  struct Sample {
    absl::Time time;
    uint64_t completed = 0;
  };

  // `engine` must outlive this.
  ThroughputHistory(const Engine* engine, ThroughputHistoryOptions options);
  // Stops the sampling thread.
  ~ThroughputHistory();
  ThroughputHistory(const ThroughputHistory&) = delete;
  ThroughputHistory& operator=(const ThroughputHistory&) = delete;

  // The job's samples, oldest first; empty if it has none.
  std::vector<Sample> Of(absl::string_view job_id) const;
  // Takes one sample of every live job at `now`.
  void SampleOnce(absl::Time now);

  absl::Duration interval() const { return options_.interval; }

 private:
  void Loop();

  const Engine* const engine_;
  const ThroughputHistoryOptions options_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::deque<Sample>> jobs_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace ckpt

#endif  // CKPT_SERVICE_HTTP_THROUGHPUT_HISTORY_H_
