// The completion-time index (the completions family, STORAGE_FORMAT.md): one entry per
// completed item, keyed by its step and completion time, so that the newest
// completions and "what completed after T" are O(page) reads, never a scan of items.
// Internal to the engine: the writer keeps it in step with the items, readers list it.
#ifndef CKPT_SERVICE_ENGINE_COMPLETION_INDEX_H_
#define CKPT_SERVICE_ENGINE_COMPLETION_INDEX_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "ckpt/v1/checkpoint.pb.h"
#include "service/store/store.h"

namespace ckpt {

// Adds the entry of an item completed at `micros` by `worker_id` to `batch`; with
// `run_size` > 1, the entry of a run of that many indices from `item_key` (item_runs.h).
void PutCompletion(WriteBatch& batch, absl::string_view job, absl::string_view step, int64_t micros,
                   absl::string_view item_key, absl::string_view worker_id, uint64_t run_size = 0);
// Removes it (the item, or the run, was reset); `micros` is its record's
// update_time_micros, `item_key` the key of the record (a run's first index).
void DeleteCompletion(WriteBatch& batch, absl::string_view job, absl::string_view step,
                      int64_t micros, absl::string_view item_key);

// The job's `n` newest completions over `steps`, newest first (ties: by step order,
// then key, descending). O(n + steps) reads. DATA_LOSS for a corrupt entry.
absl::StatusOr<std::vector<v1::RecentCompletion>> NewestCompletions(
    const StoreReader& reader, absl::string_view job, const std::vector<std::string>& steps,
    size_t n);

// Whether `r` asks for completion order (an order, or completed_after).
bool WantsCompletionOrder(const v1::ListItemsRequest& r);

// One page of ListItems over the completed items of `step` (resolved) in the order `r`
// asks, after `r.completed_after` if set: O(page) reads. INVALID_ARGUMENT for a page
// token this server did not issue for this order.
absl::Status ListCompletedItems(const StoreReader& view, const v1::ListItemsRequest& r,
                                absl::string_view step, size_t max_page_bytes,
                                v1::ListItemsResponse* out);

}  // namespace ckpt

#endif  // CKPT_SERVICE_ENGINE_COMPLETION_INDEX_H_
