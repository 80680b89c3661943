// ckpt.v1.Checkpoint as a client sees it: a real server on loopback port 0 with a real
// store in a temp dir, called through the generated stub. Status codes and messages are
// checked as they arrive over the wire.
#include <grpcpp/grpcpp.h>

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "ckpt/v1/checkpoint.grpc.pb.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "service/common/grpc_status.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/test_server.h"

namespace ckpt {
namespace {

using ::ckpt::testutil::Call;
using ::ckpt::testutil::IsOk;
using ::ckpt::testutil::StatusIs;
using ::ckpt::testutil::TestServer;
using ::google::protobuf::util::MessageDifferencer;
using ::testing::AnyOf;
using ::testing::Each;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using Stub = v1::Checkpoint::Stub;

// ---------------------------------------------------------------- requests

v1::ItemKey Index(uint64_t index) {
  v1::ItemKey key;
  key.set_index(index);
  return key;
}

v1::ItemKey Name(const std::string& name) {
  v1::ItemKey key;
  key.set_name(name);
  return key;
}

// About 100 bytes that differ per item and hold NUL and high bytes, so a result that
// comes back equal was stored byte for byte.
std::string Payload(uint64_t index) {
  std::string payload = absl::StrFormat("result of item %06d:", index);
  for (int i = 0; payload.size() < 100; ++i) payload.push_back(static_cast<char>(index * 7 + i));
  return payload;
}

v1::CreateJobRequest NewJob(const std::string& job_id, std::vector<std::string> steps = {}) {
  v1::CreateJobRequest request;
  request.set_job_id(job_id);
  request.set_config(R"({"input": "gs://bucket/docs"})");
  for (std::string& step : steps) request.add_steps(std::move(step));
  return request;
}

v1::AddItemsRequest AddRange(const std::string& job_id, const std::string& step, uint64_t begin,
                             uint64_t end, bool seal) {
  v1::AddItemsRequest request;
  request.set_job_id(job_id);
  request.set_step(step);
  v1::IndexRange* range = request.add_ranges();
  range->set_begin(begin);
  range->set_end(end);
  request.set_seal(seal);
  return request;
}

v1::LeaseItemsRequest LeaseRequest(const std::string& job_id, const std::string& step,
                                   const std::string& worker_id, uint32_t max_items) {
  v1::LeaseItemsRequest request;
  request.set_job_id(job_id);
  request.set_step(step);
  request.set_worker_id(worker_id);
  request.set_max_items(max_items);
  return request;
}

// One completion; lease_token 0 is record mode.
v1::Completion Completion(const v1::ItemKey& key, uint64_t lease_token,
                          const std::string& payload) {
  v1::Completion completion;
  *completion.mutable_key() = key;
  completion.set_lease_token(lease_token);
  completion.mutable_result()->set_payload(payload);
  return completion;
}

v1::CompleteItemsRequest CompleteRequest(const std::string& job_id, const std::string& step,
                                         std::vector<v1::Completion> items,
                                         const std::string& worker_id = "") {
  v1::CompleteItemsRequest request;
  request.set_job_id(job_id);
  request.set_step(step);
  request.set_worker_id(worker_id);
  for (v1::Completion& item : items) *request.add_items() = std::move(item);
  return request;
}

v1::GetJobRequest GetJobRequest(const std::string& job_id) {
  v1::GetJobRequest request;
  request.set_job_id(job_id);
  return request;
}

v1::GetItemRequest GetItemRequest(const std::string& job_id, const v1::ItemKey& key) {
  v1::GetItemRequest request;
  request.set_job_id(job_id);
  *request.mutable_key() = key;
  return request;
}

v1::WatchJobRequest WatchRequest(const std::string& job_id) {
  v1::WatchJobRequest request;
  request.set_job_id(job_id);
  return request;
}

// ---------------------------------------------------------------- client helpers

absl::StatusOr<std::string> RegisterWorker(Stub& stub, const std::string& job_id) {
  v1::RegisterWorkerRequest request;
  request.set_job_id(job_id);
  request.set_hostname("test-host");
  request.set_pid(4242);
  auto response = Call(stub, &Stub::RegisterWorker, request);
  if (!response.ok()) return response.status();
  return response->worker_id();
}

// Every item of the step in `state`, paging ListItems `page` at a time.
absl::StatusOr<std::vector<v1::Item>> ListAll(Stub& stub, const std::string& job_id,
                                              v1::ItemState state, uint32_t page = 128) {
  std::vector<v1::Item> items;
  v1::ListItemsRequest request;
  request.set_job_id(job_id);
  request.set_state(state);
  request.set_limit(page);
  request.set_keys_only(true);
  for (int pages = 0; pages < 100000; ++pages) {
    auto response = Call(stub, &Stub::ListItems, request);
    if (!response.ok()) return response.status();
    for (const v1::Item& item : response->items()) items.push_back(item);
    if (response->next_page_token().empty()) return items;
    request.set_page_token(response->next_page_token());
  }
  return absl::InternalError("ListItems never stopped paging");
}

// The job's counters and status as one comparable, printable line.
std::string CountsOf(const v1::Job& job) {
  const v1::Progress& p = job.progress();
  return absl::StrCat(v1::JobStatus_Name(job.status()), " sealed=", job.sealed(),
                      " total=", p.total(), " pending=", p.pending(), " leased=", p.leased(),
                      " completed=", p.completed(), " failed=", p.failed());
}

// What one worker did in Work().
struct WorkLog {
  std::vector<std::pair<uint64_t, uint64_t>> grants;  // (index, lease token)
  std::vector<uint64_t> completed;                    // outcome COMPLETED
  v1::LeaseShortfall last_shortfall = v1::LEASE_SHORTFALL_UNSPECIFIED;
  std::vector<std::string> errors;  // any RPC error or unexpected outcome
};

// A worker's loop: lease up to `max_items` of the step, complete each with its token and
// Payload(index), until a lease call grants nothing because the step is drained or the
// job finished. While others hold the last items (NONE_PENDING) it asks again. Stops
// early, and sets `stop_all`, on any error, so that other workers do not wait for leases
// this one will never complete; stops if `stop_all` is set by another.
WorkLog Work(Stub& stub, const std::string& job_id, const std::string& step,
             const std::string& worker_id, uint32_t max_items, std::atomic<bool>& stop_all) {
  WorkLog log;
  auto fail = [&](std::string error) {
    log.errors.push_back(std::move(error));
    stop_all = true;
  };
  while (!stop_all) {
    auto leased = Call(stub, &Stub::LeaseItems, LeaseRequest(job_id, step, worker_id, max_items));
    if (!leased.ok()) {
      fail(absl::StrCat("LeaseItems: ", leased.status().ToString()));
      break;
    }
    if (leased->leases().empty()) {
      log.last_shortfall = leased->shortfall();
      if (leased->shortfall() == v1::LEASE_SHORTFALL_NONE_PENDING) {
        std::this_thread::yield();
        continue;
      }
      break;
    }
    std::vector<v1::Completion> completions;
    for (const v1::Lease& lease : leased->leases()) {
      log.grants.emplace_back(lease.key().index(), lease.lease_token());
      completions.push_back(
          Completion(lease.key(), lease.lease_token(), Payload(lease.key().index())));
    }
    auto done = Call(stub, &Stub::CompleteItems,
                     CompleteRequest(job_id, step, std::move(completions), worker_id));
    if (!done.ok()) {
      fail(absl::StrCat("CompleteItems: ", done.status().ToString()));
      break;
    }
    for (int i = 0; i < done->outcomes_size(); ++i) {
      if (done->outcomes(i) == v1::COMPLETION_OUTCOME_COMPLETED) {
        log.completed.push_back(leased->leases(i).key().index());
      } else {
        fail(absl::StrCat("CompleteItems outcome ", v1::CompletionOutcome_Name(done->outcomes(i)),
                          " for index ", leased->leases(i).key().index()));
      }
    }
  }
  return log;
}

std::set<uint64_t> IndicesOf(const std::vector<v1::Item>& items) {
  std::set<uint64_t> indices;
  for (const v1::Item& item : items) indices.insert(item.key().index());
  return indices;
}

std::set<uint64_t> Range(uint64_t begin, uint64_t end) {
  std::set<uint64_t> indices;
  for (uint64_t i = begin; i < end; ++i) indices.insert(i);
  return indices;
}

// ---------------------------------------------------------------- fixture

class ServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto server = TestServer::Start();
    CKPT_ASSERT_OK(server);
    server_ = std::move(*server);
  }

