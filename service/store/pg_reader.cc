#include "service/store/pg_reader.h"

#include <algorithm>

#include "service/common/status_macros.h"
#include "service/store/keys.h"
#include "service/store/pg_sql.h"

namespace ckpt {
namespace {

// Pages aim at about this many bytes: big enough to amortise a round trip, small
// enough that a scan of large values (4 MiB state blobs) holds a few at a time.
constexpr size_t kPageBytes = 1 << 20;
constexpr int kMaxPageRows = 1024;

int FirstPageRows(Cf cf) { return cf == Cf::kStates ? 4 : 64; }

// Keys of one prefix from a start key, a page at a time.
class PgIterator : public StoreIterator {
 public:
  PgIterator(const PgRunner* run, int32_t shard, Cf cf, absl::string_view prefix,
             absl::string_view start)
      : StoreIterator(prefix.size()),
        run_(run),
        shard_(shard),
        cf_(cf),
        next_(start.empty() ? prefix : start),
        end_(keys::PrefixSuccessor(prefix)),
        limit_(FirstPageRows(cf)) {
    Fetch();
  }

  bool Valid() const override { return status_.ok() && row_ < PgRows(page_.get()); }
  void Next() override {
    if (++row_ == PgRows(page_.get()) && !last_page_) Fetch();
  }
  absl::string_view key() const override { return PgBytes(page_.get(), row_, 0); }
  absl::string_view value() const override { return PgBytes(page_.get(), row_, 1); }
  absl::Status status() const override { return status_; }

 private:
  void Fetch() {
    PgParams params;
    params.Int4(shard_).Int2(static_cast<int16_t>(cf_)).Bytes(next_);
    if (!end_.empty()) params.Bytes(end_);
    params.Int8(limit_);
    absl::StatusOr<PgResult> page =
        (*run_)(end_.empty() ? pgsql::kScanOpen : pgsql::kScanBounded, params);
    row_ = 0;
    if (!page.ok()) {
      status_ = page.status();
      page_.reset();
      return;
    }
    page_ = std::move(*page);
    const int rows = PgRows(page_.get());
    last_page_ = rows < limit_;
    if (rows == 0) return;
    // The smallest key after the last one: the next page starts there.
    next_ = std::string(PgBytes(page_.get(), rows - 1, 0));
    next_.push_back('\0');
    size_t bytes = 0;
    for (int i = 0; i < rows; ++i) bytes += key_size(i) + PgBytes(page_.get(), i, 1).size();
    const size_t per_row = std::max<size_t>(1, bytes / static_cast<size_t>(rows));
    limit_ = static_cast<int>(std::clamp<size_t>(kPageBytes / per_row, 1, kMaxPageRows));
  }
  size_t key_size(int row) const { return PgBytes(page_.get(), row, 0).size(); }

  const PgRunner* const run_;
  const int32_t shard_;
  const Cf cf_;
  std::string next_;
  const std::string end_;  // empty: none
  int limit_;
  PgResult page_;
  int row_ = 0;
  bool last_page_ = false;
  absl::Status status_;
};

}  // namespace

absl::StatusOr<std::optional<std::string>> PgReader::Get(Cf cf, absl::string_view key) const {
  PgParams params;
  params.Int4(shard_).Int2(static_cast<int16_t>(cf)).Bytes(key);
  CKPT_ASSIGN_OR_RETURN(PgResult result, run_(pgsql::kGet, params));
  if (PgRows(result.get()) == 0) return std::optional<std::string>();
  return std::optional<std::string>(std::string(PgBytes(result.get(), 0, 0)));
}

std::unique_ptr<StoreIterator> PgReader::Scan(Cf cf, absl::string_view prefix,
                                              absl::string_view start) const {
  return std::make_unique<PgIterator>(&run_, shard_, cf, prefix, start);
}

absl::StatusOr<std::optional<std::pair<std::string, std::string>>> PgReader::Floor(
    Cf cf, absl::string_view prefix, absl::string_view key) const {
  PgParams params;
  params.Int4(shard_).Int2(static_cast<int16_t>(cf)).Bytes(prefix).Bytes(key);
  CKPT_ASSIGN_OR_RETURN(PgResult result, run_(pgsql::kFloor, params));
  if (PgRows(result.get()) == 0) return std::optional<std::pair<std::string, std::string>>();
  return std::make_optional(std::make_pair(std::string(PgBytes(result.get(), 0, 0)),
                                           std::string(PgBytes(result.get(), 0, 1))));
}

}  // namespace ckpt
