// ckpt::Client against a real ckptd: typed calls, the server's errors passed through
// unchanged, and retries that carry a client across a restart.
#include "client/client.h"

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/common/grpc_status.h"
#include "tests/testing/client_fixture.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/test_server.h"

namespace ckpt {
namespace {

using ::ckpt::testutil::StatusIs;
using ::ckpt::testutil::TestServer;
using ::testing::HasSubstr;

class ClientTest : public testutil::ServerAndClientTest {
 protected:
  v1::Job CreateJob(Client& client, const std::string& job_id) {
    v1::CreateJobRequest request;
    request.set_job_id(job_id);
    auto created = client.CreateJob(request);
    EXPECT_TRUE(created.ok()) << created.status();
    return created->job();
  }
};

TEST_F(ClientTest, TypedCallsReachTheServer) {
  auto client = Connect();
  EXPECT_EQ(CreateJob(*client, "typed").job_id(), "typed");
  v1::AddItemsRequest add;
  add.set_job_id("typed");
  add.add_ranges()->set_end(5);
  auto added = client->AddItems(add);
  CKPT_ASSERT_OK(added);
  EXPECT_EQ(added->added(), 5u);
  v1::GetJobRequest get;
  get.set_job_id("typed");
  auto job = client->GetJob(get);
  CKPT_ASSERT_OK(job);
  EXPECT_EQ(job->job().progress().total(), 5u);
}

TEST_F(ClientTest, ErrorsCarryTheServersCodeAndMessage) {
  auto client = Connect();
  v1::GetJobRequest get;
  get.set_job_id("nope");
  EXPECT_THAT(client->GetJob(get), StatusIs(absl::StatusCode::kNotFound, HasSubstr("nope")));

  CreateJob(*client, "bad-input");
  v1::AddItemsRequest add;
  add.set_job_id("bad-input");
  v1::IndexRange* range = add.add_ranges();
  range->set_begin(9);
  range->set_end(3);
  EXPECT_THAT(client->AddItems(add),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("ranges[0]")));
}

TEST_F(ClientTest, DefaultTargetComesFromTheEnvironment) {
  setenv("CKPT_SERVER", "example.invalid:1234", 1);
  EXPECT_EQ(DefaultTarget(), "example.invalid:1234");
  setenv("CKPT_SERVER", "", 1);
  EXPECT_EQ(DefaultTarget(), "127.0.0.1:7700");
  unsetenv("CKPT_SERVER");
  EXPECT_EQ(DefaultTarget(), "127.0.0.1:7700");
}

TEST_F(ClientTest, RetriesCarryACallAcrossARestart) {
  absl::Notification retrying;
  ClientOptions options;
  options.retry.initial_backoff = absl::Milliseconds(10);
  options.retry.max_backoff = absl::Milliseconds(100);
  options.on_retry = [&](const absl::Status& status, int attempt) {
    EXPECT_TRUE(absl::IsUnavailable(status)) << status;
    if (!retrying.HasBeenNotified()) retrying.Notify();
  };
  auto client = Connect(std::move(options));
  CreateJob(*client, "survivor");

  server_->Shutdown(absl::Seconds(5));
  std::thread caller([&] {
    v1::AddItemsRequest add;
    add.set_job_id("survivor");
    add.add_indices(7);
    auto added = client->AddItems(add);
    EXPECT_TRUE(added.ok()) << added.status();
  });
  // The call has failed at least once while ckptd was down; now it comes back.
  retrying.WaitForNotification();
  CKPT_ASSERT_OK(server_->StartOnSamePort());
  caller.join();

  v1::GetItemRequest get;
  get.set_job_id("survivor");
  *get.mutable_key() = IndexKey(7);
  auto item = client->GetItem(get);
  CKPT_ASSERT_OK(item);
  EXPECT_EQ(item->item().state(), v1::ITEM_STATE_PENDING);
}

TEST_F(ClientTest, GivesUpAfterMaxAttempts) {
  int retries = 0;
  ClientOptions options;
  options.retry.initial_backoff = absl::Milliseconds(1);
  options.retry.max_attempts = 3;
  options.on_retry = [&](const absl::Status&, int attempt) { retries = attempt; };
  auto client = Connect(std::move(options));
  server_->Shutdown(absl::Seconds(5));

  v1::GetJobRequest get;
  get.set_job_id("any");
  EXPECT_THAT(client->GetJob(get), StatusIs(absl::StatusCode::kUnavailable, ::testing::_));
  EXPECT_EQ(retries, 2);  // attempts 1 and 2 were retried; the 3rd was the last
}

TEST_F(ClientTest, RetryBudgetIsKeptOnTheClientsClock) {
  // Minutes of backoff on a fake clock: the test takes no real time, and the client
  // gives up once the next wait would pass max_elapsed.
  FakeClock clock;
  const absl::Time start = clock.Now();
  int retries = 0;
  ClientOptions options;
  options.clock = &clock;
  options.retry.initial_backoff = absl::Minutes(1);
  options.retry.max_backoff = absl::Minutes(4);
  options.retry.max_elapsed = absl::Minutes(30);
  options.retry.max_attempts = 1000;
  options.on_retry = [&](const absl::Status&, int attempt) { retries = attempt; };
  auto client = Connect(std::move(options));
  server_->Shutdown(absl::Seconds(5));

  v1::GetJobRequest get;
  get.set_job_id("any");
  EXPECT_THAT(client->GetJob(get), StatusIs(absl::StatusCode::kUnavailable, ::testing::_));
  EXPECT_GE(retries, 2);
  EXPECT_LE(clock.Now() - start, absl::Minutes(30));
}

// What ckptd answers while its write queue is full, the first `refusals` times:
// RESOURCE_EXHAUSTED with the retry hint in the trailing metadata (or without, for a
// RESOURCE_EXHAUSTED that must not be retried). A stand-in, because a real ckptd's
// queue cannot be held full from outside; tests/engine/write_queue_test.cc shows the
// engine answering exactly this.
class QueueFullService final : public v1::Checkpoint::CallbackService {
 public:
  QueueFullService(int refusals, bool hint) : refusals_(refusals), hint_(hint) {}
  grpc::ServerUnaryReactor* PutState(grpc::CallbackServerContext* context,
                                     const v1::PutStateRequest*, v1::PutStateResponse*) override {
    auto* reactor = context->DefaultReactor();
    if (calls_.fetch_add(1) < refusals_) {
      if (hint_) context->AddTrailingMetadata(kRetryAfterMetadataKey, "20");
      reactor->Finish(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, "write queue is full"));
    } else {
      reactor->Finish(grpc::Status::OK);
    }
    return reactor;
  }
  int calls() const { return calls_; }

