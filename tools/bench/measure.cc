#include "tools/bench/measure.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace ckpt {
namespace bench {
namespace {

std::string JsonString(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      out += absl::StrFormat("\\u%04x", c);
    } else {
      out += c;
    }
  }
  return out + "\"";
}

std::string Number(double v, int decimals) { return absl::StrFormat("%.*f", decimals, v); }

std::string Rate(double v) {
  if (v >= 1000) return absl::StrFormat("%.0f", v);
  if (v >= 10) return absl::StrFormat("%.1f", v);
  return absl::StrFormat("%.2f", v);
}

}  // namespace

void Latencies::Merge(const Latencies& other) {
  samples_us_.insert(samples_us_.end(), other.samples_us_.begin(), other.samples_us_.end());
  sorted_ = false;
}

double Latencies::QuantileUs(double q) {
  if (samples_us_.empty()) return 0;
  if (!sorted_) {
    std::sort(samples_us_.begin(), samples_us_.end());
    sorted_ = true;
  }
  const double rank = q * static_cast<double>(samples_us_.size() - 1);
  return samples_us_[static_cast<size_t>(std::llround(rank))];
}

void Finish(uint64_t items, absl::Duration wall, Latencies* latencies, Measurement* m) {
  m->items = items;
  m->seconds = absl::ToDoubleSeconds(wall);
  m->items_per_s = m->seconds > 0 ? static_cast<double>(items) / m->seconds : 0;
  m->p50_us = latencies->QuantileUs(0.50);
  m->p99_us = latencies->QuantileUs(0.99);
  m->max_us = latencies->QuantileUs(1.0);
}

std::string ToJsonLine(const Measurement& m) {
  std::string out = absl::StrCat(
      "{\"workload\":", JsonString(m.workload), ",\"system\":", JsonString(m.system),
      ",\"items_per_s\":", Number(m.items_per_s, 1), ",\"p50_us\":", Number(m.p50_us, 1),
      ",\"p99_us\":", Number(m.p99_us, 1), ",\"max_us\":", Number(m.max_us, 1),
      ",\"durable\":", m.durable ? "true" : "false", ",\"unit\":", JsonString(m.unit),
      ",\"items\":", m.items, ",\"seconds\":", Number(m.seconds, 3), ",\"threads\":", m.threads);
  if (m.cpu_seconds >= 0) absl::StrAppend(&out, ",\"server_cpu_s\":", Number(m.cpu_seconds, 3));
  if (m.peak_rss_mib >= 0) absl::StrAppend(&out, ",\"peak_rss_mib\":", Number(m.peak_rss_mib, 1));
  if (m.client_cpu_seconds >= 0) {
    absl::StrAppend(&out, ",\"client_cpu_s\":", Number(m.client_cpu_seconds, 3));
  }
  if (m.round > 0) absl::StrAppend(&out, ",\"round\":", m.round);
  if (!m.note.empty()) absl::StrAppend(&out, ",\"note\":", JsonString(m.note));
  return out + "}";
}

const Measurement* FindMeasurement(const std::vector<Measurement>& measurements,
                                   const std::string& workload, const std::string& system,
                                   bool durable) {
  for (const Measurement& m : measurements) {
    if (m.workload == workload && m.system == system && m.durable == durable) return &m;
  }
  return nullptr;
}

std::string FormatTable(const std::vector<Measurement>& measurements) {
  std::vector<std::string> order;  // workloads in first-seen order
  std::map<std::string, std::vector<const Measurement*>> by_workload;
  for (const Measurement& m : measurements) {
    if (by_workload[m.workload].empty()) order.push_back(m.workload);
    by_workload[m.workload].push_back(&m);
  }
  std::string out;
  // One format for the header and the rows: a row whose arguments do not match it
  // would print nothing (measure_test checks both).
  static constexpr char kRow[] = "  %-41s %-7s %16s %9s %9s %10s %9s %7s %9s %9s  %s\n";
  for (const std::string& workload : order) {
    absl::StrAppend(&out, "\n", workload, "\n");
    absl::StrAppend(
        &out, absl::StrFormat(kRow, "system", "sync", "per second", "p50 us", "p99 us", "max us",
                              "srv cpu s", "rss MiB", "cli cpu s", "ckpt/this", "note"));
    for (const Measurement* m : by_workload[workload]) {
      const Measurement* ckpt = FindMeasurement(measurements, workload, "ckpt", m->durable);
      std::string ratio = "";
      if (ckpt != nullptr && ckpt != m && m->items_per_s > 0 && m->unit == ckpt->unit) {
        ratio = absl::StrFormat("%.2f", ckpt->items_per_s / m->items_per_s);
      }
      const std::string rate =
          absl::StrCat(Rate(m->items_per_s), " ", m->unit == "items" ? "" : m->unit);
      absl::StrAppend(
          &out, absl::StrFormat(kRow, m->system, m->durable ? "durable" : "off", rate,
                                Number(m->p50_us, 0), Number(m->p99_us, 0), Number(m->max_us, 0),
                                m->cpu_seconds >= 0 ? Number(m->cpu_seconds, 2) : "-",
                                m->peak_rss_mib >= 0 ? Number(m->peak_rss_mib, 0) : "-",
                                m->client_cpu_seconds >= 0 ? Number(m->client_cpu_seconds, 2) : "-",
                                ratio, m->note));
    }
  }
  return out;
}

}  // namespace bench
}  // namespace ckpt
