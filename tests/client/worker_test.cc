// ckpt::Worker against a real ckptd: every item once, failures with the pipeline's own
// message, cursors handed on, pause and stop honoured, lost leases dropped.
#include "client/worker.h"

#include <atomic>
#include <map>
#include <memory>
#include <stdexcept>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/client_fixture.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/test_server.h"

namespace ckpt {
namespace {

using ::ckpt::testutil::TestServer;

// Long enough never to fire in a passing run; a failing one reports instead of hanging.
constexpr absl::Duration kPatience = absl::Seconds(60);

class WorkerTest : public testutil::ServerAndClientTest {
 protected:
  // A sealed job of indices [0, count) with a 1 s lease timeout (heartbeats every ~333 ms).
  void CreateJob(const std::string& job_id, uint64_t count, uint32_t max_attempts = 3) {
    v1::CreateJobRequest create;
    create.set_job_id(job_id);
    create.mutable_lease_timeout()->set_seconds(1);
    create.set_max_attempts(max_attempts);
    CKPT_ASSERT_OK(client_->CreateJob(create));
    v1::AddItemsRequest add;
    add.set_job_id(job_id);
    v1::IndexRange* range = add.add_ranges();
    range->set_end(count);
    add.set_seal(true);
    CKPT_ASSERT_OK(client_->AddItems(add));
  }

  std::unique_ptr<Worker> Register(WorkerOptions options) {
    auto worker = Worker::Register(client_.get(), std::move(options));
    EXPECT_TRUE(worker.ok()) << worker.status();
    return std::move(*worker);
  }

  v1::Job GetJob(const std::string& job_id) {
    v1::GetJobRequest get;
    get.set_job_id(job_id);
    auto got = client_->GetJob(get);
    EXPECT_TRUE(got.ok()) << got.status();
    return got->job();
  }

  v1::Item GetItem(const std::string& job_id, uint64_t index) {
    v1::GetItemRequest get;
    get.set_job_id(job_id);
    *get.mutable_key() = IndexKey(index);
    auto got = client_->GetItem(get);
    EXPECT_TRUE(got.ok()) << got.status();
    return got->item();
  }

  // Blocks until the worker has had `n` more heartbeats answered than now.
  static void AwaitHeartbeats(const Worker& worker, uint64_t n) {
    const uint64_t target = worker.stats().heartbeats + n;
    ASSERT_TRUE(
        worker.AwaitStats([&](const WorkerStats& s) { return s.heartbeats >= target; }, kPatience));
  }
};

TEST_F(WorkerTest, FourWorkersProcessEveryItemExactlyOnce) {
  CreateJob("once", 500);
  absl::Mutex mu;
  std::map<uint64_t, int> handled;
  std::vector<std::thread> threads;
  uint64_t completed = 0;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      WorkerOptions options;
      options.job_id = "once";
      options.lease_batch = 7;
      std::unique_ptr<Worker> worker = Register(options);
      CKPT_EXPECT_OK(worker->Run([&](WorkItem& item) {
        absl::MutexLock lock(&mu);
        ++handled[item.index()];
        item.AddOutput(absl::StrCat("/out/", item.index()));
        return absl::OkStatus();
      }));
      absl::MutexLock lock(&mu);
      completed += worker->stats().completed;
    });
  }
  for (std::thread& t : threads) t.join();

  ASSERT_EQ(handled.size(), 500u);
  for (const auto& [index, times] : handled) EXPECT_EQ(times, 1) << "index " << index;
  EXPECT_EQ(completed, 500u);
  const v1::Job job = GetJob("once");
  EXPECT_EQ(job.status(), v1::JOB_STATUS_COMPLETED);
  EXPECT_EQ(job.progress().completed(), 500u);
  EXPECT_EQ(GetItem("once", 123).result().output_paths(0), "/out/123");
  EXPECT_TRUE(GetItem("once", 123).result().metrics().has_wall_time());
}