 private:
  const int refusals_;
  const bool hint_;
  std::atomic<int> calls_{0};
};

// Sends a conditional PutState (never retried after an ambiguous failure) to `service`.
absl::Status PutStateThrough(QueueFullService* service, std::vector<absl::Duration>* waits) {
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  FakeClock clock;  // the client's waits take no real time
  ClientOptions options;
  options.target = absl::StrCat("127.0.0.1:", port);
  options.clock = &clock;
  options.retry.initial_backoff = absl::Milliseconds(1);
  absl::Time last = clock.Now();
  options.on_retry = [&](const absl::Status&, int) {
    const absl::Time now = clock.Now();
    waits->push_back(now - last);
    last = now;
  };
  auto client = Client::Connect(std::move(options));
  if (!client.ok()) return client.status();
  v1::PutStateRequest request;
  request.set_job_id("j");
  request.set_name("n");
  request.set_expected_version(3);
  const absl::Status status = (*client)->PutState(request).status();
  server->Shutdown();
  return status;
}

// A write refused for a full queue was not applied: the client sends it again, even one
// it never repeats after an ambiguous failure.
TEST(ClientQueueFullTest, RetriesAWriteRefusedWithARetryHint) {
  QueueFullService service(/*refusals=*/2, /*hint=*/true);
  std::vector<absl::Duration> waits;
  CKPT_EXPECT_OK(PutStateThrough(&service, &waits));
  EXPECT_EQ(service.calls(), 3);
  ASSERT_EQ(waits.size(), 2u);
  // Between the two retries the client waited the hinted 20 ms (its backoff alone is
  // at most 1 ms).
  EXPECT_EQ(waits[1], absl::Milliseconds(20));
}

TEST(ClientQueueFullTest, DoesNotRetryResourceExhaustedWithoutAHint) {
  QueueFullService service(/*refusals=*/1, /*hint=*/false);
  std::vector<absl::Duration> waits;
  EXPECT_THAT(PutStateThrough(&service, &waits),
              StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("queue is full")));
  EXPECT_EQ(service.calls(), 1);
}

