// The writer's queue: its bounds and its fairness on their own (WriteQueue), then as
// the engine uses it, with the writer stalled on a held write so that what is queued
// is known exactly.
#include "service/engine/write_queue.h"

#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/notification.h"
#include "ckpt/v1/checkpoint.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/engine/engine.h"
#include "tests/testing/fault_injecting_store.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/test_stores.h"

namespace ckpt {
namespace {

using ::ckpt::testutil::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

struct TestOp {
  int id = 0;
  size_t bytes = 0;
};

std::vector<int> Ids(const std::vector<TestOp>& ops) {
  std::vector<int> ids;
  for (const TestOp& op : ops) ids.push_back(op.id);
  return ids;
}

WriteQueueLimits SmallLimits() {
  WriteQueueLimits limits;
  limits.max_ops = 4;
  limits.max_bytes = 1000;
  limits.small_op_bytes = 10;
  limits.group_bytes = 500;
  return limits;
}

TEST(WriteQueueTest, RefusesPastTheOpBoundWithARetryHint) {
  WriteQueue<TestOp> queue(SmallLimits());
  for (int i = 0; i < 4; ++i) {
    TestOp op{i, 1};
    CKPT_ASSERT_OK(queue.Push(op));
  }
  TestOp fifth{4, 1};
  const absl::Status full = queue.Push(fifth);
  EXPECT_THAT(full, StatusIs(absl::StatusCode::kResourceExhausted,
                             HasSubstr("write queue is full (4 writes")));
  EXPECT_THAT(std::string(full.message()), HasSubstr("--max_queued_writes=4"));
  EXPECT_THAT(std::string(full.message()), HasSubstr("not applied"));
  ASSERT_TRUE(full.GetPayload(kRetryAfterPayload).has_value());
  EXPECT_EQ(std::string(*full.GetPayload(kRetryAfterPayload)), "100");
  EXPECT_EQ(queue.size(), 4u);
}

TEST(WriteQueueTest, RefusesPastTheByteBoundButAdmitsAnyOpIntoAnEmptyQueue) {
  WriteQueue<TestOp> queue(SmallLimits());
  TestOp huge{1, 5000};  // over max_bytes, alone: admitted, or it could never run
  CKPT_ASSERT_OK(queue.Push(huge));
  TestOp more{2, 1};
  EXPECT_THAT(queue.Push(more), StatusIs(absl::StatusCode::kResourceExhausted,
                                         HasSubstr("--max_queued_write_bytes=1000")));
  std::vector<TestOp> group;
  ASSERT_TRUE(queue.TakeGroup(absl::ZeroDuration(), &group));
  EXPECT_THAT(Ids(group), ElementsAre(1));
  CKPT_EXPECT_OK(queue.Push(more));
}

// Small ops are taken first, whenever they arrived; large ones in arrival order, one
// group's worth at a time.
TEST(WriteQueueTest, SmallOpsDoNotWaitBehindLargeOnes) {
  WriteQueueLimits limits = SmallLimits();
  limits.max_ops = 100;
  limits.max_bytes = 10000;
  WriteQueue<TestOp> queue(limits);
  for (TestOp op : {TestOp{1, 300}, TestOp{2, 300}, TestOp{3, 300}, TestOp{4, 5}, TestOp{5, 300},
                    TestOp{6, 8}}) {
    CKPT_ASSERT_OK(queue.Push(op));
  }
  std::vector<TestOp> first, second, third;
  ASSERT_TRUE(queue.TakeGroup(absl::ZeroDuration(), &first));
  EXPECT_THAT(Ids(first), ElementsAre(4, 6, 1));  // 300 + 300 > group_bytes 500
  ASSERT_TRUE(queue.TakeGroup(absl::ZeroDuration(), &second));
  EXPECT_THAT(Ids(second), ElementsAre(2));
  ASSERT_TRUE(queue.TakeGroup(absl::ZeroDuration(), &third));
  EXPECT_THAT(Ids(third), ElementsAre(3));
}

TEST(WriteQueueTest, StoppedQueueRefusesUnavailableAndDrainsThenEnds) {
  WriteQueue<TestOp> queue(SmallLimits());
  TestOp op{1, 1};
  CKPT_ASSERT_OK(queue.Push(op));
  queue.StopAccepting();
  TestOp late{2, 1};
  EXPECT_THAT(queue.Push(late), StatusIs(absl::StatusCode::kUnavailable, ::testing::_));
  std::vector<TestOp> group;
  ASSERT_TRUE(queue.TakeGroup(absl::ZeroDuration(), &group));
  EXPECT_THAT(Ids(group), ElementsAre(1));
  group.clear();
  EXPECT_FALSE(queue.TakeGroup(absl::ZeroDuration(), &group));
}

TEST(WriteQueueTest, TakeAllHandsBackEverythingQueued) {
  WriteQueue<TestOp> queue(SmallLimits());
  for (TestOp op : {TestOp{1, 300}, TestOp{2, 5}}) CKPT_ASSERT_OK(queue.Push(op));
  EXPECT_THAT(Ids(queue.TakeAll()), ElementsAre(2, 1));
  EXPECT_EQ(queue.size(), 0u);
}

// ---------------------------------------------------------------- in the engine

class EngineQueueTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto store = testutil::StoreLocation::New(testutil::StoreKind::kRocksDb).Open();
    CKPT_ASSERT_OK(store.status());
    store_ = std::make_unique<testutil::FaultInjectingStore>(std::move(*store));
    EngineOptions options;
    options.queue.max_ops = 3;
    auto engine = Engine::Open(store_.get(), options);
    CKPT_ASSERT_OK(engine.status());
    engine_ = std::move(*engine);
    v1::CreateJobRequest create;
    create.set_job_id("j");
    v1::CreateJobResponse created;
    CKPT_ASSERT_OK(Wait([&](Engine::Done done) { engine_->CreateJob(create, &created, done); }));
  }
  void TearDown() override {
    store_->faults().ReleaseWrites();
    engine_.reset();
  }

