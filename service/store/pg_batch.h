// The PostgreSQL store's WriteBatch, and how its ordered changes become a few set-based
// statements. Internal to service/store.
#ifndef CKPT_SERVICE_STORE_PG_BATCH_H_
#define CKPT_SERVICE_STORE_PG_BATCH_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "service/store/pg_connection.h"
#include "service/store/store.h"

namespace ckpt {

// Records the changes in order; PostgresStore::Write turns them into statements. Not
// thread-safe.
class PgWriteBatch : public WriteBatch {
 public:
  enum class Kind { kPut, kDelete, kDeleteRange };
  struct Change {
    Kind kind;
    Cf cf;
    std::string key;    // kDeleteRange: the range's begin
    std::string value;  // kPut: the value; kDeleteRange: the end (empty: no end)
  };

  explicit PgWriteBatch(const void* store) : store_(store) {}

  void Put(Cf cf, absl::string_view key, absl::string_view value) override;
  void Delete(Cf cf, absl::string_view key) override;
  void DeleteRange(Cf cf, absl::string_view begin, absl::string_view end) override;
  size_t Count() const override { return changes_.size(); }
  size_t ByteSize() const override { return bytes_; }

  // The store that made the batch (Write checks it is its own).
  const void* store() const { return store_; }
  const std::vector<Change>& changes() const { return changes_; }

 private:
  const void* const store_;
  std::vector<Change> changes_;
  size_t bytes_ = 0;
};

// The statements that apply `batch` to `shard`, after the owner check: the ranges one
// statement each, then every remaining delete in one statement and every remaining put
// in one (arrays of families, keys and values). Equivalent to applying the changes in
// order: a put or delete made after a range that covers its key is kept and applied
// after the range; one made before it is dropped; of several changes to one key, the
// last wins (so no statement touches a row twice). The steps keep views into `batch`.
std::vector<PgStep> StepsFor(const PgWriteBatch& batch, int32_t shard);

}  // namespace ckpt

#endif  // CKPT_SERVICE_STORE_PG_BATCH_H_
