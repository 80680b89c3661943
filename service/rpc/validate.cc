#include "service/rpc/validate.h"

#include <cstdint>
#include <optional>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "google/protobuf/duration.pb.h"
#include "google/protobuf/map.h"
#include "google/protobuf/repeated_field.h"
#include "google/protobuf/timestamp.pb.h"
#include "service/common/api_limits.h"
#include "service/common/status_macros.h"

namespace ckpt {
namespace {

using ::google::protobuf::Duration;
using ::google::protobuf::RepeatedPtrField;
using StringMap = ::google::protobuf::Map<std::string, std::string>;

// The fixed limits of checkpoint.proto; the ones set by ckptd flags are in Limits.
constexpr size_t kMaxJobIdChars = 128;
constexpr size_t kMaxStepChars = 64;
constexpr size_t kMaxWorkerIdChars = 128;
constexpr size_t kMaxSteps = 64;
constexpr size_t kMaxDisplayNameBytes = 256;
constexpr size_t kMaxConfigBytes = 1 << 20;
constexpr size_t kMaxFingerprintBytes = 128;
constexpr size_t kMaxStageBytes = 256;
constexpr size_t kMaxReasonBytes = 1024;
constexpr size_t kMaxLabels = 64;
constexpr size_t kMaxLabelKeyBytes = 63;
constexpr size_t kMaxLabelValueBytes = 256;
constexpr size_t kMaxParams = 256;
constexpr size_t kMaxParamKeyBytes = 128;
constexpr uint32_t kMaxAttempts = 1000;
constexpr size_t kMaxOutputPaths = 64;
constexpr size_t kMaxStageTimes = 64;
constexpr size_t kMaxStageNameBytes = 64;
constexpr size_t kMaxListJobs = 1000;
constexpr size_t kMaxPageTokenBytes = 4096;
constexpr size_t kMaxNamePrefixBytes = 128;
constexpr size_t kMaxErrorGroups = 100;
constexpr size_t kMaxHostnameBytes = 256;
constexpr size_t kMaxInvocationIdBytes = 128;
constexpr size_t kMaxStateNameBytes = 256;
constexpr size_t kMaxListLogs = 1000;
constexpr size_t kMaxBackupDirBytes = 4096;
constexpr size_t kMaxJobIdPrefixBytes = 128;
constexpr size_t kMaxDeleteJobs = 1000;
// Indices are < 2^63 and range ends <= 2^63, so an exclusive end always fits in a
// uint64 and every index in an int64 (JSON and Python clients).
constexpr uint64_t kIndexLimit = uint64_t{1} << 63;

// ---- Messages and paths ----

template <typename... Args>
absl::Status Invalid(absl::string_view field, const Args&... args) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", args...));
}

// Puts `parent` in front of a failed check's field path. Paths are built only on
// failure, so big batches cost no allocations. A check of an element itself (field "")
// reports ": ...", which becomes "names[3]: ...".
absl::Status Nest(absl::string_view parent, const absl::Status& status) {
  if (status.ok() || parent.empty()) return status;
  const absl::string_view message = status.message();
  return absl::InvalidArgumentError(
      absl::StrCat(parent, absl::StartsWith(message, ":") ? "" : ".", message));
}

absl::Status NestAt(absl::string_view parent, int index, const absl::Status& status) {
  if (status.ok()) return status;
  return Nest(absl::StrCat(parent, "[", index, "]"), status);
}

// Runs `check` on every element of a repeated field; errors name "field[i]".
template <typename Elements, typename Check>
absl::Status CheckEach(absl::string_view field, const Elements& elements, Check check) {
  for (int i = 0; i < elements.size(); ++i) {
    CKPT_RETURN_IF_ERROR(NestAt(field, i, check(elements[i])));
  }
  return absl::OkStatus();
}

// A map key for a message: escaped and cut short.
std::string Quote(absl::string_view s) {
  constexpr size_t kShown = 40;
  return absl::StrCat("\"", absl::CHexEscape(s.substr(0, kShown)),
                      s.size() > kShown ? "\"..." : "\"");
}

// ---- Sizes ----

// An allowed length or count; `flag` names the ckptd flag that sets `max`, if any.
struct Range {
  size_t min;
  size_t max;
  absl::string_view flag = {};
};

Range KeyBytes(const Limits& limits) { return {1, limits.max_key_bytes, "max_key_bytes"}; }
Range Batch(const Limits& limits, size_t min) { return {min, limits.max_batch, "max_batch"}; }

// The one length/count check. `unit` is "bytes", "entries", ...
absl::Status CheckSize(absl::string_view field, size_t size, Range range, absl::string_view unit) {
  if (size >= range.min && size <= range.max) return absl::OkStatus();
  const absl::string_view open = range.flag.empty() ? "" : " (--";
  const absl::string_view close = range.flag.empty() ? "" : ")";
  if (size > range.max) {
    return Invalid(field, size, " ", unit, " exceeds the limit of ", range.max, open, range.flag,
                   close);
  }
  return Invalid(field, "must be ", range.min, "..", range.max, " ", unit, open, range.flag, close,
                 ", got ", size);
}

absl::Status CheckBytes(absl::string_view field, absl::string_view value, Range range) {
  return CheckSize(field, value.size(), range, "bytes");
}

// Item names, output paths, state names: NUL-free (NUL ends names in storage keys).
absl::Status CheckKeyBytes(absl::string_view field, absl::string_view value, Range range) {
  CKPT_RETURN_IF_ERROR(CheckBytes(field, value, range));
  const size_t nul = value.find('\0');
  if (nul == absl::string_view::npos) return absl::OkStatus();
  return Invalid(field, "must not contain a NUL byte, found one at offset ", nul);
}

// ---- Tokens: ids, step names, label keys ----

struct Alphabet {
  absl::string_view description;
  bool (*contains)(char c);
};

bool IsIdChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == ':' ||
         c == '-';
}
bool IsLabelKeyChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '/' ||
         c == '-';
}
constexpr Alphabet kIdAlphabet = {"[A-Za-z0-9._:-]", IsIdChar};
constexpr Alphabet kLabelKeyAlphabet = {"[A-Za-z0-9._/-]", IsLabelKeyChar};

