#include "service/metrics/registry.h"

#include <utility>

namespace ckpt {
namespace {

template <typename Metric>
Metric* FindOrAdd(std::vector<std::pair<Labels, std::unique_ptr<Metric>>>* children,
                  const Labels& labels, const std::function<std::unique_ptr<Metric>()>& make) {
  for (auto& [existing, metric] : *children) {
    if (existing == labels) return metric.get();
  }
  children->emplace_back(labels, make());
  return children->back().second.get();
}

}  // namespace

Registry::Family& Registry::FamilyLocked(absl::string_view name, absl::string_view help,
                                         MetricType type) {
  auto it = families_.find(name);
  if (it == families_.end()) {
    it = families_.emplace(std::string(name), Family{std::string(help), type, {}, {}, {}}).first;
  }
  return it->second;
}

Counter* Registry::GetCounter(absl::string_view name, absl::string_view help,
                              const Labels& labels) {
  absl::MutexLock lock(&mu_);
  Family& family = FamilyLocked(name, help, MetricType::kCounter);
  return FindOrAdd<Counter>(&family.counters, labels, [] { return std::make_unique<Counter>(); });
}

Gauge* Registry::GetGauge(absl::string_view name, absl::string_view help, const Labels& labels) {
  absl::MutexLock lock(&mu_);
  Family& family = FamilyLocked(name, help, MetricType::kGauge);
  return FindOrAdd<Gauge>(&family.gauges, labels, [] { return std::make_unique<Gauge>(); });
}

Histogram* Registry::GetHistogram(absl::string_view name, absl::string_view help,
                                  const std::vector<double>& bounds, const Labels& labels) {
  absl::MutexLock lock(&mu_);
  Family& family = FamilyLocked(name, help, MetricType::kHistogram);
  return FindOrAdd<Histogram>(&family.histograms, labels,
                              [&] { return std::make_unique<Histogram>(bounds); });
}

void Registry::AddCollector(Collector collector) {
  absl::MutexLock lock(&mu_);
  collectors_.push_back(std::move(collector));
}

std::string Registry::Render() const {
  std::string out;
  ExpositionWriter writer(&out);
  std::vector<Collector> collectors;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [name, family] : families_) {
      writer.Family(name, family.help, family.type);
      for (const auto& [labels, counter] : family.counters) {
        writer.Sample(name, labels, counter->Value());
      }
      for (const auto& [labels, gauge] : family.gauges) writer.Sample(name, labels, gauge->Value());
      for (const auto& [labels, histogram] : family.histograms) {
        writer.HistogramSamples(name, labels, histogram->Snapshot());
      }
    }
    collectors = collectors_;
  }
  // Outside the lock: collectors read the engine, /proc and the disk.
  for (const Collector& collect : collectors) collect(writer);
  return out;
}

}  // namespace ckpt