  Stub& stub() { return server_->stub(); }

  void CreateJob(const v1::CreateJobRequest& request) {
    CKPT_ASSERT_OK(Call(stub(), &Stub::CreateJob, request));
  }
  void AddItems(const v1::AddItemsRequest& request) {
    CKPT_ASSERT_OK(Call(stub(), &Stub::AddItems, request));
  }
  // The job as GetJob returns it; an empty Job (and a test failure) if it cannot.
  v1::Job GetJob(const std::string& job_id) {
    auto response = Call(stub(), &Stub::GetJob, GetJobRequest(job_id));
    EXPECT_THAT(response, IsOk());
    return response.ok() ? response->job() : v1::Job();
  }

  // Every index in [0, n) of the job's first step is COMPLETED, by GetJob's counters
  // and by a recount through ListItems.
  void ExpectAllCompleted(const std::string& job_id, uint64_t n) {
    const v1::Job job = GetJob(job_id);
    EXPECT_EQ(job.status(), v1::JOB_STATUS_COMPLETED);
    EXPECT_EQ(job.progress().total(), n);
    EXPECT_EQ(job.progress().completed(), n);
    EXPECT_EQ(job.progress().pending(), 0u);
    EXPECT_EQ(job.progress().leased(), 0u);
    EXPECT_EQ(job.progress().failed(), 0u);
    auto completed = ListAll(stub(), job_id, v1::ITEM_STATE_COMPLETED);
    CKPT_ASSERT_OK(completed);
    EXPECT_EQ(completed->size(), n);  // no key listed twice
    EXPECT_EQ(IndicesOf(*completed), Range(0, n));
  }

