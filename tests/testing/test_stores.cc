#include "tests/testing/test_stores.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "service/store/postgres_store.h"
#include "service/store/rocksdb_store.h"
#include "tests/testing/temp_dir.h"

namespace ckpt {
namespace testutil {

std::vector<StoreKind> AllStoreKinds() { return {StoreKind::kRocksDb, StoreKind::kPostgres}; }

std::string StoreKindName(StoreKind kind) {
  return kind == StoreKind::kRocksDb ? "RocksDb" : "Postgres";
}

PostgresCluster& TestPostgres() {
  // Destroyed at exit, which stops postgres and removes its directory.
  static std::unique_ptr<PostgresCluster> cluster = [] {
    absl::StatusOr<std::unique_ptr<PostgresCluster>> started = PostgresCluster::Start();
    if (!started.ok()) {
      std::fprintf(stderr, "cannot start PostgreSQL for the tests: %s\n",
                   std::string(started.status().message()).c_str());
      std::abort();
    }
    return std::move(*started);
  }();
  return *cluster;
}

StoreLocation StoreLocation::New(StoreKind kind) {
  if (kind == StoreKind::kRocksDb) return StoreLocation(kind, NewTempDir("store"));
  static std::atomic<int> next{0};
  const std::string schema = absl::StrCat("t", ++next);
  PostgresCluster& cluster = TestPostgres();
  if (absl::Status s = cluster.Sql(absl::StrCat("CREATE SCHEMA ", schema)); !s.ok()) {
    std::fprintf(stderr, "%s\n", std::string(s.message()).c_str());
    std::abort();
  }
  return StoreLocation(
      kind, cluster.Uri("postgres", absl::StrCat("options=-c%20search_path%3D", schema)));
}

absl::StatusOr<std::unique_ptr<Store>> StoreLocation::Open() const {
  if (kind_ == StoreKind::kRocksDb) {
    RocksDbStoreOptions options;
    options.path = address_;
    absl::StatusOr<std::unique_ptr<RocksDbStore>> store = RocksDbStore::Open(options);
    if (!store.ok()) return store.status();
    return std::unique_ptr<Store>(std::move(*store));
  }
  PostgresStoreOptions options;
  options.conninfo = address_;
  options.address = "in-process test";
  options.lease = absl::Seconds(2);
  absl::StatusOr<std::unique_ptr<PostgresStore>> store = PostgresStore::Open(options);
  if (!store.ok()) return store.status();
  return std::unique_ptr<Store>(std::move(*store));
}

}  // namespace testutil
}  // namespace ckpt
