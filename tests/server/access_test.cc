// What ckptd serves to whom besides ckpt.v1.Checkpoint: health to everyone (probes and
// load balancers carry no credentials), server reflection to readers once there is an
// auth file, and which listen addresses it refuses to expose without protection.
#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpc/reflection/v1alpha/reflection.grpc.pb.h"
#include "gtest/gtest.h"
#include "service/server/server.h"
#include "tests/testing/http_client.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/test_credentials.h"

namespace ckpt {
namespace {

using ::ckpt::testutil::AuthLine;
using ::ckpt::testutil::NewTestToken;
using ::ckpt::testutil::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;
namespace health = ::grpc::health::v1;
namespace reflection = ::grpc::reflection::v1alpha;

ServerOptions Options() {
  ServerOptions options;
  options.listen_address = "127.0.0.1:0";
  options.store.path = testutil::NewTempDir("access_data");
  options.store.sync = false;
  return options;
}

// One list_services question, as `grpcurl list` asks it: the first answer and the
// call's status.
struct Reflected {
  grpc::Status status;
  reflection::ServerReflectionResponse first;
};
Reflected ListServices(const std::shared_ptr<grpc::Channel>& channel, const std::string& token) {
  auto stub = reflection::ServerReflection::NewStub(channel);
  grpc::ClientContext context;
  if (!token.empty()) context.AddMetadata("authorization", "Bearer " + token);
  auto stream = stub->ServerReflectionInfo(&context);
  reflection::ServerReflectionRequest request;
  request.set_list_services("");
  stream->Write(request);
  stream->WritesDone();
  Reflected reflected;
  stream->Read(&reflected.first);
  reflection::ServerReflectionResponse more;
  while (stream->Read(&more)) {
  }
  reflected.status = stream->Finish();
  return reflected;
}

class AccessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ServerOptions options = Options();
    options.auth_file = testutil::NewTempDir("auth") + "/auth";
    testutil::WriteFileAtomically(options.auth_file,
                                  AuthLine("dashboard", "reader", reader_) +
                                      AuthLine("team", "reader", team_, "job_prefix=team-"));
    auto server = Server::Start(options);
    CKPT_ASSERT_OK(server);
    server_ = std::move(*server);
    channel_ = grpc::CreateChannel(server_->address(), grpc::InsecureChannelCredentials());
  }

  const std::string reader_ = NewTestToken("reader");
  const std::string team_ = NewTestToken("team");
  std::unique_ptr<Server> server_;
  std::shared_ptr<grpc::Channel> channel_;
};

TEST_F(AccessTest, HealthNeedsNoCredentials) {
  auto stub = health::Health::NewStub(channel_);
  grpc::ClientContext context;
  health::HealthCheckResponse response;
  ASSERT_TRUE(stub->Check(&context, health::HealthCheckRequest(), &response).ok());
  EXPECT_EQ(response.status(), health::HealthCheckResponse::SERVING);
}

