// The ckptd binary secured as an operator runs it: TLS and an auth file re-read on
// SIGHUP without a restart and without dropping other clients' calls, a broken file
// kept out, the start-up refusal of a network address served open, and no test token
// in anything ckptd wrote.
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <sys/wait.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "ckpt/v1/checkpoint.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/common/grpc_status.h"
#include "tests/durability/ckptd_process.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/test_credentials.h"

namespace ckpt {
namespace {

using ::ckpt::testutil::AuthLine;
using ::ckpt::testutil::CkptdProcess;
using ::ckpt::testutil::NewTestToken;
using ::ckpt::testutil::StatusIs;
using ::ckpt::testutil::TestPki;
using ::testing::HasSubstr;
using ::testing::Not;
using Stub = v1::Checkpoint::Stub;

// A bound for a hung ckptd, never a pass/fail threshold.
constexpr absl::Duration kBound = absl::Seconds(60);

class CkptdSecurityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto pki = TestPki::Make();
    CKPT_ASSERT_OK(pki);
    pki_.emplace(*std::move(pki));
    // ckptd reads its certificate from these paths; rotation replaces their contents.
    dir_ = testutil::NewTempDir("ckptd_security");
    testutil::WriteFileAtomically(dir_ + "/tls.crt", pki_->Pem("server.crt"));
    testutil::WriteFileAtomically(dir_ + "/tls.key", pki_->Pem("server.key"));
    testutil::WriteFileAtomically(dir_ + "/auth", AuthFile(true));
  }

  void TearDown() override {
    // Every test token, in everything ckptd printed.
    for (const std::string& token : {admin_, worker_, retiring_}) {
      EXPECT_THAT(stderr_seen_, Not(HasSubstr(token)));
    }
    EXPECT_THAT(stderr_seen_, Not(HasSubstr(testutil::kTestTokenMarker)));
  }

  std::string AuthFile(bool with_retiring) const {
    return AuthLine("ops", "admin", admin_) + AuthLine("pipeline", "worker", worker_) +
           (with_retiring ? AuthLine("retiring", "worker", retiring_) : "");
  }

  std::unique_ptr<CkptdProcess> StartCkptd() {
    auto process =
        CkptdProcess::Start(testutil::NewTempDir("data"),
                            {"--tls_cert=" + dir_ + "/tls.crt", "--tls_key=" + dir_ + "/tls.key",
                             "--auth_file=" + dir_ + "/auth", "--sync=false"});
    EXPECT_TRUE(process.ok()) << process.status();
    return process.ok() ? std::move(*process) : nullptr;
  }

  // A stub on a connection of its own; `server_name` checks ckptd's certificate for
  // that name instead of the address.
  std::unique_ptr<Stub> Connect(const CkptdProcess& ckptd, const std::string& server_name = "") {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    if (!server_name.empty()) args.SetSslTargetNameOverride(server_name);
    return v1::Checkpoint::NewStub(
        grpc::CreateCustomChannel(ckptd.address(), pki_->Credentials(), args));
  }

  template <typename Request, typename Response>
  absl::StatusOr<Response> Call(Stub& stub,
                                grpc::Status (Stub::*method)(grpc::ClientContext*, const Request&,
                                                             Response*),
                                const Request& request, const std::string& token) {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + kBound));
    context.AddMetadata("authorization", "Bearer " + token);
    Response response;
    const grpc::Status status = (stub.*method)(&context, request, &response);
    if (!status.ok()) return FromGrpcStatus(status);
    return response;
  }

  absl::Status GetJob(Stub& stub, const std::string& token) {
    v1::GetJobRequest request;
    request.set_job_id("shared");
    return Call(stub, &Stub::GetJob, request, token).status();
  }

  absl::Status SetStage(Stub& stub, const std::string& stage) {
    v1::UpdateJobRequest request;
    request.set_job_id("shared");
    request.set_stage(stage);
    return Call(stub, &Stub::UpdateJob, request, admin_).status();
  }

  // SIGHUP, then waits for the `nth` line with `needle`: the reload is done.
  void Reload(CkptdProcess& ckptd, const std::string& needle, int nth) {
    ASSERT_EQ(::kill(ckptd.pid(), SIGHUP), 0);
    // Server::Reload logs the auth file's line after the TLS line, so this line
    // means both are done.
    auto line = ckptd.AwaitStderrLine(needle, kBound, nth);
    ASSERT_TRUE(line.ok()) << line.status();
  }

  std::optional<TestPki> pki_;
  std::string dir_;
  const std::string admin_ = NewTestToken("admin");
  const std::string worker_ = NewTestToken("worker");
  const std::string retiring_ = NewTestToken("retiring");
  std::string stderr_seen_;  // of every ckptd the test ran
};

