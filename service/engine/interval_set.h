// A set of uint64 values kept as disjoint, non-adjacent half-open intervals, so huge
// index ranges ("indices [0, 10^8) are registered") cost O(1) space each.
//
// It also records which interval starts changed since the last TakeChanges(), so the
// caller persists exactly the changed intervals (one key per interval: key = begin,
// value = end): a begin that is no longer a start is deleted, a present one (re)written.
//
// All values are < 2^63 (callers guarantee it), so `end` never overflows.
#ifndef CKPT_SERVICE_ENGINE_INTERVAL_SET_H_
#define CKPT_SERVICE_ENGINE_INTERVAL_SET_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <utility>
#include <vector>

namespace ckpt {

// Not thread-safe. Copyable.
class IntervalSet {
 public:
  // One persisted change: a begin and its current end, or nullopt if that begin is no
  // longer an interval start (delete its key).
  using Change = std::pair<uint64_t, std::optional<uint64_t>>;

  IntervalSet() = default;

  // Adds [begin, end), merging with overlapping and adjacent intervals. Returns how many
  // values were not in the set before.
  // REQUIRES: begin < end.
  uint64_t Add(uint64_t begin, uint64_t end);

  // Removes [begin, end), splitting an interval that straddles either edge. Returns how
  // many values were removed; 0 if none were present or begin >= end.
  uint64_t Remove(uint64_t begin, uint64_t end);

  bool Contains(uint64_t value) const;

  // How many values of [begin, end) are in the set; 0 if begin >= end. O(log n + k) for
  // k intervals overlapping the range.
  uint64_t CountIn(uint64_t begin, uint64_t end) const;

  // Values in the set, kept as a running total: O(1).
  uint64_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  size_t interval_count() const { return intervals_.size(); }

  // Removes up to `n` of the smallest values, appending the taken [begin, end) pieces to
  // *taken in order. Returns how many values were taken.
  // REQUIRES: taken != nullptr.
  uint64_t TakeFront(uint64_t n, std::vector<std::pair<uint64_t, uint64_t>>* taken);

  // The smallest value >= `from` in the set, or nullopt if there is none.
  std::optional<uint64_t> NextAtOrAfter(uint64_t from) const;

  // The intervals in order, begin -> end (for listing and tests).
  const std::map<uint64_t, uint64_t>& intervals() const { return intervals_; }

  // Adds an interval read back from disk without recording a change.
  // REQUIRES: begin < end; [begin, end) is disjoint from and not adjacent to every
  // existing interval.
  void Load(uint64_t begin, uint64_t end);

  // The begins whose interval changed since the last TakeChanges() (or DiscardChanges()),
  // in order. Applying them to the map as of that call reproduces intervals(); a begin
  // that was changed and then changed back is not reported. Clears the record.
  std::vector<Change> TakeChanges();

  // Drops the change record without returning it: the current intervals become the
  // baseline. After a failed write the caller reloads from disk instead.
  void DiscardChanges() { flushed_.clear(); }

  // Empties the set, recording every removed begin as changed.
  void Clear();

 private:
  // Records `begin`'s end as of the last flush, if this is the first change to it since.
  // Call before modifying, inserting or erasing the interval starting at `begin`.
  void Touch(uint64_t begin);

  std::map<uint64_t, uint64_t> intervals_;  // begin -> end; disjoint, non-adjacent
  uint64_t size_ = 0;                       // sum of interval lengths
  // For every begin touched since the last flush: its end at that flush, or nullopt if
  // it was not an interval start then.
  std::map<uint64_t, std::optional<uint64_t>> flushed_;
};

}  // namespace ckpt

#endif  // CKPT_SERVICE_ENGINE_INTERVAL_SET_H_
