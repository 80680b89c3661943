// HTTP/2 abuse against the real ckptd binary: 20 connections each sending 20 000
// HEADERS + RST_STREAM pairs ("rapid reset", about 53 MB in all). A well-behaved client
// keeps being served meanwhile, and once ckptd has worked through the flood its
// resident memory comes back under the ceiling docs/api.md states. (The peak while it
// works through it is not bounded from inside with gRPC 1.51: docs/api.md says why and
// what to put in front of ckptd.)
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "ckpt/v1/checkpoint.grpc.pb.h"
#include "gtest/gtest.h"
#include "tests/durability/ckptd_process.h"
#include "tests/server/http2_flood.h"
#include "tests/testing/temp_dir.h"

namespace ckpt {
namespace {

using ::ckpt::testutil::CkptdProcess;

constexpr int kConnections = 20;
constexpr int kPairsPerConnection = 20000;
// docs/api.md ("HTTP/2 abuse"): what ckptd keeps once a flood is over.
constexpr int64_t kCeilingBytes = int64_t{384} << 20;
// A bound for a hung call, never a pass/fail threshold.
constexpr absl::Duration kBound = absl::Seconds(120);

// A field of /proc/PID/status in bytes (VmRSS: resident now, VmHWM: its peak).
int64_t StatusBytes(pid_t pid, const std::string& field) {
  std::ifstream status(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(status, line)) {
    int64_t kib = 0;
    if (line.rfind(field + ":", 0) == 0 &&
        absl::SimpleAtoi(
            absl::StripAsciiWhitespace(absl::StripSuffix(line.substr(field.size() + 1), "kB")),
            &kib)) {
      return kib << 10;
    }
  }
  return -1;
}

// GetJob of "steady", sent again within kBound when gRPC's memory-pressure reclaimer
// cut it (UNAVAILABLE, or RST_STREAM ENHANCE_YOUR_CALM = RESOURCE_EXHAUSTED without a
// ckptd message): docs/api.md says a flood can cost other clients retries, not answers.
grpc::Status SteadyGetJob(v1::Checkpoint::Stub& stub, v1::GetJobResponse* response) {
  const absl::Time give_up = absl::Now() + kBound;
  for (;;) {
    grpc::ClientContext context;
    context.set_wait_for_ready(true);
    context.set_deadline(absl::ToChronoTime(give_up));
    v1::GetJobRequest request;
    request.set_job_id("steady");
    grpc::Status status = stub.GetJob(&context, request, response);
    const bool cut = status.error_code() == grpc::StatusCode::UNAVAILABLE ||
                     (status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED &&
                      status.error_message().find("RST_STREAM") != std::string::npos);
    if (!cut || absl::Now() >= give_up) return status;
  }
}

TEST(RapidResetTest, MemoryStaysBoundedAndOtherClientsAreServed) {
  auto ckptd = CkptdProcess::Start(testutil::NewTempDir("flood") + "/data", {});
  ASSERT_TRUE(ckptd.ok()) << ckptd.status();
  auto stub = (*ckptd)->NewStub();
  {
    grpc::ClientContext context;
    v1::CreateJobRequest request;
    request.set_job_id("steady");
    v1::CreateJobResponse response;
    ASSERT_TRUE(stub->CreateJob(&context, request, &response).ok());
  }
  const int64_t before = StatusBytes((*ckptd)->pid(), "VmRSS");

  std::atomic<int> flooding{kConnections};
  std::atomic<int64_t> pairs_written{0};
  std::vector<std::thread> flooders;
  for (int c = 0; c < kConnections; ++c) {
    flooders.emplace_back([&] {
      auto written = testutil::RapidReset((*ckptd)->address(), "/ckpt.v1.Checkpoint/GetJob",
                                          kPairsPerConnection);
      EXPECT_TRUE(written.ok()) << written.status();
      if (written.ok()) pairs_written += *written;
      --flooding;
    });
  }
  // A steady client, all through the flood: every call answered, correctly.
  int served = 0;
  while (flooding > 0) {
    v1::GetJobResponse response;
    const grpc::Status status = SteadyGetJob(*stub, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    ASSERT_EQ(response.job().job_id(), "steady");
    ++served;
  }
  for (std::thread& t : flooders) t.join();
  const int64_t peak = StatusBytes((*ckptd)->pid(), "VmHWM");
  const int64_t after = StatusBytes((*ckptd)->pid(), "VmRSS");
  std::cerr << "ckptd resident: " << (before >> 20) << " MiB before, peak " << (peak >> 20)
            << " MiB, " << (after >> 20) << " MiB after; " << pairs_written
            << " HEADERS+RST_STREAM pairs written; " << served
            << " calls of a steady client served during the flood\n";
  EXPECT_GT(served, 0);
  // ckptd digests the flood (its calls are freed once processed), then gives the memory
  // back. Before it did, it kept gigabytes for good.
  const absl::Time give_up = absl::Now() + kBound;
  int64_t resident = StatusBytes((*ckptd)->pid(), "VmRSS");
  while (resident >= kCeilingBytes && absl::Now() < give_up) {
    v1::GetJobResponse response;  // paces the polling, and checks ckptd still answers
    const grpc::Status status = SteadyGetJob(*stub, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    absl::SleepFor(absl::Milliseconds(200));
    resident = StatusBytes((*ckptd)->pid(), "VmRSS");
  }
  std::cerr << "ckptd resident once the flood was processed: " << (resident >> 20) << " MiB\n";
  EXPECT_LT(resident, kCeilingBytes);
  // ckptd is still whole.
  v1::GetJobResponse response;
  const grpc::Status status = SteadyGetJob(*stub, &response);
  EXPECT_TRUE(status.ok()) << status.error_message();
}

}  // namespace
}  // namespace ckpt