// 1..max characters of an ASCII alphabet.
absl::Status CheckToken(absl::string_view field, absl::string_view value, size_t max,
                        const Alphabet& alphabet) {
  const auto rule = [&] {
    return absl::StrCat("must be 1..", max, " characters of ", alphabet.description);
  };
  if (value.empty() || value.size() > max) {
    return Invalid(field, rule(), ", got ", value.size(), " characters");
  }
  for (size_t i = 0; i < value.size(); ++i) {
    if (!alphabet.contains(value[i])) {
      return Invalid(field, rule(), ", got '", absl::CHexEscape(value.substr(i, 1)), "' at offset ",
                     i);
    }
  }
  return absl::OkStatus();
}

// Where the proto allows it, an empty step means the job's first step (or, in
// ResetItems, every step).
absl::Status CheckStep(absl::string_view field, absl::string_view step) {
  return step.empty() ? absl::OkStatus() : ValidateStepName(field, step);
}

absl::Status CheckWorkerId(absl::string_view field, absl::string_view worker_id) {
  return CheckToken(field, worker_id, kMaxWorkerIdChars, kIdAlphabet);
}

absl::Status CheckOptionalWorkerId(absl::string_view field, absl::string_view worker_id) {
  return worker_id.empty() ? absl::OkStatus() : CheckWorkerId(field, worker_id);
}

// ---- Maps: labels, params, stage times ----

// Checks the entry count, then each key and value. Key and value checks see field "";
// errors read `labels key "a b": ...` and `labels["env"]: ...`.
template <typename Value, typename CheckKey, typename CheckValue>
absl::Status CheckMap(absl::string_view field,
                      const ::google::protobuf::Map<std::string, Value>& map, size_t max_entries,
                      CheckKey check_key, CheckValue check_value) {
  CKPT_RETURN_IF_ERROR(CheckSize(field, map.size(), {0, max_entries}, "entries"));
  for (const auto& [key, value] : map) {
    absl::Status status = check_key(key);
    if (!status.ok()) return Nest(absl::StrCat(field, " key ", Quote(key)), status);
    status = check_value(value);
    if (!status.ok()) return Nest(absl::StrCat(field, "[", Quote(key), "]"), status);
  }
  return absl::OkStatus();
}

// The limits of a string map (Job.labels, Job.params).
struct MapRules {
  size_t max_entries;
  absl::Status (*check_key)(absl::string_view field, absl::string_view key);
  size_t max_value_bytes;
};

absl::Status CheckLabelKey(absl::string_view field, absl::string_view key) {
  return CheckToken(field, key, kMaxLabelKeyBytes, kLabelKeyAlphabet);
}
absl::Status CheckParamKey(absl::string_view field, absl::string_view key) {
  return CheckBytes(field, key, {1, kMaxParamKeyBytes});
}
constexpr MapRules kLabels = {kMaxLabels, CheckLabelKey, kMaxLabelValueBytes};
constexpr MapRules kParams = {kMaxParams, CheckParamKey, kMaxParamValueBytes};

absl::Status CheckStringMap(absl::string_view field, const StringMap& map, const MapRules& rules) {
  return CheckMap(
      field, map, rules.max_entries,
      [&](absl::string_view key) { return rules.check_key("", key); },
      [&](absl::string_view value) {
        return CheckBytes("", value, {0, rules.max_value_bytes});
      });
}

// UpdateJob's remove_labels / remove_params: keys that the map could hold.
absl::Status CheckMapKeys(absl::string_view field, const RepeatedPtrField<std::string>& keys,
                          const MapRules& rules) {
  CKPT_RETURN_IF_ERROR(CheckSize(field, keys.size(), {0, rules.max_entries}, "entries"));
  return CheckEach(field, keys, [&](absl::string_view key) { return rules.check_key("", key); });
}

// ---- Durations and enums ----

