#include "service/metrics/exposition.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace ckpt {
namespace {

// Help text escapes backslash and newline; label values also the double quote.
std::string Escape(absl::string_view text, bool quote) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (quote && c == '"') {
      out += "\\\"";
    } else {
      out += c;
    }
  }
  return out;
}

absl::string_view TypeName(MetricType type) {
  switch (type) {
    case MetricType::kCounter:
      return "counter";
    case MetricType::kGauge:
      return "gauge";
    case MetricType::kHistogram:
      return "histogram";
  }
  return "untyped";
}

}  // namespace

std::string FormatSampleValue(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  if (value == std::floor(value) && std::fabs(value) < 1e15) {
    return absl::StrCat(static_cast<int64_t>(value));
  }
  return absl::StrFormat("%.15g", value);
}

void ExpositionWriter::Family(absl::string_view name, absl::string_view help, MetricType type) {
  absl::StrAppend(out_, "# HELP ", name, " ", Escape(help, /*quote=*/false), "\n", "# TYPE ", name,
                  " ", TypeName(type), "\n");
}

void ExpositionWriter::WriteName(absl::string_view name, const Labels& labels) {
  absl::StrAppend(out_, name);
  if (labels.empty()) return;
  out_->push_back('{');
  for (size_t i = 0; i < labels.size(); ++i) {
    if (i > 0) out_->push_back(',');
    absl::StrAppend(out_, labels[i].first, "=\"", Escape(labels[i].second, /*quote=*/true), "\"");
  }
  out_->push_back('}');
}

void ExpositionWriter::Sample(absl::string_view name, const Labels& labels, double value) {
  WriteName(name, labels);
  absl::StrAppend(out_, " ", FormatSampleValue(value), "\n");
}

void ExpositionWriter::Sample(absl::string_view name, const Labels& labels, uint64_t value) {
  WriteName(name, labels);
  absl::StrAppend(out_, " ", value, "\n");
}

void ExpositionWriter::HistogramSamples(absl::string_view name, const Labels& labels,
                                        const HistogramSnapshot& histogram) {
  const std::string bucket = absl::StrCat(name, "_bucket");
  Labels with_le = labels;
  with_le.emplace_back("le", "");
  uint64_t cumulative = 0;
  for (size_t i = 0; i < histogram.counts.size(); ++i) {
    cumulative += histogram.counts[i];
    with_le.back().second =
        i < histogram.bounds.size() ? FormatSampleValue(histogram.bounds[i]) : "+Inf";
    Sample(bucket, with_le, cumulative);
  }
  Sample(absl::StrCat(name, "_sum"), labels, histogram.sum);
  Sample(absl::StrCat(name, "_count"), labels, cumulative);
}

}  // namespace ckpt
