// ckptd over TLS and mutual TLS, with a PKI made at test time (make_test_pki.sh): which
// clients the handshake refuses, how a verified certificate names its principal, and
// which TLS files ckptd refuses to start with.
#include <grpcpp/grpcpp.h>

#include <memory>
#include <optional>
#include <string>

#include "absl/strings/str_cat.h"
#include "ckpt/v1/checkpoint.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/common/grpc_status.h"
#include "service/server/server.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/test_credentials.h"

namespace ckpt {
namespace {

using ::ckpt::testutil::AuthLine;
using ::ckpt::testutil::NewTestToken;
using ::ckpt::testutil::StatusIs;
using ::ckpt::testutil::TestPki;
using ::testing::AllOf;
using ::testing::HasSubstr;
using Stub = v1::Checkpoint::Stub;

class TlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto pki = TestPki::Make();
    CKPT_ASSERT_OK(pki);
    pki_.emplace(*std::move(pki));
  }

  ServerOptions Options(bool mutual, const std::string& auth_text) {
    ServerOptions options;
    options.listen_address = "127.0.0.1:0";
    options.store.path = testutil::NewTempDir("tls_data");
    options.store.sync = false;
    options.tls.cert = pki_->Path("server.crt");
    options.tls.key = pki_->Path("server.key");
    if (mutual) options.tls.client_ca = pki_->Path("ca.crt");
    if (!auth_text.empty()) {
      options.auth_file = testutil::NewTempDir("auth") + "/auth";
      testutil::WriteFileAtomically(options.auth_file, auth_text);
    }
    return options;
  }

  void StartServer(const ServerOptions& options) {
    auto server = Server::Start(options);
    CKPT_ASSERT_OK(server);
    server_ = std::move(*server);
  }

  // A stub on its own connection with `credentials`.
  std::unique_ptr<Stub> StubWith(const std::shared_ptr<grpc::ChannelCredentials>& credentials) {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    return v1::Checkpoint::NewStub(
        grpc::CreateCustomChannel(server_->address(), credentials, args));
  }

  // CreateJob `job_id` through `stub`, with `token` if given.
  absl::Status Create(Stub& stub, const std::string& job_id,
                      const std::optional<std::string>& token = std::nullopt) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    if (token.has_value()) context.AddMetadata("authorization", "Bearer " + *token);
    v1::CreateJobRequest request;
    request.set_job_id(job_id);
    v1::CreateJobResponse response;
    return FromGrpcStatus(stub.CreateJob(&context, request, &response));
  }

  absl::Status Delete(Stub& stub, const std::string& job_id,
                      const std::optional<std::string>& token = std::nullopt) {
    grpc::ClientContext context;
    if (token.has_value()) context.AddMetadata("authorization", "Bearer " + *token);
    v1::DeleteJobRequest request;
    request.set_job_id(job_id);
    v1::DeleteJobResponse response;
    return FromGrpcStatus(stub.DeleteJob(&context, request, &response));
  }

  std::optional<TestPki> pki_;
  std::unique_ptr<Server> server_;
  const std::string admin_token_ = NewTestToken("admin");
};

TEST_F(TlsTest, PlaintextAndUntrustingClientsCannotTalkToATlsServer) {
  StartServer(Options(false, ""));
  CKPT_EXPECT_OK(Create(*StubWith(pki_->Credentials()), "over-tls"));
  EXPECT_THAT(Create(*StubWith(grpc::InsecureChannelCredentials()), "plain"),
              StatusIs(absl::StatusCode::kUnavailable, testing::_));
  // A client that trusts another CA refuses ckptd's certificate.
  EXPECT_THAT(Create(*StubWith(pki_->CredentialsTrusting("other-ca", "")), "untrusting"),
              StatusIs(absl::StatusCode::kUnavailable, testing::_));
}