// Well-formed as duration.proto defines it, and within [min, max].
absl::Status CheckDuration(absl::string_view field, const Duration& d, absl::Duration min,
                           absl::Duration max) {
  constexpr int64_t kMaxSeconds = 315576000000;  // duration.proto's +-10000 years
  constexpr int32_t kNanosPerSecond = 1000000000;
  const bool well_formed = d.seconds() >= -kMaxSeconds && d.seconds() <= kMaxSeconds &&
                           d.nanos() > -kNanosPerSecond && d.nanos() < kNanosPerSecond &&
                           !(d.seconds() > 0 && d.nanos() < 0) &&
                           !(d.seconds() < 0 && d.nanos() > 0);
  if (!well_formed) {
    return Invalid(field, "malformed duration {seconds: ", d.seconds(), ", nanos: ", d.nanos(),
                   "}");
  }
  const absl::Duration value = absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
  if (value >= min && value <= max) return absl::OkStatus();
  const std::string got = absl::StrCat(", got ", absl::FormatDuration(value));
  if (max == absl::InfiniteDuration()) {
    return min == absl::ZeroDuration()
               ? Invalid(field, "must not be negative", got)
               : Invalid(field, "must be at least ", absl::FormatDuration(min), got);
  }
  return Invalid(field, "must be ", absl::FormatDuration(min), "..", absl::FormatDuration(max),
                 got);
}

absl::Status CheckNonNegative(absl::string_view field, const Duration& d) {
  return CheckDuration(field, d, absl::ZeroDuration(), absl::InfiniteDuration());
}

// Well-formed as timestamp.proto defines it (up to the year 9999) and not before 1970.
absl::Status CheckTimestamp(absl::string_view field, const google::protobuf::Timestamp& t) {
  constexpr int64_t kMaxSeconds = 253402300799;  // 9999-12-31T23:59:59Z
  if (t.seconds() < 0 || t.seconds() > kMaxSeconds || t.nanos() < 0 || t.nanos() > 999999999) {
    return Invalid(field, "must be a time from 1970 to 9999, got {seconds: ", t.seconds(),
                   ", nanos: ", t.nanos(), "}");
  }
  return absl::OkStatus();
}

// proto3 keeps numbers it does not know; refuse them rather than store them.
absl::Status CheckEnum(absl::string_view field, int value, bool (*is_valid)(int)) {
  if (is_valid(value)) return absl::OkStatus();
  return Invalid(field, "unknown value ", value);
}

// ---- Item keys and batches ----

absl::Status CheckIndex(absl::string_view field, uint64_t index) {
  if (index < kIndexLimit) return absl::OkStatus();
  return Invalid(field, "must be less than 2^63 (", kIndexLimit, "), got ", index);
}

absl::Status CheckIndexRange(const v1::IndexRange& range) {
  if (range.end() <= range.begin()) {
    return Invalid("", "end ", range.end(), " must be greater than begin ", range.begin());
  }
  if (range.end() > kIndexLimit) {
    return Invalid("end", "must be at most 2^63 (", kIndexLimit, "), got ", range.end());
  }
  return absl::OkStatus();
}

// Positions of the keys seen so far in a batch. Holds views into the request.
class KeyPositions {
 public:
  // Returns the position of an equal key seen before, or nullopt if `key` is new.
  // REQUIRES: `key` passed ValidateItemKey.
  std::optional<int> Insert(const v1::ItemKey& key, int position) {
    return key.has_index() ? Insert(indices_, key.index(), position)
                           : Insert(names_, absl::string_view(key.name()), position);
  }

 private:
  template <typename Map, typename Key>
  static std::optional<int> Insert(Map& map, const Key& key, int position) {
    const auto [it, inserted] = map.try_emplace(key, position);
    if (inserted) return std::nullopt;
    return it->second;
  }

  absl::flat_hash_map<uint64_t, int> indices_;
  absl::flat_hash_map<absl::string_view, int> names_;
};

// Refuses repeated keys: "items[5].key: repeats items[2].key". `key_path` is the key's
// path inside an entry ("" when the entries are keys); `key_of` returns it.
template <typename Entries, typename KeyOf>
absl::Status CheckDistinctKeys(absl::string_view field, absl::string_view key_path,
                               const Entries& entries, KeyOf key_of) {
  KeyPositions seen;
  for (int i = 0; i < entries.size(); ++i) {
    if (const std::optional<int> first = seen.Insert(key_of(entries[i]), i)) {
      return absl::InvalidArgumentError(absl::StrCat(field, "[", i, "]", key_path, ": repeats ",
                                                     field, "[", *first, "]", key_path));
    }
  }
  return absl::OkStatus();
}

// LeaseItems.keys, ResetItems.keys: at most max_batch valid keys.
absl::Status CheckKeyList(absl::string_view field, const RepeatedPtrField<v1::ItemKey>& keys,
                          const Limits& limits) {
  CKPT_RETURN_IF_ERROR(CheckSize(field, keys.size(), Batch(limits, 0), "entries"));
  return CheckEach(field, keys,
                   [&](const v1::ItemKey& key) { return ValidateItemKey("", key, limits); });
}

// CompleteItems.items, FailItems.items: 1..max_batch entries with valid, distinct keys,
// each also passing `check_rest`.
template <typename Entry, typename CheckRest>
absl::Status CheckKeyedBatch(const RepeatedPtrField<Entry>& items, const Limits& limits,
                             CheckRest check_rest) {
  CKPT_RETURN_IF_ERROR(CheckSize("items", items.size(), Batch(limits, 1), "entries"));
  CKPT_RETURN_IF_ERROR(CheckEach("items", items, [&](const Entry& item) -> absl::Status {
    CKPT_RETURN_IF_ERROR(ValidateItemKey("key", item.key(), limits));
    return check_rest(item);
  }));
  return CheckDistinctKeys("items", ".key", items,
                           [](const Entry& item) -> const v1::ItemKey& { return item.key(); });
}

