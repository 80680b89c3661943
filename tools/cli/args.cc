#include "tools/cli/args.h"

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace ckpt {
namespace cli {
namespace {

constexpr char kUsagePayload[] = "ckpt.usage";

}  // namespace

absl::Status UsageError(absl::string_view message) {
  absl::Status status = absl::InvalidArgumentError(message);
  status.SetPayload(kUsagePayload, absl::Cord("1"));
  return status;
}

bool IsUsageError(const absl::Status& status) {
  return status.GetPayload(kUsagePayload).has_value();
}

bool Args::Has(absl::string_view name) const {
  return booleans.count(std::string(name)) > 0 || values.count(std::string(name)) > 0;
}

std::string Args::Get(absl::string_view name, absl::string_view fallback) const {
  auto it = values.find(std::string(name));
  return it == values.end() ? std::string(fallback) : it->second.back();
}

std::vector<std::string> Args::All(absl::string_view name) const {
  auto it = values.find(std::string(name));
  return it == values.end() ? std::vector<std::string>() : it->second;
}

absl::StatusOr<uint64_t> Args::GetInt(absl::string_view name, uint64_t fallback, uint64_t min,
                                      uint64_t max) const {
  if (!Has(name)) return fallback;
  const std::string text = Get(name);
  uint64_t value = 0;
  if (!absl::SimpleAtoi(text, &value) || value < min || value > max) {
    return UsageError(absl::StrCat("--", name, " must be a number from ", min, " to ", max,
                                   ", not \"", text, "\""));
  }
  return value;
}

absl::StatusOr<std::optional<absl::Time>> Args::GetTime(absl::string_view name,
                                                        absl::Time now) const {
  if (!Has(name)) return std::nullopt;
  const std::string text = Get(name);
  absl::Time time;
  std::string error;
  if (absl::ParseTime(absl::RFC3339_full, text, &time, &error)) return time;
  static const std::pair<char, absl::Duration> kUnits[] = {{'s', absl::Seconds(1)},
                                                           {'m', absl::Minutes(1)},
                                                           {'h', absl::Hours(1)},
                                                           {'d', absl::Hours(24)}};
  uint64_t count = 0;
  if (text.size() >= 2 && absl::SimpleAtoi(text.substr(0, text.size() - 1), &count) &&
      count <= uint64_t{100000} * 24 * 3600) {
    for (const auto& [unit, length] : kUnits) {
      if (text.back() == unit) return now - length * static_cast<int64_t>(count);
    }
  }
  return UsageError(absl::StrCat("--", name,
                                 " must be a time (2025-12-14T20:43:00Z) or an age (90s, 10m, 2h, "
                                 "30d), not \"",
                                 text, "\""));
}

absl::StatusOr<std::vector<v1::JobStatus>> Args::GetJobStatuses(absl::string_view name) const {
  std::vector<v1::JobStatus> statuses;
  for (const std::string& text : All(name)) {
    v1::JobStatus status;
    if (!v1::JobStatus_Parse(absl::StrCat("JOB_STATUS_", absl::AsciiStrToUpper(text)), &status) ||
        status == v1::JOB_STATUS_UNSPECIFIED) {
      return UsageError(absl::StrCat("--", name,
                                     " must be one of running, paused, stopped, completed, "
                                     "failed; not \"",
                                     text, "\""));
    }
    statuses.push_back(status);
  }
  return statuses;
}

absl::StatusOr<std::map<std::string, std::string>> Args::GetLabels(absl::string_view name) const {
  std::map<std::string, std::string> labels;
  for (const std::string& label : All(name)) {
    const std::vector<std::string> kv = absl::StrSplit(label, absl::MaxSplits('=', 1));
    if (kv.size() != 2 || kv[0].empty()) {
      return UsageError(absl::StrCat("--", name, " must be key=value, not \"", label, "\""));
    }
    labels[kv[0]] = kv[1];
  }
  return labels;
}

absl::StatusOr<Args> ParseArgs(const std::vector<std::string>& argv, const FlagSpec& spec) {
  Args args;
  bool flags_done = false;
  for (size_t i = 0; i < argv.size(); ++i) {
    const std::string& arg = argv[i];
    if (flags_done || arg.size() < 2 || arg.compare(0, 2, "--") != 0) {
      args.positional.push_back(arg);
      continue;
    }
    if (arg == "--") {
      flags_done = true;
      continue;
    }
    const size_t eq = arg.find('=');
    const std::string name = arg.substr(2, eq == std::string::npos ? std::string::npos : eq - 2);
    if (spec.boolean.count(name) > 0) {
      if (eq != std::string::npos) {
        return UsageError(absl::StrCat("--", name, " takes no value"));
      }
      args.booleans.insert(name);
    } else if (spec.with_value.count(name) > 0) {
      if (eq != std::string::npos) {
        args.values[name].push_back(arg.substr(eq + 1));
      } else if (i + 1 < argv.size()) {
        args.values[name].push_back(argv[++i]);
      } else {
        return UsageError(absl::StrCat("--", name, " needs a value"));
      }
    } else {
      return UsageError(absl::StrCat("unknown flag --", name));
    }
  }
  return args;
}

}  // namespace cli
}  // namespace ckpt