  std::unique_ptr<TestServer> server_;
};

// ---------------------------------------------------------------- 1. worker flow

// A pipeline with two steps: one worker drains "fetch" (LeaseItems then says
// STEP_DRAINED while "parse" is still to do), then "parse", whose last completion
// completes the job.
TEST_F(ServiceTest, WorkerLeasesAndCompletesEveryItemUntilTheStepDrains) {
  CreateJob(NewJob("flow", {"fetch", "parse"}));
  AddItems(AddRange("flow", "fetch", 0, 100, /*seal=*/false));
  AddItems(AddRange("flow", "parse", 0, 100, /*seal=*/true));
  auto worker = RegisterWorker(stub(), "flow");
  CKPT_ASSERT_OK(worker);

  std::atomic<bool> stop_all{false};
  const WorkLog fetch = Work(stub(), "flow", "fetch", *worker, 10, stop_all);
  EXPECT_THAT(fetch.errors, IsEmpty());
  EXPECT_EQ(fetch.last_shortfall, v1::LEASE_SHORTFALL_STEP_DRAINED);
  EXPECT_EQ(fetch.grants.size(), 100u);
  EXPECT_EQ(std::set<uint64_t>(fetch.completed.begin(), fetch.completed.end()), Range(0, 100));
  // In key order, ten at a time.
  ASSERT_EQ(fetch.completed.size(), 100u);
  for (uint64_t i = 0; i < 100; ++i) EXPECT_EQ(fetch.completed[i], i);

  v1::Job halfway = GetJob("flow");
  EXPECT_EQ(halfway.status(), v1::JOB_STATUS_RUNNING);
  ASSERT_EQ(halfway.step_progress_size(), 2);
  EXPECT_EQ(halfway.step_progress(0).progress().completed(), 100u);
  EXPECT_EQ(halfway.step_progress(0).progress().percent(), 100.0);
  EXPECT_EQ(halfway.step_progress(1).progress().pending(), 100u);
  EXPECT_EQ(halfway.progress().percent(), 50.0);

  const WorkLog parse = Work(stub(), "flow", "parse", *worker, 10, stop_all);
  EXPECT_THAT(parse.errors, IsEmpty());
  // The step drained and with it the whole job: the job's state is what LeaseItems says.
  EXPECT_EQ(parse.last_shortfall, v1::LEASE_SHORTFALL_JOB_FINISHED);
  EXPECT_EQ(parse.completed.size(), 100u);

  const v1::Job job = GetJob("flow");
  EXPECT_EQ(job.status(), v1::JOB_STATUS_COMPLETED);
  EXPECT_TRUE(job.has_finish_time());
  EXPECT_EQ(job.progress().total(), 200u);
  EXPECT_EQ(job.progress().completed(), 200u);
  EXPECT_EQ(job.progress().remaining(), 0u);
  EXPECT_EQ(job.progress().percent(), 100.0);
  ASSERT_EQ(job.step_progress_size(), 2);
  for (int i = 0; i < 2; ++i) {
    SCOPED_TRACE(job.step_progress(i).step());
    EXPECT_EQ(job.step_progress(i).step(), i == 0 ? "fetch" : "parse");
    EXPECT_EQ(job.step_progress(i).progress().total(), 100u);
    EXPECT_EQ(job.step_progress(i).progress().completed(), 100u);
    EXPECT_EQ(job.step_progress(i).progress().percent(), 100.0);
  }

  v1::GetItemRequest get = GetItemRequest("flow", Index(42));
  get.set_step("parse");
  auto item = Call(stub(), &Stub::GetItem, get);
  CKPT_ASSERT_OK(item);
  EXPECT_EQ(item->item().state(), v1::ITEM_STATE_COMPLETED);
  EXPECT_EQ(item->item().result().payload(), Payload(42));
}

// ---------------------------------------------------------------- 2. concurrency

TEST_F(ServiceTest, EightWorkersCompleteEveryItemExactlyOnce) {
  constexpr int kWorkers = 8;
  constexpr uint64_t kItems = 2000;
  v1::CreateJobRequest create = NewJob("swarm");
  // No lease can expire during the test, so each item is granted exactly once.
  create.mutable_lease_timeout()->set_seconds(24 * 3600);
  CreateJob(create);
  AddItems(AddRange("swarm", "", 0, kItems, /*seal=*/true));

  std::vector<WorkLog> logs(kWorkers);
  std::vector<std::string> workers(kWorkers);
  std::atomic<bool> stop_all{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < kWorkers; ++t) {
    threads.emplace_back([&, t] {
      std::unique_ptr<Stub> own = server_->NewStub();
      auto worker = RegisterWorker(*own, "swarm");
      if (!worker.ok()) {
        logs[t].errors.push_back(worker.status().ToString());
        stop_all = true;
        return;
      }
      workers[t] = *worker;
      logs[t] = Work(*own, "swarm", "", *worker, 10, stop_all);
    });
  }
  for (std::thread& thread : threads) thread.join();

  std::map<uint64_t, int> grants_per_key;
  std::set<uint64_t> tokens;
  std::multiset<uint64_t> completed;
  for (int t = 0; t < kWorkers; ++t) {
    SCOPED_TRACE(absl::StrCat("worker thread ", t));
    EXPECT_THAT(logs[t].errors, IsEmpty());
    EXPECT_THAT(logs[t].last_shortfall,
                AnyOf(v1::LEASE_SHORTFALL_STEP_DRAINED, v1::LEASE_SHORTFALL_JOB_FINISHED));
    for (const auto& [index, token] : logs[t].grants) {
      ++grants_per_key[index];
      EXPECT_TRUE(tokens.insert(token).second) << "token " << token << " granted twice";
    }
    completed.insert(logs[t].completed.begin(), logs[t].completed.end());
  }
  EXPECT_EQ(std::set<std::string>(workers.begin(), workers.end()).size(), size_t{kWorkers});
  EXPECT_EQ(grants_per_key.size(), kItems);
  for (const auto& [index, grants] : grants_per_key) {
    EXPECT_EQ(grants, 1) << "index " << index << " granted " << grants << " times";
  }
  EXPECT_EQ(completed.size(), kItems);
  EXPECT_EQ(std::set<uint64_t>(completed.begin(), completed.end()), Range(0, kItems));

  // Each worker is credited with what it completed.
  v1::ListWorkersRequest list;
  list.set_job_id("swarm");
  auto listed = Call(stub(), &Stub::ListWorkers, list);
  CKPT_ASSERT_OK(listed);
  ASSERT_EQ(listed->workers_size(), kWorkers);
  for (const v1::Worker& worker : listed->workers()) {
    for (int t = 0; t < kWorkers; ++t) {
      if (workers[t] == worker.worker_id()) {
        EXPECT_EQ(worker.completed(), logs[t].completed.size()) << worker.worker_id();
      }
    }
  }

  ExpectAllCompleted("swarm", kItems);
  CKPT_ASSERT_OK(server_->Restart());
  ExpectAllCompleted("swarm", kItems);
}

// ---------------------------------------------------------------- 3. group commit

// Many writers at once share WAL syncs; functionally, every one is acknowledged and
// every acknowledged write is on disk after a restart.
TEST_F(ServiceTest, ConcurrentRecordModeCompletionsAllCommitAndSurviveRestart) {
  constexpr int kThreads = 16;
  constexpr int kPerThread = 50;
  CreateJob(NewJob("records"));
  v1::AddItemsRequest add;
  add.set_job_id("records");
  std::vector<std::string> names;
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kPerThread; ++i) {
      names.push_back(absl::StrFormat("shard-%02d/doc-%03d.json", t, i));
      add.add_names(names.back());
    }
  }
  AddItems(add);

  std::vector<std::vector<std::string>> errors(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::unique_ptr<Stub> own = server_->NewStub();
      for (int i = 0; i < kPerThread; ++i) {
        const std::string& name = names[t * kPerThread + i];
        auto done = Call(*own, &Stub::CompleteItems,
                         CompleteRequest("records", "", {Completion(Name(name), 0, name)}));
        if (!done.ok()) {
          errors[t].push_back(absl::StrCat(name, ": ", done.status().ToString()));
        } else if (done->outcomes_size() != 1 ||
                   done->outcomes(0) != v1::COMPLETION_OUTCOME_COMPLETED) {
          errors[t].push_back(absl::StrCat(name, ": ", done->ShortDebugString()));
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_THAT(errors, Each(IsEmpty()));

  const uint64_t n = names.size();
  for (int round = 0; round < 2; ++round) {
    SCOPED_TRACE(round == 0 ? "before restart" : "after restart");
    const v1::Job job = GetJob("records");
    EXPECT_EQ(job.progress().completed(), n);
    EXPECT_EQ(job.progress().pending(), 0u);
    auto completed = ListAll(stub(), "records", v1::ITEM_STATE_COMPLETED);
    CKPT_ASSERT_OK(completed);
    std::set<std::string> listed;
    for (const v1::Item& item : *completed) listed.insert(item.key().name());
    EXPECT_EQ(completed->size(), n);
    EXPECT_EQ(listed, std::set<std::string>(names.begin(), names.end()));
    auto item = Call(stub(), &Stub::GetItem, GetItemRequest("records", Name(names[777])));
    CKPT_ASSERT_OK(item);
    EXPECT_EQ(item->item().result().payload(), names[777]);
    if (round == 0) {
      CKPT_ASSERT_OK(server_->Restart());
    }
  }
}

// ---------------------------------------------------------------- 4. WatchJob

TEST_F(ServiceTest, WatchJobFollowsAJobToCompleted) {
  constexpr uint64_t kItems = 20;
  CreateJob(NewJob("watched"));
  AddItems(AddRange("watched", "", 0, kItems, /*seal=*/true));

  grpc::ClientContext context;
  auto stream = stub().WatchJob(&context, WatchRequest("watched"));
  v1::WatchJobResponse response;
  ASSERT_TRUE(stream->Read(&response));
  std::vector<v1::Job> snapshots = {response.job()};
  EXPECT_EQ(response.job().status(), v1::JOB_STATUS_RUNNING);
  EXPECT_EQ(response.job().progress().completed(), 0u);

  std::vector<absl::Status> writes(kItems);
  std::thread completer([&] {
    std::unique_ptr<Stub> own = server_->NewStub();
    for (uint64_t i = 0; i < kItems; ++i) {
      writes[i] = Call(*own, &Stub::CompleteItems,
                       CompleteRequest("watched", "", {Completion(Index(i), 0, Payload(i))}))
                      .status();
    }
  });
  while (stream->Read(&response)) snapshots.push_back(response.job());
  const absl::Status end = FromGrpcStatus(stream->Finish());
  completer.join();

  EXPECT_THAT(writes, Each(IsOk()));
  CKPT_EXPECT_OK(end);
  for (size_t i = 1; i < snapshots.size(); ++i) {
    EXPECT_GE(snapshots[i].progress().completed(), snapshots[i - 1].progress().completed())
        << "snapshot " << i;
  }
  const v1::Job& last = snapshots.back();
  EXPECT_EQ(last.status(), v1::JOB_STATUS_COMPLETED);
  EXPECT_EQ(last.progress().completed(), kItems);
  EXPECT_EQ(last.progress().percent(), 100.0);
}

TEST_F(ServiceTest, WatchJobOfAnUnknownJobIsNotFound) {
  grpc::ClientContext context;
  auto stream = stub().WatchJob(&context, WatchRequest("ghost"));
  v1::WatchJobResponse response;
  EXPECT_FALSE(stream->Read(&response));
  EXPECT_THAT(FromGrpcStatus(stream->Finish()),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("\"ghost\"")));
}

TEST_F(ServiceTest, WatchJobOfADeletedJobEndsNotFound) {
  CreateJob(NewJob("doomed"));
  grpc::ClientContext context;
  auto stream = stub().WatchJob(&context, WatchRequest("doomed"));
  v1::WatchJobResponse response;
  ASSERT_TRUE(stream->Read(&response));
  EXPECT_EQ(response.job().job_id(), "doomed");

  v1::DeleteJobRequest remove;
  remove.set_job_id("doomed");
  CKPT_ASSERT_OK(Call(stub(), &Stub::DeleteJob, remove));
  while (stream->Read(&response)) {
  }
  EXPECT_THAT(FromGrpcStatus(stream->Finish()),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("\"doomed\"")));
}

