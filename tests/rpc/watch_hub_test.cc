// WatchHub's subscriptions (the HTTP event stream's source), on a real engine: the job
// at once, each change after it, the end after the final snapshot, NOT_FOUND for a
// deleted job, UNAVAILABLE at shutdown. Each wait is for an event the engine publishes;
// the deadlines only bound a broken build.
#include "service/rpc/watch_hub.h"

#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/testing/engine_harness.h"
#include "tests/testing/status_matchers.h"

namespace ckpt {
namespace {

using ::ckpt::testutil::Parse;
using Kind = WatchHub::Subscription::Kind;

constexpr absl::Duration kPatience = absl::Seconds(30);

class WatchHubTest : public ::testing::Test {
 protected:
  void SetUp() override {
    CKPT_ASSERT_OK(h_.Call(&Engine::CreateJob, Parse<v1::CreateJobRequest>(R"pb(job_id: "j")pb")));
    CKPT_ASSERT_OK(h_.Call(&Engine::AddItems,
                           Parse<v1::AddItemsRequest>(R"pb(job_id: "j"
                                                           ranges { begin: 0 end: 3 })pb")));
  }

  std::unique_ptr<WatchHub::Subscription> Subscribe(WatchHub& hub, const std::string& job) {
    v1::WatchJobRequest request;
    request.set_job_id(job);
    return hub.Subscribe(request);
  }

  absl::Status Complete(uint64_t index) {
    v1::CompleteItemsRequest request;
    request.set_job_id("j");
    request.add_items()->mutable_key()->set_index(index);
    return h_.Call(&Engine::CompleteItems, request).status();
  }

  testutil::EngineHarness h_;
};

TEST_F(WatchHubTest, SendsTheJobThenEachChangeThenEndsAfterTheFinalSnapshot) {
  WatchHub hub(&h_.engine());
  auto subscription = Subscribe(hub, "j");
  WatchHub::Subscription::Event first = subscription->Next(absl::Now() + kPatience);
  ASSERT_EQ(first.kind, Kind::kJob);
  EXPECT_EQ(first.job.progress().total(), 3u);
  EXPECT_EQ(first.job.progress().completed(), 0u);
  // Nothing changed: nothing to send.
  EXPECT_EQ(subscription->Next(absl::Now()).kind, Kind::kTimeout);

  CKPT_ASSERT_OK(Complete(0));
  WatchHub::Subscription::Event second = subscription->Next(absl::Now() + kPatience);
  ASSERT_EQ(second.kind, Kind::kJob);
  EXPECT_EQ(second.job.progress().completed(), 1u);
  ASSERT_EQ(second.recent_completions.size(), 1u);  // GetJob's, from the same snapshot
  EXPECT_EQ(second.recent_completions[0].key().index(), 0u);

  CKPT_ASSERT_OK(h_.Call(&Engine::StopJob, Parse<v1::StopJobRequest>(R"pb(job_id: "j")pb")));
  WatchHub::Subscription::Event last = subscription->Next(absl::Now() + kPatience);
  ASSERT_EQ(last.kind, Kind::kJob);
  EXPECT_EQ(last.job.status(), v1::JOB_STATUS_STOPPED);
  WatchHub::Subscription::Event end = subscription->Next(absl::Now() + kPatience);
  EXPECT_EQ(end.kind, Kind::kEnd);
  CKPT_EXPECT_OK(end.status);
  EXPECT_EQ(subscription->Next(absl::Now()).kind, Kind::kEnd);  // and stays ended
}

TEST_F(WatchHubTest, ASlowConsumerGetsTheNewestSnapshotNotAQueue) {
  WatchHub hub(&h_.engine());
  auto subscription = Subscribe(hub, "j");
  ASSERT_EQ(subscription->Next(absl::Now() + kPatience).kind, Kind::kJob);
  CKPT_ASSERT_OK(Complete(0));
  CKPT_ASSERT_OK(Complete(1));
  // Whatever was sent in between, the consumer reaches the job with both completions
  // and never sees an older job after a newer one.
  uint64_t completed = 0;
  while (completed < 2) {
    WatchHub::Subscription::Event event = subscription->Next(absl::Now() + kPatience);
    ASSERT_EQ(event.kind, Kind::kJob);
    ASSERT_GE(event.job.progress().completed(), completed);
    completed = event.job.progress().completed();
  }
}

TEST_F(WatchHubTest, ADeletedJobEndsNotFound) {
  WatchHub hub(&h_.engine());
  auto missing = Subscribe(hub, "nope");
  WatchHub::Subscription::Event event = missing->Next(absl::Now() + kPatience);
  EXPECT_EQ(event.kind, Kind::kEnd);
  EXPECT_EQ(event.status.code(), absl::StatusCode::kNotFound);

  auto subscription = Subscribe(hub, "j");
  ASSERT_EQ(subscription->Next(absl::Now() + kPatience).kind, Kind::kJob);
  CKPT_ASSERT_OK(h_.Call(&Engine::DeleteJob, Parse<v1::DeleteJobRequest>(R"pb(job_id: "j")pb")));
  event = subscription->Next(absl::Now() + kPatience);
  EXPECT_EQ(event.kind, Kind::kEnd);
  EXPECT_EQ(event.status.code(), absl::StatusCode::kNotFound);
}

TEST_F(WatchHubTest, ShutdownEndsOpenAndLaterSubscriptionsUnavailable) {
  WatchHub hub(&h_.engine());
  auto subscription = Subscribe(hub, "j");
  ASSERT_EQ(subscription->Next(absl::Now() + kPatience).kind, Kind::kJob);
  hub.Shutdown();
  WatchHub::Subscription::Event event = subscription->Next(absl::Now() + kPatience);
  EXPECT_EQ(event.kind, Kind::kEnd);
  EXPECT_EQ(event.status.code(), absl::StatusCode::kUnavailable);
  auto later = Subscribe(hub, "j");
  EXPECT_EQ(later->Next(absl::Now() + kPatience).status.code(), absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace ckpt
