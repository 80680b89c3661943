// The ckptd binary's HTTP listener under TLS, as an operator runs it: with --tls_cert and
// --tls_key it serves the dashboard, /api/v1 and /metrics over HTTPS only, with gRPC's
// certificate; with --tls_client_ca it refuses clients without a certificate from that
// CA, and a certificate names a principal as over gRPC; SIGHUP's new certificate
// reaches new connections while an open event stream goes on.
#include <grpcpp/grpcpp.h>
#include <httplib.h>
#include <signal.h>
#include <sys/wait.h>

#include <memory>
#include <optional>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "ckpt/v1/checkpoint.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/durability/ckptd_process.h"
#include "tests/testing/event_reader.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/test_credentials.h"

namespace ckpt {
namespace {

using ::ckpt::testutil::AuthLine;
using ::ckpt::testutil::CkptdProcess;
using ::ckpt::testutil::EventReader;
using ::ckpt::testutil::NewTestToken;
using ::ckpt::testutil::TestPki;
using ::testing::HasSubstr;
using ::testing::Not;

// A bound for a hung ckptd, never a pass/fail threshold.
constexpr absl::Duration kBound = absl::Seconds(60);

// What a client should get: an HTTP status and body, or no answer at all (a refused
// handshake, or a server that hung up).
struct Answer {
  std::optional<int> status;  // nullopt: no HTTP answer
  std::string body;
};

Answer ToAnswer(const httplib::Result& result) {
  if (!result) return {};
  return {result->status, result->body};
}

class HttpsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // OpenSSL writes with write(2): a request to a server that refused the handshake
    // must fail, not kill the test.
    ::signal(SIGPIPE, SIG_IGN);
    auto pki = TestPki::Make();
    CKPT_ASSERT_OK(pki);
    pki_.emplace(*std::move(pki));
    // ckptd reads its certificate from these paths; rotation replaces their contents.
    dir_ = testutil::NewTempDir("https");
    testutil::WriteFileAtomically(dir_ + "/tls.crt", pki_->Pem("server.crt"));
    testutil::WriteFileAtomically(dir_ + "/tls.key", pki_->Pem("server.key"));
    testutil::WriteFileAtomically(
        dir_ + "/auth", AuthLine("ops", "admin", admin_) + AuthLine("viewer", "reader", reader_) +
                            "etl-node-7 reader cert=etl-node-7.example.com\n");
  }

  void TearDown() override {
    if (ckptd_ == nullptr) return;
    events_.reset();  // an open stream would hold ckptd's shutdown
    const std::string stderr_text = ckptd_->Stderr();
    const int status = ckptd_->Stop();
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status << ": " << stderr_text;
    for (const std::string& token : {admin_, reader_}) {
      EXPECT_THAT(stderr_text, Not(HasSubstr(token)));
    }
  }

  // Starts ckptd with TLS, the auth file and HTTP on a free port, and reads that port
  // from its "dashboard on https://127.0.0.1:PORT/" line.
  void StartCkptd(bool mutual_tls) {
    std::vector<std::string> flags = {
        "--tls_cert=" + dir_ + "/tls.crt", "--tls_key=" + dir_ + "/tls.key",
        "--auth_file=" + dir_ + "/auth", "--http_listen=127.0.0.1:0", "--sync=false"};
    if (mutual_tls) flags.push_back("--tls_client_ca=" + pki_->Path("ca.crt"));
    auto process = CkptdProcess::Start(testutil::NewTempDir("data"), flags);
    CKPT_ASSERT_OK(process);
    ckptd_ = *std::move(process);
    auto line = ckptd_->AwaitStderrLine("dashboard on ", kBound);
    CKPT_ASSERT_OK(line);
    const std::string prefix = "dashboard on https://127.0.0.1:";
    const size_t at = line->find(prefix);
    ASSERT_NE(at, std::string::npos) << *line;
    const size_t begin = at + prefix.size();
    ASSERT_TRUE(absl::SimpleAtoi(line->substr(begin, line->find('/', begin) - begin), &port_))
        << *line;
  }

