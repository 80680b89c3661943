#include "service/auth/authorizer.h"

#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/common/sha256.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"

namespace ckpt {
namespace auth {
namespace {

using ::ckpt::testutil::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kAdminToken[] = "admin-token-0123456789abcdef";
constexpr char kWorkerToken[] = "worker-token-0123456789abcdef";
constexpr char kReaderToken[] = "reader-token-0123456789abcdef";
constexpr char kTeamToken[] = "team-token-0123456789abcdef";

std::string Line(const std::string& name, const std::string& role, const std::string& token,
                 const std::string& extra = "") {
  return absl::StrCat(name, " ", role, " token_sha256=", Sha256Hex(token), " ", extra, "\n");
}

std::string AuthFileText() {
  return Line("ops", "admin", kAdminToken) + Line("pipeline", "worker", kWorkerToken) +
         Line("dashboard", "reader", kReaderToken) +
         Line("team-a-ci", "worker", kTeamToken, "job_prefix=team-a-") +
         "etl-node-7 worker cert=etl-node-7.example.com cert=etl-7 job_prefix=etl-\n";
}

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::trunc) << text;
}

Credentials Token(absl::string_view token) {
  Credentials credentials;
  credentials.bearer_token = token;
  return credentials;
}

Credentials Certificate(std::vector<std::string> names) {
  Credentials credentials;
  credentials.certificate_names = std::move(names);
  return credentials;
}

class AuthorizerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = testutil::NewTempDir("authorizer") + "/auth";
    WriteFile(path_, AuthFileText());
    auto loaded = Authorizer::Load(path_);
    CKPT_ASSERT_OK(loaded);
    authorizer_ = std::move(*loaded);
  }

  std::string path_;
  std::unique_ptr<Authorizer> authorizer_;
};

TEST_F(AuthorizerTest, TokensAndCertificatesNameTheirPrincipals) {
  auto ops = authorizer_->Authenticate(Token(kAdminToken));
  CKPT_ASSERT_OK(ops);
  EXPECT_EQ((*ops)->name, "ops");
  EXPECT_EQ((*ops)->role, Role::kAdmin);
  auto etl = authorizer_->Authenticate(Certificate({"unlisted-san", "etl-7"}));
  CKPT_ASSERT_OK(etl);
  EXPECT_EQ((*etl)->name, "etl-node-7");
  EXPECT_EQ((*etl)->job_prefix, "etl-");
  EXPECT_TRUE(authorizer_->UsesCertificates());
  EXPECT_EQ(authorizer_->Summary(), "5 principals (1 admin, 3 worker, 1 reader)");
}

TEST_F(AuthorizerTest, MissingOrUnknownCredentialsAreUnauthenticated) {
  EXPECT_THAT(authorizer_->Authenticate(Credentials()),
              StatusIs(absl::StatusCode::kUnauthenticated,
                       AllOf(HasSubstr("no credentials"), HasSubstr("authorization: Bearer"))));
  const std::string wrong = "wrong-token-0123456789abcdef";
  EXPECT_THAT(
      authorizer_->Authenticate(Token(wrong)),
      StatusIs(absl::StatusCode::kUnauthenticated,
               AllOf(HasSubstr("bearer token matches no principal"), Not(HasSubstr(wrong)))));
  EXPECT_THAT(authorizer_->Authenticate(Token("")),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("bearer token")));
  EXPECT_THAT(authorizer_->Authenticate(Certificate({"etl-node-8.example.com"})),
              StatusIs(absl::StatusCode::kUnauthenticated,
                       HasSubstr("client certificate (\"etl-node-8.example.com\") matches no")));
}

TEST_F(AuthorizerTest, AWrongTokenIsNotRescuedByAGoodCertificate) {
  Credentials credentials = Certificate({"etl-7"});
  credentials.bearer_token = "wrong-token-0123456789abcdef";
  EXPECT_THAT(authorizer_->Authenticate(credentials),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("bearer token")));
  credentials.bearer_token = kReaderToken;
  auto principal = authorizer_->Authenticate(credentials);
  CKPT_ASSERT_OK(principal);
  EXPECT_EQ((*principal)->name, "dashboard");
}

TEST_F(AuthorizerTest, RolesAreSupersets) {
  const Principal reader{"dashboard", Role::kReader, ""};
  const Principal worker{"pipeline", Role::kWorker, ""};
  const Principal admin{"ops", Role::kAdmin, ""};
  for (const RpcRule& rule : RpcRules()) {
    EXPECT_EQ(Authorizer::Authorize(reader, rule.rpc, "j").ok(), rule.role == Role::kReader)
        << rule.rpc;
    EXPECT_EQ(Authorizer::Authorize(worker, rule.rpc, "j").ok(), rule.role != Role::kAdmin)
        << rule.rpc;
    CKPT_EXPECT_OK(Authorizer::Authorize(admin, rule.rpc, "j")) << rule.rpc;
  }
}

