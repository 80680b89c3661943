// The example pipelines as child processes against a real ckptd: index_pipeline killed
// with SIGKILL mid-run and started again finishes every index exactly once, and
// doc_pipeline obeys pause, resume and stop.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "client/client.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/client_fixture.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/test_credentials.h"
#include "tests/testing/test_server.h"

namespace ckpt {
namespace {

using ::ckpt::testutil::TestServer;

// A child process whose stdout or stderr we read line by line.
class Child {
 public:
  // Starts `binary` (relative to the runfiles root) with `args`; `read_stderr` picks
  // which stream comes back through ReadLine(); the other goes to the test log.
  Child(const std::string& binary, const std::vector<std::string>& args, bool read_stderr) {
    const std::string path = absl::StrCat(std::getenv("TEST_SRCDIR"), "/ckpt/", binary);
    int fds[2];
    EXPECT_EQ(pipe(fds), 0);
    pid_ = fork();
    if (pid_ == 0) {
      dup2(fds[1], read_stderr ? STDERR_FILENO : STDOUT_FILENO);
      close(fds[0]);
      close(fds[1]);
      std::vector<char*> argv{const_cast<char*>(path.c_str())};
      for (const std::string& arg : args) argv.push_back(const_cast<char*>(arg.c_str()));
      argv.push_back(nullptr);
      execv(path.c_str(), argv.data());
      _exit(127);
    }
    close(fds[1]);
    out_ = fdopen(fds[0], "r");
  }
  ~Child() {
    if (pid_ > 0) Kill();
    if (out_ != nullptr) fclose(out_);
  }

  // The next line without its newline, or false at end of stream.
  bool ReadLine(std::string* line) {
    char buffer[4096];
    if (fgets(buffer, sizeof(buffer), out_) == nullptr) return false;
    *line = buffer;
    if (!line->empty() && line->back() == '\n') line->pop_back();
    return true;
  }

  // Reads lines until one contains `text` (true) or the stream ends (false).
  bool ReadUntil(const std::string& text, std::vector<std::string>* seen = nullptr) {
    std::string line;
    while (ReadLine(&line)) {
      if (seen != nullptr) seen->push_back(line);
      if (absl::StrContains(line, text)) return true;
    }
    return false;
  }

  void Kill() {
    kill(pid_, SIGKILL);
    Wait();
  }