TEST_F(WorkerTest, AnExceptionFailsTheItemWithItsMessage) {
  CreateJob("throws", 3, /*max_attempts=*/1);
  WorkerOptions options;
  options.job_id = "throws";
  std::unique_ptr<Worker> worker = Register(options);
  CKPT_EXPECT_OK(worker->Run([](WorkItem& item) -> absl::Status {
    if (item.index() == 1) throw std::runtime_error("disk on fire at /data/1.h5");
    return absl::OkStatus();
  }));
  const v1::Item failed = GetItem("throws", 1);
  EXPECT_EQ(failed.state(), v1::ITEM_STATE_FAILED);
  EXPECT_EQ(failed.last_error().message(), "disk on fire at /data/1.h5");
  EXPECT_EQ(failed.last_error().worker_id(), worker->worker_id());
  EXPECT_EQ(GetJob("throws").status(), v1::JOB_STATUS_FAILED);  // sealed, one dead item
  EXPECT_EQ(worker->stats().failed, 1u);
  EXPECT_EQ(worker->stats().completed, 2u);
}

TEST_F(WorkerTest, ARetryableErrorIsTriedAgainAndBadInputIsNot) {
  CreateJob("retries", 2, /*max_attempts=*/3);
  WorkerOptions options;
  options.job_id = "retries";
  std::unique_ptr<Worker> worker = Register(options);
  std::map<uint64_t, std::vector<uint32_t>> attempts;
  CKPT_EXPECT_OK(worker->Run([&](WorkItem& item) -> absl::Status {
    attempts[item.index()].push_back(item.attempt());
    if (item.index() == 0 && item.attempt() == 1) return absl::UnavailableError("flaky mount");
    if (item.index() == 1) return absl::InvalidArgumentError("not a PDF");
    return absl::OkStatus();
  }));
  EXPECT_THAT(attempts[0], ::testing::ElementsAre(1u, 2u));
  EXPECT_THAT(attempts[1], ::testing::ElementsAre(1u));
  EXPECT_EQ(GetItem("retries", 0).state(), v1::ITEM_STATE_COMPLETED);
  EXPECT_EQ(GetItem("retries", 1).state(), v1::ITEM_STATE_FAILED);
  EXPECT_EQ(GetItem("retries", 1).last_error().message(), "not a PDF");
}

TEST_F(WorkerTest, ASavedCursorComesBackWithTheNextLease) {
  CreateJob("cursor", 1);
  WorkerOptions options;
  options.job_id = "cursor";
  std::unique_ptr<Worker> worker = Register(options);
  std::vector<std::string> cursors_seen;
  CKPT_EXPECT_OK(worker->Run([&](WorkItem& item) -> absl::Status {
    cursors_seen.push_back(item.cursor());
    if (item.attempt() > 1) return absl::OkStatus();
    item.SaveCursor("row 41000");
    AwaitHeartbeats(*worker, 2);  // one that started after the save has been answered
    return absl::UnavailableError("interrupted");
  }));
  EXPECT_THAT(cursors_seen, ::testing::ElementsAre("", "row 41000"));
}

TEST_F(WorkerTest, PauseWaitsWhileHeartbeatingAndResumeFinishes) {
  CreateJob("pause", 10);
  absl::Notification in_first_item, release_first_item, paused;
  WorkerOptions options;
  options.job_id = "pause";
  options.lease_batch = 1;
  options.on_control = [&](v1::ControlWord control) {
    if (control == v1::CONTROL_WORD_PAUSE && !paused.HasBeenNotified()) paused.Notify();
  };
  std::unique_ptr<Worker> worker = Register(options);
  int handled = 0;
  absl::Status run;
  std::thread runner([&] {
    run = worker->Run([&](WorkItem&) {
      if (++handled == 1) {
        in_first_item.Notify();
        release_first_item.WaitForNotification();
      }
      return absl::OkStatus();
    });
  });
  in_first_item.WaitForNotification();
  v1::PauseJobRequest pause;
  pause.set_job_id("pause");
  CKPT_ASSERT_OK(client_->PauseJob(pause));
  paused.WaitForNotification();
  release_first_item.Notify();  // the item in hand still finishes and is saved
  ASSERT_TRUE(worker->AwaitStats([](const WorkerStats& s) { return s.completed == 1; }, kPatience));

  AwaitHeartbeats(*worker, 3);  // paused, and still alive
  EXPECT_EQ(handled, 1);
  EXPECT_EQ(GetJob("pause").progress().completed(), 1u);
  EXPECT_EQ(GetJob("pause").progress().leased(), 0u);
  EXPECT_EQ(GetJob("pause").progress().active_workers(), 1u);

  v1::ResumeJobRequest resume;
  resume.set_job_id("pause");
  CKPT_ASSERT_OK(client_->ResumeJob(resume));
  runner.join();
  CKPT_EXPECT_OK(run);
  EXPECT_EQ(handled, 10);
  EXPECT_EQ(GetJob("pause").status(), v1::JOB_STATUS_COMPLETED);
}