// ---- Sub-messages ----

absl::Status CheckItemMetrics(const v1::ItemMetrics& metrics) {
  if (metrics.has_wall_time()) {
    CKPT_RETURN_IF_ERROR(CheckNonNegative("wall_time", metrics.wall_time()));
  }
  return CheckMap(
      "stage_times", metrics.stage_times(), kMaxStageTimes,
      [](absl::string_view name) {
        return CheckBytes("", name, {1, kMaxStageNameBytes});
      },
      [](const Duration& time) { return CheckNonNegative("", time); });
}

absl::Status CheckItemResult(const v1::ItemResult& result, const Limits& limits) {
  CKPT_RETURN_IF_ERROR(
      CheckSize("output_paths", result.output_paths_size(), {0, kMaxOutputPaths}, "entries"));
  CKPT_RETURN_IF_ERROR(
      CheckEach("output_paths", result.output_paths(),
                [&](absl::string_view path) { return CheckKeyBytes("", path, KeyBytes(limits)); }));
  CKPT_RETURN_IF_ERROR(
      CheckBytes("payload", result.payload(), {0, limits.max_payload_bytes, "max_payload_bytes"}));
  return Nest("metrics", CheckItemMetrics(result.metrics()));
}

absl::Status CheckItemError(const v1::ItemError& error) {
  return CheckBytes("message", error.message(), {1, kMaxErrorMessageBytes});
}

absl::Status CheckLogEntry(const v1::LogEntry& entry, const Limits& limits) {
  if (entry.has_time()) CKPT_RETURN_IF_ERROR(CheckTimestamp("time", entry.time()));
  CKPT_RETURN_IF_ERROR(CheckEnum("level", entry.level(), v1::LogLevel_IsValid));
  CKPT_RETURN_IF_ERROR(CheckBytes("logger", entry.logger(), {0, kMaxLoggerBytes}));
  return CheckBytes("message", entry.message(),
                    {1, limits.max_log_message_bytes, "max_log_message_bytes"});
}

absl::Status CheckLogEntries(absl::string_view field, const RepeatedPtrField<v1::LogEntry>& entries,
                             const Limits& limits) {
  return CheckEach(field, entries,
                   [&](const v1::LogEntry& entry) { return CheckLogEntry(entry, limits); });
}

// The log entries a batch request carries inside its elements, all together.
template <typename Elements>
absl::Status CheckLogTotal(absl::string_view field, const Elements& elements,
                           const Limits& limits) {
  size_t total = 0;
  for (const auto& element : elements) total += element.logs_size();
  return CheckSize(field, total, Batch(limits, 0), "log entries in total");
}

absl::Status CheckHeldLease(const v1::HeldLease& lease, const Limits& limits) {
  CKPT_RETURN_IF_ERROR(CheckStep("step", lease.step()));
  CKPT_RETURN_IF_ERROR(ValidateItemKey("key", lease.key(), limits));
  CKPT_RETURN_IF_ERROR(CheckLogEntries("logs", lease.logs(), limits));
  if (!lease.has_cursor()) return absl::OkStatus();
  return CheckBytes("cursor", lease.cursor(), {0, limits.max_cursor_bytes, "max_cursor_bytes"});
}

absl::Status CheckPageToken(absl::string_view page_token) {
  return CheckBytes("page_token", page_token, {0, kMaxPageTokenBytes});
}

absl::Status CheckStateName(absl::string_view name) {
  return CheckKeyBytes("name", name, {1, kMaxStateNameBytes});
}

// The item RPCs address a job's step.
absl::Status CheckJobStep(absl::string_view job_id, absl::string_view step) {
  CKPT_RETURN_IF_ERROR(ValidateJobId("job_id", job_id));
  return CheckStep("step", step);
}

// CompleteItems and FailItems: a step's results, optionally credited to a worker.
template <typename Request, typename CheckRest>
absl::Status CheckRecordRequest(const Request& r, const Limits& limits, CheckRest check_rest) {
  CKPT_RETURN_IF_ERROR(CheckJobStep(r.job_id(), r.step()));
  CKPT_RETURN_IF_ERROR(CheckOptionalWorkerId("worker_id", r.worker_id()));
  return CheckKeyedBatch(r.items(), limits, check_rest);
}

// Pause, Stop and Finish: a job and a reason.
absl::Status CheckJobAndReason(absl::string_view job_id, absl::string_view reason) {
  CKPT_RETURN_IF_ERROR(ValidateJobId("job_id", job_id));
  return CheckBytes("reason", reason, {0, kMaxReasonBytes});
}

// ---- CreateJob's parts ----

absl::Status CheckJobTexts(const v1::CreateJobRequest& r) {
  CKPT_RETURN_IF_ERROR(CheckBytes("display_name", r.display_name(), {0, kMaxDisplayNameBytes}));
  CKPT_RETURN_IF_ERROR(CheckBytes("config", r.config(), {0, kMaxConfigBytes}));
  CKPT_RETURN_IF_ERROR(CheckBytes("fingerprint", r.fingerprint(), {0, kMaxFingerprintBytes}));
  CKPT_RETURN_IF_ERROR(CheckStringMap("labels", r.labels(), kLabels));
  return CheckStringMap("params", r.params(), kParams);
}

