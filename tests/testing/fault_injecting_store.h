// A Store that passes everything to another store, except when a test tells it to
// fail writes or point reads, as a failing disk or an unreachable database would. Works
// over either implementation, so engine tests inject the same faults into both.
#ifndef CKPT_TESTS_TESTING_FAULT_INJECTING_STORE_H_
#define CKPT_TESTS_TESTING_FAULT_INJECTING_STORE_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "service/store/store.h"

namespace ckpt {
namespace testutil {

// What to fail. Thread-safe: flip the flags from the test thread while the engine's
// writer and readers run.
struct StoreFaults {
  // Write returns RESOURCE_EXHAUSTED ("injected: no space left on device").
  std::atomic<bool> fail_writes{false};

  // While held, Write waits (a stalled disk) until ReleaseWrites().
  void HoldWrites() {
    absl::MutexLock lock(&gate_mu);
    held = true;
  }
  void ReleaseWrites() {
    absl::MutexLock lock(&gate_mu);
    held = false;
  }
  // Blocks until a Write is waiting at the gate.
  void AwaitHeldWrite() {
    absl::MutexLock lock(&gate_mu);
    gate_mu.Await(absl::Condition(&waiting));
  }
  void PassGate() {
    absl::MutexLock lock(&gate_mu);
    waiting = held;
    auto open = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(gate_mu) { return !held; };
    gate_mu.Await(absl::Condition(&open));
    waiting = false;
  }
  absl::Mutex gate_mu;
  bool held ABSL_GUARDED_BY(gate_mu) = false;
  bool waiting ABSL_GUARDED_BY(gate_mu) = false;

  // Get returns INTERNAL ("injected: read error").
  std::atomic<bool> fail_reads{false};

  // Not a fault: the batches Write passed on (each group commit is one), for tests that
  // count syncs.
  std::atomic<uint64_t> writes{0};
};

// Thread-safe, as the wrapped store is.
class FaultInjectingStore : public Store {
 public:
  explicit FaultInjectingStore(std::unique_ptr<Store> store) : store_(std::move(store)) {}

  StoreFaults& faults() { return faults_; }
  Store& wrapped() { return *store_; }

  std::unique_ptr<WriteBatch> NewBatch() const override { return store_->NewBatch(); }
  absl::Status Write(WriteBatch* batch) override {
    faults_.PassGate();
    if (faults_.fail_writes)
      return absl::ResourceExhaustedError("injected: no space left on device");
    ++faults_.writes;
    return store_->Write(batch);
  }
  absl::StatusOr<std::unique_ptr<ReadView>> NewReadView() const override {
    return store_->NewReadView();
  }
  uint32_t schema_version() const override { return store_->schema_version(); }
  absl::StatusOr<StoreCopy> Checkpoint(const std::string& dir) override {
    return store_->Checkpoint(dir);
  }
  absl::StatusOr<std::optional<std::string>> Get(Cf cf, absl::string_view key) const override {
    if (faults_.fail_reads) return absl::InternalError("injected: read error");
    return store_->Get(cf, key);
  }
  absl::StatusOr<std::unique_ptr<StoreValue>> GetPinned(Cf cf,
                                                        absl::string_view key) const override {
    if (faults_.fail_reads) return absl::InternalError("injected: read error");
    return store_->GetPinned(cf, key);
  }
  std::unique_ptr<StoreIterator> Scan(Cf cf, absl::string_view prefix,
                                      absl::string_view start) const override {
    return store_->Scan(cf, prefix, start);
  }
  absl::StatusOr<std::optional<std::pair<std::string, std::string>>> Floor(
      Cf cf, absl::string_view prefix, absl::string_view key) const override {
    return store_->Floor(cf, prefix, key);
  }
  bool FloorIsCheap() const override { return store_->FloorIsCheap(); }

 private:
  const std::unique_ptr<Store> store_;
  StoreFaults faults_;
};

}  // namespace testutil
}  // namespace ckpt

#endif  // CKPT_TESTS_TESTING_FAULT_INJECTING_STORE_H_
