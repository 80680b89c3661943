// ckpt logs: a job's log entries (or one item's), the newest or all, and following them.
#include <algorithm>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "service/common/status_macros.h"
#include "tools/cli/commands.h"
#include "tools/cli/format.h"

namespace ckpt {
namespace cli {
namespace {

// Entries per ListLogs call (its maximum).
constexpr uint32_t kPage = 1000;

absl::StatusOr<v1::LogLevel> ParseLevel(absl::string_view text) {
  v1::LogLevel level;
  if (v1::LogLevel_Parse(absl::StrCat("LOG_LEVEL_", absl::AsciiStrToUpper(text)), &level) &&
      level != v1::LOG_LEVEL_UNSPECIFIED) {
    return level;
  }
  return UsageError(absl::StrCat(
      "--level must be one of debug, info, warning, error, critical; not \"", text, "\""));
}

Color ColorOf(v1::LogLevel level) {
  switch (level) {
    case v1::LOG_LEVEL_DEBUG:
      return Color::kGrey;
    case v1::LOG_LEVEL_WARNING:
      return Color::kYellow;
    case v1::LOG_LEVEL_ERROR:
    case v1::LOG_LEVEL_CRITICAL:
      return Color::kRed;
    default:
      return Color::kNone;
  }
}

// "2025-12-14 20:43:01.123Z WARNING  parse/7  w-3  parse.pdf: slow page"
void PrintLine(const Context& ctx, const v1::LogLine& line) {
  if (ctx.json) {
    *ctx.out << ToJson(line) << "\n";
    return;
  }
  const v1::LogEntry& e = line.entry();
  const absl::Time time =
      absl::FromUnixSeconds(e.time().seconds()) + absl::Nanoseconds(e.time().nanos());
  const std::string level = v1::LogLevel_Name(e.level()).substr(10);  // after "LOG_LEVEL_"
  const std::string where =
      line.has_key() ? absl::StrCat(line.step(), "/", KeyText(line.key())) : "-";
  *ctx.out << absl::FormatTime("%Y-%m-%d %H:%M:%E3SZ", time, absl::UTCTimeZone()) << " "
           << Paint(absl::StrFormat("%-8s", level), ColorOf(e.level()), ctx.terminal) << " "
           << where << " " << (line.worker_id().empty() ? "-" : line.worker_id()) << " "
           << (e.logger().empty() ? "" : absl::StrCat(e.logger(), ": ")) << e.message() << "\n";
}

// The newest `limit` entries, printed oldest first. Returns the follow token.
absl::StatusOr<std::string> PrintNewest(const Context& ctx, v1::ListLogsRequest request,
                                        uint64_t limit) {
  request.set_newest_first(true);
  std::vector<v1::LogLine> newest;
  std::string follow;
  uint64_t dropped = 0;
  while (newest.size() < limit) {
    request.set_limit(static_cast<uint32_t>(std::min<uint64_t>(kPage, limit - newest.size())));
    CKPT_ASSIGN_OR_RETURN(v1::ListLogsResponse page, ctx.client->ListLogs(request));
    if (follow.empty()) follow = page.follow_token();
    dropped = page.dropped();
    for (v1::LogLine& line : *page.mutable_entries()) newest.push_back(std::move(line));
    if (page.next_page_token().empty()) break;
    request.set_page_token(page.next_page_token());
  }
  if (dropped > 0 && !ctx.json) {
    *ctx.out << "(" << dropped << " older entries were dropped by the log's bounds)\n";
  }
  for (auto line = newest.rbegin(); line != newest.rend(); ++line) PrintLine(ctx, *line);
  return follow;
}

// Every entry from `request`'s page token on, oldest first. Returns the follow token.
absl::StatusOr<std::string> PrintAll(const Context& ctx, v1::ListLogsRequest request) {
  request.set_limit(kPage);
  for (;;) {
    CKPT_ASSIGN_OR_RETURN(v1::ListLogsResponse page, ctx.client->ListLogs(request));
    for (const v1::LogLine& line : page.entries()) PrintLine(ctx, line);
    if (page.next_page_token().empty()) return page.follow_token();
    request.set_page_token(page.next_page_token());
  }
}

absl::StatusOr<v1::ListLogsRequest> LogsRequest(const Args& args) {
  v1::ListLogsRequest request;
  request.set_job_id(args.positional[0]);
  request.set_step(args.Get("step"));
  request.set_worker_id(args.Get("worker"));
  if (args.Has("item")) *request.mutable_key() = ParseKey(args.Get("item"), args.Has("name"));
  if (args.Has("level")) {
    CKPT_ASSIGN_OR_RETURN(const v1::LogLevel level, ParseLevel(args.Get("level")));
    request.set_min_level(level);
  }
  return request;
}

}  // namespace

absl::Status Logs(const Context& ctx, const Args& args) {
  CKPT_ASSIGN_OR_RETURN(v1::ListLogsRequest request, LogsRequest(args));
  CKPT_ASSIGN_OR_RETURN(const uint64_t limit, args.GetInt("limit", 100, 1, 1000000));
  CKPT_ASSIGN_OR_RETURN(const uint64_t interval_ms, args.GetInt("interval", 1000, 100, 3'600'000));
  CKPT_ASSIGN_OR_RETURN(std::string follow, args.Has("all") ? PrintAll(ctx, request)
                                                            : PrintNewest(ctx, request, limit));
  ctx.out->flush();
  if (!args.Has("follow")) return absl::OkStatus();
  // Poll for what is written next, until interrupted (or told to stop, in tests).
  while (!ctx.keep_following || ctx.keep_following()) {
    absl::SleepFor(absl::Milliseconds(interval_ms));
    request.set_page_token(follow);
    CKPT_ASSIGN_OR_RETURN(follow, PrintAll(ctx, request));
    ctx.out->flush();
  }
  return absl::OkStatus();
}

}  // namespace cli
}  // namespace ckpt