  // An HTTPS client on a connection of its own, trusting `ca` ("ca" for the test CA),
  // presenting certificate `client` ("" for none) and checking ckptd's certificate for
  // `server_name` (which it reaches at 127.0.0.1).
  std::unique_ptr<httplib::Client> Https(const std::string& ca = "ca",
                                         const std::string& client = "",
                                         const std::string& server_name = "127.0.0.1") const {
    const std::string url = absl::StrCat("https://", server_name, ":", port_);
    auto https = client.empty()
                     ? std::make_unique<httplib::Client>(url)
                     : std::make_unique<httplib::Client>(url, pki_->Path(client + ".crt"),
                                                         pki_->Path(client + ".key"));
    https->set_ca_cert_path(pki_->Path(ca + ".crt"));
    https->enable_server_certificate_verification(true);
    https->set_hostname_addr_map({{server_name, "127.0.0.1"}});
    https->set_read_timeout(absl::ToInt64Seconds(kBound), 0);
    return https;
  }

  static httplib::Headers Bearer(const std::string& token) {
    return {{"authorization", "Bearer " + token}};
  }

  // CreateJob `job_id` over gRPC (TLS, with `client`'s certificate for mutual TLS).
  void CreateJob(const std::string& job_id, const std::string& client = "") {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    auto stub = v1::Checkpoint::NewStub(
        grpc::CreateCustomChannel(ckptd_->address(), pki_->Credentials(client), args));
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + kBound));
    context.AddMetadata("authorization", "Bearer " + admin_);
    v1::CreateJobRequest request;
    request.set_job_id(job_id);
    v1::CreateJobResponse response;
    const grpc::Status status = stub->CreateJob(&context, request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }

  std::optional<TestPki> pki_;
  std::string dir_;
  const std::string admin_ = NewTestToken("admin");
  const std::string reader_ = NewTestToken("reader");
  std::unique_ptr<CkptdProcess> ckptd_;
  int port_ = 0;
  std::unique_ptr<EventReader> events_;
};

TEST_F(HttpsTest, ServesTheApiAndMetricsOverHttpsOnly) {
  ASSERT_NO_FATAL_FAILURE(StartCkptd(/*mutual_tls=*/false));
  ASSERT_NO_FATAL_FAILURE(CreateJob("crawl"));

  const Answer metrics = ToAnswer(Https()->Get("/metrics"));
  ASSERT_EQ(metrics.status, 200) << metrics.body;
  EXPECT_THAT(metrics.body, HasSubstr("# TYPE ckpt_"));
  const Answer job = ToAnswer(Https()->Get("/api/v1/jobs/crawl", Bearer(reader_)));
  ASSERT_EQ(job.status, 200) << job.body;
  EXPECT_THAT(job.body, HasSubstr("\"jobId\":\"crawl\""));
  // The same tokens and roles as before TLS.
  EXPECT_EQ(ToAnswer(Https()->Get("/api/v1/jobs/crawl")).status, 401);
  EXPECT_EQ(
      ToAnswer(Https()->Post("/api/v1/jobs/crawl/pause", Bearer(reader_), "{}", "application/json"))
          .status,
      403);
  EXPECT_EQ(
      ToAnswer(Https()->Post("/api/v1/jobs/crawl/pause", Bearer(admin_), "{}", "application/json"))
          .status,
      200);

  // Plain HTTP on the HTTPS port gets no answer, and no token of it is read.
  httplib::Client plain(absl::StrCat("http://127.0.0.1:", port_));
  plain.set_read_timeout(absl::ToInt64Seconds(kBound), 0);
  EXPECT_EQ(ToAnswer(plain.Get("/api/v1/jobs/crawl", Bearer(reader_))).status, std::nullopt);
  // A client that trusts another CA refuses ckptd's certificate.
  EXPECT_EQ(ToAnswer(Https("other-ca")->Get("/metrics")).status, std::nullopt);
}