// A client that stops watching ends its stream; the server neither keeps it nor waits
// for it at shutdown (a stream it still held would keep Shutdown waiting for its grace).
TEST_F(ServiceTest, WatchJobEndsWhenTheClientCancels) {
  CreateJob(NewJob("watched"));
  grpc::ClientContext context;
  auto stream = stub().WatchJob(&context, WatchRequest("watched"));
  v1::WatchJobResponse response;
  ASSERT_TRUE(stream->Read(&response));
  context.TryCancel();
  while (stream->Read(&response)) {
  }
  EXPECT_EQ(stream->Finish().error_code(), grpc::StatusCode::CANCELLED);

  // The server still serves streams after the cancel.
  grpc::ClientContext again;
  auto second = stub().WatchJob(&again, WatchRequest("watched"));
  ASSERT_TRUE(second->Read(&response));
  EXPECT_EQ(response.job().job_id(), "watched");
  again.TryCancel();
  while (second->Read(&response)) {
  }
  EXPECT_EQ(second->Finish().error_code(), grpc::StatusCode::CANCELLED);

  server_->Shutdown(absl::Hours(1));
}

// ---------------------------------------------------------------- 5. bad input

class BadInputTest : public ServiceTest {
 protected:
  void SetUp() override {
    ServiceTest::SetUp();
    CreateJob(NewJob("strict"));
    AddItems(AddRange("strict", "", 0, 10, /*seal=*/false));
    auto worker = RegisterWorker(stub(), "strict");
    CKPT_ASSERT_OK(worker);
    worker_ = *worker;
    before_ = CountsOf(GetJob("strict"));
  }