// A WatchJob stream held by the worker across every reload: it keeps receiving.
class Watcher {
 public:
  Watcher(Stub& stub, const std::string& token) {
    context_.AddMetadata("authorization", "Bearer " + token);
    v1::WatchJobRequest request;
    request.set_job_id("shared");
    reader_ = stub.WatchJob(&context_, request);
  }
  ~Watcher() {
    context_.TryCancel();
    reader_->Finish().IgnoreError();
  }
  // Reads snapshots until one shows `stage`; false if the stream ends first.
  bool AwaitStage(const std::string& stage) {
    v1::WatchJobResponse response;
    while (reader_->Read(&response)) {
      if (response.job().stage() == stage) return true;
    }
    return false;
  }

 private:
  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientReader<v1::WatchJobResponse>> reader_;
};

TEST_F(CkptdSecurityTest, SighupRotatesTokensAndCertificatesWithoutDroppingCalls) {
  std::unique_ptr<CkptdProcess> ckptd = StartCkptd();
  ASSERT_NE(ckptd, nullptr);
  auto admin = Connect(*ckptd);
  v1::CreateJobRequest create;
  create.set_job_id("shared");
  CKPT_ASSERT_OK(Call(*admin, &Stub::CreateJob, create, admin_));
  auto worker = Connect(*ckptd);
  auto retiring = Connect(*ckptd);
  auto watcher = std::make_unique<Watcher>(*worker, worker_);
  CKPT_ASSERT_OK(SetStage(*admin, "before"));
  ASSERT_TRUE(watcher->AwaitStage("before"));
  CKPT_ASSERT_OK(GetJob(*retiring, retiring_));

  // A token removed from the file stops working at once, on its open connection; the
  // other clients' calls, the open stream included, go on.
  testutil::WriteFileAtomically(dir_ + "/auth", AuthFile(false));
  Reload(*ckptd, "reloaded auth file", 1);
  EXPECT_THAT(GetJob(*retiring, retiring_),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("matches no principal")));
  CKPT_EXPECT_OK(GetJob(*worker, worker_));
  CKPT_ASSERT_OK(SetStage(*admin, "after token removal"));
  EXPECT_TRUE(watcher->AwaitStage("after token removal"));

  // A broken file (a token pasted where its hash belongs) keeps the previous one.
  testutil::WriteFileAtomically(dir_ + "/auth", "ops admin token_sha256=" + retiring_ + "\n");
  Reload(*ckptd, "kept the previous auth file", 1);
  CKPT_EXPECT_OK(GetJob(*worker, worker_));
  EXPECT_THAT(GetJob(*retiring, retiring_),
              StatusIs(absl::StatusCode::kUnauthenticated, testing::_));

  // Certificate rotation: connections made after the reload get the new certificate
  // (the only one valid for ckptd-rotated.test); open ones keep theirs and their calls.
  EXPECT_THAT(GetJob(*Connect(*ckptd, "ckptd-rotated.test"), worker_),
              StatusIs(absl::StatusCode::kUnavailable, testing::_));
  testutil::WriteFileAtomically(dir_ + "/tls.crt", pki_->Pem("server2.crt"));
  testutil::WriteFileAtomically(dir_ + "/tls.key", pki_->Pem("server2.key"));
  testutil::WriteFileAtomically(dir_ + "/auth", AuthFile(false));
  Reload(*ckptd, "reloaded auth file", 2);
  EXPECT_THAT(ckptd->Stderr(), HasSubstr("reloaded TLS: certificate"));
  EXPECT_THAT(ckptd->Stderr(), HasSubstr("CN=ckptd-rotated"));
  CKPT_EXPECT_OK(GetJob(*Connect(*ckptd, "ckptd-rotated.test"), worker_));
  CKPT_ASSERT_OK(SetStage(*admin, "after rotation"));
  EXPECT_TRUE(watcher->AwaitStage("after rotation"));
  CKPT_EXPECT_OK(GetJob(*worker, worker_));

  // A key that does not match the certificate keeps the previous pair.
  testutil::WriteFileAtomically(dir_ + "/tls.key", pki_->Pem("server.key"));
  Reload(*ckptd, "reloaded auth file", 3);
  EXPECT_THAT(ckptd->Stderr(), HasSubstr("kept the previous TLS certificate"));
  CKPT_EXPECT_OK(GetJob(*Connect(*ckptd, "ckptd-rotated.test"), worker_));

  // Open connections would hold ckptd's shutdown for its grace period.
  watcher.reset();
  admin.reset();
  worker.reset();
  retiring.reset();
  const int status = ckptd->Stop();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  stderr_seen_ += ckptd->Stderr();
}

