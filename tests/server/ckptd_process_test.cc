// The ckptd binary as an operator runs it: what it does to its files, its start-up
// lines, and how quickly it stops. ckptd runs as a child process (//:ckptd).
#include "tests/durability/ckptd_process.h"

#include <arpa/inet.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "ckpt/v1/checkpoint.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/temp_dir.h"

namespace ckpt {
namespace {

namespace fs = std::filesystem;
using ::ckpt::testutil::ChildSetup;
using ::ckpt::testutil::CkptdProcess;
using ::testing::HasSubstr;
using ::testing::Not;

// A bound for a hung ckptd, never a pass/fail threshold.
constexpr absl::Duration kBound = absl::Seconds(120);

mode_t ModeOf(const fs::path& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return st.st_mode & 07777;
}

// One write, so the store has WAL, MANIFEST, OPTIONS, LOG and the rest.
void CreateJob(const CkptdProcess& ckptd, const std::string& job_id) {
  auto stub = ckptd.NewStub();
  grpc::ClientContext context;
  v1::CreateJobRequest request;
  request.set_job_id(job_id);
  v1::CreateJobResponse response;
  ASSERT_TRUE(stub->CreateJob(&context, request, &response).ok());
}

// Under the common umask 022, a new data dir and every file in it are the owner's only.
TEST(CkptdFilesTest, NewDataDirAndItsFilesArePrivate) {
  const std::string data_dir = testutil::NewTempDir("files") + "/nested/data";
  ChildSetup setup;
  setup.umask = 022;
  auto ckptd = CkptdProcess::Start(data_dir, {}, setup);
  ASSERT_TRUE(ckptd.ok()) << ckptd.status();
  CreateJob(**ckptd, "private");
  EXPECT_EQ(ModeOf(data_dir), 0700u);
  int files = 0;
  for (const auto& entry : fs::recursive_directory_iterator(data_dir)) {
    EXPECT_EQ(ModeOf(entry.path()) & 077, 0u) << entry.path() << " is open to others";
    ++files;
  }
  EXPECT_GT(files, 3);
  EXPECT_THAT((*ckptd)->Stderr(), Not(HasSubstr("open to other users")));
}

// An existing data dir others can read is used as it is, with one warning saying how
// to fix it.
TEST(CkptdFilesTest, OpenDataDirIsWarnedAbout) {
  const std::string data_dir = testutil::NewTempDir("files") + "/data";
  ASSERT_TRUE(fs::create_directory(data_dir));
  ASSERT_EQ(::chmod(data_dir.c_str(), 0755), 0);
  auto ckptd = CkptdProcess::Start(data_dir, {});
  ASSERT_TRUE(ckptd.ok()) << ckptd.status();
  EXPECT_THAT((*ckptd)->Stderr(), HasSubstr(absl::StrCat("warning: data dir ", data_dir,
                                                         " is open to other users (mode 0755)")));
  EXPECT_THAT((*ckptd)->Stderr(), HasSubstr("chmod 700"));
  EXPECT_EQ(ModeOf(data_dir), 0755u);  // not changed behind the operator's back
}

// A soft limit below the hard one is raised, and ckptd says so in one line.
TEST(CkptdFilesTest, OpenFilesLimitIsRaisedToTheHardLimit) {
  const std::string data_dir = testutil::NewTempDir("files") + "/data";
  ChildSetup setup;
  setup.open_files_soft = 1024;
  setup.open_files_hard = 4096;
  auto ckptd = CkptdProcess::Start(data_dir, {}, setup);
  ASSERT_TRUE(ckptd.ok()) << ckptd.status();
  EXPECT_THAT((*ckptd)->Stderr(),
              HasSubstr("open files limit raised from 1024 to 4096 (the hard limit)"));
}

// ---------------------------------------------------------------- logs

// A request with invalid UTF-8 in CreateJobRequest.job_id, as raw bytes.
absl::Status SendUnparsableCreateJob(const std::shared_ptr<grpc::Channel>& channel) {
  grpc::GenericStub stub(channel);
  grpc::Slice slice(std::string("\x0a\x02\xff\xfe"));
  grpc::ByteBuffer request(&slice, 1);
  grpc::ByteBuffer response;
  grpc::ClientContext context;
  absl::Notification done;
  grpc::Status status;
  stub.UnaryCall(&context, "/ckpt.v1.Checkpoint/CreateJob", grpc::StubOptions(), &request,
                 &response, [&](grpc::Status s) {
                   status = std::move(s);
                   done.Notify();
                 });
  done.WaitForNotification();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
}

// Requests that do not parse are answered, and write nothing to ckptd's log (protobuf
// logs an ERROR line for each by default: a 10-byte request made 220 bytes of log).
TEST(CkptdLogTest, RequestsThatDoNotParseLogNothing) {
  auto ckptd = CkptdProcess::Start(testutil::NewTempDir("log") + "/data", {});
  ASSERT_TRUE(ckptd.ok()) << ckptd.status();
  auto channel = grpc::CreateChannel((*ckptd)->address(), grpc::InsecureChannelCredentials());
  for (int i = 0; i < 50; ++i) {
    const absl::Status status = SendUnparsableCreateJob(channel);
    ASSERT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  }
  const std::string before_stop = (*ckptd)->Stderr();
  EXPECT_EQ(WEXITSTATUS((*ckptd)->Stop()), 0);
  EXPECT_THAT(before_stop, Not(HasSubstr("libprotobuf")));
  EXPECT_THAT(before_stop, Not(HasSubstr("UTF-8")));
}

// ---------------------------------------------------------------- file descriptors

int ConnectTcp(const std::string& address);

// Connects a plain socket to "unix:PATH" and returns it (it says nothing).
int ConnectUnix(const std::string& address) {
  const std::string path = address.substr(std::strlen("unix:"));
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.data(), std::min(path.size(), sizeof(addr.sun_path) - 1));
  EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0) << path;
  return fd;
}

