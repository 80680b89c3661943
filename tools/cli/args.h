// Command-line parsing for `ckpt`: positional arguments and --flags, checked against what
// each command accepts, so every mistake is a usage error that names the argument.
#ifndef CKPT_TOOLS_CLI_ARGS_H_
#define CKPT_TOOLS_CLI_ARGS_H_

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "ckpt/v1/checkpoint.pb.h"

namespace ckpt {
namespace cli {

// A usage mistake (INVALID_ARGUMENT, exit 2), told apart from the server's
// INVALID_ARGUMENT (exit 1) by a payload.
absl::Status UsageError(absl::string_view message);
bool IsUsageError(const absl::Status& status);

// Which flags a command takes: those with a value (--limit 5, --limit=5, repeatable:
// the last wins except where a command reads all) and booleans (--json).
struct FlagSpec {
  std::set<std::string> with_value;
  std::set<std::string> boolean;
};

struct Args {
  std::vector<std::string> positional;
  std::map<std::string, std::vector<std::string>> values;  // --name value, in order
  std::set<std::string> booleans;                          // --name given

  bool Has(absl::string_view name) const;
  // The last value of --name, or `fallback`.
  std::string Get(absl::string_view name, absl::string_view fallback = "") const;
  // Every value of --name, in order.
  std::vector<std::string> All(absl::string_view name) const;
  // --name as a number in [min, max]; a UsageError naming the flag otherwise.
  absl::StatusOr<uint64_t> GetInt(absl::string_view name, uint64_t fallback, uint64_t min,
                                  uint64_t max) const;
  // --name as a time: RFC 3339 ("2025-12-14T20:43:00Z") or an age before `now` ("90s",
  // "10m", "2h", "30d"); nullopt when not given. A UsageError naming the flag otherwise.
  absl::StatusOr<std::optional<absl::Time>> GetTime(absl::string_view name, absl::Time now) const;
  // Every --name as a job status ("completed", any case), in order; a UsageError naming
  // the flag for anything else.
  absl::StatusOr<std::vector<v1::JobStatus>> GetJobStatuses(absl::string_view name) const;
  // Every --name as key=value; a UsageError for one without "=" or a key.
  absl::StatusOr<std::map<std::string, std::string>> GetLabels(absl::string_view name) const;
};

// Parses `argv` (without the program and command names). A UsageError for a flag the
// spec does not have, a missing value, or a boolean given a value. "--" ends flags.
absl::StatusOr<Args> ParseArgs(const std::vector<std::string>& argv, const FlagSpec& spec);

}  // namespace cli
}  // namespace ckpt

#endif  // CKPT_TOOLS_CLI_ARGS_H_