// Every line ckptd wrote before exiting; it must have exited by itself.
std::vector<std::string> RefusalLines(const testutil::CkptdExit& exit) {
  EXPECT_TRUE(WIFEXITED(exit.wait_status) && WEXITSTATUS(exit.wait_status) == 1)
      << exit.wait_status << ": " << exit.stderr_text;
  return absl::StrSplit(exit.stderr_text, '\n', absl::SkipEmpty());
}

TEST_F(CkptdSecurityTest, ANetworkAddressServedOpenIsRefusedUnlessInsecure) {
  const testutil::CkptdExit refused =
      testutil::RunCkptdExpectingExit(testutil::NewTempDir("data"), {"--listen=0.0.0.0:0"});
  stderr_seen_ += refused.stderr_text;
  const std::vector<std::string> lines = RefusalLines(refused);
  ASSERT_EQ(lines.size(), 1u) << refused.stderr_text;
  EXPECT_THAT(lines[0],
              HasSubstr("cannot start: --listen=0.0.0.0:0 is reachable from the network"));
  EXPECT_THAT(lines[0], HasSubstr("--tls_cert"));
  EXPECT_THAT(lines[0], HasSubstr("--insecure"));

  auto open =
      CkptdProcess::Start(testutil::NewTempDir("data"), {"--listen=0.0.0.0:0", "--insecure"});
  CKPT_ASSERT_OK(open);
  EXPECT_THAT((*open)->Stderr(), HasSubstr("WARNING: --insecure: serving 0.0.0.0:"));
  stderr_seen_ += (*open)->Stderr();
}

TEST_F(CkptdSecurityTest, ABrokenAuthFileOrKeyIsRefusedWithOneLine) {
  testutil::WriteFileAtomically(dir_ + "/auth", "# principals\nops admin token=" + admin_ + "\n");
  testutil::CkptdExit refused = testutil::RunCkptdExpectingExit(testutil::NewTempDir("data"),
                                                                {"--auth_file=" + dir_ + "/auth"});
  stderr_seen_ += refused.stderr_text;
  std::vector<std::string> lines = RefusalLines(refused);
  ASSERT_EQ(lines.size(), 1u) << refused.stderr_text;
  EXPECT_THAT(lines[0], HasSubstr(dir_ + "/auth: line 2: field 3 is not token_sha256="));

  refused = testutil::RunCkptdExpectingExit(
      testutil::NewTempDir("data"),
      {"--tls_cert=" + pki_->Path("server.crt"), "--tls_key=" + pki_->Path("client.key")});
  stderr_seen_ += refused.stderr_text;
  lines = RefusalLines(refused);
  ASSERT_EQ(lines.size(), 1u) << refused.stderr_text;
  EXPECT_THAT(lines[0], HasSubstr("client.key does not belong to certificate"));
}

}  // namespace
}  // namespace ckpt