// A CreateJob through `stub`: OK, or why not.
grpc::Status CreateJob(v1::Checkpoint::Stub* stub, const std::string& job_id) {
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + kBound));
  v1::CreateJobRequest request;
  request.set_job_id(job_id);
  v1::CreateJobResponse response;
  return stub->CreateJob(&context, request, &response);
}

// At a low open files limit, clients (connected by `connect`) take every descriptor
// ckptd has; once they hang up, new clients are served again (gRPC 1.51 alone never
// accepts again). `again` is the line ckptd writes when it listens again.
void ServesNewClientsAgainAfterRunningOutOfDescriptors(const std::vector<std::string>& flags,
                                                       int (*connect)(const std::string&),
                                                       const std::string& again_line) {
  ChildSetup setup;
  setup.open_files_soft = 256;
  auto ckptd = CkptdProcess::Start(testutil::NewTempDir("fds") + "/data", flags, setup);
  ASSERT_TRUE(ckptd.ok()) << ckptd.status();
  std::vector<int> connections;
  for (int i = 0; i < 400; ++i) connections.push_back(connect((*ckptd)->address()));
  const auto stopped = (*ckptd)->AwaitStderrLine("stopped accepting connections", kBound);
  ASSERT_TRUE(stopped.ok()) << stopped.status();
  EXPECT_THAT((*ckptd)->Stderr(), HasSubstr("Too many open files"));
  for (int fd : connections) ::close(fd);
  const auto again = (*ckptd)->AwaitStderrLine(again_line, kBound);
  ASSERT_TRUE(again.ok()) << again.status();
  const grpc::Status status = CreateJob((*ckptd)->NewStub().get(), "after");
  EXPECT_TRUE(status.ok()) << status.error_message() << "\n" << (*ckptd)->Stderr();
}

TEST(CkptdDescriptorsTest, ServesNewClientsAgainAfterRunningOutOfDescriptors) {
  ServesNewClientsAgainAfterRunningOutOfDescriptors({}, &ConnectTcp, "listening again on port");
}

TEST(CkptdDescriptorsTest, ServesNewUnixSocketClientsAgainAfterRunningOutOfDescriptors) {
  // Under /tmp: $TEST_TMPDIR's paths are too long for a Unix socket.
  char dir[] = "/tmp/ckpt-fds-XXXXXX";
  ASSERT_NE(::mkdtemp(dir), nullptr);
  const std::string socket = std::string(dir) + "/ckptd.sock";
  ServesNewClientsAgainAfterRunningOutOfDescriptors({"--listen=unix:" + socket}, &ConnectUnix,
                                                    "listening again on unix:" + socket);
  // Bound again as privately as the first time.
  EXPECT_EQ(ModeOf(socket), 0600);
  fs::remove_all(dir);
}

// A removed socket file is created again (no new client could reach ckptd otherwise),
// and the connections made before are served throughout.
TEST(CkptdDescriptorsTest, RemovedUnixSocketIsCreatedAgain) {
  char dir[] = "/tmp/ckpt-sock-XXXXXX";
  ASSERT_NE(::mkdtemp(dir), nullptr);
  const std::string socket = std::string(dir) + "/ckptd.sock";
  auto ckptd = CkptdProcess::Start(testutil::NewTempDir("sock") + "/data",
                                   {"--listen=unix:" + socket}, ChildSetup{});
  ASSERT_TRUE(ckptd.ok()) << ckptd.status();
  auto before = (*ckptd)->NewStub();
  ASSERT_TRUE(CreateJob(before.get(), "before").ok());
  ASSERT_EQ(::unlink(socket.c_str()), 0);
  const auto removed = (*ckptd)->AwaitStderrLine("unix:" + socket + " was removed", kBound);
  ASSERT_TRUE(removed.ok()) << removed.status();
  const auto again = (*ckptd)->AwaitStderrLine("listening again on unix:" + socket, kBound);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(ModeOf(socket), 0600);
  const grpc::Status fresh = CreateJob((*ckptd)->NewStub().get(), "fresh");
  EXPECT_TRUE(fresh.ok()) << fresh.error_message() << "\n" << (*ckptd)->Stderr();
  const grpc::Status old = CreateJob(before.get(), "old-connection");
  EXPECT_TRUE(old.ok()) << old.error_message() << "\n" << (*ckptd)->Stderr();
  fs::remove_all(dir);
}

