// Point reads, floor lookups and prefix scans over PostgreSQL, for the store itself
// (a pooled connection per statement) and for a read view (its transaction's
// connection). Scans fetch pages by key (keyset pagination), never a whole prefix at
// once. Internal to service/store.
#ifndef CKPT_SERVICE_STORE_PG_READER_H_
#define CKPT_SERVICE_STORE_PG_READER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "service/store/pg_connection.h"
#include "service/store/store.h"

namespace ckpt {

// Runs one prepared statement somewhere (a pooled connection, a view's connection).
using PgRunner = std::function<absl::StatusOr<PgResult>(const pgsql::Statement&, const PgParams&)>;

// StoreReader over a runner. Thread-safe if the runner is.
class PgReader : public StoreReader {
 public:
  PgReader(int32_t shard, PgRunner run) : shard_(shard), run_(std::move(run)) {}

  absl::StatusOr<std::optional<std::string>> Get(Cf cf, absl::string_view key) const override;
  // The iterator uses the runner for each page: it must not outlive it.
  std::unique_ptr<StoreIterator> Scan(Cf cf, absl::string_view prefix,
                                      absl::string_view start = {}) const override;
  absl::StatusOr<std::optional<std::pair<std::string, std::string>>> Floor(
      Cf cf, absl::string_view prefix, absl::string_view key) const override;

 private:
  const int32_t shard_;
  const PgRunner run_;
};

}  // namespace ckpt

#endif  // CKPT_SERVICE_STORE_PG_READER_H_