  // Waits for the child to exit; its exit code, or -1 if a signal ended it.
  int Wait() {
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

 private:
  pid_t pid_ = -1;
  FILE* out_ = nullptr;
};

class ExamplesTest : public testutil::ServerAndClientTest {
 protected:
  v1::Job GetJob(const std::string& job_id) {
    v1::GetJobRequest get;
    get.set_job_id(job_id);
    auto got = client_->GetJob(get);
    EXPECT_TRUE(got.ok()) << got.status();
    return got->job();
  }
};

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream content;
  content << in.rdbuf();
  return content.str();
}

TEST_F(ExamplesTest, IndexPipelineKilledAtRandomFinishesEveryIndexExactlyOnce) {
  constexpr uint64_t kCount = 400;
  const std::string out_dir = testutil::NewTempDir("index_pipeline");
  const std::vector<std::string> args = {
      absl::StrCat("--server=", server_->server().address()),
      "--job=squares",
      absl::StrCat("--count=", kCount),
      "--workers=4",
      absl::StrCat("--out_dir=", out_dir),
      "--work_us=500",
      "--lease_timeout_s=1",  // leases of a killed run come back after a second
  };
  // Two runs killed after a seeded number of finished indices, then one to the end.
  std::mt19937 random(20251123);
  int done_lines = 0;
  for (int run = 0; run < 2; ++run) {
    Child child("client/examples/index_pipeline", args, /*read_stderr=*/false);
    const int kill_after = 20 + random() % 100;
    std::string line;
    for (int seen = 0; seen < kill_after && child.ReadLine(&line); ++seen) ++done_lines;
    child.Kill();
  }
  Child last("client/examples/index_pipeline", args, /*read_stderr=*/false);
  std::string line;
  while (last.ReadLine(&line)) ++done_lines;
  ASSERT_EQ(last.Wait(), 0);

  const v1::Job job = GetJob("squares");
  EXPECT_EQ(job.status(), v1::JOB_STATUS_COMPLETED);
  EXPECT_EQ(job.progress().completed(), kCount);
  EXPECT_EQ(job.progress().failed(), 0u);

  // No index was computed twice: computed.log has each at most once. (An index whose
  // output was written but whose log line was cut by the kill is missing from it.)
  std::map<uint64_t, int> computed;
  std::istringstream log(ReadFile(out_dir + "/computed.log"));
  for (std::string entry; std::getline(log, entry);) {
    uint64_t index = 0;
    ASSERT_TRUE(absl::SimpleAtoi(entry, &index)) << entry;
    ++computed[index];
  }
  for (const auto& [index, times] : computed) EXPECT_EQ(times, 1) << "index " << index;
  EXPECT_GE(static_cast<int>(computed.size()), done_lines);

  for (uint64_t i = 0; i < kCount; ++i) {
    const std::string path = absl::StrCat(out_dir, "/", i, ".out");
    EXPECT_EQ(ReadFile(path), absl::StrCat(i, " squared is ", i * i, "\n"));
  }
  v1::GetItemRequest get;
  get.set_job_id("squares");
  *get.mutable_key() = IndexKey(kCount - 1);
  auto item = client_->GetItem(get);
  CKPT_ASSERT_OK(item);
  EXPECT_THAT(item->item().result().output_paths(),
              ::testing::ElementsAre(absl::StrCat(out_dir, "/", kCount - 1, ".out")));
}

TEST_F(ExamplesTest, DocPipelineObeysPauseResumeAndStop) {
  Child child("client/examples/doc_pipeline",
              {absl::StrCat("--server=", server_->server().address()), "--job=docs", "--count=1000",
               "--pages=2", "--page_ms=5"},
              /*read_stderr=*/true);
  std::vector<std::string> seen;
  ASSERT_TRUE(child.ReadUntil("done doc-0000.pdf", &seen));

  v1::PauseJobRequest pause;
  pause.set_job_id("docs");
  CKPT_ASSERT_OK(client_->PauseJob(pause));
  ASSERT_TRUE(child.ReadUntil("paused", &seen));
  const uint64_t completed_when_paused = GetJob("docs").progress().completed();

  v1::ResumeJobRequest resume;
  resume.set_job_id("docs");
  CKPT_ASSERT_OK(client_->ResumeJob(resume));
  ASSERT_TRUE(child.ReadUntil("running", &seen));

  v1::StopJobRequest stop;
  stop.set_job_id("docs");
  CKPT_ASSERT_OK(client_->StopJob(stop));
  ASSERT_TRUE(child.ReadUntil("exiting", &seen));
  EXPECT_EQ(child.Wait(), 0);

  const v1::Job job = GetJob("docs");
  EXPECT_EQ(job.status(), v1::JOB_STATUS_STOPPED);
  EXPECT_GE(job.progress().completed(), completed_when_paused);
  EXPECT_LT(job.progress().completed(), 1000u);
  EXPECT_EQ(job.progress().leased(), 0u);  // the last document finished and was saved
}

// The README's "Securing ckptd" setup: ckptd with mutual TLS and an auth file, a worker
// in another process that proves itself with its certificate only runs its job to the
// end. (Clients without a good certificate are refused: tests/server/tls_test.cc.)
TEST(SecuredExamplesTest, IndexPipelineRunsOverMutualTls) {
  auto pki = testutil::TestPki::Make();
  CKPT_ASSERT_OK(pki);
  const std::string admin_token = testutil::NewTestToken("admin");
  ServerOptions options;
  options.tls = {pki->Path("server.crt"), pki->Path("server.key"), pki->Path("ca.crt")};
  options.auth_file = testutil::NewTempDir("auth") + "/auth";
  testutil::WriteFileAtomically(
      options.auth_file, testutil::AuthLine("ops", "admin", admin_token) +
                             "etl-node-7 worker cert=etl-node-7.example.com job_prefix=etl-\n");
  auto server = TestServer::Start(options);
  CKPT_ASSERT_OK(server);
  const std::string address = absl::StrCat("--server=", (*server)->server().address());
  const std::vector<std::string> tls = {"--tls_ca=" + pki->Path("ca.crt"),
                                        "--tls_cert=" + pki->Path("client.crt"),
                                        "--tls_key=" + pki->Path("client.key")};
  std::vector<std::string> args = {address, "--job=etl-squares", "--count=200", "--workers=2",
                                   "--out_dir=" + testutil::NewTempDir("secured_pipeline")};
  args.insert(args.end(), tls.begin(), tls.end());
  Child worker("client/examples/index_pipeline", args, /*read_stderr=*/false);
  EXPECT_EQ(worker.Wait(), 0);

  ClientOptions admin_options;
  admin_options.target = (*server)->server().address();
  admin_options.tls_ca_file = pki->Path("ca.crt");
  admin_options.tls_cert_file = pki->Path("client.crt");
  admin_options.tls_key_file = pki->Path("client.key");
  admin_options.token = admin_token;
  auto admin = Client::Connect(admin_options);
  CKPT_ASSERT_OK(admin);
  v1::GetJobRequest get;
  get.set_job_id("etl-squares");
  auto job = (*admin)->GetJob(get);
  CKPT_ASSERT_OK(job);
  EXPECT_EQ(job->job().status(), v1::JOB_STATUS_COMPLETED);
  EXPECT_EQ(job->job().progress().completed(), 200u);
}

}  // namespace
}  // namespace ckpt