  static absl::Status Wait(const std::function<void(Engine::Done)>& call) {
    absl::Notification notified;
    absl::Status status;
    call([&](absl::Status s) {
      status = s;
      notified.Notify();
    });
    notified.WaitForNotification();
    return status;
  }

  // A PutState whose answer arrives later, in `status`.
  struct Pending {
    v1::PutStateRequest request;
    v1::PutStateResponse response;
    absl::Notification answered;
    absl::Status status;
  };
  std::unique_ptr<Pending> Put(const std::string& name) {
    auto pending = std::make_unique<Pending>();
    pending->request.set_job_id("j");
    pending->request.set_name(name);
    pending->request.set_value("v");
    Pending* p = pending.get();
    engine_->PutState(p->request, &p->response, [p](absl::Status s) {
      p->status = s;
      p->answered.Notify();
    });
    return pending;
  }

  absl::StatusCode StateCode(const std::string& name) {
    v1::GetStateRequest request;
    request.set_job_id("j");
    request.set_name(name);
    v1::GetStateResponse response;
    return engine_->GetState(request, &response).code();
  }

  std::unique_ptr<testutil::FaultInjectingStore> store_;
  std::unique_ptr<Engine> engine_;
};

// With the writer stalled, the queue takes --max_queued_writes ops; the next is answered
// at once RESOURCE_EXHAUSTED with a retry hint and never applied; the queued ones are.
TEST_F(EngineQueueTest, FullQueueRefusesAtOnceAndAppliesNothingOfTheRefused) {
  store_->faults().HoldWrites();
  auto writing = Put("writing");
  store_->faults().AwaitHeldWrite();  // the writer holds "writing", the queue is empty
  std::vector<std::unique_ptr<Pending>> queued;
  for (int i = 0; i < 3; ++i) queued.push_back(Put("queued" + std::to_string(i)));
  auto refused = Put("refused");
  ASSERT_TRUE(refused->answered.HasBeenNotified());
  EXPECT_THAT(refused->status,
              StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("write queue is full")));
  EXPECT_TRUE(refused->status.GetPayload(kRetryAfterPayload).has_value());
  store_->faults().ReleaseWrites();
  writing->answered.WaitForNotification();
  CKPT_EXPECT_OK(writing->status);
  for (auto& p : queued) {
    p->answered.WaitForNotification();
    CKPT_EXPECT_OK(p->status);
  }
  EXPECT_EQ(StateCode("queued2"), absl::StatusCode::kOk);
  EXPECT_EQ(StateCode("refused"), absl::StatusCode::kNotFound);
}

// A shutdown whose grace ran out answers what is queued UNAVAILABLE, not applied; the
// write in progress completes.
TEST_F(EngineQueueTest, RefuseQueuedAnswersQueuedWritesUnavailable) {
  store_->faults().HoldWrites();
  auto writing = Put("writing");
  store_->faults().AwaitHeldWrite();
  auto queued = Put("queued");
  engine_->RefuseQueued();
  ASSERT_TRUE(queued->answered.HasBeenNotified());
  EXPECT_THAT(queued->status, StatusIs(absl::StatusCode::kUnavailable, HasSubstr("not applied")));
  store_->faults().ReleaseWrites();
  writing->answered.WaitForNotification();
  CKPT_EXPECT_OK(writing->status);
  EXPECT_EQ(StateCode("queued"), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace ckpt
