#include "service/engine/interval_set.h"

#include <algorithm>
#include <cstdint>
#include <iterator>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ckpt {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::Pair;
using Intervals = std::map<uint64_t, uint64_t>;
using Pieces = std::vector<std::pair<uint64_t, uint64_t>>;

constexpr uint64_t kTrillion = 1'000'000'000'000;
constexpr uint64_t kTop = uint64_t{1} << 63;  // every value is below this

// Stands in for the RocksDB keys (key = begin, value = end): Flush() applies
// TakeChanges() the way the caller persists them, and checks no change is a no-op.
class Disk {
 public:
  void Flush(IntervalSet* set) {
    for (const auto& [begin, end] : set->TakeChanges()) {
      auto it = map_.find(begin);
      if (end.has_value()) {
        EXPECT_TRUE(it == map_.end() || it->second != *end) << "no-op write of " << begin;
        map_[begin] = *end;
      } else {
        EXPECT_TRUE(it != map_.end()) << "delete of absent key " << begin;
        map_.erase(begin);
      }
    }
  }
  const Intervals& map() const { return map_; }

 private:
  Intervals map_;
};

// Disjoint, non-adjacent, non-empty intervals whose lengths add up to size().
void ExpectWellFormed(const IntervalSet& set) {
  uint64_t total = 0;
  std::optional<uint64_t> prev_end;
  for (const auto& [begin, end] : set.intervals()) {
    EXPECT_LT(begin, end);
    if (prev_end.has_value()) {
      EXPECT_LT(*prev_end, begin) << "overlap or adjacency";
    }
    prev_end = end;
    total += end - begin;
  }
  EXPECT_EQ(set.size(), total);
  EXPECT_EQ(set.empty(), total == 0);
  EXPECT_EQ(set.interval_count(), set.intervals().size());
}

TEST(IntervalSetTest, EmptySet) {
  IntervalSet set;
  EXPECT_TRUE(set.empty());
  EXPECT_EQ(set.size(), 0u);
  EXPECT_EQ(set.interval_count(), 0u);
  EXPECT_FALSE(set.Contains(0));
  EXPECT_EQ(set.CountIn(0, kTop), 0u);
  EXPECT_EQ(set.NextAtOrAfter(0), std::nullopt);
  EXPECT_THAT(set.TakeChanges(), IsEmpty());
}

TEST(IntervalSetTest, AddMergesAdjacentIntervals) {
  IntervalSet set;
  EXPECT_EQ(set.Add(0, 10), 10u);
  EXPECT_EQ(set.Add(20, 30), 10u);
  EXPECT_EQ(set.interval_count(), 2u);
  EXPECT_EQ(set.Add(10, 20), 10u);  // touches both neighbours
  EXPECT_THAT(set.intervals(), ElementsAre(Pair(0, 30)));
  EXPECT_EQ(set.Add(30, 31), 1u);  // touches from the right
  EXPECT_THAT(set.intervals(), ElementsAre(Pair(0, 31)));
  ExpectWellFormed(set);
}

TEST(IntervalSetTest, AddCountsOnlyNewValues) {
  IntervalSet set;
  set.Add(0, 10);
  EXPECT_EQ(set.Add(5, 15), 5u);
  EXPECT_EQ(set.Add(2, 8), 0u);
  set.Add(20, 25);
  set.Add(30, 35);
  // Swallows three intervals and fills the gaps [15, 20) and [25, 30).
  EXPECT_EQ(set.Add(0, 40), 15u);
  EXPECT_THAT(set.intervals(), ElementsAre(Pair(0, 40)));
  EXPECT_EQ(set.size(), 40u);
}

TEST(IntervalSetTest, RemoveInTheMiddleSplits) {
  IntervalSet set;
  Disk disk;
  set.Add(0, 100);
  disk.Flush(&set);
  EXPECT_EQ(set.Remove(40, 60), 20u);
  EXPECT_THAT(set.intervals(), ElementsAre(Pair(0, 40), Pair(60, 100)));
  EXPECT_EQ(set.size(), 80u);
  EXPECT_THAT(set.TakeChanges(), ElementsAre(Pair(0, 40), Pair(60, 100)));
}

