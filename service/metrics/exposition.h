// Writes the Prometheus text exposition format (version 0.0.4), the body of GET
// /metrics: each family as "# HELP" and "# TYPE" lines followed by its samples.
//   # HELP ckpt_items_completed_total Items that became COMPLETED.
//   # TYPE ckpt_items_completed_total counter
//   ckpt_items_completed_total 1234
// Label values and help texts are escaped as the format requires. The writer does not
// check names: callers use fixed, valid names ([a-zA-Z_:][a-zA-Z0-9_:]*).
//
// Not thread-safe: one writer per rendering.
#ifndef CKPT_SERVICE_METRICS_EXPOSITION_H_
#define CKPT_SERVICE_METRICS_EXPOSITION_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"
#include "service/metrics/metric.h"

namespace ckpt {

// Label name -> value pairs, in the order they are written.
using Labels = std::vector<std::pair<std::string, std::string>>;

enum class MetricType { kCounter, kGauge, kHistogram };

// The content type of the format, for the HTTP response.
inline constexpr absl::string_view kExpositionContentType =
    "text/plain; version=0.0.4; charset=utf-8";

class ExpositionWriter {
 public:
  // Appends to `out`, which must outlive the writer.
  explicit ExpositionWriter(std::string* out) : out_(out) {}

  // Starts a family. Its samples must follow before the next family starts.
  void Family(absl::string_view name, absl::string_view help, MetricType type);
  // One sample line: `name{labels} value`. `name` is the family's name, or for a
  // histogram's parts written by hand, name_bucket / _sum / _count.
  void Sample(absl::string_view name, const Labels& labels, double value);
  void Sample(absl::string_view name, const Labels& labels, uint64_t value);
  // A histogram's cumulative _bucket lines (with le), _sum and _count.
  void HistogramSamples(absl::string_view name, const Labels& labels,
                        const HistogramSnapshot& histogram);

 private:
  void WriteName(absl::string_view name, const Labels& labels);

  std::string* const out_;
};

// Formats a sample value as the format spells it: integers without a fraction, +Inf,
// -Inf, NaN, and otherwise up to 15 significant digits.
std::string FormatSampleValue(double value);

}  // namespace ckpt

#endif  // CKPT_SERVICE_METRICS_EXPOSITION_H_