TEST_F(AccessTest, ReflectionNeedsAReader) {
  const Reflected anonymous = ListServices(channel_, "");
  EXPECT_EQ(anonymous.status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(anonymous.status.error_message(), HasSubstr("ServerReflectionInfo: no credentials"));
  // Nothing about the server came back, only the refusal.
  EXPECT_EQ(anonymous.first.list_services_response().service_size(), 0);
  EXPECT_EQ(anonymous.first.error_response().error_code(), grpc::StatusCode::UNAUTHENTICATED);

  const Reflected wrong = ListServices(channel_, NewTestToken("wrong"));
  EXPECT_EQ(wrong.status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(wrong.first.list_services_response().service_size(), 0);

  for (const std::string& token : {reader_, team_}) {
    const Reflected allowed = ListServices(channel_, token);
    EXPECT_TRUE(allowed.status.ok()) << allowed.status.error_message();
    std::vector<std::string> names;
    for (const auto& service : allowed.first.list_services_response().service()) {
      names.push_back(service.name());
    }
    EXPECT_THAT(names, testing::Contains("ckpt.v1.Checkpoint"));
  }
}

// The JSON API over HTTP takes the same tokens and roles as gRPC.
TEST(HttpAccessTest, TheJsonApiChecksTheAuthFile) {
  ServerOptions options = Options();
  options.http_listen_address = "127.0.0.1:0";
  options.auth_file = testutil::NewTempDir("auth") + "/auth";
  const std::string reader = NewTestToken("reader");
  testutil::WriteFileAtomically(options.auth_file, AuthLine("dashboard", "reader", reader));
  auto server = Server::Start(options);
  CKPT_ASSERT_OK(server);
  const std::string http = (*server)->http_address();
  auto anonymous = testutil::HttpGet(http, "/api/v1/jobs");
  CKPT_ASSERT_OK(anonymous);
  EXPECT_EQ(anonymous->status, 401) << anonymous->body;
  auto listed = testutil::HttpGet(http, "/api/v1/jobs", {{"authorization", "Bearer " + reader}});
  CKPT_ASSERT_OK(listed);
  EXPECT_EQ(listed->status, 200) << listed->body;
  auto paused = testutil::HttpPost(http, "/api/v1/jobs/j/pause", "{}",
                                   {{"authorization", "Bearer " + reader}});
  CKPT_ASSERT_OK(paused);
  EXPECT_EQ(paused->status, 403) << paused->body;
}

TEST(ExposureTest, LocalAddresses) {
  for (const char* local :
       {"127.0.0.1:7700", "127.8.9.10:0", "localhost:7700", "[::1]:7700", "[::ffff:127.0.0.1]:7700",
        "unix:/run/ckpt.sock", "unix-abstract:ckpt"}) {
    EXPECT_TRUE(IsLocalAddress(local)) << local;
  }
  for (const char* network : {"0.0.0.0:7700", "[::]:7700", "10.1.2.3:7700", "ckpt.example:7700",
                              "128.0.0.1:7700", "[::2]:7700", "garbage"}) {
    EXPECT_FALSE(IsLocalAddress(network)) << network;
  }
}

TEST(ExposureTest, ANetworkAddressNeedsTlsOrAnAuthFileOrInsecure) {
  ServerOptions options = Options();
  options.listen_address = "0.0.0.0:0";
  EXPECT_THAT(Server::Start(options),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr("--listen=0.0.0.0:0 is reachable from the network"),
                             HasSubstr("--auth_file"), HasSubstr("--insecure"))));
  options.insecure = true;
  CKPT_EXPECT_OK(Server::Start(options));
  options.insecure = false;
  options.store.path = testutil::NewTempDir("access_data");
  options.auth_file = testutil::NewTempDir("auth") + "/auth";
  testutil::WriteFileAtomically(options.auth_file, AuthLine("ops", "admin", NewTestToken("ops")));
  CKPT_EXPECT_OK(Server::Start(options));
}

// The HTTP listener has gRPC's TLS and authentication, and gRPC's rule: on the network
// it needs one of them, or --insecure.
TEST(ExposureTest, ANetworkHttpAddressNeedsTlsOrAnAuthFileOrInsecure) {
  ServerOptions options = Options();
  options.http_listen_address = "0.0.0.0:0";
  EXPECT_THAT(
      Server::Start(options),
      StatusIs(absl::StatusCode::kFailedPrecondition,
               AllOf(HasSubstr("--http_listen=0.0.0.0:0 is reachable from the network"),
                     HasSubstr("--tls_cert"), HasSubstr("--auth_file"), HasSubstr("--insecure"))));
  options.insecure = true;
  CKPT_EXPECT_OK(Server::Start(options));
  options.insecure = false;
  auto pki = testutil::TestPki::Make();
  CKPT_ASSERT_OK(pki);
  options.tls = {pki->Path("server.crt"), pki->Path("server.key"), pki->Path("ca.crt")};
  auto served = Server::Start(options);
  CKPT_ASSERT_OK(served);
  EXPECT_EQ((*served)->http_url(), absl::StrCat("https://0.0.0.0:", (*served)->http_port(), "/"));
}

TEST(ExposureTest, ABadAuthFileIsRefusedAtStart) {
  ServerOptions options = Options();
  options.auth_file = testutil::NewTempDir("auth") + "/auth";
  EXPECT_THAT(Server::Start(options),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("cannot read auth file")));
  testutil::WriteFileAtomically(options.auth_file, "ops boss token_sha256=00\n");
  EXPECT_THAT(Server::Start(options),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("line 1: the second field")));
}

}  // namespace
}  // namespace ckpt
