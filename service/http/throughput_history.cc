#include "service/http/throughput_history.h"

#include <algorithm>

#include "absl/container/flat_hash_set.h"
#include "absl/time/clock.h"

namespace ckpt {

ThroughputHistory::ThroughputHistory(const Engine* engine, ThroughputHistoryOptions options)
    : engine_(engine), options_(options) {
  if (options_.interval > absl::ZeroDuration()) thread_ = std::thread([this] { Loop(); });
}

ThroughputHistory::~ThroughputHistory() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

std::vector<ThroughputHistory::Sample> ThroughputHistory::Of(absl::string_view job_id) const {
  absl::MutexLock lock(&mu_);
  auto it = jobs_.find(job_id);
  if (it == jobs_.end()) return {};
  return std::vector<Sample>(it->second.begin(), it->second.end());
}

void ThroughputHistory::SampleOnce(absl::Time now) {
  std::vector<JobSummary> jobs = engine_->JobSummaries();
  absl::flat_hash_set<std::string> present;
  for (const JobSummary& job : jobs) present.insert(job.job_id);
  // The newest max_jobs live jobs are sampled (as ckpt_job_items picks its jobs).
  auto live = std::partition(jobs.begin(), jobs.end(), [](const JobSummary& job) {
    return job.status == v1::JOB_STATUS_RUNNING || job.status == v1::JOB_STATUS_PAUSED;
  });
  jobs.erase(live, jobs.end());
  std::sort(jobs.begin(), jobs.end(), [](const JobSummary& a, const JobSummary& b) {
    return a.create_time != b.create_time ? a.create_time > b.create_time : a.job_id < b.job_id;
  });
  if (jobs.size() > options_.max_jobs) jobs.resize(options_.max_jobs);
  absl::MutexLock lock(&mu_);
  for (const JobSummary& job : jobs) {
    std::deque<Sample>& samples = jobs_[job.job_id];
    samples.push_back({now, job.counters.completed()});
    while (samples.size() > options_.samples) samples.pop_front();
  }
  absl::erase_if(jobs_, [&](const auto& entry) { return !present.contains(entry.first); });
  while (jobs_.size() > options_.max_jobs) {
    auto oldest = std::min_element(jobs_.begin(), jobs_.end(), [](const auto& a, const auto& b) {
      return a.second.back().time < b.second.back().time;
    });
    jobs_.erase(oldest);
  }
}

void ThroughputHistory::Loop() {
  for (;;) {
    {
      absl::MutexLock lock(&mu_);
      if (mu_.AwaitWithTimeout(absl::Condition(&stopping_), options_.interval)) return;
    }
    SampleOnce(absl::Now());
  }
}

}  // namespace ckpt