absl::Status CheckSteps(const RepeatedPtrField<std::string>& steps) {
  CKPT_RETURN_IF_ERROR(CheckSize("steps", steps.size(), {0, kMaxSteps}, "entries"));
  absl::flat_hash_map<absl::string_view, int> seen;
  for (int i = 0; i < steps.size(); ++i) {
    CKPT_RETURN_IF_ERROR(NestAt("steps", i, ValidateStepName("", steps[i])));
    const auto [it, inserted] = seen.try_emplace(steps[i], i);
    if (!inserted) {
      return Invalid(absl::StrCat("steps[", i, "]"), "repeats steps[", it->second, "] \"", steps[i],
                     "\"");
    }
  }
  return absl::OkStatus();
}

absl::Status CheckFailureBudget(const v1::FailureBudget& budget) {
  const double fraction = budget.max_failed_fraction();
  if (!(fraction >= 0 && fraction <= 1)) {  // NaN fails both comparisons
    return Invalid("failure_budget.max_failed_fraction", "must be in [0, 1] (0: no limit), got ",
                   fraction);
  }
  return absl::OkStatus();
}

absl::Status CheckJobPolicy(const v1::CreateJobRequest& r) {
  if (r.has_lease_timeout()) {
    CKPT_RETURN_IF_ERROR(
        CheckDuration("lease_timeout", r.lease_timeout(), absl::Seconds(1), absl::Hours(24)));
  }
  if (r.has_max_run_time()) {
    CKPT_RETURN_IF_ERROR(
        CheckDuration("max_run_time", r.max_run_time(), absl::ZeroDuration(), absl::Hours(7 * 24)));
  }
  if (r.max_attempts() > kMaxAttempts) {
    return Invalid("max_attempts", "must be 0 (the default, 3) or 1..", kMaxAttempts, ", got ",
                   r.max_attempts());
  }
  if (r.has_retention()) CKPT_RETURN_IF_ERROR(ValidateRetention("retention", r.retention()));
  return CheckFailureBudget(r.failure_budget());
}

// DeleteJobs.statuses: known, distinct enough to mean something, and RUNNING or PAUSED
// only when asked for in so many words.
absl::Status CheckDeleteStatuses(const v1::DeleteJobsRequest& r) {
  constexpr size_t kStatuses = 5;
  CKPT_RETURN_IF_ERROR(CheckSize("statuses", r.statuses_size(), {0, kStatuses}, "entries"));
  return CheckEach("statuses", r.statuses(), [&](int status) -> absl::Status {
    CKPT_RETURN_IF_ERROR(CheckEnum("", status, v1::JobStatus_IsValid));
    if (status == v1::JOB_STATUS_UNSPECIFIED) {
      return Invalid("",
                     "JOB_STATUS_UNSPECIFIED is not a status (leave statuses empty for "
                     "COMPLETED, FAILED and STOPPED)");
    }
    if ((status == v1::JOB_STATUS_RUNNING || status == v1::JOB_STATUS_PAUSED) &&
        !r.include_unfinished()) {
      return Invalid("", v1::JobStatus_Name(static_cast<v1::JobStatus>(status)),
                     " jobs may still be running a pipeline: deleting them needs "
                     "include_unfinished");
    }
    return absl::OkStatus();
  });
}

}  // namespace

// ---- Exported building blocks ----

absl::Status ValidateRetention(absl::string_view field, const Duration& retention) {
  CKPT_RETURN_IF_ERROR(CheckNonNegative(field, retention));
  const absl::Duration value =
      absl::Seconds(retention.seconds()) + absl::Nanoseconds(retention.nanos());
  if (value == absl::ZeroDuration() ||
      (value >= absl::Seconds(1) && value <= absl::Hours(24 * kMaxRetentionDays))) {
    return absl::OkStatus();
  }
  return Invalid(field, "must be 0 (kept until deleted) or 1s..", kMaxRetentionDays, " days, got ",
                 absl::FormatDuration(value));
}

absl::Status ValidateJobId(absl::string_view field, absl::string_view job_id) {
  return CheckToken(field, job_id, kMaxJobIdChars, kIdAlphabet);
}

absl::Status ValidateStepName(absl::string_view field, absl::string_view step) {
  return CheckToken(field, step, kMaxStepChars, kIdAlphabet);
}

absl::Status ValidateItemKey(absl::string_view field, const v1::ItemKey& key,
                             const Limits& limits) {
  switch (key.key_case()) {
    case v1::ItemKey::kIndex:
      return Nest(field, CheckIndex("index", key.index()));
    case v1::ItemKey::kName:
      return Nest(field, CheckKeyBytes("name", key.name(), KeyBytes(limits)));
    case v1::ItemKey::KEY_NOT_SET:
      break;
  }
  return Invalid(field, "must set index or name");
}

// ---- Jobs ----

absl::Status ValidateRequest(const v1::CreateJobRequest& r, const Limits& /*limits*/) {
  if (!r.job_id().empty()) CKPT_RETURN_IF_ERROR(ValidateJobId("job_id", r.job_id()));
  CKPT_RETURN_IF_ERROR(CheckJobTexts(r));
  CKPT_RETURN_IF_ERROR(CheckSteps(r.steps()));
  return CheckJobPolicy(r);
}

absl::Status ValidateRequest(const v1::GetJobRequest& r, const Limits& /*limits*/) {
  return ValidateJobId("job_id", r.job_id());
}

