// A real engine on a real store (RocksDB in a fresh temp dir, or PostgreSQL in a fresh
// schema: test_stores.h), with a fake clock, for tests that drive the engine directly
// (no gRPC). Reopen() closes and reopens both, as a restart.
#ifndef CKPT_TESTS_TESTING_ENGINE_HARNESS_H_
#define CKPT_TESTS_TESTING_ENGINE_HARNESS_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/synchronization/notification.h"
#include "google/protobuf/text_format.h"
#include "service/common/clock.h"
#include "service/engine/engine.h"
#include "service/store/store.h"
#include "tests/testing/fault_injecting_store.h"
#include "tests/testing/test_stores.h"

namespace ckpt {
namespace testutil {

// Parses a text-format request: Parse<v1::AddItemsRequest>(R"pb(job_id: "j")pb").
// Aborts the test binary on a typo, which is what a test wants.
template <typename Proto>
Proto Parse(const std::string& text) {
  Proto proto;
  if (!google::protobuf::TextFormat::ParseFromString(text, &proto)) std::abort();
  return proto;
}

class EngineHarness {
 public:
  // An engine with `options` (its clock replaced by the harness's fake one) on a fresh
  // store of `kind`.
  explicit EngineHarness(StoreKind kind = StoreKind::kRocksDb, EngineOptions options = {});
  ~EngineHarness();

  // Closes the engine and store and opens them again at the same location.
  void Reopen();
  Engine& engine() { return *engine_; }
  // Failures to inject into the store's writes and reads (a failing disk).
  StoreFaults& faults() { return store_->faults(); }
  Store& store() { return *store_; }
  FakeClock& clock() { return clock_; }
  const StoreLocation& location() const { return location_; }

  // Runs a write (queued to the writer) and waits for its answer.
  template <typename Request, typename Response>
  absl::StatusOr<Response> Call(void (Engine::*method)(const Request&, Response*, Engine::Done),
                                const Request& request) {
    Response response;
    absl::Notification done;
    absl::Status status;
    (engine_.get()->*method)(request, &response, [&](absl::Status s) {
      status = s;
      done.Notify();
    });
    done.WaitForNotification();
    if (!status.ok()) return status;
    return response;
  }

  // Runs a read.
  template <typename Request, typename Response>
  absl::StatusOr<Response> Read(absl::Status (Engine::*method)(const Request&, Response*) const,
                                const Request& request) {
    Response response;
    absl::Status status = (engine_.get()->*method)(request, &response);
    if (!status.ok()) return status;
    return response;
  }

  // Runs a read across jobs (ListJobs, FindOutput) as a principal confined to
  // `job_id_prefix` sees it.
  template <typename Request, typename Response>
  absl::StatusOr<Response> Read(absl::Status (Engine::*method)(const Request&, Response*,
                                                               absl::string_view) const,
                                const Request& request, absl::string_view job_id_prefix) {
    Response response;
    absl::Status status = (engine_.get()->*method)(request, &response, job_id_prefix);
    if (!status.ok()) return status;
    return response;
  }

  absl::Status Expire();
  // Engine::SweepExpiredJobs, waited for.
  absl::Status SweepExpiredJobs();

 private:
  void Open();

  const StoreLocation location_;
  const EngineOptions options_;
  FakeClock clock_;
  std::unique_ptr<FaultInjectingStore> store_;
  std::unique_ptr<Engine> engine_;
};

}  // namespace testutil
}  // namespace ckpt

#endif  // CKPT_TESTS_TESTING_ENGINE_HARNESS_H_
