// A real Prometheus server (Debian's prometheus) scrapes a real ckptd every second; the
// test completes items through gRPC and asks Prometheus' query API until the item
// counter it scraped has moved by exactly that many.
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "ckpt/v1/checkpoint.grpc.pb.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "tests/testing/free_port.h"
#include "tests/testing/http_client.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/test_server.h"

namespace ckpt {
namespace {

using ::ckpt::testutil::Call;
using ::ckpt::testutil::TestServer;

// Generous: Prometheus starts in a few seconds even on a loaded 2-core machine.
constexpr absl::Duration kPatience = absl::Seconds(90);

// prometheus as a child process, stopped (SIGTERM, reaped) when this goes away.
class PrometheusProcess {
 public:
  PrometheusProcess(const std::string& dir, const std::string& target) {
    const std::string config = dir + "/prometheus.yml";
    std::ofstream(config) << "global:\n"
                             "  scrape_interval: 1s\n"
                             "  scrape_timeout: 1s\n"
                             "scrape_configs:\n"
                             "  - job_name: ckptd\n"
                             "    static_configs:\n"
                             "      - targets: ['"
                          << target << "']\n";
    absl::StatusOr<int> port = testutil::FreeLoopbackPort();
    if (!port.ok()) {
      ADD_FAILURE() << port.status();
      return;  // not started: the test's waits fail
    }
    address_ = absl::StrCat("127.0.0.1:", *port);
    log_ = dir + "/prometheus.log";
    const std::vector<std::string> args = {"/usr/bin/prometheus", "--config.file=" + config,
                                           "--storage.tsdb.path=" + dir + "/tsdb",
                                           "--web.listen-address=" + address_, "--log.level=warn"};
    pid_ = ::fork();
    if (pid_ == 0) {
      FILE* out = std::freopen(log_.c_str(), "w", stderr);
      (void)out;
      std::vector<char*> argv;
      for (const std::string& arg : args) argv.push_back(const_cast<char*>(arg.c_str()));
      argv.push_back(nullptr);
      ::execv(argv[0], argv.data());
      _exit(127);
    }
  }
  ~PrometheusProcess() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    int status = 0;
    ::waitpid(pid_, &status, 0);
  }

  const std::string& address() const { return address_; }
  std::string Log() const {
    std::ifstream in(log_);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

  // The value of the instant query `expr`'s first sample, or nullopt while there is
  // none (not scraped yet, or Prometheus not up yet).
  std::optional<double> Query(const std::string& expr) const {
    std::string encoded;
    for (unsigned char c : expr) {
      if (std::isalnum(c) || c == '_') {
        encoded += static_cast<char>(c);
      } else {
        encoded += absl::StrCat("%", absl::Hex(c, absl::kZeroPad2));
      }
    }
    auto answer = testutil::HttpGet(address_, "/api/v1/query?query=" + encoded);
    if (!answer.ok() || answer->status != 200) return std::nullopt;
    google::protobuf::Struct json;
    if (!google::protobuf::util::JsonStringToMessage(answer->body, &json).ok()) {
      return std::nullopt;
    }
    const auto& result = json.fields().at("data").struct_value().fields().at("result").list_value();
    if (result.values_size() == 0) return std::nullopt;
    const auto& value = result.values(0).struct_value().fields().at("value").list_value();
    double number = 0;
    if (value.values_size() != 2 || !absl::SimpleAtod(value.values(1).string_value(), &number)) {
      return std::nullopt;
    }
    return number;
  }

  // Asks every 100 ms until `expr` has the value `want`, for at most kPatience.
  bool AwaitValue(const std::string& expr, double want) const {
    const absl::Time deadline = absl::Now() + kPatience;
    while (absl::Now() < deadline) {
      if (Query(expr) == want) return true;
      absl::SleepFor(absl::Milliseconds(100));  // polling another process's API
    }
    return false;
  }

 private:
  pid_t pid_ = -1;
  std::string address_;
  std::string log_;
};

TEST(PrometheusTest, ScrapesCkptdAndSeesTheItemCounterMove) {
  ServerOptions options;
  options.http_listen_address = "127.0.0.1:0";
  auto server = TestServer::Start(options);
  CKPT_ASSERT_OK(server);
  v1::Checkpoint::Stub& stub = (*server)->stub();
  v1::CreateJobRequest create;
  create.set_job_id("scraped");
  CKPT_ASSERT_OK(Call(stub, &v1::Checkpoint::Stub::CreateJob, create));
  v1::AddItemsRequest add;
  add.set_job_id("scraped");
  add.add_ranges()->set_end(20);
  CKPT_ASSERT_OK(Call(stub, &v1::Checkpoint::Stub::AddItems, add));

  PrometheusProcess prometheus(testutil::NewTempDir("prometheus"),
                               (*server)->server().http_address());
  // Prometheus has scraped ckptd once nothing was completed yet.
  ASSERT_TRUE(prometheus.AwaitValue("ckpt_items_completed_total", 0)) << prometheus.Log();
  EXPECT_EQ(prometheus.Query("up{job=\"ckptd\"}"), 1);

  v1::CompleteItemsRequest complete;
  complete.set_job_id("scraped");
  for (uint64_t i = 0; i < 7; ++i) complete.add_items()->mutable_key()->set_index(i);
  CKPT_ASSERT_OK(Call(stub, &v1::Checkpoint::Stub::CompleteItems, complete));

  EXPECT_TRUE(prometheus.AwaitValue("ckpt_items_completed_total", 7)) << prometheus.Log();
  EXPECT_TRUE(prometheus.AwaitValue("ckpt_job_items{job_id=\"scraped\",state=\"completed\"}", 7));
  EXPECT_TRUE(prometheus.AwaitValue("ckpt_rpcs_total{method=\"CompleteItems\",code=\"OK\"}", 1));
}

}  // namespace
}  // namespace ckpt
