// The ckpt binary against a ckptd with mutual TLS and an auth file: --tls-ca, --tls-cert,
// --tls-key and --token, or $CKPT_TLS_CA and $CKPT_TOKEN, and what it says when they are
// missing or wrong (never the token).
#include <stdlib.h>

#include <memory>
#include <optional>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/server/server.h"
#include "tests/cli/run_ckpt.h"
#include "tests/testing/secured_server.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/test_credentials.h"

namespace ckpt {
namespace {

using ::ckpt::testutil::AuthLine;
using ::ckpt::testutil::NewTestToken;
using ::ckpt::testutil::TestPki;
using ::testing::HasSubstr;
using ::testing::Not;

using Outcome = testutil::CkptOutcome;

class CliSecurityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto pki = TestPki::Make();
    CKPT_ASSERT_OK(pki);
    pki_.emplace(*std::move(pki));
    ServerOptions options = testutil::MutualTlsServerOptions(
        *pki_, AuthLine("ops", "admin", admin_) + "etl-node-7 reader cert=etl-node-7\n");
    auto server = Server::Start(options);
    CKPT_ASSERT_OK(server);
    server_ = std::move(*server);
    server_flag_ = absl::StrCat("--server=", server_->address());
    mtls_flags_ =
        absl::StrCat(" --tls-ca ", pki_->Path("ca.crt"), " --tls-cert=", pki_->Path("client.crt"),
                     " --tls-key ", pki_->Path("client.key"));
  }

  void TearDown() override {
    for (const char* variable : {"CKPT_TOKEN", "CKPT_TLS_CA"}) ::unsetenv(variable);
    for (const std::string& output : outputs_) {
      EXPECT_THAT(output, Not(HasSubstr(testutil::kTestTokenMarker)));
    }
  }

  Outcome Run(const std::string& args) {
    Outcome outcome = testutil::RunCkptBinary(args);
    outputs_.push_back(outcome.output);
    return outcome;
  }

  std::optional<TestPki> pki_;
  std::unique_ptr<Server> server_;
  std::string server_flag_;
  std::string mtls_flags_;
  const std::string admin_ = NewTestToken("admin");
  std::vector<std::string> outputs_;
};

TEST_F(CliSecurityTest, FlagsAndVariablesCarryTheCredentials) {
  // The certificate alone: a reader, who may list but not delete.
  Outcome listed = Run(server_flag_ + mtls_flags_ + " jobs");
  EXPECT_EQ(listed.exit_code, 0) << listed.output;
  Outcome refused = Run(server_flag_ + mtls_flags_ + " delete nightly");
  EXPECT_EQ(refused.exit_code, 1) << refused.output;
  EXPECT_THAT(refused.output, HasSubstr("DeleteJob needs the admin role; principal "
                                        "\"etl-node-7\" is a reader"));
  // A token speaks for the admin: by flag, then by $CKPT_TOKEN with $CKPT_TLS_CA.
  Outcome stopped = Run(server_flag_ + mtls_flags_ + " --token " + admin_ + " delete nightly");
  EXPECT_EQ(stopped.exit_code, 3) << stopped.output;  // got as far as the engine: no such job
  ASSERT_EQ(::setenv("CKPT_TOKEN", admin_.c_str(), 1), 0);
  ASSERT_EQ(::setenv("CKPT_TLS_CA", pki_->Path("ca.crt").c_str(), 1), 0);
  Outcome from_env = Run(server_flag_ + " --tls-cert=" + pki_->Path("client.crt") +
                         " --tls-key=" + pki_->Path("client.key") + " status nightly");
  EXPECT_EQ(from_env.exit_code, 3) << from_env.output;
  EXPECT_THAT(from_env.output, HasSubstr("not found"));
}

// ckptd serves its HTTP listener over HTTPS when it serves gRPC over TLS.
TEST_F(CliSecurityTest, OpenGivesAnHttpsAddressOverTls) {
  Outcome opened = Run(server_flag_ + mtls_flags_ + " open");
  EXPECT_EQ(opened.exit_code, 0) << opened.output;
  EXPECT_EQ(opened.output, "https://127.0.0.1:7701/\n");
  Outcome given = Run(server_flag_ + mtls_flags_ + " open --http http://127.0.0.1:8080");
  EXPECT_EQ(given.output, "http://127.0.0.1:8080/\n");
}

TEST_F(CliSecurityTest, MissingOrWrongCredentialsSaySo) {
  const std::string wrong = NewTestToken("wrong");
  Outcome bad_token = Run(server_flag_ + mtls_flags_ + " --token=" + wrong + " jobs");
  EXPECT_EQ(bad_token.exit_code, 1);
  EXPECT_THAT(bad_token.output, HasSubstr("bearer token matches no principal"));
  // No client certificate: the handshake fails, and ckpt says where to look.
  Outcome no_cert = Run(server_flag_ + " --tls-ca " + pki_->Path("ca.crt") + " jobs");
  EXPECT_EQ(no_cert.exit_code, 1);
  EXPECT_THAT(no_cert.output, HasSubstr("--tls-cert and --tls-key"));
  Outcome half = Run(server_flag_ + " --tls-cert " + pki_->Path("client.crt") + " jobs");
  EXPECT_EQ(half.exit_code, 2);
  EXPECT_THAT(half.output, HasSubstr("give both"));
}

}  // namespace
}  // namespace ckpt
