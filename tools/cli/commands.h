// The `ckpt` commands, one function each, so tests run them against a real ckptd and
// read what they print. ckpt_main.cc only parses argv, connects and maps the result to
// an exit code.
//
// Every command prints to ctx.out (results) and returns the server's status unchanged:
// NOT_FOUND for an unknown job, item or state (exit 3), anything else not OK exit 1. A
// usage mistake is INVALID_ARGUMENT from RunCommand before any call (exit 2).
#ifndef CKPT_TOOLS_CLI_COMMANDS_H_
#define CKPT_TOOLS_CLI_COMMANDS_H_

#include <functional>
#include <istream>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "client/client.h"
#include "tools/cli/args.h"

namespace ckpt {
namespace cli {

struct Context {
  Client* client = nullptr;
  std::ostream* out = nullptr;
  std::istream* in = nullptr;  // `state put` without FILE reads it
  bool json = false;           // --json: one JSON document per result, for scripts
  bool terminal = false;       // colour and live bars only on a terminal
  absl::Time now;              // for "3m ago"
  // `watch` calls this when it redraws, so tests can stop it (return false).
  std::function<bool(const v1::Job&)> on_watch_snapshot;
  // `open`: $CKPT_HTTP (the dashboard's base URL), and how to show a URL in a browser
  // (true if it did); null where there is none (tests, a server without a display).
  std::string http_env;
  std::function<bool(const std::string& url)> open_url;
  // `logs --follow` calls this before each poll; false stops it (tests). Unset: it
  // follows until interrupted.
  std::function<bool()> keep_following;
};

absl::Status Jobs(const Context& ctx, const Args& args);
absl::Status Status(const Context& ctx, const Args& args);
absl::Status Watch(const Context& ctx, const Args& args);
absl::Status Pause(const Context& ctx, const Args& args);
absl::Status Resume(const Context& ctx, const Args& args);
absl::Status Stop(const Context& ctx, const Args& args);
absl::Status Reset(const Context& ctx, const Args& args);
absl::Status Delete(const Context& ctx, const Args& args);
absl::Status Retry(const Context& ctx, const Args& args);
absl::Status Items(const Context& ctx, const Args& args);
absl::Status Item(const Context& ctx, const Args& args);
absl::Status Workers(const Context& ctx, const Args& args);
absl::Status State(const Context& ctx, const Args& args);
absl::Status FindOutput(const Context& ctx, const Args& args);
absl::Status Open(const Context& ctx, const Args& args);
absl::Status Logs(const Context& ctx, const Args& args);
absl::Status Export(const Context& ctx, const Args& args);
absl::Status Import(const Context& ctx, const Args& args);
absl::Status Backup(const Context& ctx, const Args& args);
absl::Status Gc(const Context& ctx, const Args& args);

// The command table: name, its flags, positional count and one usage line.
struct Command {
  std::string name;
  std::string usage;  // "status JOB [--json]"
  std::string summary;
  FlagSpec flags;
  size_t min_positional;
  size_t max_positional;
  absl::Status (*run)(const Context&, const Args&);
};
const std::vector<Command>& Commands();

// Finds argv[0] in Commands(), parses the rest and runs it. Usage errors name the
// mistake and the command's usage line.
absl::Status RunCommand(Context ctx, const std::vector<std::string>& argv);

// The full help text.
std::string Usage();

}  // namespace cli
}  // namespace ckpt

#endif  // CKPT_TOOLS_CLI_COMMANDS_H_
