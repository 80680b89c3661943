#include "tests/testing/engine_harness.h"

#include <cstdlib>

#include "service/store/rocksdb_store.h"
#include "tests/testing/temp_dir.h"

namespace ckpt {
namespace testutil {

EngineHarness::EngineHarness() : dir_(NewTempDir("engine")) { Open(); }

EngineHarness::~EngineHarness() {
  engine_.reset();
  store_.reset();
}

void EngineHarness::Open() {
  RocksDbStoreOptions store_options;
  store_options.path = dir_;
  auto store = RocksDbStore::Open(store_options);
  if (!store.ok()) std::abort();
  store_ = std::make_unique<FaultInjectingStore>(std::move(*store));
  EngineOptions options;
  options.clock = &clock_;
  auto engine = Engine::Open(store_.get(), options);
  if (!engine.ok()) std::abort();
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

}  // namespace testutil
}  // namespace ckpt
