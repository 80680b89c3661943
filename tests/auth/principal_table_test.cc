#include "service/auth/principal_table.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/common/sha256.h"
#include "tests/testing/status_matchers.h"

namespace ckpt {
namespace auth {
namespace {

using ::ckpt::testutil::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kAliceToken[] = "alice-token-0123456789abcdef";
constexpr char kCiToken[] = "ci-token-0123456789abcdef";
constexpr char kCiNextToken[] = "ci-next-token-0123456789abcdef";

std::string Table() {
  return absl::StrCat(
      "# who may call ckptd\n"
      "\n"
      "ops-alice   admin   token_sha256=",
      Sha256Hex(kAliceToken), "\n", "  team-a-ci\tworker  token_sha256=", Sha256Hex(kCiToken),
      " token_sha256=", Sha256Hex(kCiNextToken), " job_prefix=team-a-  \r\n",
      "etl-node-7  worker  cert=etl-node-7.example.com cert=spiffe://etl/7 job_prefix=etl-\n",
      "dashboard   reader  cert=dashboard\n");
}

absl::Status ParseError(const std::string& text) {
  return PrincipalTable::Parse(text, "/etc/ckpt/auth").status();
}

TEST(PrincipalTableTest, ParsesPrincipalsWithRolesPrefixesAndCredentials) {
  auto table = PrincipalTable::Parse(Table(), "auth");
  CKPT_ASSERT_OK(table);
  ASSERT_EQ((*table)->principals().size(), 4u);
  const Principal* alice = (*table)->FindByToken(kAliceToken);
  ASSERT_NE(alice, nullptr);
  EXPECT_EQ(alice->name, "ops-alice");
  EXPECT_EQ(alice->role, Role::kAdmin);
  EXPECT_FALSE(alice->confined());
  EXPECT_TRUE(alice->MayTouch("anything"));

  const Principal* ci = (*table)->FindByToken(kCiToken);
  ASSERT_NE(ci, nullptr);
  EXPECT_EQ(ci->name, "team-a-ci");
  EXPECT_EQ(ci->role, Role::kWorker);
  EXPECT_EQ(ci->job_prefix, "team-a-");
  EXPECT_EQ((*table)->FindByToken(kCiNextToken), ci) << "a second token for rotation";
  EXPECT_TRUE(ci->MayTouch("team-a-nightly"));
  EXPECT_FALSE(ci->MayTouch("team-b-nightly"));
  EXPECT_FALSE(ci->MayTouch("team-"));

  const Principal* etl = (*table)->FindByCertificateName("spiffe://etl/7");
  ASSERT_NE(etl, nullptr);
  EXPECT_EQ(etl->name, "etl-node-7");
  EXPECT_EQ((*table)->FindByCertificateName("etl-node-7.example.com"), etl);
  EXPECT_EQ((*table)->FindByCertificateName("dashboard")->role, Role::kReader);
  EXPECT_TRUE((*table)->uses_certificates());
  EXPECT_EQ((*table)->Summary(), "4 principals (1 admin, 2 worker, 1 reader)");
}

TEST(PrincipalTableTest, UnknownTokensAndNamesFindNobody) {
  auto table = PrincipalTable::Parse(Table(), "auth");
  CKPT_ASSERT_OK(table);
  EXPECT_EQ((*table)->FindByToken(""), nullptr);
  EXPECT_EQ((*table)->FindByToken("alice-token-0123456789abcdeF"), nullptr);
  EXPECT_EQ((*table)->FindByToken(Sha256Hex(kAliceToken)), nullptr) << "the hash is not the token";
  EXPECT_EQ((*table)->FindByCertificateName("etl-node-8.example.com"), nullptr);
  EXPECT_EQ((*table)->FindByCertificateName("ops-alice"), nullptr) << "names are not credentials";
}

TEST(PrincipalTableTest, UppercaseHexIsTheSameHash) {
  std::string hex = Sha256Hex(kAliceToken);
  for (char& c : hex) c = static_cast<char>(std::toupper(c));
  auto table = PrincipalTable::Parse(absl::StrCat("a admin token_sha256=", hex), "auth");
  CKPT_ASSERT_OK(table);
  EXPECT_NE((*table)->FindByToken(kAliceToken), nullptr);
}

TEST(PrincipalTableTest, MalformedLinesNameTheFileAndLine) {
  const std::string hash = Sha256Hex(kAliceToken);
  EXPECT_THAT(ParseError(absl::StrCat("# c\nalice boss token_sha256=", hash)),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("auth file /etc/ckpt/auth: line 2: "),
                             HasSubstr("reader, worker or admin"))));
  EXPECT_THAT(ParseError("alice"), StatusIs(absl::StatusCode::kInvalidArgument,
                                            HasSubstr("line 1: the second field must be a role")));
  EXPECT_THAT(ParseError(absl::StrCat("al ice admin token_sha256=", hash)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("second field")));
  EXPECT_THAT(ParseError(absl::StrCat("alice! admin token_sha256=", hash)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("principal's name")));
  EXPECT_THAT(
      ParseError("alice admin job_prefix=team-"),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("no token_sha256= and no cert=")));
  EXPECT_THAT(ParseError(absl::StrCat("alice admin token_sha256=", hash, " job_prefix=a/b")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("job_prefix= must be")));
  EXPECT_THAT(
      ParseError(absl::StrCat("alice admin token_sha256=", hash, " job_prefix=a job_prefix=b")),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("job_prefix= is given twice")));
  EXPECT_THAT(ParseError("alice admin cert="),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("cert= must be")));
}