absl::Status ValidateRequest(const v1::ListJobsRequest& r, const Limits& /*limits*/) {
  CKPT_RETURN_IF_ERROR(CheckEnum("status", r.status(), v1::JobStatus_IsValid));
  CKPT_RETURN_IF_ERROR(CheckStringMap("labels", r.labels(), kLabels));
  CKPT_RETURN_IF_ERROR(CheckBytes("name_prefix", r.name_prefix(), {0, kMaxNamePrefixBytes}));
  CKPT_RETURN_IF_ERROR(CheckSize("limit", r.limit(), {0, kMaxListJobs}, "jobs"));
  return CheckPageToken(r.page_token());
}

absl::Status ValidateRequest(const v1::UpdateJobRequest& r, const Limits& /*limits*/) {
  CKPT_RETURN_IF_ERROR(ValidateJobId("job_id", r.job_id()));
  if (r.has_stage()) {
    CKPT_RETURN_IF_ERROR(CheckBytes("stage", r.stage(), {0, kMaxStageBytes}));
  }
  CKPT_RETURN_IF_ERROR(CheckStringMap("set_labels", r.set_labels(), kLabels));
  CKPT_RETURN_IF_ERROR(CheckMapKeys("remove_labels", r.remove_labels(), kLabels));
  CKPT_RETURN_IF_ERROR(CheckStringMap("set_params", r.set_params(), kParams));
  CKPT_RETURN_IF_ERROR(CheckMapKeys("remove_params", r.remove_params(), kParams));
  if (r.has_retention()) CKPT_RETURN_IF_ERROR(ValidateRetention("retention", r.retention()));
  return CheckFailureBudget(r.failure_budget());
}

absl::Status ValidateRequest(const v1::PauseJobRequest& r, const Limits& /*limits*/) {
  return CheckJobAndReason(r.job_id(), r.reason());
}

absl::Status ValidateRequest(const v1::ResumeJobRequest& r, const Limits& /*limits*/) {
  return ValidateJobId("job_id", r.job_id());
}

absl::Status ValidateRequest(const v1::StopJobRequest& r, const Limits& /*limits*/) {
  return CheckJobAndReason(r.job_id(), r.reason());
}

absl::Status ValidateRequest(const v1::FinishJobRequest& r, const Limits& /*limits*/) {
  CKPT_RETURN_IF_ERROR(CheckJobAndReason(r.job_id(), r.reason()));
  CKPT_RETURN_IF_ERROR(CheckEnum("status", r.status(), v1::JobStatus_IsValid));
  if (r.status() == v1::JOB_STATUS_COMPLETED || r.status() == v1::JOB_STATUS_FAILED) {
    return absl::OkStatus();
  }
  return Invalid("status", "must be JOB_STATUS_COMPLETED or JOB_STATUS_FAILED, got ",
                 v1::JobStatus_Name(r.status()));
}

absl::Status ValidateRequest(const v1::ResetJobRequest& r, const Limits& /*limits*/) {
  return ValidateJobId("job_id", r.job_id());
}

absl::Status ValidateRequest(const v1::DeleteJobRequest& r, const Limits& /*limits*/) {
  return ValidateJobId("job_id", r.job_id());
}

// ---- Items ----

absl::Status ValidateRequest(const v1::AddItemsRequest& r, const Limits& limits) {
  CKPT_RETURN_IF_ERROR(CheckJobStep(r.job_id(), r.step()));
  const size_t total = r.names_size() + r.indices_size() + r.ranges_size();
  if (total == 0 && !r.seal()) {
    return Invalid("names/indices/ranges",
                   "nothing to add: give names, indices or ranges (or set seal)");
  }
  CKPT_RETURN_IF_ERROR(
      CheckSize("names/indices/ranges", total, Batch(limits, 0), "entries in total"));
  CKPT_RETURN_IF_ERROR(CheckEach("names", r.names(), [&](absl::string_view name) {
    return CheckKeyBytes("", name, KeyBytes(limits));
  }));
  CKPT_RETURN_IF_ERROR(
      CheckEach("indices", r.indices(), [](uint64_t index) { return CheckIndex("", index); }));
  return CheckEach("ranges", r.ranges(), CheckIndexRange);
}

absl::Status ValidateRequest(const v1::LeaseItemsRequest& r, const Limits& limits) {
  CKPT_RETURN_IF_ERROR(CheckJobStep(r.job_id(), r.step()));
  if (r.keys().empty()) {
    if (r.worker_id().empty()) {
      return Invalid("worker_id", "required unless keys are given");
    }
    CKPT_RETURN_IF_ERROR(CheckWorkerId("worker_id", r.worker_id()));
    return CheckSize("max_items", r.max_items(), Batch(limits, 1), "items");
  }
  CKPT_RETURN_IF_ERROR(CheckOptionalWorkerId("worker_id", r.worker_id()));
  CKPT_RETURN_IF_ERROR(CheckKeyList("keys", r.keys(), limits));
  return CheckDistinctKeys("keys", "", r.keys(),
                           [](const v1::ItemKey& key) -> const v1::ItemKey& { return key; });
}