  // The call was refused INVALID_ARGUMENT with a message naming `field` (and `detail`),
  // and job "strict" is as it was.
  template <typename T>
  void ExpectRefused(const absl::StatusOr<T>& answer, const std::string& field,
                     const std::string& detail) {
    EXPECT_THAT(answer,
                StatusIs(absl::StatusCode::kInvalidArgument,
                         ::testing::AllOf(::testing::StartsWith(field + ":"), HasSubstr(detail))));
    EXPECT_EQ(CountsOf(GetJob("strict")), before_);
  }

  std::string worker_;
  std::string before_;
};

TEST_F(BadInputTest, JobIdWithASpace) {
  ExpectRefused(Call(stub(), &Stub::CreateJob, NewJob("has space")), "job_id",
                "[A-Za-z0-9._:-], got ' ' at offset 3");
  auto jobs = Call(stub(), &Stub::ListJobs, v1::ListJobsRequest());
  CKPT_ASSERT_OK(jobs);
  ASSERT_EQ(jobs->jobs_size(), 1);
  EXPECT_EQ(jobs->jobs(0).job_id(), "strict");
}

TEST_F(BadInputTest, ItemNameOfTwoKiB) {
  v1::AddItemsRequest add;
  add.set_job_id("strict");
  add.add_names("fine.json");
  add.add_names(std::string(2048, 'n'));
  ExpectRefused(Call(stub(), &Stub::AddItems, add), "names[1]",
                "2048 bytes exceeds the limit of 1024 (--max_key_bytes)");
  // All or nothing: the valid name was not registered either.
  EXPECT_THAT(Call(stub(), &Stub::GetItem, GetItemRequest("strict", Name("fine.json"))),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("fine.json")));
}