// A token pasted where its hash belongs must not end up in a log through the error.
TEST(PrincipalTableTest, ErrorsNeverEchoWhatCouldBeAToken) {
  const std::string token = "s3cr3t-pasted-token-value-0123456789";
  for (const std::string& line :
       {absl::StrCat("alice admin token_sha256=", token), absl::StrCat("alice admin token=", token),
        absl::StrCat("alice admin ", token), absl::StrCat("alice admin ", token, "=x")}) {
    const absl::Status status = ParseError(line);
    EXPECT_THAT(status, StatusIs(absl::StatusCode::kInvalidArgument, Not(HasSubstr(token))))
        << line;
    EXPECT_THAT(std::string(status.message()), Not(HasSubstr("s3cr3t")));
  }
  EXPECT_THAT(ParseError(absl::StrCat("alice admin token_sha256=", token)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("never the token")));
}

TEST(PrincipalTableTest, EachNameTokenAndCertificateNamesOnePrincipal) {
  const std::string a = Sha256Hex("token-a-0123456789");
  const std::string b = Sha256Hex("token-b-0123456789");
  EXPECT_THAT(
      ParseError(absl::StrCat("alice admin token_sha256=", a, "\nalice reader token_sha256=", b)),
      StatusIs(absl::StatusCode::kInvalidArgument,
               AllOf(HasSubstr("line 2"), HasSubstr("\"alice\" is named twice"))));
  EXPECT_THAT(
      ParseError(absl::StrCat("alice admin token_sha256=", a, "\nbob reader token_sha256=", a)),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("also \"alice\"'s")));
  EXPECT_THAT(ParseError(absl::StrCat("alice admin token_sha256=", a, " token_sha256=", a)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("twice")));
  EXPECT_THAT(ParseError("alice admin cert=x\nbob reader cert=x"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("line 2"), HasSubstr("cert=x is given twice"))));
}

TEST(PrincipalTableTest, AFileWithoutPrincipalsIsRefused) {
  EXPECT_THAT(ParseError(""),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("names no principal")));
  EXPECT_THAT(ParseError("# all commented out\n  \n"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("names no principal")));
}

TEST(PrincipalTableTest, AnOversizedFileIsRefused) {
  const std::string big(PrincipalTable::kMaxFileBytes + 1, '#');
  EXPECT_THAT(ParseError(big), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("bytes")));
}

}  // namespace
}  // namespace auth
}  // namespace ckpt