// CompleteItems.lease_next: a worker's next lease, after completions of its leases.
absl::Status CheckLeaseNext(const v1::CompleteItemsRequest& r, const Limits& limits) {
  if (r.worker_id().empty()) return Invalid("worker_id", "required with lease_next");
  CKPT_RETURN_IF_ERROR(
      CheckSize("lease_next.max_items", r.lease_next().max_items(), Batch(limits, 1), "items"));
  for (int i = 0; i < r.items_size(); ++i) {
    if (r.items(i).lease_token() == 0) {
      return Invalid(absl::StrCat("items[", i, "].lease_token"),
                     "required with lease_next (record-mode completions lease with LeaseItems)");
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateRequest(const v1::CompleteItemsRequest& r, const Limits& limits) {
  CKPT_RETURN_IF_ERROR(CheckRecordRequest(r, limits, [&](const v1::Completion& item) {
    CKPT_RETURN_IF_ERROR(Nest("result", CheckItemResult(item.result(), limits)));
    return CheckLogEntries("logs", item.logs(), limits);
  }));
  CKPT_RETURN_IF_ERROR(CheckLogTotal("items[].logs", r.items(), limits));
  return r.has_lease_next() ? CheckLeaseNext(r, limits) : absl::OkStatus();
}

absl::Status ValidateRequest(const v1::FailItemsRequest& r, const Limits& limits) {
  CKPT_RETURN_IF_ERROR(CheckRecordRequest(r, limits, [&](const v1::Failure& item) {
    CKPT_RETURN_IF_ERROR(Nest("error", CheckItemError(item.error())));
    return CheckLogEntries("logs", item.logs(), limits);
  }));
  return CheckLogTotal("items[].logs", r.items(), limits);
}

absl::Status ValidateRequest(const v1::GetItemRequest& r, const Limits& limits) {
  CKPT_RETURN_IF_ERROR(CheckJobStep(r.job_id(), r.step()));
  return ValidateItemKey("key", r.key(), limits);
}

absl::Status ValidateRequest(const v1::ListItemsRequest& r, const Limits& limits) {
  CKPT_RETURN_IF_ERROR(CheckJobStep(r.job_id(), r.step()));
  CKPT_RETURN_IF_ERROR(CheckEnum("state", r.state(), v1::ItemState_IsValid));
  CKPT_RETURN_IF_ERROR(CheckSize("limit", r.limit(), Batch(limits, 0), "items"));
  CKPT_RETURN_IF_ERROR(CheckPageToken(r.page_token()));
  CKPT_RETURN_IF_ERROR(CheckSize("error_groups", r.error_groups(), {0, kMaxErrorGroups}, "groups"));
  CKPT_RETURN_IF_ERROR(CheckEnum("order", r.order(), v1::ItemOrder_IsValid));
  if (r.has_completed_after()) {
    CKPT_RETURN_IF_ERROR(CheckTimestamp("completed_after", r.completed_after()));
  }
  const bool by_completion = r.order() != v1::ITEM_ORDER_UNSPECIFIED || r.has_completed_after();
  if (by_completion && r.state() != v1::ITEM_STATE_UNSPECIFIED &&
      r.state() != v1::ITEM_STATE_COMPLETED) {
    return Invalid("state",
                   "must be ITEM_STATE_COMPLETED or unset with a completion order or "
                   "completed_after, got ",
                   v1::ItemState_Name(r.state()));
  }
  return absl::OkStatus();
}

absl::Status ValidateRequest(const v1::ResetItemsRequest& r, const Limits& limits) {
  CKPT_RETURN_IF_ERROR(CheckJobStep(r.job_id(), r.step()));
  CKPT_RETURN_IF_ERROR(CheckEnum("state", r.state(), v1::ItemState_IsValid));
  CKPT_RETURN_IF_ERROR(CheckKeyList("keys", r.keys(), limits));
  if (!r.keys().empty() && r.step().empty()) {
    return Invalid("step", "required when keys are given (empty means every step)");
  }
  CKPT_RETURN_IF_ERROR(CheckBytes("error_message", r.error_message(), {0, kMaxErrorMessageBytes}));
  if (!r.error_message().empty() && r.state() != v1::ITEM_STATE_UNSPECIFIED &&
      r.state() != v1::ITEM_STATE_FAILED) {
    return Invalid("error_message",
                   "matches FAILED items only; state must be "
                   "ITEM_STATE_FAILED or unspecified");
  }
  return CheckDistinctKeys("keys", "", r.keys(),
                           [](const v1::ItemKey& key) -> const v1::ItemKey& { return key; });
}

absl::Status ValidateRequest(const v1::FindOutputRequest& r, const Limits& limits) {
  return CheckKeyBytes("output_path", r.output_path(), KeyBytes(limits));
}

// ---- Workers ----

absl::Status ValidateRequest(const v1::RegisterWorkerRequest& r, const Limits& /*limits*/) {
  CKPT_RETURN_IF_ERROR(ValidateJobId("job_id", r.job_id()));
  CKPT_RETURN_IF_ERROR(CheckBytes("hostname", r.hostname(), {0, kMaxHostnameBytes}));
  CKPT_RETURN_IF_ERROR(CheckBytes("invocation_id", r.invocation_id(), {0, kMaxInvocationIdBytes}));
  return CheckStringMap("labels", r.labels(), kLabels);
}

absl::Status ValidateRequest(const v1::HeartbeatRequest& r, const Limits& limits) {
  CKPT_RETURN_IF_ERROR(ValidateJobId("job_id", r.job_id()));
  CKPT_RETURN_IF_ERROR(CheckWorkerId("worker_id", r.worker_id()));
  CKPT_RETURN_IF_ERROR(CheckSize("leases", r.leases_size(), Batch(limits, 0), "entries"));
  CKPT_RETURN_IF_ERROR(CheckEach("leases", r.leases(), [&](const v1::HeldLease& lease) {
    return CheckHeldLease(lease, limits);
  }));
  return CheckLogTotal("leases[].logs", r.leases(), limits);
}

absl::Status ValidateRequest(const v1::ListWorkersRequest& r, const Limits& /*limits*/) {
  return ValidateJobId("job_id", r.job_id());
}

absl::Status ValidateRequest(const v1::UnregisterWorkerRequest& r, const Limits& /*limits*/) {
  CKPT_RETURN_IF_ERROR(ValidateJobId("job_id", r.job_id()));
  return CheckWorkerId("worker_id", r.worker_id());
}

// ---- State blobs and progress ----

absl::Status ValidateRequest(const v1::PutStateRequest& r, const Limits& limits) {
  CKPT_RETURN_IF_ERROR(ValidateJobId("job_id", r.job_id()));
  CKPT_RETURN_IF_ERROR(CheckStateName(r.name()));
  return CheckBytes("value", r.value(), {0, limits.max_state_bytes, "max_state_bytes"});
}

absl::Status ValidateRequest(const v1::GetStateRequest& r, const Limits& /*limits*/) {
  CKPT_RETURN_IF_ERROR(ValidateJobId("job_id", r.job_id()));
  return CheckStateName(r.name());
}

absl::Status ValidateRequest(const v1::ListStatesRequest& r, const Limits& /*limits*/) {
  CKPT_RETURN_IF_ERROR(ValidateJobId("job_id", r.job_id()));
  return CheckPageToken(r.page_token());
}

// ---- Logs ----

absl::Status ValidateRequest(const v1::WriteLogsRequest& r, const Limits& limits) {
  CKPT_RETURN_IF_ERROR(ValidateJobId("job_id", r.job_id()));
  CKPT_RETURN_IF_ERROR(CheckOptionalWorkerId("worker_id", r.worker_id()));
  CKPT_RETURN_IF_ERROR(CheckSize("items", r.items_size(), Batch(limits, 1), "entries"));
  size_t total = 0;
  CKPT_RETURN_IF_ERROR(CheckEach("items", r.items(), [&](const v1::ItemLogs& item) {
    CKPT_RETURN_IF_ERROR(CheckStep("step", item.step()));
    if (item.has_key()) CKPT_RETURN_IF_ERROR(ValidateItemKey("key", item.key(), limits));
    total += item.entries_size();
    return CheckLogEntries("entries", item.entries(), limits);
  }));
  return CheckSize("items[].entries", total, Batch(limits, 1), "log entries in total");
}

absl::Status ValidateRequest(const v1::ListLogsRequest& r, const Limits& limits) {
  CKPT_RETURN_IF_ERROR(CheckJobStep(r.job_id(), r.step()));
  if (r.has_key()) CKPT_RETURN_IF_ERROR(ValidateItemKey("key", r.key(), limits));
  CKPT_RETURN_IF_ERROR(CheckOptionalWorkerId("worker_id", r.worker_id()));
  CKPT_RETURN_IF_ERROR(CheckEnum("min_level", r.min_level(), v1::LogLevel_IsValid));
  CKPT_RETURN_IF_ERROR(CheckSize("limit", r.limit(), {0, kMaxListLogs}, "entries"));
  return CheckPageToken(r.page_token());
}

// ---- Administration ----

absl::Status ValidateRequest(const v1::BackupStoreRequest& r, const Limits& /*limits*/) {
  CKPT_RETURN_IF_ERROR(CheckKeyBytes("dir", r.dir(), {1, kMaxBackupDirBytes}));
  if (r.dir()[0] == '/') return absl::OkStatus();
  return Invalid("dir", "must be an absolute path (a directory on ckptd's machine), got \"",
                 absl::CHexEscape(r.dir().substr(0, 256)), "\"");
}

absl::Status ValidateRequest(const v1::DeleteJobsRequest& r, const Limits& /*limits*/) {
  CKPT_RETURN_IF_ERROR(CheckDeleteStatuses(r));
  if (r.has_finished_before()) {
    CKPT_RETURN_IF_ERROR(CheckTimestamp("finished_before", r.finished_before()));
  }
  CKPT_RETURN_IF_ERROR(CheckStringMap("labels", r.labels(), kLabels));
  if (!r.job_id_prefix().empty()) {
    CKPT_RETURN_IF_ERROR(
        CheckToken("job_id_prefix", r.job_id_prefix(), kMaxJobIdPrefixBytes, kIdAlphabet));
  }
  CKPT_RETURN_IF_ERROR(CheckSize("limit", r.limit(), {0, kMaxDeleteJobs}, "jobs"));
  return CheckPageToken(r.page_token());
}

absl::Status ValidateRequest(const v1::WatchJobRequest& r, const Limits& /*limits*/) {
  CKPT_RETURN_IF_ERROR(ValidateJobId("job_id", r.job_id()));
  if (!r.has_min_interval()) return absl::OkStatus();
  return CheckNonNegative("min_interval", r.min_interval());
}

}  // namespace ckpt