TEST_F(WorkerTest, StopFinishesTheItemInHandThenReturns) {
  CreateJob("stop", 10);
  absl::Notification in_first_item, release_first_item, stopped;
  WorkerOptions options;
  options.job_id = "stop";
  options.lease_batch = 4;
  options.on_control = [&](v1::ControlWord control) {
    if (control == v1::CONTROL_WORD_STOP && !stopped.HasBeenNotified()) stopped.Notify();
  };
  std::unique_ptr<Worker> worker = Register(options);
  std::vector<uint64_t> handled;
  absl::Status run;
  std::thread runner([&] {
    run = worker->Run([&](WorkItem& item) {
      handled.push_back(item.index());
      if (handled.size() == 1) {
        in_first_item.Notify();
        release_first_item.WaitForNotification();
      }
      return absl::OkStatus();
    });
  });
  in_first_item.WaitForNotification();
  v1::StopJobRequest stop;
  stop.set_job_id("stop");
  CKPT_ASSERT_OK(client_->StopJob(stop));
  stopped.WaitForNotification();
  release_first_item.Notify();
  runner.join();

  CKPT_EXPECT_OK(run);
  EXPECT_THAT(handled, ::testing::ElementsAre(0u));
  EXPECT_EQ(GetItem("stop", 0).state(), v1::ITEM_STATE_COMPLETED);
  EXPECT_EQ(GetJob("stop").status(), v1::JOB_STATUS_STOPPED);
}

TEST_F(WorkerTest, ALostLeaseIsDroppedNotCompleted) {
  CreateJob("lost", 1);
  WorkerOptions options;
  options.job_id = "lost";
  std::unique_ptr<Worker> worker = Register(options);
  int calls = 0;
  CKPT_EXPECT_OK(worker->Run([&](WorkItem& item) {
    if (++calls == 1) {
      // An operator resets the item while it is being worked on: the lease is revoked.
      v1::ResetItemsRequest reset;
      reset.set_job_id("lost");
      reset.set_step("main");
      *reset.add_keys() = item.key();
      EXPECT_TRUE(client_->ResetItems(reset).ok());
      AwaitHeartbeats(*worker, 2);
      EXPECT_TRUE(item.lease_lost());
      item.AddOutput("/out/stale");
    }
    return absl::OkStatus();
  }));
  EXPECT_EQ(calls, 2);  // leased again as new, and done by the second call
  EXPECT_EQ(worker->stats().lease_lost, 1u);
  EXPECT_EQ(worker->stats().completed, 1u);
  EXPECT_THAT(GetItem("lost", 0).result().output_paths(), ::testing::IsEmpty());
}

TEST_F(WorkerTest, DestroyingAWorkerReleasesItsUnstartedLeases) {
  CreateJob("release", 6);
  WorkerOptions options;
  options.job_id = "release";
  options.lease_batch = 4;
  std::unique_ptr<Worker> worker = Register(options);
  CKPT_EXPECT_OK(worker->Run([&](WorkItem&) {
    worker->Stop();
    return absl::OkStatus();
  }));
  EXPECT_EQ(GetJob("release").progress().leased(), 3u);
  worker.reset();
  const v1::Job job = GetJob("release");
  EXPECT_EQ(job.progress().completed(), 1u);
  EXPECT_EQ(job.progress().leased(), 0u);
  EXPECT_EQ(job.progress().pending(), 5u);
  EXPECT_EQ(GetItem("release", 1).attempts(), 0u);  // released, not failed
}