TEST_F(AuthorizerTest, RefusalsNameTheRpcTheRoleItNeedsAndThePrincipal) {
  const Principal worker{"pipeline", Role::kWorker, ""};
  EXPECT_THAT(Authorizer::Authorize(worker, "DeleteJob", "j"),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       "DeleteJob needs the admin role; principal \"pipeline\" is a worker"));
  const Principal team{"team-a-ci", Role::kReader, "team-a-"};
  EXPECT_THAT(Authorizer::Authorize(team, "CreateJob", "team-a-x"),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       "CreateJob needs the worker role; principal \"team-a-ci\" is a reader "
                       "confined to jobs whose id starts with \"team-a-\""));
  EXPECT_THAT(Authorizer::Authorize(worker, "Frobnicate", "j"),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("not open to any role")));
}

TEST_F(AuthorizerTest, AConfinedPrincipalTouchesOnlyItsPrefix) {
  const Principal team{"team-a-ci", Role::kAdmin, "team-a-"};
  CKPT_EXPECT_OK(Authorizer::Authorize(team, "DeleteJob", "team-a-nightly"));
  EXPECT_THAT(Authorizer::Authorize(team, "GetJob", "team-b-nightly"),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       "GetJob on job \"team-b-nightly\": principal \"team-a-ci\" is confined to "
                       "jobs whose id starts with \"team-a-\""));
  // A server-generated id would fall outside the prefix.
  EXPECT_THAT(Authorizer::Authorize(team, "CreateJob", ""),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       HasSubstr("CreateJob without a job_id: principal \"team-a-ci\" is "
                                 "confined to jobs whose id starts with \"team-a-\"; pass such")));
  // Listing is allowed; the answer is filtered by the caller.
  CKPT_EXPECT_OK(Authorizer::Authorize(team, "ListJobs", ""));
  CKPT_EXPECT_OK(Authorizer::Authorize(team, "FindOutput", ""));
  CKPT_EXPECT_OK(Authorizer::Authorize(team, "ServerReflectionInfo", ""));
  // A backup holds every team's jobs.
  EXPECT_THAT(Authorizer::Authorize(team, "BackupStore", ""),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       "BackupStore covers every job: principal \"team-a-ci\" is confined to "
                       "jobs whose id starts with \"team-a-\""));
}

TEST_F(AuthorizerTest, JobIdsInMessagesAreEscapedAndCut) {
  const Principal team{"team-a-ci", Role::kAdmin, "team-a-"};
  const std::string hostile = "x\n" + std::string(500, 'y');
  const absl::Status status = Authorizer::Authorize(team, "GetJob", hostile);
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kPermissionDenied,
                               AllOf(HasSubstr("\"x\\ny"), HasSubstr("...\""),
                                     Not(HasSubstr(std::string(200, 'y'))))));
}

TEST_F(AuthorizerTest, CheckPrefixesTheRpc) {
  EXPECT_THAT(authorizer_->Check(Credentials(), "GetJob", "j"),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("GetJob: no credentials")));
  EXPECT_THAT(
      authorizer_->Check(Token(kReaderToken), "PutState", "j"),
      StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("PutState needs the worker")));
  auto principal = authorizer_->Check(Token(kTeamToken), "AddItems", "team-a-1");
  CKPT_ASSERT_OK(principal);
  EXPECT_EQ((*principal)->name, "team-a-ci");
}

TEST_F(AuthorizerTest, ReloadSwapsThePrincipalsAndKeepsOldReferencesValid) {
  auto before = authorizer_->Authenticate(Token(kWorkerToken));
  CKPT_ASSERT_OK(before);
  const std::string rotated = "worker-token-rotated-0123456789";
  WriteFile(path_, Line("ops", "admin", kAdminToken) + Line("pipeline", "worker", rotated));
  auto summary = authorizer_->Reload();
  CKPT_ASSERT_OK(summary);
  EXPECT_EQ(*summary, "2 principals (1 admin, 1 worker, 0 reader)");
  EXPECT_THAT(authorizer_->Authenticate(Token(kWorkerToken)),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("matches no principal")));
  CKPT_EXPECT_OK(authorizer_->Authenticate(Token(rotated)));
  EXPECT_FALSE(authorizer_->UsesCertificates());
  EXPECT_EQ((*before)->name, "pipeline") << "a principal outlives its table";
}

TEST_F(AuthorizerTest, ABrokenFileKeepsTheOldPrincipals) {
  WriteFile(path_, "ops admin token_sha256=not-a-hash\n");
  EXPECT_THAT(authorizer_->Reload(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr(path_), HasSubstr("line 1"), Not(HasSubstr("not-a-hash")))));
  CKPT_EXPECT_OK(authorizer_->Authenticate(Token(kWorkerToken)));
  ASSERT_EQ(::unlink(path_.c_str()), 0);
  EXPECT_THAT(authorizer_->Reload(), StatusIs(absl::StatusCode::kNotFound, HasSubstr(path_)));
  CKPT_EXPECT_OK(authorizer_->Authenticate(Token(kAdminToken)));
}

TEST(AuthorizerLoadTest, AMissingOrUnreadableFileIsAnError) {
  const std::string dir = testutil::NewTempDir("authorizer_load");
  EXPECT_THAT(Authorizer::Load(dir + "/none"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("auth file " + dir + "/none")));
  EXPECT_THAT(Authorizer::Load(dir),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("not a regular file")));
}

}  // namespace
}  // namespace auth
}  // namespace ckpt
