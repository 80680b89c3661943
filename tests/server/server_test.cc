// Starts a real server on loopback port 0 with a real store in a temp dir.
#include "service/server/server.h"

#include <grpcpp/grpcpp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "ckpt/v1/checkpoint.grpc.pb.h"
#include "gmock/gmock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpc/reflection/v1alpha/reflection.grpc.pb.h"
#include "gtest/gtest.h"
#include "service/common/clock.h"
#include "service/server/activity.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"

namespace ckpt {
namespace {

using ::ckpt::testutil::StatusIs;
using ::testing::Contains;
using ::testing::HasSubstr;
namespace health = ::grpc::health::v1;
namespace reflection = ::grpc::reflection::v1alpha;

ServerOptions OptionsFor(const std::string& dir) {
  ServerOptions options;
  options.listen_address = "127.0.0.1:0";
  options.store.path = dir;
  return options;
}

std::shared_ptr<grpc::Channel> ChannelTo(const Server& server) {
  return grpc::CreateChannel(server.address(), grpc::InsecureChannelCredentials());
}

// Asks the reflection service one question, as grpcurl does.
reflection::ServerReflectionResponse Reflect(const std::shared_ptr<grpc::Channel>& channel,
                                             const reflection::ServerReflectionRequest& request) {
  auto stub = reflection::ServerReflection::NewStub(channel);
  grpc::ClientContext context;
  auto stream = stub->ServerReflectionInfo(&context);
  EXPECT_TRUE(stream->Write(request));
  stream->WritesDone();
  reflection::ServerReflectionResponse response;
  EXPECT_TRUE(stream->Read(&response));
  EXPECT_TRUE(stream->Finish().ok());
  return response;
}

TEST(ServerTest, HealthIsServing) {
  auto server = Server::Start(OptionsFor(testutil::NewTempDir("server")));
  CKPT_ASSERT_OK(server);
  ASSERT_GT((*server)->port(), 0);
  auto stub = health::Health::NewStub(ChannelTo(**server));
  for (const char* service : {"", "ckpt.v1.Checkpoint"}) {
    grpc::ClientContext context;
    health::HealthCheckRequest request;
    request.set_service(service);
    health::HealthCheckResponse response;
    ASSERT_TRUE(stub->Check(&context, request, &response).ok()) << service;
    EXPECT_EQ(response.status(), health::HealthCheckResponse::SERVING) << service;
  }
  grpc::ClientContext context;
  health::HealthCheckRequest unknown;
  unknown.set_service("no.such.Service");
  health::HealthCheckResponse response;
  EXPECT_EQ(stub->Check(&context, unknown, &response).error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST(ServerTest, HealthWatchEndsAtShutdown) {
  auto server = Server::Start(OptionsFor(testutil::NewTempDir("server")));
  CKPT_ASSERT_OK(server);
  auto stub = health::Health::NewStub(ChannelTo(**server));
  grpc::ClientContext context;
  auto stream = stub->Watch(&context, health::HealthCheckRequest());
  health::HealthCheckResponse response;
  ASSERT_TRUE(stream->Read(&response));
  EXPECT_EQ(response.status(), health::HealthCheckResponse::SERVING);
  (*server)->Shutdown(absl::Seconds(30));
  // The stream says NOT_SERVING and ends, rather than holding shutdown for 30 s.
  ASSERT_TRUE(stream->Read(&response));
  EXPECT_EQ(response.status(), health::HealthCheckResponse::NOT_SERVING);
  EXPECT_FALSE(stream->Read(&response));
}

TEST(ServerTest, ReflectionListsAndDescribesEveryService) {
  auto server = Server::Start(OptionsFor(testutil::NewTempDir("server")));
  CKPT_ASSERT_OK(server);
  auto channel = ChannelTo(**server);

  reflection::ServerReflectionRequest list;
  list.set_list_services("");
  const reflection::ServerReflectionResponse listed = Reflect(channel, list);
  std::vector<std::string> names;
  for (const auto& service : listed.list_services_response().service()) {
    names.push_back(service.name());
  }
  EXPECT_THAT(names, Contains("ckpt.v1.Checkpoint"));
  EXPECT_THAT(names, Contains("grpc.health.v1.Health"));

  // "describe": the file defining each service comes back, health's included.
  for (const char* symbol :
       {"ckpt.v1.Checkpoint", "grpc.health.v1.Health", "ckpt.v1.LeaseItemsRequest"}) {
    reflection::ServerReflectionRequest describe;
    describe.set_file_containing_symbol(symbol);
    auto response = Reflect(channel, describe);
    EXPECT_GT(response.file_descriptor_response().file_descriptor_proto_size(), 0)
        << symbol << ": " << response.error_response().error_message();
  }
}

TEST(ServerTest, RestartReopensTheSameStore) {
  const std::string dir = testutil::NewTempDir("server");
  {
    auto server = Server::Start(OptionsFor(dir));
    CKPT_ASSERT_OK(server);
    (*server)->Shutdown(absl::Seconds(5));
  }
  auto again = Server::Start(OptionsFor(dir));
  CKPT_ASSERT_OK(again);
}

TEST(ServerTest, SecondServerOnTheSameDataDirFailsClearly) {
  const std::string dir = testutil::NewTempDir("server");
  auto first = Server::Start(OptionsFor(dir));
  CKPT_ASSERT_OK(first);
  EXPECT_THAT(Server::Start(OptionsFor(dir)), StatusIs(absl::StatusCode::kFailedPrecondition,
                                                       HasSubstr("in use by another ckptd")));
}

TEST(ServerTest, TakenPortFailsClearly) {
  auto first = Server::Start(OptionsFor(testutil::NewTempDir("server")));
  CKPT_ASSERT_OK(first);
  ServerOptions options = OptionsFor(testutil::NewTempDir("server"));
  options.listen_address = (*first)->address();
  EXPECT_THAT(Server::Start(options),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("Address already in use")));
}

// A directory under /tmp: $TEST_TMPDIR's paths are too long for a Unix socket.
std::string ShortTempDir() {
  char pattern[] = "/tmp/ckpt-test-XXXXXX";
  EXPECT_NE(::mkdtemp(pattern), nullptr);
  return pattern;
}

TEST(ServerTest, ServesOnAPrivateUnixSocketAndReplacesAStaleOne) {
  const std::string dir = testutil::NewTempDir("server");
  const std::string socket_path = ShortTempDir() + "/ckptd.sock";
  ServerOptions options = OptionsFor(dir);
  options.listen_address = "unix:" + socket_path;
  {
    auto server = Server::Start(options);
    CKPT_ASSERT_OK(server);
    EXPECT_EQ((*server)->address(), "unix:" + socket_path);
    EXPECT_EQ((*server)->port(), 0);
    struct stat st {};
    ASSERT_EQ(::stat(socket_path.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
    auto stub = health::Health::NewStub(ChannelTo(**server));
    grpc::ClientContext context;
    health::HealthCheckResponse response;
    ASSERT_TRUE(stub->Check(&context, {}, &response).ok());
    EXPECT_EQ(response.status(), health::HealthCheckResponse::SERVING);

    // A live socket is not taken over, even by a ckptd of another data dir.
    ServerOptions other = OptionsFor(testutil::NewTempDir("server"));
    other.listen_address = options.listen_address;
    EXPECT_THAT(Server::Start(other), StatusIs(absl::StatusCode::kFailedPrecondition,
                                               HasSubstr("another ckptd or program")));
  }
  // What a killed ckptd leaves: a socket file that nothing listens on.
  const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, socket_path.c_str(), sizeof(addr.sun_path) - 1);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ::close(fd);
  auto again = Server::Start(options);
  CKPT_ASSERT_OK(again);
  auto stub = health::Health::NewStub(ChannelTo(**again));
  grpc::ClientContext context;
  health::HealthCheckResponse response;
  EXPECT_TRUE(stub->Check(&context, {}, &response).ok());
}

TEST(ServerTest, RefusesAUnixPathThatIsNotASocketOrTooLong) {
  const std::string file = ShortTempDir() + "/not-a-socket";
  std::ofstream(file) << "x";
  ServerOptions options = OptionsFor(testutil::NewTempDir("server"));
  options.listen_address = "unix:" + file;
  EXPECT_THAT(Server::Start(options),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("not a socket")));
  options.listen_address = "unix:/" + std::string(kMaxUnixPathBytes, 'x');
  EXPECT_THAT(Server::Start(options),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("1..107 bytes")));
  EXPECT_THAT(ParseListenAddress("unix:"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("socket path")));
  EXPECT_THAT(ParseListenAddress("7700"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("unix:PATH")));
}

TEST(ActivityTrackerTest, IdleOnlyWithNoCallInFlight) {
  FakeClock clock;
  ActivityTracker activity(&clock);
  clock.Advance(absl::Seconds(3));
  EXPECT_EQ(activity.IdleFor(), absl::Seconds(3));
  activity.CallStarted();
  activity.CallStarted();
  clock.Advance(absl::Seconds(10));
  EXPECT_EQ(activity.IdleFor(), absl::ZeroDuration());
  activity.CallEnded();
  clock.Advance(absl::Seconds(10));
  EXPECT_EQ(activity.IdleFor(), absl::ZeroDuration());  // one still in flight
  activity.CallEnded();
  clock.Advance(absl::Seconds(2));
  EXPECT_EQ(activity.IdleFor(), absl::Seconds(2));  // since the last one ended
  EXPECT_TRUE(activity.WaitUntilIdleFor(absl::Seconds(1)));
  activity.Cancel();
  EXPECT_FALSE(activity.WaitUntilIdleFor(absl::Hours(1)));
}

TEST(ActivityTrackerTest, EveryCallOfTheServerCounts) {
  ActivityTracker activity(Clock::Real());
  ServerOptions options = OptionsFor(testutil::NewTempDir("server"));
  options.activity = &activity;
  auto server = Server::Start(options);
  CKPT_ASSERT_OK(server);
  auto stub = v1::Checkpoint::NewStub(ChannelTo(**server));
  const absl::Time before = absl::Now();
  grpc::ClientContext context;
  v1::GetJobRequest request;
  request.set_job_id("none");
  v1::GetJobResponse response;
  EXPECT_EQ(stub->GetJob(&context, request, &response).error_code(), grpc::StatusCode::NOT_FOUND);
  // The call ended after `before`: idle for less than the time since.
  EXPECT_LE(activity.IdleFor(), absl::Now() - before);
}

// The binary: a second ckptd on a held data dir exits 1 with one line saying why.
TEST(CkptdBinaryTest, SecondCkptdExitsWithOneClearLine) {
  const std::string dir = testutil::NewTempDir("server");
  auto first = Server::Start(OptionsFor(dir));
  CKPT_ASSERT_OK(first);

  const std::string binary = std::string(std::getenv("TEST_SRCDIR")) + "/ckpt/service/server/ckptd";
  const std::string log = testutil::NewTempDir("log") + "/stderr";
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    FILE* err = std::freopen(log.c_str(), "w", stderr);
    (void)err;
    const std::string data_dir = "--data_dir=" + dir;
    execl(binary.c_str(), binary.c_str(), "--listen=127.0.0.1:0",
          "--http_listen=", data_dir.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 1);
  std::ifstream in(log);
  std::stringstream text;
  text << in.rdbuf();
  std::vector<std::string> lines = absl::StrSplit(text.str(), '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 1u) << text.str();
  EXPECT_THAT(lines[0], HasSubstr("in use by another ckptd"));
  EXPECT_THAT(lines[0], HasSubstr("--data_dir"));
}

}  // namespace
}  // namespace ckpt
