// The fixture engine tests share: a real engine on a real store (EngineHarness) and
// one-line helpers for the calls every test makes.
#ifndef CKPT_TESTS_ENGINE_ENGINE_TEST_BASE_H_
#define CKPT_TESTS_ENGINE_ENGINE_TEST_BASE_H_

#include <string>

#include "gtest/gtest.h"
#include "tests/testing/engine_harness.h"
#include "tests/testing/status_matchers.h"

namespace ckpt {
namespace testutil {

class EngineTest : public ::testing::Test {
 protected:
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

  EngineHarness h_;
};

}  // namespace testutil
}  // namespace ckpt

#endif  // CKPT_TESTS_ENGINE_ENGINE_TEST_BASE_H_
