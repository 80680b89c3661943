#include "service/engine/interval_set.h"

#include <algorithm>
#include <cassert>
#include <iterator>

namespace ckpt {
namespace {

// The first interval of `intervals` that contains `value` or lies wholly after it; with
// `or_touching`, also one that ends exactly at `value`. intervals.end() if none.
template <typename Map>
auto FirstReaching(Map& intervals, uint64_t value, bool or_touching)
    -> decltype(intervals.begin()) {
  auto it = intervals.upper_bound(value);  // first with begin > value
  if (it != intervals.begin()) {
    auto prev = std::prev(it);
    if (prev->second > value || (or_touching && prev->second == value)) return prev;
  }
  return it;
}

// How many values [b1, e1) and [b2, e2) have in common.
uint64_t Overlap(uint64_t b1, uint64_t e1, uint64_t b2, uint64_t e2) {
  const uint64_t lo = std::max(b1, b2);
  const uint64_t hi = std::min(e1, e2);
  return hi > lo ? hi - lo : 0;
}

}  // namespace

uint64_t IntervalSet::Add(uint64_t begin, uint64_t end) {
  assert(begin < end);
  uint64_t added = end - begin;
  uint64_t merged_begin = begin;
  uint64_t merged_end = end;
  auto it = FirstReaching(intervals_, begin, /*or_touching=*/true);
  // Absorb every interval that overlaps or touches [begin, end).
  while (it != intervals_.end() && it->first <= end) {
    added -= Overlap(it->first, it->second, begin, end);
    merged_begin = std::min(merged_begin, it->first);
    merged_end = std::max(merged_end, it->second);
    Touch(it->first);
    it = intervals_.erase(it);
  }
  Touch(merged_begin);
  intervals_.emplace_hint(it, merged_begin, merged_end);
  size_ += added;
  return added;
}

uint64_t IntervalSet::Remove(uint64_t begin, uint64_t end) {
  if (begin >= end) return 0;
  uint64_t removed = 0;
  auto it = FirstReaching(intervals_, begin, /*or_touching=*/false);
  while (it != intervals_.end() && it->first < end) {
    const uint64_t b = it->first;
    const uint64_t e = it->second;
    removed += Overlap(b, e, begin, end);
    Touch(b);
    it = intervals_.erase(it);
    if (b < begin) intervals_.emplace_hint(it, b, begin);  // left remainder
    if (e > end) {                                         // right remainder; last one
      Touch(end);
      intervals_.emplace_hint(it, end, e);
      break;
    }
  }
  size_ -= removed;
  return removed;
}

bool IntervalSet::Contains(uint64_t value) const {
  auto it = FirstReaching(intervals_, value, /*or_touching=*/false);
  return it != intervals_.end() && it->first <= value;
}

uint64_t IntervalSet::CountIn(uint64_t begin, uint64_t end) const {
  uint64_t count = 0;
  if (begin >= end) return 0;
  for (auto it = FirstReaching(intervals_, begin, /*or_touching=*/false);
       it != intervals_.end() && it->first < end; ++it) {
    count += Overlap(it->first, it->second, begin, end);
  }
  return count;
}

uint64_t IntervalSet::TakeFront(uint64_t n, std::vector<std::pair<uint64_t, uint64_t>>* taken) {
  uint64_t total = 0;
  while (total < n && !intervals_.empty()) {
    auto it = intervals_.begin();
    const uint64_t b = it->first;
    const uint64_t e = it->second;
    const uint64_t take = std::min(e - b, n - total);
    taken->emplace_back(b, b + take);
    Touch(b);
    intervals_.erase(it);
    if (b + take < e) {
      Touch(b + take);
      intervals_.emplace(b + take, e);
    }
    total += take;
  }
  size_ -= total;
  return total;
}

std::optional<uint64_t> IntervalSet::NextAtOrAfter(uint64_t from) const {
  auto it = FirstReaching(intervals_, from, /*or_touching=*/false);
  if (it == intervals_.end()) return std::nullopt;
  return std::max(it->first, from);
}

void IntervalSet::Load(uint64_t begin, uint64_t end) {
  assert(begin < end);
  assert(CountIn(begin > 0 ? begin - 1 : 0, end + 1) == 0);
  intervals_.emplace(begin, end);
  size_ += end - begin;
}

std::vector<IntervalSet::Change> IntervalSet::TakeChanges() {
  std::vector<Change> changes;
  for (const auto& [begin, flushed_end] : flushed_) {
    auto it = intervals_.find(begin);
    std::optional<uint64_t> current_end;
    if (it != intervals_.end()) current_end = it->second;
    if (current_end != flushed_end) changes.emplace_back(begin, current_end);
  }
  flushed_.clear();
  return changes;
}

void IntervalSet::Clear() {
  for (const auto& [begin, end] : intervals_) Touch(begin);
  intervals_.clear();
  size_ = 0;
}

void IntervalSet::Touch(uint64_t begin) {
  if (flushed_.count(begin) > 0) return;
  auto it = intervals_.find(begin);
  flushed_.emplace(begin,
                   it != intervals_.end() ? std::optional<uint64_t>(it->second) : std::nullopt);
}

}  // namespace ckpt
