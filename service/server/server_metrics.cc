#include "service/server/server_metrics.h"

#include <algorithm>
#include <filesystem>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/strip.h"
#include "ckpt/v1/checkpoint.pb.h"
#include "service/metrics/process_metrics.h"

namespace ckpt {
namespace {

constexpr char kJobsDeleted[] = "ckpt_jobs_deleted_total";
constexpr char kJobsDeletedHelp[] =
    "Jobs deleted: by=\"retention\" by the retention sweep, by=\"request\" by DeleteJob or "
    "DeleteJobs.";

std::string StatusLabel(v1::JobStatus status) {
  return absl::AsciiStrToLower(absl::StripPrefix(v1::JobStatus_Name(status), "JOB_STATUS_"));
}

}  // namespace

ServerMetrics::ServerMetrics(ServerMetricsOptions options)
    : options_(std::move(options)),
      rpc_(&registry_),
      group_ops_(registry_.GetHistogram("ckpt_group_commit_ops",
                                        "Write ops decided together in one group commit.",
                                        Histogram::ExponentialBounds(1, 2, 11))),
      group_bytes_(registry_.GetHistogram("ckpt_group_commit_bytes",
                                          "Bytes of one group commit's write batch.",
                                          Histogram::ExponentialBounds(256, 4, 10))),
      group_sync_seconds_(registry_.GetHistogram(
          "ckpt_group_commit_sync_seconds",
          "Time to write one group commit's batch to the write-ahead log and sync it.",
          Histogram::ExponentialBounds(5e-5, 2, 16))),
      group_failures_(
          registry_.GetCounter("ckpt_group_commit_failures_total",
                               "Group commits whose write failed (every op in them was refused).")),
      items_completed_(registry_.GetCounter("ckpt_items_completed_total",
                                            "Items that became COMPLETED, over all jobs.")),
      items_failed_(registry_.GetCounter(
          "ckpt_items_failed_total",
          "Items that became FAILED (out of attempts, not retryable, or recorded failed).")),
      items_leased_(registry_.GetCounter("ckpt_items_leased_total",
                                         "Leases granted on items (worker leases and claims).")),
      jobs_expired_(registry_.GetCounter(kJobsDeleted, kJobsDeletedHelp, {{"by", "retention"}})),
      jobs_deleted_(registry_.GetCounter(kJobsDeleted, kJobsDeletedHelp, {{"by", "request"}})) {
  registry_.AddCollector([this](ExpositionWriter& writer) {
    writer.Family("ckpt_store_size_bytes", "Bytes of the store's files on disk.",
                  MetricType::kGauge);
    if (!options_.data_dir.empty()) {  // RocksDB's; a PostgreSQL store has no directory
      writer.Sample("ckpt_store_size_bytes", {}, DirectorySizeBytes(options_.data_dir));
    }
  });
  registry_.AddCollector(WriteProcessMetrics);
}

void ServerMetrics::WatchEngine(const Engine* engine) {
  registry_.AddCollector(
      [this, engine](ExpositionWriter& writer) { WriteEngineMetrics(*engine, writer); });
}

void ServerMetrics::OnGroupCommitted(const GroupCommitStats& stats) {
  group_ops_->Observe(static_cast<double>(stats.ops));
  if (stats.write_failed) group_failures_->Add();
  if (stats.batch_bytes > 0) {
    group_bytes_->Observe(static_cast<double>(stats.batch_bytes));
    group_sync_seconds_->Observe(absl::ToDoubleSeconds(stats.write_time));
  }
  if (stats.items_completed > 0) items_completed_->Add(stats.items_completed);
  if (stats.items_failed > 0) items_failed_->Add(stats.items_failed);
  if (stats.items_leased > 0) items_leased_->Add(stats.items_leased);
  if (stats.jobs_expired > 0) jobs_expired_->Add(stats.jobs_expired);
  if (stats.jobs_deleted > 0) jobs_deleted_->Add(stats.jobs_deleted);
}

void ServerMetrics::WriteEngineMetrics(const Engine& engine, ExpositionWriter& writer) const {
  writer.Family("ckpt_writer_queue_ops", "Write ops waiting for the engine's writer thread.",
                MetricType::kGauge);
  writer.Sample("ckpt_writer_queue_ops", {}, static_cast<uint64_t>(engine.QueuedOps()));

  std::vector<JobSummary> jobs = engine.JobSummaries();
  uint64_t by_status[v1::JobStatus_ARRAYSIZE] = {};
  uint64_t active_workers = 0;
  for (const JobSummary& job : jobs) {
    if (job.status >= 0 && job.status < v1::JobStatus_ARRAYSIZE) ++by_status[job.status];
    active_workers += job.active_workers;
  }
  writer.Family("ckpt_jobs", "Jobs in the store, by status.", MetricType::kGauge);
  for (int status = 1; status < v1::JobStatus_ARRAYSIZE; ++status) {
    writer.Sample("ckpt_jobs", {{"status", StatusLabel(static_cast<v1::JobStatus>(status))}},
                  by_status[status]);
  }
  writer.Family("ckpt_workers_active",
                "Workers heard from within their job's lease timeout, over all jobs.",
                MetricType::kGauge);
  writer.Sample("ckpt_workers_active", {}, active_workers);

  // Items by state for running and paused jobs only, newest first, capped.
  auto live = std::partition(jobs.begin(), jobs.end(), [](const JobSummary& job) {
    return job.status == v1::JOB_STATUS_RUNNING || job.status == v1::JOB_STATUS_PAUSED;
  });
  jobs.erase(live, jobs.end());
  std::sort(jobs.begin(), jobs.end(), [](const JobSummary& a, const JobSummary& b) {
    return a.create_time != b.create_time ? a.create_time > b.create_time : a.job_id < b.job_id;
  });
  const size_t shown = std::min(jobs.size(), options_.max_job_series);
  writer.Family("ckpt_job_items",
                "Items of a running or paused job by state (the newest jobs, up to "
                "--metrics_max_jobs).",
                MetricType::kGauge);
  for (size_t i = 0; i < shown; ++i) {
    const storage::v1::StepCounters& c = jobs[i].counters;
    const std::pair<const char*, uint64_t> states[] = {{"pending", c.pending()},
                                                       {"leased", c.leased()},
                                                       {"completed", c.completed()},
                                                       {"failed", c.failed()}};
    for (const auto& [state, count] : states) {
      writer.Sample("ckpt_job_items", {{"job_id", jobs[i].job_id}, {"state", state}}, count);
    }
  }
  writer.Family("ckpt_job_items_omitted_jobs",
                "Running or paused jobs left out of ckpt_job_items by --metrics_max_jobs.",
                MetricType::kGauge);
  writer.Sample("ckpt_job_items_omitted_jobs", {}, static_cast<uint64_t>(jobs.size() - shown));
}

uint64_t DirectorySizeBytes(const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code error;
  uint64_t total = 0;
  for (fs::recursive_directory_iterator it(dir, error), end; !error && it != end;
       it.increment(error)) {
    std::error_code size_error;
    if (it->is_regular_file(size_error)) {
      const uintmax_t size = it->file_size(size_error);
      if (!size_error) total += size;
    }
  }
  return total;
}

}  // namespace ckpt