TEST_F(BadInputTest, RangesWhoseEndIsNotAfterTheirBegin) {
  v1::AddItemsRequest add = AddRange("strict", "", 20, 30, /*seal=*/false);
  v1::IndexRange* empty = add.add_ranges();
  empty->set_begin(7);
  empty->set_end(7);
  ExpectRefused(Call(stub(), &Stub::AddItems, add), "ranges[1]",
                "end 7 must be greater than begin 7");
  ExpectRefused(Call(stub(), &Stub::AddItems, AddRange("strict", "", 9, 3, /*seal=*/false)),
                "ranges[0]", "end 3 must be greater than begin 9");
}

TEST_F(BadInputTest, LeaseOfZeroItems) {
  ExpectRefused(Call(stub(), &Stub::LeaseItems, LeaseRequest("strict", "", worker_, 0)),
                "max_items", "must be 1..8192 items");
}

TEST_F(BadInputTest, UnknownItemStateNumber) {
  v1::ListItemsRequest list;
  list.set_job_id("strict");
  list.set_state(static_cast<v1::ItemState>(99));
  ExpectRefused(Call(stub(), &Stub::ListItems, list), "state", "unknown value 99");
}

TEST_F(BadInputTest, PayloadOfSeventyKiB) {
  ExpectRefused(
      Call(stub(), &Stub::CompleteItems,
           CompleteRequest("strict", "", {Completion(Index(0), 0, std::string(70 << 10, 'p'))})),
      "items[0].result.payload", "71680 bytes exceeds the limit of 65536");
  auto item = Call(stub(), &Stub::GetItem, GetItemRequest("strict", Index(0)));
  CKPT_ASSERT_OK(item);
  EXPECT_EQ(item->item().state(), v1::ITEM_STATE_PENDING);
}

TEST_F(BadInputTest, BatchOf8193Completions) {
  std::vector<v1::Completion> completions;
  for (uint64_t i = 0; i < 8193; ++i) completions.push_back(Completion(Index(i), 0, ""));
  ExpectRefused(
      Call(stub(), &Stub::CompleteItems, CompleteRequest("strict", "", std::move(completions))),
      "items", "8193 entries exceeds the limit of 8192 (--max_batch)");
}

TEST_F(BadInputTest, FinishJobAsRunning) {
  v1::FinishJobRequest finish;
  finish.set_job_id("strict");
  finish.set_status(v1::JOB_STATUS_RUNNING);
  ExpectRefused(Call(stub(), &Stub::FinishJob, finish), "status",
                "must be JOB_STATUS_COMPLETED or JOB_STATUS_FAILED, got JOB_STATUS_RUNNING");
}