TEST(IntervalSetTest, RemoveAcrossSeveralIntervals) {
  IntervalSet set;
  set.Add(0, 10);
  set.Add(20, 30);
  set.Add(40, 50);
  set.Add(60, 70);
  EXPECT_EQ(set.Remove(5, 45), 5u + 10u + 5u);
  EXPECT_THAT(set.intervals(), ElementsAre(Pair(0, 5), Pair(45, 50), Pair(60, 70)));
  EXPECT_EQ(set.Remove(0, 100), 20u);
  EXPECT_TRUE(set.empty());
}

TEST(IntervalSetTest, RemoveOfAbsentValuesReturnsZero) {
  IntervalSet set;
  EXPECT_EQ(set.Remove(0, 10), 0u);
  set.Add(10, 20);
  set.TakeChanges();
  EXPECT_EQ(set.Remove(0, 10), 0u);   // ends where the interval begins
  EXPECT_EQ(set.Remove(20, 30), 0u);  // begins where the interval ends
  EXPECT_EQ(set.Remove(15, 15), 0u);  // empty range
  EXPECT_EQ(set.Remove(18, 12), 0u);  // inverted range
  EXPECT_THAT(set.intervals(), ElementsAre(Pair(10, 20)));
  EXPECT_THAT(set.TakeChanges(), IsEmpty());
}

TEST(IntervalSetTest, TakeFrontAcrossSeveralIntervals) {
  IntervalSet set;
  set.Add(0, 3);
  set.Add(10, 15);
  set.Add(20, 30);
  Pieces taken;
  EXPECT_EQ(set.TakeFront(7, &taken), 7u);
  EXPECT_THAT(taken, ElementsAre(Pair(0, 3), Pair(10, 14)));
  EXPECT_THAT(set.intervals(), ElementsAre(Pair(14, 15), Pair(20, 30)));
  EXPECT_EQ(set.size(), 11u);

  taken.clear();
  EXPECT_EQ(set.TakeFront(0, &taken), 0u);
  EXPECT_THAT(taken, IsEmpty());
  EXPECT_EQ(set.TakeFront(100, &taken), 11u);
  EXPECT_THAT(taken, ElementsAre(Pair(14, 15), Pair(20, 30)));
  EXPECT_TRUE(set.empty());
  EXPECT_EQ(set.TakeFront(5, &taken), 0u);
  EXPECT_EQ(taken.size(), 2u);
}

TEST(IntervalSetTest, HugeRangesStayOneInterval) {
  IntervalSet set;
  EXPECT_EQ(set.Add(0, kTrillion), kTrillion);
  EXPECT_EQ(set.Add(5, kTrillion + 5), 5u);
  EXPECT_THAT(set.intervals(), ElementsAre(Pair(0, kTrillion + 5)));
  EXPECT_EQ(set.Remove(1'000'000, 2'000'000), 1'000'000u);
  EXPECT_EQ(set.interval_count(), 2u);
  EXPECT_EQ(set.CountIn(0, kTrillion), kTrillion - 1'000'000);
  EXPECT_EQ(set.NextAtOrAfter(1'500'000), 2'000'000u);
  EXPECT_EQ(set.Add(1'000'000, 2'000'000), 1'000'000u);
  EXPECT_THAT(set.intervals(), ElementsAre(Pair(0, kTrillion + 5)));

  Pieces taken;
  EXPECT_EQ(set.TakeFront(kTrillion / 2, &taken), kTrillion / 2);
  EXPECT_THAT(taken, ElementsAre(Pair(0, kTrillion / 2)));
  EXPECT_THAT(set.intervals(), ElementsAre(Pair(kTrillion / 2, kTrillion + 5)));
  EXPECT_EQ(set.size(), kTrillion / 2 + 5);
}

TEST(IntervalSetTest, ValuesUpToTheTop) {
  IntervalSet set;
  EXPECT_EQ(set.Add(kTop - 10, kTop), 10u);
  EXPECT_EQ(set.Add(0, kTop - 10), kTop - 10);
  EXPECT_THAT(set.intervals(), ElementsAre(Pair(0, kTop)));
  EXPECT_TRUE(set.Contains(kTop - 1));
  EXPECT_EQ(set.size(), kTop);
  EXPECT_EQ(set.Remove(kTop - 1, kTop), 1u);
  EXPECT_FALSE(set.Contains(kTop - 1));
  EXPECT_EQ(set.NextAtOrAfter(kTop - 1), std::nullopt);
}

