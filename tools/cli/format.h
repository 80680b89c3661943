// How `ckpt` shows things to people: tables, durations, times, progress bars, colour;
// and to scripts: protobuf messages as JSON.
#ifndef CKPT_TOOLS_CLI_FORMAT_H_
#define CKPT_TOOLS_CLI_FORMAT_H_

#include <ostream>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "ckpt/v1/checkpoint.pb.h"
#include "google/protobuf/duration.pb.h"
#include "google/protobuf/message.h"
#include "google/protobuf/timestamp.pb.h"

namespace ckpt {
namespace cli {

enum class Color { kNone, kGreen, kYellow, kRed, kBlue, kGrey, kBold };

// `text` wrapped in the ANSI colour if `enabled`.
std::string Paint(absl::string_view text, Color color, bool enabled);

// Columns padded to their widest cell (ANSI colour codes do not count), two spaces apart.
class Table {
 public:
  explicit Table(std::vector<std::string> headers);
  void AddRow(std::vector<std::string> cells);
  void Print(std::ostream& out) const;
  bool empty() const { return rows_.empty(); }

 private:
  std::vector<std::vector<std::string>> rows_;  // rows_[0] is the header
};

// "850ms", "12.3s", "4m05s", "2h03m", "3d04h"; "-" for zero or negative.
std::string HumanDuration(absl::Duration d);
std::string FormatDuration(const google::protobuf::Duration& d);
// "2026-11-23 20:31:05Z (3m05s ago)"; "-" when unset.
std::string FormatTime(const google::protobuf::Timestamp& t, absl::Time now);
// "12.5/s"; "-" for 0.
std::string FormatRate(double per_second);
// "[##########..........]  50.0%" of `width` cells.
std::string ProgressBar(double percent, int width);

// Enum names as people say them: "RUNNING", "LEASED", "ACTIVE", "PAUSE".
std::string Name(v1::JobStatus status);
std::string Name(v1::ItemState state);
std::string Name(v1::WorkerState state);
// Green for RUNNING, yellow PAUSED, red FAILED, blue COMPLETED, grey STOPPED.
Color ColorOf(v1::JobStatus status);

// "7" or "doc-7.pdf".
std::string KeyText(const v1::ItemKey& key);
// The key a person typed: digits are an index unless `force_name` (--name).
v1::ItemKey ParseKey(const std::string& text, bool force_name);

// The message as JSON with proto field names and every field shown, for scripts.
std::string ToJson(const google::protobuf::Message& message);

}  // namespace cli
}  // namespace ckpt

#endif  // CKPT_TOOLS_CLI_FORMAT_H_