TEST_F(HttpsTest, MutualTlsRefusesClientsWithoutACertificateAndNamesPrincipalsByIt) {
  ASSERT_NO_FATAL_FAILURE(StartCkptd(/*mutual_tls=*/true));
  ASSERT_NO_FATAL_FAILURE(CreateJob("crawl", "client"));

  // No certificate, or one from another CA: no answer, even to /metrics or a token.
  EXPECT_EQ(ToAnswer(Https()->Get("/metrics")).status, std::nullopt);
  EXPECT_EQ(ToAnswer(Https()->Get("/api/v1/jobs/crawl", Bearer(admin_))).status, std::nullopt);
  EXPECT_EQ(ToAnswer(Https("ca", "other-client")->Get("/metrics")).status, std::nullopt);
  EXPECT_EQ(ToAnswer(Https("ca", "expired")->Get("/metrics")).status, std::nullopt);

  // etl-node-7.example.com is the reader etl-node-7 of the auth file, without a token.
  const Answer job = ToAnswer(Https("ca", "client")->Get("/api/v1/jobs/crawl"));
  ASSERT_EQ(job.status, 200) << job.body;
  EXPECT_THAT(job.body, HasSubstr("\"jobId\":\"crawl\""));
  const Answer pause =
      ToAnswer(Https("ca", "client")->Post("/api/v1/jobs/crawl/pause", "{}", "application/json"));
  EXPECT_EQ(pause.status, 403) << pause.body;
  EXPECT_THAT(pause.body, HasSubstr("etl-node-7"));
  // A certificate from the CA that names no principal proves nobody.
  EXPECT_EQ(ToAnswer(Https("ca", "stranger")->Get("/api/v1/jobs/crawl")).status, 401);
  EXPECT_EQ(ToAnswer(Https("ca", "stranger")->Get("/metrics")).status, 200);
  // A token, when given, decides alone (as over gRPC).
  EXPECT_EQ(
      ToAnswer(Https("ca", "stranger")
                   ->Post("/api/v1/jobs/crawl/pause", Bearer(admin_), "{}", "application/json"))
          .status,
      200);
}

TEST_F(HttpsTest, SighupRotatesTheCertificateForNewConnectionsAndKeepsOpenStreams) {
  ASSERT_NO_FATAL_FAILURE(StartCkptd(/*mutual_tls=*/false));
  ASSERT_NO_FATAL_FAILURE(CreateJob("shared"));
  events_ =
      std::make_unique<EventReader>(Https(), "/api/v1/jobs/shared/events",
                                    testutil::HttpHeaders{{"authorization", "Bearer " + reader_}});
  ASSERT_TRUE(events_->NextJobWhere([](const v1::GetJobResponse&) { return true; }));

  // Only the new certificate is valid for ckptd-rotated.test.
  EXPECT_EQ(ToAnswer(Https("ca", "", "ckptd-rotated.test")->Get("/metrics")).status, std::nullopt);
  testutil::WriteFileAtomically(dir_ + "/tls.crt", pki_->Pem("server2.crt"));
  testutil::WriteFileAtomically(dir_ + "/tls.key", pki_->Pem("server2.key"));
  ASSERT_EQ(::kill(ckptd_->pid(), SIGHUP), 0);
  // Server::Reload logs the auth file's line after the TLS line: both are done.
  CKPT_ASSERT_OK(ckptd_->AwaitStderrLine("reloaded auth file", kBound));
  EXPECT_THAT(ckptd_->Stderr(), HasSubstr("CN=ckptd-rotated"));
  EXPECT_EQ(ToAnswer(Https("ca", "", "ckptd-rotated.test")->Get("/metrics")).status, 200);

  // The stream opened under the old certificate still carries each change.
  const Answer pause = ToAnswer(
      Https()->Post("/api/v1/jobs/shared/pause", Bearer(admin_), "{}", "application/json"));
  ASSERT_EQ(pause.status, 200) << pause.body;
  EXPECT_TRUE(events_->NextJobWhere(
      [](const v1::GetJobResponse& job) { return job.job().status() == v1::JOB_STATUS_PAUSED; }));
}

}  // namespace
}  // namespace ckpt