TEST(IntervalSetTest, ContainsAndNextAtOrAfterAtEdges) {
  IntervalSet set;
  set.Add(10, 20);
  set.Add(30, 40);
  EXPECT_FALSE(set.Contains(9));
  EXPECT_TRUE(set.Contains(10));
  EXPECT_TRUE(set.Contains(19));
  EXPECT_FALSE(set.Contains(20));
  EXPECT_EQ(set.NextAtOrAfter(0), 10u);
  EXPECT_EQ(set.NextAtOrAfter(15), 15u);
  EXPECT_EQ(set.NextAtOrAfter(20), 30u);
  EXPECT_EQ(set.NextAtOrAfter(39), 39u);
  EXPECT_EQ(set.NextAtOrAfter(40), std::nullopt);
}

TEST(IntervalSetTest, CountInPartialOverlaps) {
  IntervalSet set;
  set.Add(10, 20);
  set.Add(30, 40);
  EXPECT_EQ(set.CountIn(0, 10), 0u);
  EXPECT_EQ(set.CountIn(15, 35), 10u);
  EXPECT_EQ(set.CountIn(12, 14), 2u);
  EXPECT_EQ(set.CountIn(0, 100), 20u);
  EXPECT_EQ(set.CountIn(20, 30), 0u);
  EXPECT_EQ(set.CountIn(35, 35), 0u);
  EXPECT_EQ(set.CountIn(35, 15), 0u);
}

TEST(IntervalSetTest, LoadRecordsNoChange) {
  IntervalSet set;
  set.Load(0, 10);
  set.Load(20, 30);
  EXPECT_EQ(set.size(), 20u);
  EXPECT_THAT(set.TakeChanges(), IsEmpty());
  EXPECT_EQ(set.Add(10, 20), 10u);
  EXPECT_THAT(set.TakeChanges(), ElementsAre(Pair(0, 30), Pair(20, std::nullopt)));
}

TEST(IntervalSetTest, TakeChangesReportsEachChangedBeginOnce) {
  IntervalSet set;
  set.Add(0, 10);
  set.Add(20, 30);
  EXPECT_THAT(set.TakeChanges(), ElementsAre(Pair(0, 10), Pair(20, 30)));
  EXPECT_THAT(set.TakeChanges(), IsEmpty());
  set.Add(10, 15);  // rewrites 0
  set.Add(15, 20);  // rewrites 0 again and swallows 20
  set.Add(50, 60);  // new
  EXPECT_THAT(set.TakeChanges(), ElementsAre(Pair(0, 30), Pair(20, std::nullopt), Pair(50, 60)));
}

TEST(IntervalSetTest, ChangeUndoneBeforeFlushIsNotReported) {
  IntervalSet set;
  set.Add(0, 100);
  set.TakeChanges();
  set.Remove(40, 60);
  set.Add(40, 60);
  set.Add(200, 300);
  set.Remove(200, 300);
  set.Add(10, 20);  // already present
  EXPECT_THAT(set.TakeChanges(), IsEmpty());
}

TEST(IntervalSetTest, ClearMarksEveryBeginRemoved) {
  IntervalSet set;
  set.Load(0, 10);
  set.Load(20, 30);
  set.Clear();
  EXPECT_TRUE(set.empty());
  EXPECT_EQ(set.interval_count(), 0u);
  EXPECT_THAT(set.TakeChanges(), ElementsAre(Pair(0, std::nullopt), Pair(20, std::nullopt)));
}

TEST(IntervalSetTest, DiscardChangesThenReloadFromDisk) {
  IntervalSet set;
  Disk disk;
  set.Add(0, 100);
  disk.Flush(&set);
  set.Remove(10, 20);
  set.DiscardChanges();  // the write failed: drop the record, reload from disk
  EXPECT_THAT(set.TakeChanges(), IsEmpty());
  set = IntervalSet();
  for (const auto& [begin, end] : disk.map()) set.Load(begin, end);
  EXPECT_EQ(set.intervals(), disk.map());
  EXPECT_EQ(set.size(), 100u);
}

// --- Randomized comparison against a std::set model. ---

constexpr uint64_t kDomain = 200;  // small, so ranges overlap and touch often

uint64_t ModelCountIn(const std::set<uint64_t>& model, uint64_t begin, uint64_t end) {
  if (begin >= end) return 0;
  return std::distance(model.lower_bound(begin), model.lower_bound(end));
}

std::optional<uint64_t> ModelNext(const std::set<uint64_t>& model, uint64_t from) {
  auto it = model.lower_bound(from);
  if (it == model.end()) return std::nullopt;
  return *it;
}