TEST_F(WorkerTest, RegisteringForAMissingJobSaysSo) {
  WorkerOptions options;
  options.job_id = "ghost";
  EXPECT_THAT(
      Worker::Register(client_.get(), options),
      ::ckpt::testutil::StatusIs(absl::StatusCode::kNotFound, ::testing::HasSubstr("ghost")));
}

// Turns the first LeaseItems status into DEADLINE_EXCEEDED after ckptd answered it: the
// call was applied, and its answer lost on the way back.
class LoseFirstLeaseAnswer final : public grpc::experimental::Interceptor {
 public:
  LoseFirstLeaseAnswer(grpc::experimental::ClientRpcInfo* info, std::atomic<bool>* lost)
      : lease_(absl::EndsWith(info->method(), "/LeaseItems")), lost_(lost) {}
  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (lease_ &&
        methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::POST_RECV_STATUS) &&
        !lost_->exchange(true)) {
      *methods->GetRecvStatus() =
          grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, "answer lost (test)");
    }
    methods->Proceed();
  }

 private:
  const bool lease_;
  std::atomic<bool>* const lost_;
};

class LoseFirstLeaseAnswerFactory final
    : public grpc::experimental::ClientInterceptorFactoryInterface {
 public:
  explicit LoseFirstLeaseAnswerFactory(std::atomic<bool>* lost) : lost_(lost) {}
  grpc::experimental::Interceptor* CreateClientInterceptor(
      grpc::experimental::ClientRpcInfo* info) override {
    return new LoseFirstLeaseAnswer(info, lost_);
  }

 private:
  std::atomic<bool>* const lost_;
};

// ckptd granted leases whose answer never arrived. The worker must hand them back
// (unregister: no attempt counted) rather than hold them unseen, which would keep them
// leased for as long as it heartbeats.
TEST_F(WorkerTest, ALostLeaseAnswerReturnsWhatWasGrantedUnseen) {
  CreateJob("lost-answer", 8);
  std::atomic<bool> lost{false};
  ClientOptions options;
  options.target = server_->server().address();
  options.interceptors = [&lost] {
    std::vector<std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>> out;
    out.push_back(std::make_unique<LoseFirstLeaseAnswerFactory>(&lost));
    return out;
  };
  auto lossy = Client::Connect(std::move(options));
  CKPT_ASSERT_OK(lossy);
  WorkerOptions worker_options;
  worker_options.job_id = "lost-answer";
  worker_options.lease_batch = 4;
  auto worker = Worker::Register(lossy->get(), worker_options);
  CKPT_ASSERT_OK(worker);
  int processed = 0;
  CKPT_EXPECT_OK((*worker)->Run([&](WorkItem&) {
    if (++processed == 4) (*worker)->Stop();
    return absl::OkStatus();
  }));
  EXPECT_TRUE(lost.load());
  EXPECT_EQ((*worker)->stats().lost_lease_answers, 1u);
  EXPECT_EQ((*worker)->stats().registrations, 2u);
  const v1::Job job = GetJob("lost-answer");
  EXPECT_EQ(job.progress().completed(), 4u);
  EXPECT_EQ(job.progress().leased(), 0u);  // the unseen grant went back
  EXPECT_EQ(job.progress().pending(), 4u);
  for (uint64_t i = 0; i < 8; ++i) EXPECT_EQ(GetItem("lost-answer", i).attempts(), 0u) << i;
}

// What the worker sends, as the wire sees it: the calls of each method (retries
// included). It can also play a ckptd that predates lease_next (the field is dropped
// from every CompleteItems before it is sent), or lose the answer of the first
// CompleteItems after ckptd applied it.
struct Wire {
  absl::Mutex mu;
  std::map<std::string, int> calls ABSL_GUARDED_BY(mu);
  bool drop_lease_next = false;
  // Clears `packed` from every lease asked for, as a ckptd that predates it ignores it.
  bool drop_packed = false;
  int asked_packed ABSL_GUARDED_BY(mu) = 0;  // leases asked for packed, as sent
  std::atomic<bool> lose_first_completion{false};

