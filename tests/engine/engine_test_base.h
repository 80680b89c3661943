// The fixture engine tests share: a real engine on a real store (EngineHarness), one
// run per store kind (TEST_P, instantiated with CKPT_ENGINE_STORE_KINDS below: RocksDB
// and PostgreSQL), and one-line helpers for the calls the tests make. The test files mirror the
// engine's: engine_jobs_test (jobs), engine_items_test (items and leases), engine_workers_test,
// engine_states_test (state blobs), engine_load_test (what survives a reopen), and
// engine_group_test (group commit: ops decided together, failed writes).
#ifndef CKPT_TESTS_ENGINE_ENGINE_TEST_BASE_H_
#define CKPT_TESTS_ENGINE_ENGINE_TEST_BASE_H_

#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "tests/engine/recount.h"
#include "tests/testing/engine_harness.h"
#include "tests/testing/status_matchers.h"

namespace ckpt {
namespace testutil {

// Equal protos, or a readable difference.
inline ::testing::AssertionResult ProtoEq(const google::protobuf::Message& expected,
                                          const google::protobuf::Message& actual) {
  google::protobuf::util::MessageDifferencer differ;
  std::string diff;
  differ.ReportDifferencesToString(&diff);
  if (differ.Compare(expected, actual)) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << diff;
}

// Holds the engine's writer inside a done callback (the writer runs them itself), so
// that the ops submitted meanwhile queue up and are decided as one group once released.
// Release, then wait for those ops' answers, before this goes out of scope.
class WriterHold {
 public:
  WriterHold(Engine& engine, const std::string& job_id) {
    request_.set_job_id(job_id);
    engine.ListWorkers(request_, &response_, [this](absl::Status) {
      held_.Notify();
      release_.WaitForNotification();
    });
    held_.WaitForNotification();
  }
  void Release() { release_.Notify(); }

 private:
  v1::ListWorkersRequest request_;
  v1::ListWorkersResponse response_;
  absl::Notification held_, release_;
};

class EngineTest : public ::testing::TestWithParam<StoreKind> {
 protected:
  EngineTest() = default;
  // An engine with these options (its clock is still the harness's fake one).
  explicit EngineTest(EngineOptions options) : h_(GetParam(), std::move(options)) {}

  absl::StatusOr<v1::CreateJobResponse> Create(const std::string& text) {
    return h_.Call(&Engine::CreateJob, Parse<v1::CreateJobRequest>(text));
  }
  void CreateJob(const std::string& text) { CKPT_ASSERT_OK(Create(text)); }
  void Add(const std::string& text) {
    CKPT_ASSERT_OK(h_.Call(&Engine::AddItems, Parse<v1::AddItemsRequest>(text)));
  }
  absl::StatusOr<v1::CompleteItemsResponse> Complete(const std::string& text) {
    return h_.Call(&Engine::CompleteItems, Parse<v1::CompleteItemsRequest>(text));
  }
  absl::StatusOr<v1::FailItemsResponse> Fail(const std::string& text) {
    return h_.Call(&Engine::FailItems, Parse<v1::FailItemsRequest>(text));
  }
  // Fails the leased index `index` of the job's first step (lease `token`) with a
  // retryable error saying `message`.
  absl::StatusOr<v1::FailItemsResponse> FailRetryable(const std::string& job, uint64_t index,
                                                      uint64_t token, const std::string& message) {
    v1::FailItemsRequest r;
    r.set_job_id(job);
    v1::Failure* failure = r.add_items();
    failure->mutable_key()->set_index(index);
    failure->set_lease_token(token);
    failure->mutable_error()->set_message(message);
    failure->mutable_error()->set_retryable(true);
    return h_.Call(&Engine::FailItems, r);
  }
  // A new worker's id ("" if registering failed, which the test reports).
  std::string Register(const std::string& job, const std::string& hostname = "test") {
    v1::RegisterWorkerRequest r;
    r.set_job_id(job);
    r.set_hostname(hostname);
    auto out = h_.Call(&Engine::RegisterWorker, r);
    EXPECT_TRUE(out.ok()) << out.status();
    return out.ok() ? out->worker_id() : "";
  }
  // The job with its progress (empty if GetJob failed, which the test reports).
  v1::Job Job(const std::string& id) {
    v1::GetJobRequest r;
    r.set_job_id(id);
    auto out = h_.Read(&Engine::GetJob, r);
    EXPECT_TRUE(out.ok()) << out.status();
    return out.ok() ? out->job() : v1::Job();
  }

