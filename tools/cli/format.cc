#include "tools/cli/format.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "client/client.h"
#include "google/protobuf/util/json_util.h"

namespace ckpt {
namespace cli {
namespace {

// Characters of `text` a terminal shows: ANSI escapes left out, UTF-8 counted once.
size_t VisibleWidth(absl::string_view text) {
  size_t width = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\x1b') {
      while (i < text.size() && text[i] != 'm') ++i;
      continue;
    }
    if ((static_cast<unsigned char>(text[i]) & 0xC0) != 0x80) ++width;
  }
  return width;
}

absl::Duration FromProto(const google::protobuf::Duration& d) {
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
}

}  // namespace

std::string Paint(absl::string_view text, Color color, bool enabled) {
  if (!enabled || color == Color::kNone) return std::string(text);
  const char* code = "";
  switch (color) {
    case Color::kGreen:
      code = "32";
      break;
    case Color::kYellow:
      code = "33";
      break;
    case Color::kRed:
      code = "31";
      break;
    case Color::kBlue:
      code = "34";
      break;
    case Color::kGrey:
      code = "90";
      break;
    case Color::kBold:
      code = "1";
      break;
    case Color::kNone:
      break;
  }
  return absl::StrCat("\x1b[", code, "m", text, "\x1b[0m");
}

Table::Table(std::vector<std::string> headers) { rows_.push_back(std::move(headers)); }

void Table::AddRow(std::vector<std::string> cells) { rows_.push_back(std::move(cells)); }

void Table::Print(std::ostream& out) const {
  std::vector<size_t> widths;
  for (const auto& row : rows_) {
    if (widths.size() < row.size()) widths.resize(row.size(), 0);
    for (size_t c = 0; c < row.size(); ++c) widths[c] = std::max(widths[c], VisibleWidth(row[c]));
  }
  for (const auto& row : rows_) {
    std::string line;
    for (size_t c = 0; c < row.size(); ++c) {
      line += row[c];
      if (c + 1 < row.size()) line.append(widths[c] - VisibleWidth(row[c]) + 2, ' ');
    }
    out << line << "\n";
  }
}

std::string HumanDuration(absl::Duration d) {
  if (d <= absl::ZeroDuration()) return "-";
  const int64_t ms = absl::ToInt64Milliseconds(d);
  if (ms < 1000) return absl::StrCat(ms, "ms");
  if (ms < 60'000) return absl::StrFormat("%.1fs", ms / 1000.0);
  const int64_t s = ms / 1000;
  if (s < 3600) return absl::StrFormat("%dm%02ds", s / 60, s % 60);
  if (s < 86400) return absl::StrFormat("%dh%02dm", s / 3600, (s % 3600) / 60);
  return absl::StrFormat("%dd%02dh", s / 86400, (s % 86400) / 3600);
}

std::string FormatDuration(const google::protobuf::Duration& d) {
  return HumanDuration(FromProto(d));
}

std::string FormatTime(const google::protobuf::Timestamp& t, absl::Time now) {
  if (t.seconds() == 0 && t.nanos() == 0) return "-";
  const absl::Time time = absl::FromUnixSeconds(t.seconds()) + absl::Nanoseconds(t.nanos());
  const std::string when = absl::FormatTime("%Y-%m-%d %H:%M:%SZ", time, absl::UTCTimeZone());
  const absl::Duration ago = now - time;
  if (ago < absl::Seconds(1)) return absl::StrCat(when, " (just now)");
  return absl::StrCat(when, " (", HumanDuration(ago), " ago)");
}

std::string FormatRate(double per_second) {
  if (per_second <= 0) return "-";
  return per_second >= 100 ? absl::StrFormat("%.0f/s", per_second)
                           : absl::StrFormat("%.1f/s", per_second);
}

std::string ProgressBar(double percent, int width) {
  const double clamped = std::min(100.0, std::max(0.0, percent));
  const int filled = static_cast<int>(clamped / 100.0 * width + 0.5);
  return absl::StrFormat("[%s%s] %5.1f%%", std::string(filled, '#'),
                         std::string(width - filled, '.'), clamped);
}

std::string Name(v1::JobStatus status) {
  return std::string(absl::StripPrefix(v1::JobStatus_Name(status), "JOB_STATUS_"));
}

std::string Name(v1::ItemState state) {
  return std::string(absl::StripPrefix(v1::ItemState_Name(state), "ITEM_STATE_"));
}

std::string Name(v1::WorkerState state) {
  return std::string(absl::StripPrefix(v1::WorkerState_Name(state), "WORKER_STATE_"));
}

Color ColorOf(v1::JobStatus status) {
  switch (status) {
    case v1::JOB_STATUS_RUNNING:
      return Color::kGreen;
    case v1::JOB_STATUS_PAUSED:
      return Color::kYellow;
    case v1::JOB_STATUS_FAILED:
      return Color::kRed;
    case v1::JOB_STATUS_COMPLETED:
      return Color::kBlue;
    case v1::JOB_STATUS_STOPPED:
      return Color::kGrey;
    default:
      return Color::kNone;
  }
}

v1::ItemKey ParseKey(const std::string& text, bool force_name) {
  uint64_t index = 0;
  if (!force_name && absl::SimpleAtoi(text, &index) && absl::ascii_isdigit(text[0])) {
    return IndexKey(index);
  }
  return NameKey(text);
}

std::string KeyText(const v1::ItemKey& key) {
  return key.has_index() ? absl::StrCat(key.index()) : key.name();
}

std::string ToJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  std::string json;
  (void)google::protobuf::util::MessageToJsonString(message, &json, options);
  return json;
}

}  // namespace cli
}  // namespace ckpt