std::set<uint64_t> Expand(const Intervals& intervals) {
  std::set<uint64_t> values;
  for (const auto& [begin, end] : intervals) {
    for (uint64_t v = begin; v < end; ++v) values.insert(v);
  }
  return values;
}

void ExpectMatchesModel(const IntervalSet& set, const std::set<uint64_t>& model,
                        std::mt19937_64& rng) {
  ExpectWellFormed(set);
  EXPECT_EQ(set.size(), model.size());
  EXPECT_EQ(Expand(set.intervals()), model);
  for (uint64_t v = 0; v <= kDomain; ++v) {
    EXPECT_EQ(set.Contains(v), model.count(v) > 0) << v;
    EXPECT_EQ(set.NextAtOrAfter(v), ModelNext(model, v)) << v;
  }
  for (int i = 0; i < 8; ++i) {
    const uint64_t a = rng() % (kDomain + 1);
    const uint64_t b = rng() % (kDomain + 1);
    EXPECT_EQ(set.CountIn(a, b), ModelCountIn(model, a, b)) << a << ", " << b;
  }
}

// A random range in [0, kDomain], mostly short; with `allow_empty`, possibly empty or
// inverted.
std::pair<uint64_t, uint64_t> RandomRange(std::mt19937_64& rng, bool allow_empty) {
  if (allow_empty && rng() % 10 == 0) {
    return {rng() % (kDomain + 1), rng() % (kDomain + 1)};
  }
  const uint64_t begin = rng() % kDomain;
  const uint64_t end = std::min(kDomain, begin + 1 + rng() % 40);
  return {begin, end};
}

// Applies one random Add, Remove or TakeFront to both `set` and `model`.
void RandomMutation(IntervalSet* set, std::set<uint64_t>* model, std::mt19937_64& rng) {
  const int op = rng() % 10;
  if (op < 4) {
    const auto [begin, end] = RandomRange(rng, /*allow_empty=*/false);
    uint64_t added = 0;
    for (uint64_t v = begin; v < end; ++v) added += model->insert(v).second;
    EXPECT_EQ(set->Add(begin, end), added) << "Add " << begin << ", " << end;
  } else if (op < 7) {
    const auto [begin, end] = RandomRange(rng, /*allow_empty=*/true);
    uint64_t removed = 0;
    for (uint64_t v = begin; v < end; ++v) removed += model->erase(v);
    EXPECT_EQ(set->Remove(begin, end), removed) << "Remove " << begin << ", " << end;
  } else {
    const uint64_t n = rng() % 30;
    Pieces taken;
    const uint64_t count = set->TakeFront(n, &taken);
    std::set<uint64_t> expected_taken;
    while (expected_taken.size() < n && !model->empty()) {
      expected_taken.insert(*model->begin());
      model->erase(model->begin());
    }
    EXPECT_EQ(count, expected_taken.size()) << "TakeFront " << n;
    Intervals taken_map(taken.begin(), taken.end());
    EXPECT_EQ(taken_map.size(), taken.size());
    EXPECT_EQ(Expand(taken_map), expected_taken) << "TakeFront " << n;
  }
}

TEST(IntervalSetTest, RandomOpsMatchSetModel) {
  for (uint64_t seed : {1, 2, 3, 42}) {
    SCOPED_TRACE(::testing::Message() << "seed " << seed);
    std::mt19937_64 rng(seed);
    IntervalSet set;
    std::set<uint64_t> model;
    Disk disk;
    for (int step = 0; step < 3000 && !HasFailure(); ++step) {
      SCOPED_TRACE(::testing::Message() << "step " << step);
      const int event = rng() % 100;
      if (event == 0) {
        set.Clear();
        model.clear();
      } else if (event == 1) {
        // A failed write: drop the changes and rebuild everything from disk.
        set.DiscardChanges();
        set = IntervalSet();
        for (const auto& [begin, end] : disk.map()) set.Load(begin, end);
        model = Expand(disk.map());
      } else {
        RandomMutation(&set, &model, rng);
      }
      ExpectMatchesModel(set, model, rng);
      // Flush only sometimes, so one diff spans several operations.
      if (rng() % 3 == 0) {
        disk.Flush(&set);
        EXPECT_EQ(disk.map(), set.intervals());
      }
    }
    disk.Flush(&set);
    EXPECT_EQ(disk.map(), set.intervals());
  }
}

}  // namespace
}  // namespace ckpt