TEST_F(ClientTest, RetentionAndDeleteJobs) {
  auto client = Connect();
  v1::CreateJobRequest create;
  create.set_job_id("kept-a-day");
  create.mutable_retention()->set_seconds(86400);
  auto created = client->CreateJob(create);
  CKPT_ASSERT_OK(created);
  EXPECT_EQ(created->job().retention().seconds(), 86400);
  v1::UpdateJobRequest update;
  update.set_job_id("kept-a-day");
  update.mutable_retention()->set_seconds(3600);
  auto updated = client->UpdateJob(update);
  CKPT_ASSERT_OK(updated);
  EXPECT_EQ(updated->job().retention().seconds(), 3600);
  CreateJob(*client, "running");
  v1::StopJobRequest stop;
  stop.set_job_id("kept-a-day");
  CKPT_ASSERT_OK(client->StopJob(stop));

  v1::DeleteJobsRequest request;
  request.set_dry_run(true);
  auto listed = client->DeleteJobs(request);
  CKPT_ASSERT_OK(listed);
  EXPECT_EQ(listed->matched(), 1u);
  ASSERT_EQ(listed->jobs_size(), 1);
  EXPECT_EQ(listed->jobs(0).job_id(), "kept-a-day");
  EXPECT_EQ(listed->jobs(0).status(), v1::JOB_STATUS_STOPPED);
  request.set_dry_run(false);
  auto deleted = client->DeleteJobs(request);
  CKPT_ASSERT_OK(deleted);
  EXPECT_EQ(deleted->jobs_size(), 1);
  v1::GetJobRequest get;
  get.set_job_id("kept-a-day");
  EXPECT_THAT(client->GetJob(get), StatusIs(absl::StatusCode::kNotFound, HasSubstr("kept-a-day")));
  get.set_job_id("running");
  CKPT_EXPECT_OK(client->GetJob(get));
  request.add_statuses(v1::JOB_STATUS_RUNNING);
  EXPECT_THAT(client->DeleteJobs(request),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("include_unfinished")));
}

TEST_F(ClientTest, DeleteOfAMissingJobIsNotFound) {
  auto client = Connect();
  v1::DeleteJobRequest request;
  request.set_job_id("never-existed");
  EXPECT_THAT(client->DeleteJob(request), StatusIs(absl::StatusCode::kNotFound, ::testing::_));
}

TEST_F(ClientTest, AWriteThatMustNotRepeatWaitsForCkptdThenIsSentOnce) {
  absl::Notification waiting;
  ClientOptions options;
  options.retry.initial_backoff = absl::Milliseconds(10);
  options.retry.max_backoff = absl::Milliseconds(100);
  options.on_retry = [&](const absl::Status& status, int) {
    if (!waiting.HasBeenNotified()) waiting.Notify();
  };
  auto client = Connect(std::move(options));
  CreateJob(*client, "registering");
  server_->Shutdown(absl::Seconds(5));
  absl::StatusOr<v1::RegisterWorkerResponse> registered;
  std::thread caller([&] {
    v1::RegisterWorkerRequest request;
    request.set_job_id("registering");
    registered = client->RegisterWorker(request);
  });
  waiting.WaitForNotification();  // its health check failed: nothing sent yet
  CKPT_ASSERT_OK(server_->StartOnSamePort());
  caller.join();
  CKPT_ASSERT_OK(registered);
  v1::ListWorkersRequest list;
  list.set_job_id("registering");
  auto workers = client->ListWorkers(list);
  CKPT_ASSERT_OK(workers);
  ASSERT_EQ(workers->workers_size(), 1);  // sent once
  EXPECT_EQ(workers->workers(0).worker_id(), registered->worker_id());
}

TEST_F(ClientTest, AWriteThatMustNotRepeatSaysNothingWasSentWhenCkptdStaysDown) {
  ClientOptions options;
  options.retry.initial_backoff = absl::Milliseconds(1);
  options.retry.max_attempts = 3;
  auto client = Connect(std::move(options));
  server_->Shutdown(absl::Seconds(5));
  v1::LeaseItemsRequest lease;
  lease.set_job_id("any");
  lease.set_worker_id("w-1");
  lease.set_max_items(1);
  EXPECT_THAT(client->LeaseItems(lease),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("nothing was sent")));
}