// gRPC refuses a message over the server's 16 MiB before ckpt sees it (ckpt's own limit
// for a state blob, 4 MiB, would say INVALID_ARGUMENT).
TEST_F(BadInputTest, RequestOver16MiBIsRefusedByGrpc) {
  v1::PutStateRequest put;
  put.set_job_id("strict");
  put.set_name("blob");
  put.set_value(std::string((16 << 20) + 1024, 'x'));
  EXPECT_EQ(Call(stub(), &Stub::PutState, put).status().code(),
            absl::StatusCode::kResourceExhausted);
  v1::ListStatesRequest list;
  list.set_job_id("strict");
  auto states = Call(stub(), &Stub::ListStates, list);
  CKPT_ASSERT_OK(states);
  EXPECT_THAT(states->states(), IsEmpty());
  EXPECT_EQ(CountsOf(GetJob("strict")), before_);
}

// ---------------------------------------------------------------- 6. NOT_FOUND

TEST_F(ServiceTest, UnknownJobIsNotFoundForEveryKindOfCall) {
  const auto not_found = StatusIs(absl::StatusCode::kNotFound, HasSubstr("\"ghost\""));
  EXPECT_THAT(Call(stub(), &Stub::GetJob, GetJobRequest("ghost")), not_found);
  EXPECT_THAT(Call(stub(), &Stub::AddItems, AddRange("ghost", "", 0, 1, false)), not_found);
  EXPECT_THAT(Call(stub(), &Stub::LeaseItems, LeaseRequest("ghost", "", "w-1", 1)), not_found);
  EXPECT_THAT(Call(stub(), &Stub::GetItem, GetItemRequest("ghost", Index(0))), not_found);
  v1::ListItemsRequest list;
  list.set_job_id("ghost");
  EXPECT_THAT(Call(stub(), &Stub::ListItems, list), not_found);
  v1::PutStateRequest put;
  put.set_job_id("ghost");
  put.set_name("cursor");
  put.set_value("41000");
  EXPECT_THAT(Call(stub(), &Stub::PutState, put), not_found);
  v1::DeleteJobRequest remove;
  remove.set_job_id("ghost");
  EXPECT_THAT(Call(stub(), &Stub::DeleteJob, remove), not_found);
  // None of these created the job.
  EXPECT_THAT(Call(stub(), &Stub::GetJob, GetJobRequest("ghost")), not_found);
}

TEST_F(ServiceTest, HeartbeatOfAnUnknownWorkerIsNotFound) {
  CreateJob(NewJob("real"));
  CreateJob(NewJob("other"));
  auto elsewhere = RegisterWorker(stub(), "other");
  CKPT_ASSERT_OK(elsewhere);
  for (const std::string& worker_id : {std::string("w-999999"), *elsewhere}) {
    SCOPED_TRACE(worker_id);
    v1::HeartbeatRequest heartbeat;
    heartbeat.set_job_id("real");
    heartbeat.set_worker_id(worker_id);
    EXPECT_THAT(Call(stub(), &Stub::Heartbeat, heartbeat),
                StatusIs(absl::StatusCode::kNotFound, HasSubstr(worker_id)));
  }
}

// ---------------------------------------------------------------- 7. retries

TEST_F(ServiceTest, RetriedWritesAreIdempotent) {
  auto created = Call(stub(), &Stub::CreateJob, NewJob("again"));
  CKPT_ASSERT_OK(created);
  EXPECT_TRUE(created->created());
  AddItems(AddRange("again", "", 0, 5, /*seal=*/false));
  auto resumed = Call(stub(), &Stub::CreateJob, NewJob("again"));
  CKPT_ASSERT_OK(resumed);
  EXPECT_TRUE(resumed->resumed());
  EXPECT_FALSE(resumed->created());
  EXPECT_EQ(resumed->job().progress().total(), 5u);

  auto worker = RegisterWorker(stub(), "again");
  CKPT_ASSERT_OK(worker);
  auto leased = Call(stub(), &Stub::LeaseItems, LeaseRequest("again", "", *worker, 1));
  CKPT_ASSERT_OK(leased);
  ASSERT_EQ(leased->leases_size(), 1);
  const v1::Lease& lease = leased->leases(0);
  const v1::CompleteItemsRequest first =
      CompleteRequest("again", "", {Completion(lease.key(), lease.lease_token(), "first")});
  auto once = Call(stub(), &Stub::CompleteItems, first);
  CKPT_ASSERT_OK(once);
  ASSERT_EQ(once->outcomes_size(), 1);
  EXPECT_EQ(once->outcomes(0), v1::COMPLETION_OUTCOME_COMPLETED);
  // The retry of a write whose answer was lost, even with another result.
  auto twice =
      Call(stub(), &Stub::CompleteItems,
           CompleteRequest("again", "", {Completion(lease.key(), lease.lease_token(), "second")}));
  CKPT_ASSERT_OK(twice);
  ASSERT_EQ(twice->outcomes_size(), 1);
  EXPECT_EQ(twice->outcomes(0), v1::COMPLETION_OUTCOME_ALREADY_COMPLETED);
  auto item = Call(stub(), &Stub::GetItem, GetItemRequest("again", lease.key()));
  CKPT_ASSERT_OK(item);
  EXPECT_EQ(item->item().result().payload(), "first");
  EXPECT_EQ(GetJob("again").progress().completed(), 1u);

  v1::PauseJobRequest pause;
  pause.set_job_id("again");
  pause.set_reason("maintenance");
  for (int i = 0; i < 2; ++i) {
    auto paused = Call(stub(), &Stub::PauseJob, pause);
    CKPT_ASSERT_OK(paused);
    EXPECT_EQ(paused->job().status(), v1::JOB_STATUS_PAUSED);
  }
  EXPECT_EQ(GetJob("again").status(), v1::JOB_STATUS_PAUSED);
}