  int AskedPacked() {
    absl::MutexLock lock(&mu);
    return asked_packed;
  }

  int Calls(const std::string& method) {
    absl::MutexLock lock(&mu);
    return calls[method];
  }
};

class WireInterceptor final : public grpc::experimental::Interceptor {
 public:
  WireInterceptor(grpc::experimental::ClientRpcInfo* info, Wire* wire)
      : method_(std::string(absl::string_view(info->method())
                                .substr(absl::string_view(info->method()).rfind('/') + 1))),
        wire_(wire) {}
  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    using grpc::experimental::InterceptionHookPoints;
    const bool completion = method_ == "CompleteItems";
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_MESSAGE)) {
      {
        absl::MutexLock lock(&wire_->mu);
        ++wire_->calls[method_];
      }
      if (completion && (wire_->drop_lease_next || wire_->drop_packed)) {
        sent_ = *static_cast<const v1::CompleteItemsRequest*>(methods->GetSendMessage());
        if (wire_->drop_lease_next) sent_.clear_lease_next();
        if (sent_.has_lease_next()) sent_.mutable_lease_next()->clear_packed();
        methods->ModifySendMessage(&sent_);
      } else if (method_ == "LeaseItems" && wire_->drop_packed) {
        sent_lease_ = *static_cast<const v1::LeaseItemsRequest*>(methods->GetSendMessage());
        sent_lease_.clear_packed();
        methods->ModifySendMessage(&sent_lease_);
      }
      const bool packed =
          completion ? static_cast<const v1::CompleteItemsRequest*>(methods->GetSendMessage())
                           ->lease_next()
                           .packed()
          : method_ == "LeaseItems"
              ? static_cast<const v1::LeaseItemsRequest*>(methods->GetSendMessage())->packed()
              : false;
      absl::MutexLock lock(&wire_->mu);
      if (packed) ++wire_->asked_packed;
    }
    if (completion &&
        methods->QueryInterceptionHookPoint(InterceptionHookPoints::POST_RECV_STATUS) &&
        wire_->lose_first_completion.exchange(false)) {
      *methods->GetRecvStatus() =
          grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, "answer lost (test)");
    }
    methods->Proceed();
  }

 private:
  const std::string method_;
  Wire* const wire_;
  v1::CompleteItemsRequest sent_;  // the request as sent, when changed
  v1::LeaseItemsRequest sent_lease_;
};

class WireFactory final : public grpc::experimental::ClientInterceptorFactoryInterface {
 public:
  explicit WireFactory(Wire* wire) : wire_(wire) {}
  grpc::experimental::Interceptor* CreateClientInterceptor(
      grpc::experimental::ClientRpcInfo* info) override {
    return new WireInterceptor(info, wire_);
  }

 private:
  Wire* const wire_;
};

class WorkerWireTest : public WorkerTest {
 protected:
  void SetUp() override {
    WorkerTest::SetUp();
    ClientOptions options;
    options.target = server_->server().address();
    options.interceptors = [this] {
      std::vector<std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>> out;
      out.push_back(std::make_unique<WireFactory>(&wire_));
      return out;
    };
    auto client = Client::Connect(std::move(options));
    CKPT_ASSERT_OK(client);
    watched_ = std::move(*client);
  }
  std::unique_ptr<Worker> RegisterWatched(const std::string& job_id, uint32_t lease_batch) {
    WorkerOptions options;
    options.job_id = job_id;
    options.lease_batch = lease_batch;
    auto worker = Worker::Register(watched_.get(), options);
    EXPECT_TRUE(worker.ok()) << worker.status();
    return std::move(*worker);
  }
  // Runs `worker` to the end of its job; expects it handled each of `items` items once.
  void ExpectEachItemHandledOnce(Worker& worker, size_t items) {
    std::map<uint64_t, int> handled;
    CKPT_EXPECT_OK(worker.Run([&](WorkItem& item) {
      ++handled[item.index()];
      return absl::OkStatus();
    }));
    EXPECT_EQ(handled.size(), items);
    for (const auto& [index, times] : handled) EXPECT_EQ(times, 1) << "index " << index;
  }

