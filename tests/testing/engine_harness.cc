#include "tests/testing/engine_harness.h"

#include <cstdio>
#include <cstdlib>

namespace ckpt {
namespace testutil {

EngineHarness::EngineHarness(StoreKind kind, EngineOptions options)
    : location_(StoreLocation::New(kind)), options_(std::move(options)) {
  Open();
}

EngineHarness::~EngineHarness() {
  engine_.reset();
  store_.reset();
}

void EngineHarness::Open() {
  auto store = location_.Open();
  if (!store.ok()) {
    std::fprintf(stderr, "cannot open the store: %s\n", store.status().ToString().c_str());
    std::abort();
  }
  store_ = std::make_unique<FaultInjectingStore>(std::move(*store));
  EngineOptions options = options_;
  options.clock = &clock_;
  auto engine = Engine::Open(store_.get(), options);
  if (!engine.ok()) {
    std::fprintf(stderr, "cannot open the engine: %s\n", engine.status().ToString().c_str());
    std::abort();
  }
  engine_ = std::move(*engine);
}

void EngineHarness::Reopen() {
  engine_.reset();
  store_.reset();
  Open();
}

absl::Status EngineHarness::Expire() {
  absl::Notification done;
  absl::Status status;
  engine_->ExpireLeases([&](absl::Status s) {
    status = s;
    done.Notify();
  });
  done.WaitForNotification();
  return status;
}

absl::Status EngineHarness::SweepExpiredJobs() {
  absl::Notification done;
  absl::Status status;
  engine_->SweepExpiredJobs([&](absl::Status s) {
    status = s;
    done.Notify();
  });
  done.WaitForNotification();
  return status;
}

}  // namespace testutil
}  // namespace ckpt