  absl::StatusOr<v1::LeaseItemsResponse> Lease(const std::string& job, const std::string& worker,
                                               int n, const std::string& step = "") {
    return h_.Call(
        &Engine::LeaseItems,
        Parse<v1::LeaseItemsRequest>(absl::StrFormat(
            R"pb(job_id: "%s" step: "%s" worker_id: "%s" max_items: %d)pb", job, step, worker, n)));
  }
  absl::StatusOr<v1::HeartbeatResponse> Heartbeat(const std::string& job,
                                                  const std::string& worker) {
    return h_.Call(&Engine::Heartbeat, Parse<v1::HeartbeatRequest>(absl::StrFormat(
                                           R"pb(job_id: "%s" worker_id: "%s")pb", job, worker)));
  }
  std::vector<v1::Worker> Workers(const std::string& job, bool include_exited = false) {
    v1::ListWorkersRequest r;
    r.set_job_id(job);
    r.set_include_exited(include_exited);
    auto out = h_.Call(&Engine::ListWorkers, r);
    EXPECT_TRUE(out.ok()) << out.status();
    if (!out.ok()) return {};
    return {out->workers().begin(), out->workers().end()};
  }
  absl::StatusOr<v1::GetItemResponse> GetItem(const std::string& text) {
    return h_.Read(&Engine::GetItem, Parse<v1::GetItemRequest>(text));
  }
  absl::StatusOr<v1::PutStateResponse> Put(const std::string& job, const std::string& name,
                                           const std::string& value) {
    v1::PutStateRequest r;
    r.set_job_id(job);
    r.set_name(name);
    r.set_value(value);
    return h_.Call(&Engine::PutState, r);
  }
  absl::StatusOr<v1::PutStateResponse> PutIf(const std::string& job, const std::string& name,
                                             const std::string& value, uint64_t expected) {
    v1::PutStateRequest r;
    r.set_job_id(job);
    r.set_name(name);
    r.set_value(value);
    r.set_expected_version(expected);
    return h_.Call(&Engine::PutState, r);
  }
  absl::StatusOr<v1::GetStateResponse> GetState(const std::string& job, const std::string& name) {
    v1::GetStateRequest r;
    r.set_job_id(job);
    r.set_name(name);
    return h_.Read(&Engine::GetState, r);
  }
  std::vector<v1::State> States(const std::string& job, bool include_values) {
    v1::ListStatesRequest r;
    r.set_job_id(job);
    r.set_include_values(include_values);
    auto out = h_.Read(&Engine::ListStates, r);
    EXPECT_TRUE(out.ok()) << out.status();
    if (!out.ok()) return {};
    return {out->states().begin(), out->states().end()};
  }
  std::vector<v1::Item> Items(const std::string& job, const std::string& step = "",
                              v1::ItemState state = v1::ITEM_STATE_UNSPECIFIED) {
    return ListAll(h_, job, step, state, 11);
  }
  std::vector<std::string> ListJobIds(const std::string& text) {
    auto out = h_.Read(&Engine::ListJobs, Parse<v1::ListJobsRequest>(text));
    EXPECT_TRUE(out.ok()) << out.status();
    std::vector<std::string> ids;
    if (out.ok()) {
      for (const auto& job : out->jobs()) ids.push_back(job.job_id());
    }
    return ids;
  }
  absl::Time Now() { return h_.clock().Now(); }

  EngineHarness h_{GetParam()};  // or with the options given to the constructor
};

// INSTANTIATE_TEST_SUITE_P(Stores, MyEngineTest, CKPT_ENGINE_STORE_KINDS);
#define CKPT_ENGINE_STORE_KINDS \
  ::testing::ValuesIn(::ckpt::testutil::AllStoreKinds()), ::ckpt::testutil::StoreKindTestName

}  // namespace testutil
}  // namespace ckpt

#endif  // CKPT_TESTS_ENGINE_ENGINE_TEST_BASE_H_