  Wire wire_;
  std::unique_ptr<Client> watched_;
};

// A steady worker sends one call per batch: the batch's completions, asking for the
// next batch (lease_next). Only the first batch is leased on its own.
TEST_F(WorkerWireTest, EachBatchIsLeasedWithTheCompletionsOfTheLast) {
  CreateJob("steady", 40);
  std::unique_ptr<Worker> worker = RegisterWatched("steady", 10);
  ExpectEachItemHandledOnce(*worker, 40);
  EXPECT_EQ(wire_.Calls("LeaseItems"), 1);
  EXPECT_EQ(wire_.Calls("CompleteItems"), 4);  // the last one learns the job is finished
  EXPECT_EQ(worker->stats().leased_with_completions, 4u);
  EXPECT_EQ(worker->stats().lease_next_fallbacks, 0u);
  EXPECT_EQ(worker->stats().completed, 40u);
  // Each batch came packed, as one LeaseRun (UnpackLeaseRuns made its leases).
  EXPECT_EQ(wire_.AskedPacked(), 5);
  EXPECT_EQ(GetJob("steady").status(), v1::JOB_STATUS_COMPLETED);
}

// Against a ckptd that predates packed leases (it ignores `packed` and answers a Lease
// each), the worker handles every item once just the same.
TEST_F(WorkerWireTest, AgainstACkptdWithoutPackedLeasesEachLeaseComesAlone) {
  CreateJob("unpacked", 40);
  wire_.drop_packed = true;
  std::unique_ptr<Worker> worker = RegisterWatched("unpacked", 10);
  ExpectEachItemHandledOnce(*worker, 40);
  EXPECT_EQ(wire_.AskedPacked(), 0);
  EXPECT_EQ(worker->stats().leased_with_completions, 4u);
  EXPECT_EQ(GetJob("unpacked").status(), v1::JOB_STATUS_COMPLETED);
}

// Against a ckptd that predates lease_next (it ignores the field and answers no lease
// part), every batch is leased with LeaseItems, as before.
TEST_F(WorkerWireTest, WithoutLeaseNextOnTheServerEachBatchIsLeasedOnItsOwn) {
  CreateJob("old-server", 40);
  wire_.drop_lease_next = true;
  std::unique_ptr<Worker> worker = RegisterWatched("old-server", 10);
  ExpectEachItemHandledOnce(*worker, 40);
  EXPECT_EQ(wire_.Calls("LeaseItems"), 5);  // the fifth finds the job finished
  EXPECT_EQ(wire_.Calls("CompleteItems"), 4);
  EXPECT_EQ(worker->stats().leased_with_completions, 0u);
  EXPECT_EQ(worker->stats().lease_next_fallbacks, 4u);
  EXPECT_EQ(GetJob("old-server").status(), v1::JOB_STATUS_COMPLETED);
}

// The answer to a completion that leased the next batch is lost after ckptd applied it.
// The client sends it again, and ckptd answers the same leases: nothing is leased twice,
// nothing is left held unseen, and the worker does not have to register again.
TEST_F(WorkerWireTest, ALostAnswerIsSentAgainAndGetsTheSameLeases) {
  CreateJob("lost-completion", 12);
  wire_.lose_first_completion = true;
  std::unique_ptr<Worker> worker = RegisterWatched("lost-completion", 4);
  std::vector<uint64_t> handled;
  CKPT_EXPECT_OK(worker->Run([&](WorkItem& item) {
    handled.push_back(item.index());
    if (handled.size() == 8) worker->Stop();
    return absl::OkStatus();
  }));
  EXPECT_FALSE(wire_.lose_first_completion.load());
  EXPECT_THAT(handled, ::testing::ElementsAre(0, 1, 2, 3, 4, 5, 6, 7));
  EXPECT_EQ(wire_.Calls("LeaseItems"), 1);
  EXPECT_EQ(worker->stats().lost_lease_answers, 0u);
  EXPECT_EQ(worker->stats().registrations, 1u);
  const v1::Job job = GetJob("lost-completion");
  EXPECT_EQ(job.progress().completed(), 8u);
  EXPECT_EQ(job.progress().leased(), 0u);  // no second set held unseen
  for (uint64_t i = 0; i < 12; ++i) EXPECT_EQ(GetItem("lost-completion", i).attempts(), 0u) << i;
}

