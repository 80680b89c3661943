// ckpt: the command-line tool for operators. See Usage() in commands.cc.
#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "client/client.h"
#include "service/common/clock.h"
#include "tools/cli/commands.h"

namespace {

enum ExitCode { kOk = 0, kError = 1, kUsage = 2, kNotFound = 3 };

// Ctrl-C during `watch`: end the redrawn line and reset colours, so the prompt comes
// back clean.
void OnInterrupt(int) {
  static const char kRestore[] = "\x1b[0m\n";
  if (isatty(STDOUT_FILENO)) {
    (void)!write(STDOUT_FILENO, kRestore, sizeof(kRestore) - 1);
  }
  _exit(130);
}

bool IsTerminal() {
  const char* term = std::getenv("TERM");
  return isatty(STDOUT_FILENO) && std::getenv("NO_COLOR") == nullptr &&
         (term == nullptr || std::strcmp(term, "dumb") != 0);
}

int Main(int argc, char** argv) {
  std::string server;
  std::vector<std::string> args;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--server" && i + 1 < argc) {
      server = argv[++i];
    } else if (absl::StartsWith(arg, "--server=")) {
      server = arg.substr(9);
    } else if (arg == "-h" || arg == "--help" || arg == "help") {
      std::cout << ckpt::cli::Usage();
      return kOk;
    } else {
      args.push_back(arg);
    }
  }
  if (args.empty()) {
    std::cerr << ckpt::cli::Usage();
    return kUsage;
  }

  // An operator at a prompt wants an answer in seconds, not two minutes of retries.
  ckpt::ClientOptions options;
  options.target = server;
  options.call_timeout = absl::Seconds(30);
  options.retry.max_attempts = 3;
  options.retry.initial_backoff = absl::Milliseconds(100);
  auto client = ckpt::Client::Connect(options);
  if (!client.ok()) {
    std::cerr << "ckpt: " << client.status().message() << "\n";
    return kUsage;
  }

  signal(SIGINT, OnInterrupt);
  ckpt::cli::Context ctx;
  ctx.client = client->get();
  ctx.out = &std::cout;
  ctx.in = &std::cin;
  ctx.terminal = IsTerminal();
  ctx.now = ckpt::Clock::Real()->Now();
  const absl::Status status = ckpt::cli::RunCommand(ctx, args);
  std::cout.flush();
  if (status.ok()) return kOk;
  if (ckpt::cli::IsUsageError(status)) {
    std::cerr << "ckpt: " << status.message() << "\n";
    return kUsage;
  }
  if (absl::IsUnavailable(status) || absl::IsDeadlineExceeded(status)) {
    std::cerr << "ckpt: cannot reach ckptd at " << (*client)->target()
              << ": is it running? Start it with ./tools/serve.sh, or point --server or "
                 "$CKPT_SERVER at it ("
              << status.message() << ")\n";
    return kError;
  }
  std::cerr << "ckpt: " << status.message() << "\n";
  return absl::IsNotFound(status) ? kNotFound : kError;
}

}  // namespace

int main(int argc, char** argv) { return Main(argc, argv); }
