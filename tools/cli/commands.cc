// The command table, dispatch and help.
#include "tools/cli/commands.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "service/common/status_macros.h"

namespace ckpt {
namespace cli {
namespace {

FlagSpec Flags(std::set<std::string> with_value, std::set<std::string> boolean) {
  boolean.insert("json");
  return FlagSpec{std::move(with_value), std::move(boolean)};
}

}  // namespace

const std::vector<Command>& Commands() {
  static const auto* commands = new std::vector<Command>{
      {"jobs", "jobs [--status S] [--label k=v]... [--prefix P] [--limit N]",
       "list jobs, newest first", Flags({"status", "label", "prefix", "limit"}, {}), 0, 0, &Jobs},
      {"status", "status JOB", "progress, steps, errors and workers of a job", Flags({}, {}), 1, 1,
       &Status},
      {"watch", "watch JOB [--interval MS]", "a live progress bar until the job finishes",
       Flags({"interval"}, {}), 1, 1, &Watch},
      {"pause", "pause JOB [--reason R]", "workers finish their item, then wait",
       Flags({"reason"}, {}), 1, 1, &Pause},
      {"resume", "resume JOB [--max-failed-items N] [--max-failed-fraction F]",
       "a paused or failed job runs again, keeping everything (flags: raise its failure budget "
       "first)",
       Flags({"max-failed-items", "max-failed-fraction"}, {}), 1, 1, &Resume},
      {"stop", "stop JOB [--reason R]", "workers finish their item, then exit; for good",
       Flags({"reason"}, {}), 1, 1, &Stop},
      {"reset", "reset JOB [--remove-items]", "clear all progress (and items)",
       Flags({}, {"remove-items"}), 1, 1, &Reset},
      {"delete", "delete JOB", "remove the job and everything in it", Flags({}, {}), 1, 1, &Delete},
      {"retry", "retry JOB [--step S] [--error MESSAGE] [--dry-run]",
       "failed items (of one error group) back to pending", Flags({"step", "error"}, {"dry-run"}),
       1, 1, &Retry},
      {"items",
       "items JOB [--state S] [--step S] [--limit N] [--page-token T] [--newest-first] "
       "[--completed-after TIME]",
       "list items in key order; or completed ones newest first, or completed after TIME "
       "(oldest first; TIME: RFC 3339 or an age, 10m)",
       Flags({"state", "step", "limit", "page-token", "completed-after"}, {"newest-first"}), 1, 1,
       &Items},
      {"item", "item JOB KEY [--step S] [--name]", "one item (--name: KEY is a name, not an index)",
       Flags({"step"}, {"name"}), 2, 2, &Item},
      {"workers", "workers JOB [--all]", "workers and their last heartbeat (--all: exited too)",
       Flags({}, {"all"}), 1, 1, &Workers},
      {"state", "state get|put|list JOB [NAME [FILE]] [--expected-version N]",
       "read or write a state blob (put reads stdin without FILE)", Flags({"expected-version"}, {}),
       2, 4, &State},
      {"find-output", "find-output PATH", "the item that recorded an output path", Flags({}, {}), 1,
       1, &FindOutput},
      {"open", "open [JOB] [--http URL]",
       "the dashboard's address (opened where a browser is); URL: --http, $CKPT_HTTP, else "
       "the --server host on port 7701",
       Flags({"http"}, {}), 0, 1, &Open},
      {"logs",
       "logs JOB [--item KEY [--name]] [--step S] [--worker W] [--level L] [--limit N] [--all] "
       "[--follow [--interval MS]]",
       "log entries, the newest N (default 100) or --all, oldest first; --follow: then what "
       "is written next",
       Flags({"item", "step", "worker", "level", "limit", "interval"}, {"name", "all", "follow"}),
       1, 1, &Logs},
      {"export", "export JOB", "the job, its states and items as JSON Lines on stdout",
       Flags({}, {}), 1, 1, &Export},
      {"import", "import FILE [--format F] [--job ID] [--run N]",
       "a job from a ckpt export (FILE -: stdin), a physicsnemo-curator database, a "
       "pipeline_checkpoint.json or a progressive-saving checkpoint",
       Flags({"format", "job", "run"}, {}), 1, 1, &Import},
      {"backup", "backup DIR",
       "a consistent copy of the whole store into DIR, a new absolute path on ckptd's machine",
       Flags({}, {}), 1, 1, &Backup},
      {"gc",
       "gc [--finished-before TIME] [--status S]... [--label k=v]... [--prefix P] "
       "[--include-unfinished] [--dry-run] [--limit N]",
       "delete finished jobs that match (TIME: RFC 3339 or an age, 30d; S: completed, failed, "
       "stopped), N per call (default 100); --dry-run only lists them",
       Flags({"finished-before", "status", "label", "prefix", "limit"},
             {"include-unfinished", "dry-run"}),
       0, 0, &Gc},
  };
  return *commands;
}

std::string Usage() {
  std::string usage =
      "ckpt: the operator's view of ckpt jobs\n\n"
      "usage: ckpt [--server HOST:PORT] [--tls-ca FILE [--tls-cert FILE --tls-key FILE]] "
      "[--token TOKEN] COMMAND [ARGS] [--json]\n\n"
      "commands:\n";
  for (const Command& command : Commands()) {
    absl::StrAppendFormat(&usage, "  %-60s %s\n", command.usage, command.summary);
  }
  absl::StrAppend(&usage,
                  "\n--server defaults to $CKPT_SERVER, else 127.0.0.1:7700. --json prints "
                  "results as JSON for scripts.\n"
                  "TLS: --tls-ca (default $CKPT_TLS_CA) trusts ckptd's CA, --tls uses the "
                  "system's CAs; mutual TLS adds --tls-cert and --tls-key ($CKPT_TLS_CERT, "
                  "$CKPT_TLS_KEY). --token (default $CKPT_TOKEN) is sent with every call; "
                  "prefer the variable, since other users can read a command line.\n"
                  "exit codes: 0 ok, 1 error, 2 usage, 3 not found\n");
  return usage;
}

absl::Status RunCommand(Context ctx, const std::vector<std::string>& argv) {
  if (argv.empty()) return UsageError("no command given");
  const Command* command = nullptr;
  for (const Command& c : Commands()) {
    if (c.name == argv[0]) command = &c;
  }
  if (command == nullptr) {
    return UsageError(absl::StrCat("unknown command \"", argv[0], "\" (ckpt --help lists them)"));
  }
  absl::StatusOr<Args> args =
      ParseArgs(std::vector<std::string>(argv.begin() + 1, argv.end()), command->flags);
  const std::string usage = absl::StrCat("usage: ckpt ", command->usage, " [--json]");
  if (!args.ok()) return UsageError(absl::StrCat(args.status().message(), "\n", usage));
  if (args->positional.size() < command->min_positional ||
      args->positional.size() > command->max_positional) {
    return UsageError(absl::StrCat(command->name, " takes ", command->min_positional,
                                   command->min_positional == command->max_positional
                                       ? ""
                                       : absl::StrCat(" to ", command->max_positional),
                                   " argument(s), got ", args->positional.size(), "\n", usage));
  }
  ctx.json = ctx.json || args->Has("json");
  absl::Status status = command->run(ctx, *args);
  if (IsUsageError(status)) {
    return UsageError(absl::StrCat(status.message(), "\n", usage));
  }
  return status;
}

}  // namespace cli
}  // namespace ckpt