TEST_F(ClientTest, WatchJobFollowsAJobAcrossARestartToTheEnd) {
  absl::Notification retrying;
  ClientOptions options;
  options.retry.initial_backoff = absl::Milliseconds(10);
  options.retry.max_backoff = absl::Milliseconds(100);
  options.on_retry = [&](const absl::Status&, int) {
    if (!retrying.HasBeenNotified()) retrying.Notify();
  };
  auto client = Connect(std::move(options));
  CreateJob(*client, "watched");

  absl::Notification first_snapshot;
  std::vector<v1::JobStatus> seen;
  absl::Status watched;
  std::thread watcher([&] {
    v1::WatchJobRequest request;
    request.set_job_id("watched");
    watched = client->WatchJob(request, [&](const v1::Job& job) {
      seen.push_back(job.status());
      if (!first_snapshot.HasBeenNotified()) first_snapshot.Notify();
      return true;
    });
  });
  first_snapshot.WaitForNotification();
  server_->Shutdown(absl::Seconds(5));  // ends the stream UNAVAILABLE
  retrying.WaitForNotification();
  CKPT_ASSERT_OK(server_->StartOnSamePort());

  v1::UpdateJobRequest seal;
  seal.set_job_id("watched");
  seal.set_seal(true);  // no items: the job completes at once
  CKPT_ASSERT_OK(client->UpdateJob(seal));
  watcher.join();
  CKPT_EXPECT_OK(watched);
  ASSERT_FALSE(seen.empty());
  EXPECT_EQ(seen.front(), v1::JOB_STATUS_RUNNING);
  EXPECT_EQ(seen.back(), v1::JOB_STATUS_COMPLETED);
}

TEST_F(ClientTest, WatchJobStopsWhenTheCallbackSaysSo) {
  auto client = Connect();
  CreateJob(*client, "glance");
  int snapshots = 0;
  v1::WatchJobRequest request;
  request.set_job_id("glance");
  CKPT_EXPECT_OK(client->WatchJob(request, [&](const v1::Job&) {
    ++snapshots;
    return false;
  }));
  EXPECT_EQ(snapshots, 1);
}

// Each run becomes its leases, and all of them come out in the order they were handed
// out: by token (a retry first, then indices, then a name leased after them).
TEST(UnpackLeaseRunsTest, EachRunBecomesItsLeasesInHandOutOrder) {
  v1::LeaseItemsResponse answer;
  v1::Lease* retry = answer.add_leases();
  retry->mutable_key()->set_index(7);
  retry->set_lease_token(3);
  retry->set_attempt(2);
  v1::Lease* name = answer.add_leases();
  name->mutable_key()->set_name("a.txt");
  name->set_lease_token(30);
  v1::LeaseRun* run = answer.add_lease_runs();
  run->set_step("parse");
  run->set_first_index(40);
  run->set_count(3);
  run->set_first_lease_token(9);
  run->set_attempt(1);
  run->mutable_expire_time()->set_seconds(1700000000);
  v1::LeaseRun* shard = answer.add_lease_runs();  // tokens of one of three shards
  shard->set_first_index(90);
  shard->set_count(2);
  shard->set_first_lease_token(20);
  shard->set_token_step(3);
  UnpackLeaseRuns(&answer);
  EXPECT_EQ(answer.lease_runs_size(), 0);
  std::vector<uint64_t> tokens;
  for (const v1::Lease& lease : answer.leases()) tokens.push_back(lease.lease_token());
  EXPECT_THAT(tokens, ::testing::ElementsAre(3, 9, 10, 11, 20, 23, 30));
  EXPECT_EQ(answer.leases(0).key().index(), 7u);
  EXPECT_EQ(answer.leases(5).key().index(), 91u);
  EXPECT_EQ(answer.leases(6).key().name(), "a.txt");
  for (int i = 1; i < 4; ++i) {
    const v1::Lease& lease = answer.leases(i);
    EXPECT_EQ(lease.key().index(), 40u + i - 1);
    EXPECT_EQ(lease.step(), "parse");
    EXPECT_EQ(lease.attempt(), 1u);
    EXPECT_EQ(lease.expire_time().seconds(), 1700000000);
    EXPECT_TRUE(lease.cursor().empty());
  }
}

TEST_F(ClientTest, KeysReadAsPeopleWriteThem) {
  EXPECT_EQ(KeyToString(IndexKey(42)), "42");
  EXPECT_EQ(KeyToString(NameKey("doc-7.pdf")), "doc-7.pdf");
}

}  // namespace
}  // namespace ckpt
