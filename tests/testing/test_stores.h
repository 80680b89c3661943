// The stores that parameterised suites run against: RocksDB in a temp dir, and
// PostgreSQL in a fresh schema of one cluster per test binary (PostgresCluster, started
// at first use and stopped when the binary exits).
//
//   INSTANTIATE_TEST_SUITE_P(Stores, MyTest, ::testing::ValuesIn(testutil::AllStoreKinds()),
//                            testutil::StoreKindTestName);
#ifndef CKPT_TESTS_TESTING_TEST_STORES_H_
#define CKPT_TESTS_TESTING_TEST_STORES_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "gtest/gtest.h"
#include "service/store/store.h"
#include "tests/testing/postgres_cluster.h"

namespace ckpt {
namespace testutil {

enum class StoreKind { kRocksDb, kPostgres };

std::vector<StoreKind> AllStoreKinds();
// "RocksDb" or "Postgres".
std::string StoreKindName(StoreKind kind);
inline std::string StoreKindTestName(const ::testing::TestParamInfo<StoreKind>& info) {
  return StoreKindName(info.param);
}

// The test binary's PostgreSQL cluster, started by the first call (which must come
// from the main thread: postgres dies with the thread that started it).
PostgresCluster& TestPostgres();

// A fresh, empty place for one store. Copyable.
class StoreLocation {
 public:
  // A new temp dir (RocksDB) or a new schema of TestPostgres() (PostgreSQL).
  static StoreLocation New(StoreKind kind);

  StoreKind kind() const { return kind_; }
  // A directory, or a postgresql:// URI whose search_path is the schema: what
  // CkptdProcess::Start takes.
  const std::string& address() const { return address_; }
  // Opens the store there (again, after a close: a restart). PostgreSQL: with a 2 s
  // ownership lease.
  absl::StatusOr<std::unique_ptr<Store>> Open() const;

 private:
  StoreLocation(StoreKind kind, std::string address) : kind_(kind), address_(std::move(address)) {}
  StoreKind kind_;
  std::string address_;
};

}  // namespace testutil
}  // namespace ckpt

#endif  // CKPT_TESTS_TESTING_TEST_STORES_H_