TEST_F(TlsTest, MutualTlsRefusesClientsWithoutAGoodCertificate) {
  StartServer(Options(true, ""));
  for (const char* client : {"", "other-client", "expired"}) {
    SCOPED_TRACE(absl::StrCat("client certificate: ", *client ? client : "none"));
    auto stub = StubWith(client == std::string("other-client")
                             ? pki_->CredentialsTrusting("ca", "other-client")
                             : pki_->Credentials(client));
    EXPECT_THAT(Create(*stub, absl::StrCat("refused-", client)),
                StatusIs(absl::StatusCode::kUnavailable, testing::_));
  }
  // Without an auth file the CA is the boundary: any certificate it signed may call.
  auto good = StubWith(pki_->Credentials("client"));
  CKPT_EXPECT_OK(Create(*good, "accepted"));
  CKPT_EXPECT_OK(Create(*StubWith(pki_->Credentials("stranger")), "also-accepted"));
  // Nothing a refused client sent arrived.
  grpc::ClientContext context;
  v1::ListJobsResponse listed;
  ASSERT_TRUE(good->ListJobs(&context, v1::ListJobsRequest(), &listed).ok());
  std::vector<std::string> ids;
  for (const auto& job : listed.jobs()) ids.push_back(job.job_id());
  EXPECT_THAT(ids, testing::UnorderedElementsAre("accepted", "also-accepted"));
}

TEST_F(TlsTest, AVerifiedCertificateNamesItsPrincipal) {
  StartServer(Options(true, AuthLine("ops", "admin", admin_token_) +
                                "etl-node-7 worker cert=etl-node-7.example.com job_prefix=etl-\n"));
  auto node = StubWith(pki_->Credentials("client"));
  CKPT_EXPECT_OK(Create(*node, "etl-nightly"));
  EXPECT_THAT(Delete(*node, "etl-nightly"),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       AllOf(HasSubstr("DeleteJob needs the admin role"),
                             HasSubstr("principal \"etl-node-7\" is a worker confined to jobs "
                                       "whose id starts with \"etl-\""))));
  EXPECT_THAT(Create(*node, "ml-nightly"),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("\"etl-\"")));
  // A certificate the CA signed for nobody in the auth file.
  EXPECT_THAT(Create(*StubWith(pki_->Credentials("stranger")), "etl-stranger"),
              StatusIs(absl::StatusCode::kUnauthenticated,
                       HasSubstr("client certificate (\"stranger\") matches no principal")));
  // A token speaks for itself, whatever the certificate: right, then wrong.
  CKPT_EXPECT_OK(Delete(*node, "etl-nightly", admin_token_));
  EXPECT_THAT(Create(*node, "etl-again", NewTestToken("wrong")),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("bearer token")));
}

TEST_F(TlsTest, BadTlsFilesAreRefusedAtStart) {
  auto start = [&](const std::string& cert, const std::string& key, const std::string& ca) {
    ServerOptions options = Options(false, "");
    options.tls.cert = cert.empty() ? "" : pki_->Path(cert);
    options.tls.key = key.empty() ? "" : pki_->Path(key);
    options.tls.client_ca = ca.empty() ? "" : pki_->Path(ca);
    return Server::Start(options).status();
  };
  EXPECT_THAT(start("server.crt", "", ""),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("go together")));
  EXPECT_THAT(start("", "", "ca.crt"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--tls_client_ca needs")));
  EXPECT_THAT(start("server.crt", "client.key", ""),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("client.key does not belong to certificate"),
                             testing::Not(HasSubstr("PRIVATE KEY")))));
  EXPECT_THAT(start("expired.crt", "expired.key", ""),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("expired.crt is not valid now"), HasSubstr("2020-01-02"))));
  EXPECT_THAT(start("server.key", "server.key", ""),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("holds no PEM certificate")));
  EXPECT_THAT(
      start("server.crt", "server.crt", ""),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("no unencrypted PEM private")));
  EXPECT_THAT(start("server.crt", "server.key", "server.key"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("TLS client CA")));
  EXPECT_THAT(start("server.crt", "missing.key", ""),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("cannot read TLS key")));
}

}  // namespace
}  // namespace ckpt
