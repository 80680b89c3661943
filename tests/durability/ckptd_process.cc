#include "tests/durability/ckptd_process.h"

#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace ckpt {
namespace testutil {
namespace {

// How long a child may take to say it is serving, or to exit: a bound for a hung
// child, never a pass/fail threshold.
constexpr absl::Duration kStartBound = absl::Seconds(120);

}  // namespace

std::string StoreFlag(const std::string& store) {
  return absl::StartsWith(store, "postgresql://") ? "--store=" + store : "--data_dir=" + store;
}

std::string Runfile(const std::string& path) {
  const char* root = std::getenv("TEST_SRCDIR");
  return absl::StrCat(root != nullptr ? root : ".", "/ckpt/", path);
}

// ---------------------------------------------------------------- CkptdProcess

namespace {

std::vector<std::string> CkptdArgv(const std::string& store,
                                   const std::vector<std::string>& flags) {
  // No HTTP unless a test asks (its --http_listen comes later and wins): tests run side
  // by side and would all want the default port.
  std::vector<std::string> argv = {Runfile("service/server/ckptd"), "--listen=127.0.0.1:0",
                                   "--http_listen=", StoreFlag(store)};
  argv.insert(argv.end(), flags.begin(), flags.end());
  return argv;
}

}  // namespace

absl::StatusOr<std::unique_ptr<CkptdProcess>> CkptdProcess::Start(
    const std::string& store, const std::vector<std::string>& flags, const ChildSetup& setup) {
  absl::StatusOr<ChildProcess> child = SpawnChild(CkptdArgv(store, flags), setup);
  if (!child.ok()) return child.status();
  ::close(child->stdin_fd);
  std::unique_ptr<CkptdProcess> process(
      new CkptdProcess(child->pid, std::move(child->stdout_), std::move(child->stderr_)));
  // "ckptd: serving on 127.0.0.1:PORT, data in DIR"
  absl::StatusOr<std::string> line = process->stderr_->AwaitLine("serving on ", kStartBound);
  if (!line.ok()) {
    process->Kill();
    process->Wait();
    return absl::FailedPreconditionError(
        absl::StrCat("ckptd did not start: ", line.status().message()));
  }
  const size_t at = line->find("serving on ") + std::strlen("serving on ");
  process->address_ = line->substr(at, line->find(',', at) - at);
  return process;
}

CkptdProcess::~CkptdProcess() {
  if (!reaped_) {
    Kill();
    Wait();
  }
}

namespace {

std::shared_ptr<grpc::Channel> NewChannel(const std::string& address) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
}

}  // namespace

std::unique_ptr<v1::Checkpoint::Stub> CkptdProcess::NewStub() const {
  return v1::Checkpoint::NewStub(NewChannel(address_));
}

absl::StatusOr<std::unique_ptr<v1::Checkpoint::Stub>> CkptdProcess::NewConnectedStub(
    const std::function<bool()>& stop_waiting) const {
  std::shared_ptr<grpc::Channel> channel = NewChannel(address_);
  const absl::Time deadline = absl::Now() + kStartBound;
  // A failed first attempt leaves the channel in TRANSIENT_FAILURE; it tries again after
  // its backoff, and WaitForConnected waits through that, a slice at a time.
  while (!channel->WaitForConnected(absl::ToChronoTime(absl::Now() + absl::Milliseconds(50)))) {
    if (stop_waiting && stop_waiting()) {
      return absl::CancelledError("stopped waiting for a connection to ckptd");
    }
    if (absl::Now() > deadline) {
      return absl::UnavailableError(absl::StrCat("no connection to ckptd at ", address_));
    }
  }
  return v1::Checkpoint::NewStub(channel);
}

void CkptdProcess::Kill() const { ::kill(pid_, SIGKILL); }

int CkptdProcess::Wait() {
  const int status = WaitFor(pid_);
  reaped_ = true;
  return status;
}

int CkptdProcess::Stop() {
  ::kill(pid_, SIGTERM);
  return Wait();
}

CkptdExit RunCkptdExpectingExit(const std::string& store, const std::vector<std::string>& flags) {
  CkptdExit result;
  absl::StatusOr<ChildProcess> child = SpawnChild(CkptdArgv(store, flags));
  if (!child.ok()) {
    result.stderr_text = std::string(child.status().message());
    return result;
  }
  ::close(child->stdin_fd);
  // NOT_FOUND: stderr ended without "serving on", i.e. ckptd exited, as expected.
  if (child->stderr_->AwaitLine("serving on ", kStartBound).status().code() !=
      absl::StatusCode::kNotFound) {
    ::kill(child->pid, SIGKILL);
  }
  while (::waitpid(child->pid, &result.wait_status, 0) < 0 && errno == EINTR) {
  }
  child->stdout_.reset();
  result.stderr_text = child->stderr_->Text();
  return result;
}

}  // namespace testutil
}  // namespace ckpt