// With ckptd gone, destroying a worker must not retry its unregister for the client's
// whole retry policy (2 minutes by default): a pipeline exiting would hang that long.
TEST_F(WorkerTest, DestroyingAWorkerWhileCkptdIsGoneGivesUpOnUnregistering) {
  CreateJob("gone", 4);
  std::atomic<int> retries{0};
  ClientOptions client_options;
  client_options.target = server_->server().address();
  client_options.on_retry = [&retries](const absl::Status&, int) { ++retries; };
  auto client = Client::Connect(std::move(client_options));
  CKPT_ASSERT_OK(client);
  WorkerOptions options;
  options.job_id = "gone";
  options.heartbeat_interval = absl::Hours(1);  // no heartbeat during the test
  options.unregister_retry_for = absl::ZeroDuration();
  auto worker = Worker::Register(client->get(), options);
  CKPT_ASSERT_OK(worker);
  server_->Shutdown(absl::ZeroDuration());
  worker->reset();  // one attempt, UNAVAILABLE, and no retry
  EXPECT_EQ(retries.load(), 0);
}

// The handler's log entries reach the item: with a heartbeat while it runs, and with
// its completion or failure.
TEST_F(WorkerTest, ItemLogsRideWithHeartbeatsCompletionsAndFailures) {
  CreateJob("logged", 3);
  WorkerOptions options;
  options.job_id = "logged";
  options.lease_batch = 1;
  auto worker = Register(options);
  v1::ListLogsRequest list;
  list.set_job_id("logged");
  std::vector<std::string> seen_during_item_0;
  CKPT_ASSERT_OK(worker->Run([&](WorkItem& item) -> absl::Status {
    item.Log(v1::LOG_LEVEL_INFO, absl::StrCat("start ", item.index()), "pipeline");
    if (item.index() == 0) {
      // Two heartbeats later the first has certainly carried it.
      AwaitHeartbeats(*worker, 2);
      auto logs = client_->ListLogs(list);
      EXPECT_TRUE(logs.ok()) << logs.status();
      for (const v1::LogLine& line : logs->entries()) {
        seen_during_item_0.push_back(line.entry().message());
      }
    }
    if (item.index() == 2) {
      item.Log(v1::LOG_LEVEL_ERROR, "giving up");
      return absl::InvalidArgumentError("bad input");
    }
    item.Log(v1::LOG_LEVEL_DEBUG, std::string(9000, 'x'));  // cut to 8 KiB
    return absl::OkStatus();
  }));
  EXPECT_THAT(seen_during_item_0, ::testing::ElementsAre("start 0"));
  auto logs = client_->ListLogs(list);
  CKPT_ASSERT_OK(logs);
  std::map<uint64_t, std::vector<std::string>> by_item;
  for (const v1::LogLine& line : logs->entries()) {
    EXPECT_EQ(line.worker_id(), worker->worker_id());
    by_item[line.key().index()].push_back(line.entry().message().substr(0, 10));
  }
  EXPECT_THAT(by_item[0], ::testing::ElementsAre("start 0", std::string(10, 'x')));
  EXPECT_THAT(by_item[1], ::testing::ElementsAre("start 1", std::string(10, 'x')));
  EXPECT_THAT(by_item[2], ::testing::ElementsAre("start 2", "giving up"));
  EXPECT_EQ(logs->entries(1).entry().message().size(), 8192u);
}

}  // namespace
}  // namespace ckpt
