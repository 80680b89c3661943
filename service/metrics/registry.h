// A set of metrics rendered together as one /metrics page. Metrics are created once
// (usually at start-up) and then updated without the registry: Get* returns a pointer
// that stays valid for the registry's lifetime, so the hot path never looks anything up.
// Values that are cheaper to read at scrape time than to keep current (gauges over the
// engine's jobs, /proc, disk usage) come from collectors, called by Render.
//
// Thread-safe. Render may run while metrics are updated; each value is read once,
// atomically, so a page is consistent per value, not across values.
#ifndef CKPT_SERVICE_METRICS_REGISTRY_H_
#define CKPT_SERVICE_METRICS_REGISTRY_H_

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "service/metrics/exposition.h"
#include "service/metrics/metric.h"

namespace ckpt {

class Registry {
 public:
  // Writes whole families (Family, then its samples) of values read at scrape time.
  using Collector = std::function<void(ExpositionWriter& writer)>;

  Registry() = default;
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // The metric `name` with `labels`, created on first use. REQUIRES: every call for one
  // name passes the same help, kind, label names (in the same order) and bounds; a name
  // is never also written by a collector.
  Counter* GetCounter(absl::string_view name, absl::string_view help, const Labels& labels = {});
  Gauge* GetGauge(absl::string_view name, absl::string_view help, const Labels& labels = {});
  Histogram* GetHistogram(absl::string_view name, absl::string_view help,
                          const std::vector<double>& bounds, const Labels& labels = {});

  // Adds a collector; collectors run in the order added, after the registry's own
  // families, on the thread that calls Render. They must not call back into the registry.
  void AddCollector(Collector collector);

  // The whole page in the text exposition format.
  std::string Render() const;

 private:
  struct Family {
    std::string help;
    MetricType type;
    // Children by their label values, in the order of first use.
    std::vector<std::pair<Labels, std::unique_ptr<Counter>>> counters;
    std::vector<std::pair<Labels, std::unique_ptr<Gauge>>> gauges;
    std::vector<std::pair<Labels, std::unique_ptr<Histogram>>> histograms;
  };

  Family& FamilyLocked(absl::string_view name, absl::string_view help, MetricType type)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable absl::Mutex mu_;
  std::map<std::string, Family, std::less<>> families_ ABSL_GUARDED_BY(mu_);
  std::vector<Collector> collectors_ ABSL_GUARDED_BY(mu_);
};

}  // namespace ckpt

#endif  // CKPT_SERVICE_METRICS_REGISTRY_H_
