// A StoreReader that reads through to another and counts what it is asked, for tests
// that check how an answer is reached (how many seeks, how many point reads), not only
// what it is. The store underneath is real.
#ifndef CKPT_TESTS_TESTING_OBSERVED_READER_H_
#define CKPT_TESTS_TESTING_OBSERVED_READER_H_

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "service/store/store.h"

namespace ckpt {
namespace testutil {

// Not thread-safe: one test thread reads through it. `store` must outlive it.
class ObservedReader : public StoreReader {
 public:
  explicit ObservedReader(const StoreReader& store) : store_(store) {}

  absl::StatusOr<std::optional<std::string>> Get(Cf cf, absl::string_view key) const override {
    ++gets;
    auto value = store_.Get(cf, key);
    if (during_next_get) std::exchange(during_next_get, nullptr)();
    return value;
  }
  absl::StatusOr<std::unique_ptr<StoreValue>> GetPinned(Cf cf,
                                                        absl::string_view key) const override {
    ++gets;
    auto value = store_.GetPinned(cf, key);
    if (during_next_get) std::exchange(during_next_get, nullptr)();
    return value;
  }
  std::unique_ptr<StoreIterator> Scan(Cf cf, absl::string_view prefix,
                                      absl::string_view start) const override {
    ++scans;
    return store_.Scan(cf, prefix, start);
  }
  absl::StatusOr<std::optional<std::pair<std::string, std::string>>> Floor(
      Cf cf, absl::string_view prefix, absl::string_view key) const override {
    ++floors;
    return store_.Floor(cf, prefix, key);
  }
  bool FloorIsCheap() const override { return store_.FloorIsCheap(); }

  mutable int gets = 0;
  mutable int scans = 0;
  mutable int floors = 0;
  // Run once, inside the next Get, after the store answered it: to interleave another
  // thread's step deterministically.
  mutable std::function<void()> during_next_get;

 private:
  const StoreReader& store_;
};

}  // namespace testutil
}  // namespace ckpt

#endif  // CKPT_TESTS_TESTING_OBSERVED_READER_H_