// ---------------------------------------------------------------- 8. durability

TEST_F(ServiceTest, AcknowledgedResultsAndStateSurviveRestart) {
  CreateJob(NewJob("durable"));
  AddItems(AddRange("durable", "", 0, 10, /*seal=*/false));
  std::vector<v1::ItemResult> results;
  std::vector<v1::Completion> completions;
  for (uint64_t i = 0; i < 3; ++i) {
    v1::Completion completion = Completion(Index(i), 0, Payload(i));
    v1::ItemResult* result = completion.mutable_result();
    result->add_output_paths(absl::StrCat("/out/part-", i, ".parquet"));
    result->mutable_metrics()->mutable_wall_time()->set_seconds(3 + i);
    result->mutable_metrics()->set_peak_memory_bytes(1 << 20);
    results.push_back(*result);
    completions.push_back(std::move(completion));
  }
  CKPT_ASSERT_OK(
      Call(stub(), &Stub::CompleteItems, CompleteRequest("durable", "", std::move(completions))));
  const std::string cursor("last_processed_message_id=\0\x01\xff", 30);
  v1::PutStateRequest put;
  put.set_job_id("durable");
  put.set_name("cursor");
  put.set_value(cursor);
  auto written = Call(stub(), &Stub::PutState, put);
  CKPT_ASSERT_OK(written);
  EXPECT_EQ(written->version(), 1u);

  CKPT_ASSERT_OK(server_->Restart());

  for (uint64_t i = 0; i < 3; ++i) {
    SCOPED_TRACE(absl::StrCat("index ", i));
    auto item = Call(stub(), &Stub::GetItem, GetItemRequest("durable", Index(i)));
    CKPT_ASSERT_OK(item);
    EXPECT_EQ(item->item().state(), v1::ITEM_STATE_COMPLETED);
    EXPECT_EQ(item->item().result().payload(), Payload(i));
    EXPECT_TRUE(MessageDifferencer::Equals(item->item().result(), results[i]))
        << item->item().result().ShortDebugString();
  }
  v1::GetStateRequest get;
  get.set_job_id("durable");
  get.set_name("cursor");
  auto state = Call(stub(), &Stub::GetState, get);
  CKPT_ASSERT_OK(state);
  EXPECT_EQ(state->state().value(), cursor);
  EXPECT_EQ(state->state().version(), 1u);
  const v1::Job job = GetJob("durable");
  EXPECT_EQ(job.progress().completed(), 3u);
  EXPECT_EQ(job.progress().pending(), 7u);
}

// ---------------------------------------------------------------- 9. shutdown

// Shutdown ends open WatchJob streams itself (UNAVAILABLE, "shutting down") rather than
// waiting out its grace for them; had it waited, gRPC would have cancelled the stream at
// the end of the grace with another status.
TEST_F(ServiceTest, ShutdownEndsAnOpenWatchStreamUnavailable) {
  CreateJob(NewJob("watched"));
  grpc::ClientContext context;
  auto stream = stub().WatchJob(&context, WatchRequest("watched"));
  v1::WatchJobResponse response;
  ASSERT_TRUE(stream->Read(&response));

  std::thread shutdown([&] { server_->Shutdown(absl::Minutes(2)); });
  while (stream->Read(&response)) {
  }
  const absl::Status end = FromGrpcStatus(stream->Finish());
  shutdown.join();
  EXPECT_THAT(end, StatusIs(absl::StatusCode::kUnavailable, HasSubstr("shutting down")));
}

}  // namespace
}  // namespace ckpt