// ---------------------------------------------------------------- shutdown

// Connects a plain TCP socket to "127.0.0.1:PORT" and returns it (it says nothing).
int ConnectTcp(const std::string& address) {
  int port = 0;
  EXPECT_TRUE(absl::SimpleAtoi(address.substr(address.rfind(':') + 1), &port)) << address;
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  return fd;
}

// With nothing in flight, SIGTERM stops ckptd at once, however long the grace and
// however many idle connections (a bare TCP one, an idle gRPC channel) are open.
TEST(CkptdShutdownTest, IdleConnectionsDoNotHoldUpAStop) {
  const std::string data_dir = testutil::NewTempDir("stop") + "/data";
  auto ckptd = CkptdProcess::Start(data_dir, {"--shutdown_grace=1h"});
  ASSERT_TRUE(ckptd.ok()) << ckptd.status();
  CreateJob(**ckptd, "idle");  // the channel is connected, then idle
  auto idle_channel = grpc::CreateChannel((*ckptd)->address(), grpc::InsecureChannelCredentials());
  ASSERT_TRUE(idle_channel->WaitForConnected(absl::ToChronoTime(absl::Now() + kBound)));
  const int tcp = ConnectTcp((*ckptd)->address());
  ::kill((*ckptd)->pid(), SIGTERM);
  // Before the fix this waited the whole hour of grace.
  const auto stopped = (*ckptd)->AwaitStderrLine("stopped on SIGTERM", kBound);
  EXPECT_TRUE(stopped.ok()) << stopped.status();
  if (!stopped.ok()) (*ckptd)->Kill();
  (*ckptd)->Wait();
  ::close(tcp);
}

// Writes in flight at SIGTERM are answered, and every OK is kept.
TEST(CkptdShutdownTest, WritesInFlightAreAnsweredAndEveryOkIsKept) {
  const std::string data_dir = testutil::NewTempDir("stop") + "/data";
  auto ckptd = CkptdProcess::Start(data_dir, {"--shutdown_grace=1h"});
  ASSERT_TRUE(ckptd.ok()) << ckptd.status();
  CreateJob(**ckptd, "busy");
  constexpr int kWriters = 4;
  absl::Mutex mu;
  int acknowledged = 0;
  std::vector<std::vector<std::string>> kept(kWriters);
  std::vector<grpc::Status> last(kWriters);
  std::vector<std::thread> writers;
  for (int w = 0; w < kWriters; ++w) {
    writers.emplace_back([&, w] {
      auto stub = (*ckptd)->NewStub();
      for (int i = 0;; ++i) {
        v1::PutStateRequest request;
        request.set_job_id("busy");
        request.set_name(absl::StrCat("w", w, "-", i));
        request.set_value(request.name());
        v1::PutStateResponse response;
        grpc::ClientContext context;
        context.set_deadline(absl::ToChronoTime(absl::Now() + kBound));
        last[w] = stub->PutState(&context, request, &response);
        if (!last[w].ok()) return;
        kept[w].push_back(request.name());
        absl::MutexLock lock(&mu);
        ++acknowledged;
      }
    });
  }
  {
    absl::MutexLock lock(&mu);
    mu.Await(absl::Condition(
        +[](int* n) { return *n >= 40; }, &acknowledged));
  }
  ::kill((*ckptd)->pid(), SIGTERM);
  for (std::thread& t : writers) t.join();
  const int wait_status = (*ckptd)->Wait();
  EXPECT_TRUE(WIFEXITED(wait_status) && WEXITSTATUS(wait_status) == 0) << (*ckptd)->Stderr();
  // UNAVAILABLE from ckptd, or CANCELLED for a call that reached gRPC in the moment
  // it closed the connections: neither was applied (checked below for the OKs only).
  for (const grpc::Status& status : last) {
    EXPECT_THAT(status.error_code(),
                ::testing::AnyOf(grpc::StatusCode::UNAVAILABLE, grpc::StatusCode::CANCELLED))
        << status.error_message();
  }
  auto again = CkptdProcess::Start(data_dir, {});
  ASSERT_TRUE(again.ok()) << again.status();
  auto stub = (*again)->NewStub();
  for (const auto& names : kept) {
    for (const std::string& name : names) {
      v1::GetStateRequest request;
      request.set_job_id("busy");
      request.set_name(name);
      v1::GetStateResponse response;
      grpc::ClientContext context;
      ASSERT_TRUE(stub->GetState(&context, request, &response).ok()) << name;
      EXPECT_EQ(response.state().value(), name);
    }
  }
}

}  // namespace
}  // namespace ckpt
