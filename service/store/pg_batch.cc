#include "service/store/pg_batch.h"

#include <utility>

#include "absl/container/flat_hash_map.h"

namespace ckpt {
namespace {

using Change = PgWriteBatch::Change;
using Kind = PgWriteBatch::Kind;

// The last put or delete of each key not superseded by a later range, in first-seen
// order, and the ranges in order.
struct NetChanges {
  std::vector<const Change*> points;  // null: superseded by a later range
  std::vector<const Change*> ranges;
};

bool InRange(const Change& range, const Change& point) {
  return point.cf == range.cf && point.key >= range.key &&
         (range.value.empty() || point.key < range.value);
}

NetChanges Reduce(const std::vector<Change>& changes) {
  NetChanges net;
  absl::flat_hash_map<std::pair<int, absl::string_view>, size_t> last;  // key -> points index
  last.reserve(changes.size());
  for (const Change& change : changes) {
    if (change.kind == Kind::kDeleteRange) {
      // Rare (whole jobs): a linear pass over what came before is fine.
      for (const Change*& point : net.points) {
        if (point != nullptr && InRange(change, *point)) point = nullptr;
      }
      net.ranges.push_back(&change);
      continue;
    }
    auto [it, inserted] =
        last.try_emplace({static_cast<int>(change.cf), change.key}, net.points.size());
    if (inserted) {
      net.points.push_back(&change);
    } else {
      net.points[it->second] = &change;  // revives a key a range had dropped, too
    }
  }
  return net;
}

PgStep RangeStep(const Change& range, int32_t shard) {
  PgParams params;
  params.Int4(shard).Int2(static_cast<int16_t>(range.cf)).Bytes(range.key);
  if (range.value.empty()) return {&pgsql::kDeleteFrom, std::move(params)};
  params.Bytes(range.value);
  return {&pgsql::kDeleteRange, std::move(params)};
}

}  // namespace

void PgWriteBatch::Put(Cf cf, absl::string_view key, absl::string_view value) {
  changes_.push_back({Kind::kPut, cf, std::string(key), std::string(value)});
  bytes_ += key.size() + value.size();
}

void PgWriteBatch::Delete(Cf cf, absl::string_view key) {
  changes_.push_back({Kind::kDelete, cf, std::string(key), std::string()});
  bytes_ += key.size();
}

void PgWriteBatch::DeleteRange(Cf cf, absl::string_view begin, absl::string_view end) {
  changes_.push_back({Kind::kDeleteRange, cf, std::string(begin), std::string(end)});
  bytes_ += begin.size() + end.size();
}

std::vector<PgStep> StepsFor(const PgWriteBatch& batch, int32_t shard) {
  const NetChanges net = Reduce(batch.changes());
  std::vector<PgStep> steps;
  for (const Change* range : net.ranges) steps.push_back(RangeStep(*range, shard));
  size_t puts = 0, deletes = 0, put_bytes = 0, value_bytes = 0, delete_bytes = 0;
  for (const Change* c : net.points) {
    if (c == nullptr) continue;
    if (c->kind == Kind::kPut) {
      ++puts;
      put_bytes += c->key.size();
      value_bytes += c->value.size();
    } else {
      ++deletes;
      delete_bytes += c->key.size();
    }
  }
  PgArray put_cfs = PgArray::Int2(puts), put_keys = PgArray::Bytea(puts, put_bytes),
          values = PgArray::Bytea(puts, value_bytes);
  PgArray delete_cfs = PgArray::Int2(deletes), delete_keys = PgArray::Bytea(deletes, delete_bytes);
  for (const Change* c : net.points) {
    if (c == nullptr) continue;
    const bool put = c->kind == Kind::kPut;
    (put ? put_cfs : delete_cfs).AddInt2(static_cast<int16_t>(c->cf));
    (put ? put_keys : delete_keys).AddBytes(c->key);
    if (put) values.AddBytes(c->value);
  }
  if (deletes > 0) {
    PgParams params;
    params.Int4(shard).Owned(std::move(delete_cfs).Finish()).Owned(std::move(delete_keys).Finish());
    steps.push_back({&pgsql::kDeleteKeys, std::move(params)});
  }
  if (puts > 0) {
    PgParams params;
    params.Int4(shard).Owned(std::move(put_cfs).Finish()).Owned(std::move(put_keys).Finish());
    params.Owned(std::move(values).Finish());
    steps.push_back({&pgsql::kUpsert, std::move(params)});
  }
  return steps;
}

}  // namespace ckpt
