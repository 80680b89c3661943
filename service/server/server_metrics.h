// ckptd's Prometheus metrics, served at GET /metrics (docs/observability.md lists them):
// the engine's group commits and item moves (as the engine's observer), RPCs (through
// RpcMetrics' interceptor), and values read at scrape time: the writer's queue, jobs by
// status, active workers, items by state of running and paused jobs, the store's size
// on disk, and the process (CPU, memory, fds).
#ifndef CKPT_SERVICE_SERVER_SERVER_METRICS_H_
#define CKPT_SERVICE_SERVER_SERVER_METRICS_H_

#include <cstddef>
#include <string>

#include "service/engine/engine.h"
#include "service/engine/engine_observer.h"
#include "service/metrics/registry.h"
#include "service/rpc/rpc_metrics.h"

namespace ckpt {

struct ServerMetricsOptions {
  // ckpt_job_items has series for at most this many running or paused jobs, the newest
  // first (by create_time, as ListJobs orders); ckpt_job_items_omitted_jobs counts the
  // rest. Bounds the page at 4 series per job.
  size_t max_job_series = 100;
  // The store's directory, summed into ckpt_store_size_bytes.
  std::string data_dir;
};

// Thread-safe.
class ServerMetrics final : public EngineObserver {
 public:
  explicit ServerMetrics(ServerMetricsOptions options);
  ServerMetrics(const ServerMetrics&) = delete;
  ServerMetrics& operator=(const ServerMetrics&) = delete;

  // Starts reading `engine` at scrape time. REQUIRES: called once; `engine` outlives
  // every later Render.
  void WatchEngine(const Engine* engine);

  // Writer thread: atomics only.
  void OnGroupCommitted(const GroupCommitStats& stats) override;

  Registry& registry() { return registry_; }
  RpcMetrics& rpc() { return rpc_; }
  // The /metrics page.
  std::string Render() const { return registry_.Render(); }

 private:
  void WriteEngineMetrics(const Engine& engine, ExpositionWriter& writer) const;

  const ServerMetricsOptions options_;
  Registry registry_;
  RpcMetrics rpc_;
  Histogram* const group_ops_;
  Histogram* const group_bytes_;
  Histogram* const group_sync_seconds_;
  Counter* const group_failures_;
  Counter* const items_completed_;
  Counter* const items_failed_;
  Counter* const items_leased_;
  Counter* const jobs_expired_;  // ckpt_jobs_deleted_total{by="retention"}
  Counter* const jobs_deleted_;  // ckpt_jobs_deleted_total{by="request"}
};

// Bytes of the regular files under `dir`, recursively; 0 if it cannot be read.
uint64_t DirectorySizeBytes(const std::string& dir);

}  // namespace ckpt

#endif  // CKPT_SERVICE_SERVER_SERVER_METRICS_H_
