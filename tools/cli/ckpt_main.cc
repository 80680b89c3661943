// ckpt: the command-line tool for operators. See Usage() in commands.cc.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>
#include <utility>
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

// Opens `url` with xdg-open where a desktop session is (a display); false elsewhere or
// if that fails.
bool OpenInBrowser(const std::string& url) {
  if (std::getenv("DISPLAY") == nullptr && std::getenv("WAYLAND_DISPLAY") == nullptr) {
    return false;
  }
  const pid_t pid = fork();
  if (pid < 0) return false;
  if (pid == 0) {
    const int null = open("/dev/null", O_WRONLY);
    if (null >= 0) {
      dup2(null, STDOUT_FILENO);
      dup2(null, STDERR_FILENO);
    }
    execlp("xdg-open", "xdg-open", url.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  int status = 0;
  return waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

bool IsTerminal() {
  const char* term = std::getenv("TERM");
  return isatty(STDOUT_FILENO) && std::getenv("NO_COLOR") == nullptr &&
         (term == nullptr || std::strcmp(term, "dumb") != 0);
}

// Takes argv[*i] (and its value) if it is a connection flag, anywhere on the line:
// --server, --tls-ca, --tls-cert, --tls-key, --token (as "--flag VALUE" or
// "--flag=VALUE"), or --tls.
bool TakeConnectionFlag(int argc, char** argv, int* i, ckpt::ClientOptions* options) {
  const std::string arg = argv[*i];
  if (arg == "--tls") {
    options->tls = true;
    return true;
  }
  for (const auto& [name, value] : {std::make_pair("--server", &options->target),
                                    std::make_pair("--tls-ca", &options->tls_ca_file),
                                    std::make_pair("--tls-cert", &options->tls_cert_file),
                                    std::make_pair("--tls-key", &options->tls_key_file),
                                    std::make_pair("--token", &options->token)}) {
    if (arg == name && *i + 1 < argc) {
      *value = argv[++*i];
      return true;
    }
    if (absl::StartsWith(arg, absl::StrCat(name, "="))) {
      *value = arg.substr(std::strlen(name) + 1);
      return true;
    }
  }
  return false;
}

int Main(int argc, char** argv) {
  // An operator at a prompt wants an answer in seconds, not two minutes of retries.
  ckpt::ClientOptions options;
  options.call_timeout = absl::Seconds(30);
  options.retry.max_attempts = 3;
  options.retry.initial_backoff = absl::Milliseconds(100);
  std::vector<std::string> args;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (TakeConnectionFlag(argc, argv, &i, &options)) {
      continue;
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
  if (const char* http = std::getenv("CKPT_HTTP")) ctx.http_env = http;
  ctx.open_url = OpenInBrowser;
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
                 "$CKPT_SERVER at it; if it serves TLS, give --tls-ca (and for mutual TLS "
                 "--tls-cert and --tls-key) ("
              << status.message() << ")\n";
    return kError;
  }
  std::cerr << "ckpt: " << status.message() << "\n";
  return absl::IsNotFound(status) ? kNotFound : kError;
}

}  // namespace

int main(int argc, char** argv) { return Main(argc, argv); }
