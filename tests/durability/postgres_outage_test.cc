// PostgreSQL dies under load and comes back: ckptd (on --store=postgresql://...) keeps
// running, answers UNAVAILABLE and reports NOT_SERVING while the database is gone,
// recovers by itself once it is restarted, and has lost no acknowledged write.
//
// The load is the crash test's (crash_load.h): eight writers lease and complete items of
// one sealed job. At a seeded random number of acknowledged completions, the writer that
// got there kills the postmaster with SIGKILL; the writers go on, retrying what ckptd
// refuses UNAVAILABLE, as the SDKs do. Meanwhile the test checks that a write is refused
// UNAVAILABLE and that the health service says NOT_SERVING, restarts PostgreSQL (crash
// recovery), and waits for SERVING. The writers then drain the job, and every
// acknowledged completion is checked, before and after a restart of ckptd.
#include <grpcpp/grpcpp.h>
#include <sys/wait.h>

#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "ckpt/v1/checkpoint.grpc.pb.h"
#include "gmock/gmock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "gtest/gtest.h"
#include "tests/durability/ckptd_process.h"
#include "tests/durability/crash_load.h"
#include "tests/durability/wire.h"
#include "tests/testing/postgres_cluster.h"
#include "tests/testing/status_matchers.h"

namespace ckpt {
namespace {

using ::ckpt::testutil::CkptdProcess;
using ::ckpt::testutil::kCrashJob;
using ::ckpt::testutil::kWriters;
using ::ckpt::testutil::Ledger;
using ::ckpt::testutil::PostgresCluster;
using ::ckpt::testutil::Round;
using grpc::health::v1::HealthCheckResponse;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using Stub = v1::Checkpoint::Stub;

constexpr uint64_t kItems = 1024;
constexpr uint64_t kSeed = 20251214;
// A bound for a hang, never a pass/fail threshold.
constexpr absl::Duration kBound = absl::Minutes(2);

// Follows a ckptd's grpc.health.v1.Health/Watch stream on a thread of its own.
class HealthWatch {
 public:
  explicit HealthWatch(const std::string& address)
      : stub_(grpc::health::v1::Health::NewStub(
            grpc::CreateChannel(address, grpc::InsecureChannelCredentials()))),
        reader_([this] { Read(); }) {}
  ~HealthWatch() {
    context_.TryCancel();
    reader_.join();
  }

  // Waits until the stream has said `status` (again, if it said so before).
  bool Await(HealthCheckResponse::ServingStatus status) {
    absl::MutexLock lock(&mu_);
    auto said = [&]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return last_ == status; };
    return mu_.AwaitWithTimeout(absl::Condition(&said), kBound);
  }

 private:
  void Read() {
    grpc::health::v1::HealthCheckRequest request;
    auto stream = stub_->Watch(&context_, request);
    HealthCheckResponse response;
    while (stream->Read(&response)) {
      absl::MutexLock lock(&mu_);
      last_ = response.status();
    }
    stream->Finish().ok();
  }

  std::unique_ptr<grpc::health::v1::Health::Stub> stub_;
  grpc::ClientContext context_;
  absl::Mutex mu_;
  HealthCheckResponse::ServingStatus last_ ABSL_GUARDED_BY(mu_) = HealthCheckResponse::UNKNOWN;
  std::thread reader_;
};

absl::Status PutState(Stub& stub) {
  v1::PutStateRequest put;
  put.set_job_id(kCrashJob);
  put.set_name("during the outage");
  put.set_value("x");
  return testutil::WireCall(stub, &Stub::PutState, put).status();
}

TEST(PostgresOutageTest, AKilledPostmasterIsUnavailableMeanwhileAndLosesNoAcknowledgedWrite) {
  auto cluster = PostgresCluster::Start();  // its own: this test kills it
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  auto server = CkptdProcess::Start((*cluster)->Uri(), {});
  ASSERT_TRUE(server.ok()) << server.status();
  std::unique_ptr<Stub> stub = (*server)->NewStub();
  v1::CreateJobRequest create;
  create.set_job_id(kCrashJob);
  create.mutable_lease_timeout()->set_seconds(2);
  create.set_max_attempts(1000);
  ASSERT_TRUE(testutil::WireCall(*stub, &Stub::CreateJob, create).ok());
  v1::AddItemsRequest add;
  add.set_job_id(kCrashJob);
  add.add_ranges()->set_end(kItems);
  add.set_seal(true);
  ASSERT_TRUE(testutil::WireCall(*stub, &Stub::AddItems, add).ok());
  std::vector<std::string> workers(kWriters);
  for (std::string& worker : workers) {
    auto registered = testutil::RegisterWorker(*stub, kCrashJob);
    ASSERT_TRUE(registered.ok()) << registered.status();
    worker = *registered;
  }
  HealthWatch health((*server)->address());
  ASSERT_TRUE(health.Await(HealthCheckResponse::SERVING));

  Ledger ledger;
  absl::Notification killed;
  Round round;
  round.server = server->get();
  round.outage = true;
  round.kill_at = 1 + std::mt19937_64(kSeed)() % 300;
  round.fault = [&] {
    (*cluster)->KillPostmaster();
    killed.Notify();
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < kWriters; ++t) {
    threads.emplace_back(testutil::Write, t, std::ref(round), std::ref(ledger),
                         std::ref(workers[t]), kSeed + t);
  }
  ASSERT_TRUE(killed.WaitForNotificationWithTimeout(kBound));
  EXPECT_THAT(PutState(*stub),
              testutil::StatusIs(absl::StatusCode::kUnavailable, HasSubstr("PostgreSQL")));
  EXPECT_TRUE(health.Await(HealthCheckResponse::NOT_SERVING));
  ASSERT_TRUE((*cluster)->Restart().ok());
  EXPECT_TRUE(health.Await(HealthCheckResponse::SERVING));
  for (std::thread& thread : threads) thread.join();
  ASSERT_THAT(ledger.errors(), IsEmpty());
  std::cerr << round.unavailable << " calls refused UNAVAILABLE during the outage; "
            << ledger.acked().size() << " completions acknowledged\n";

  auto job = testutil::GetJob(*stub, kCrashJob);
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->status(), v1::JOB_STATUS_COMPLETED);
  testutil::Verify(**server, ledger, kItems);
  const int stopped = (*server)->Stop();
  EXPECT_TRUE(WIFEXITED(stopped) && WEXITSTATUS(stopped) == 0) << stopped;
  const std::string log = (*server)->Stderr();
  std::cerr << "ckptd's log:\n" << log;
  EXPECT_THAT(log, HasSubstr("unreachable"));
  EXPECT_THAT(log, ::testing::Not(HasSubstr((*cluster)->password())));
  // And from the store alone, after a restart.
  auto restarted = CkptdProcess::Start((*cluster)->Uri(), {});
  ASSERT_TRUE(restarted.ok()) << restarted.status();
  testutil::Verify(**restarted, ledger, kItems);
}

}  // namespace
}  // namespace ckpt
