// The C++ SDK against a ckptd with TLS, mutual TLS and an auth file: ClientOptions (and
// the $CKPT_* variables) carry the credentials, every call sends the token, WatchJob
// included, and the Worker runs a job over mutual TLS as its certificate's principal.
#include <stdlib.h>

#include <memory>
#include <optional>
#include <string>

#include "absl/strings/str_cat.h"
#include "client/client.h"
#include "client/worker.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/server/server.h"
#include "tests/testing/secured_server.h"
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
using ::testing::Not;

class ClientSecurityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto pki = TestPki::Make();
    CKPT_ASSERT_OK(pki);
    pki_.emplace(*std::move(pki));
    ServerOptions options = testutil::MutualTlsServerOptions(
        *pki_, AuthLine("ops", "admin", admin_) + AuthLine("dashboard", "reader", reader_) +
                   "etl-node-7 worker cert=etl-node-7.example.com job_prefix=etl-\n");
    auto server = Server::Start(options);
    CKPT_ASSERT_OK(server);
    server_ = std::move(*server);
  }

  // Options for a client with this machine's test certificate, plus `token`.
  ClientOptions Options(const std::string& token = "") const {
    ClientOptions options;
    options.target = server_->address();
    options.tls_ca_file = pki_->Path("ca.crt");
    options.tls_cert_file = pki_->Path("client.crt");
    options.tls_key_file = pki_->Path("client.key");
    options.token = token;
    options.retry.max_attempts = 1;
    return options;
  }

  std::unique_ptr<Client> Connect(const ClientOptions& options) {
    auto client = Client::Connect(options);
    EXPECT_TRUE(client.ok()) << client.status();
    return client.ok() ? std::move(*client) : nullptr;
  }

  static absl::Status CreateJob(Client& client, const std::string& job_id, uint64_t items) {
    v1::CreateJobRequest create;
    create.set_job_id(job_id);
    absl::Status status = client.CreateJob(create).status();
    if (!status.ok() || items == 0) return status;
    v1::AddItemsRequest add;
    add.set_job_id(job_id);
    add.add_ranges()->set_end(items);
    add.set_seal(true);
    return client.AddItems(add).status();
  }

  std::optional<TestPki> pki_;
  std::unique_ptr<Server> server_;
  const std::string admin_ = NewTestToken("admin");
  const std::string reader_ = NewTestToken("reader");
};

TEST_F(ClientSecurityTest, EveryCallCarriesTheToken) {
  auto admin = Connect(Options(admin_));
  CKPT_ASSERT_OK(CreateJob(*admin, "reports", 0));
  v1::DeleteJobRequest remove;
  remove.set_job_id("reports");
  auto reader = Connect(Options(reader_));
  EXPECT_THAT(reader->DeleteJob(remove),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       HasSubstr("principal \"dashboard\" is a reader")));
  // The stream too: a reader may watch.
  int snapshots = 0;
  v1::WatchJobRequest watch;
  watch.set_job_id("reports");
  CKPT_EXPECT_OK(reader->WatchJob(watch, [&](const v1::Job& job) {
    EXPECT_EQ(job.job_id(), "reports");
    return ++snapshots < 1;
  }));
  EXPECT_EQ(snapshots, 1);
  CKPT_EXPECT_OK(admin->DeleteJob(remove));
}

TEST_F(ClientSecurityTest, TheEnvironmentSuppliesWhatOptionsLeaveEmpty) {
  ClientOptions options;
  options.target = server_->address();
  options.retry.max_attempts = 1;
  ASSERT_EQ(::setenv("CKPT_TLS_CA", pki_->Path("ca.crt").c_str(), 1), 0);
  ASSERT_EQ(::setenv("CKPT_TLS_CERT", pki_->Path("client.crt").c_str(), 1), 0);
  ASSERT_EQ(::setenv("CKPT_TLS_KEY", pki_->Path("client.key").c_str(), 1), 0);
  ASSERT_EQ(::setenv("CKPT_TOKEN", admin_.c_str(), 1), 0);
  auto client = Connect(options);
  for (const char* variable : {"CKPT_TLS_CA", "CKPT_TLS_CERT", "CKPT_TLS_KEY", "CKPT_TOKEN"}) {
    ::unsetenv(variable);
  }
  ASSERT_NE(client, nullptr);
  CKPT_EXPECT_OK(CreateJob(*client, "from-env", 0));
  v1::DeleteJobRequest remove;
  remove.set_job_id("from-env");
  CKPT_EXPECT_OK(client->DeleteJob(remove)) << "the token, not the certificate, spoke";
}

TEST_F(ClientSecurityTest, RefusalsAreNotRetriedAndNeverShowTheToken) {
  const std::string wrong = NewTestToken("wrong");
  ClientOptions options = Options(wrong);
  options.retry.max_attempts = 5;
  int retries = 0;
  options.on_retry = [&](const absl::Status&, int) { ++retries; };
  auto client = Connect(options);
  v1::GetJobRequest get;
  get.set_job_id("etl-x");
  EXPECT_THAT(client->GetJob(get), StatusIs(absl::StatusCode::kUnauthenticated,
                                            AllOf(HasSubstr("GetJob"), Not(HasSubstr(wrong)))));
  EXPECT_EQ(retries, 0);
}

TEST_F(ClientSecurityTest, BadTlsOptionsAreRefusedByConnect) {
  ClientOptions options = Options();
  options.tls_key_file.clear();
  EXPECT_THAT(Client::Connect(options),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("give both")));
  options = Options();
  options.tls_ca_file = pki_->Path("missing-ca.crt");
  EXPECT_THAT(Client::Connect(options),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("missing-ca.crt")));
  options = Options("line\nbreak-" + admin_);
  EXPECT_THAT(Client::Connect(options),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("cannot travel in a header"), Not(HasSubstr(admin_)))));
}

// A worker that proves itself with its certificate alone (no token), as the README's
// "Securing ckptd" sets one up, runs a job of its own prefix to the end.
TEST_F(ClientSecurityTest, AWorkerRunsOverMutualTlsAsItsCertificatesPrincipal) {
  auto node = Connect(Options());
  CKPT_ASSERT_OK(CreateJob(*node, "etl-nightly", 40));
  WorkerOptions worker_options;
  worker_options.job_id = "etl-nightly";
  worker_options.lease_batch = 8;
  auto worker = Worker::Register(node.get(), worker_options);
  CKPT_ASSERT_OK(worker);
  CKPT_ASSERT_OK((*worker)->Run([](WorkItem&) { return absl::OkStatus(); }));
  EXPECT_EQ((*worker)->stats().completed, 40u);
  v1::GetJobRequest get;
  get.set_job_id("etl-nightly");
  auto job = node->GetJob(get);
  CKPT_ASSERT_OK(job);
  EXPECT_EQ(job->job().status(), v1::JOB_STATUS_COMPLETED);
  // Outside its prefix, the same certificate is refused.
  EXPECT_THAT(CreateJob(*node, "ml-nightly", 0),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("\"etl-\"")));
}

}  // namespace
}  // namespace ckpt
