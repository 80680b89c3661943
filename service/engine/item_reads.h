// Reads of one step's items at one consistent view of the store: an item can be in
// several places (its record, the untouched index ranges, a lease grant, the pending
// and failed sets; STORAGE_FORMAT.md), and these merge them. Internal to the engine:
// Engine::GetItem and Engine::ListItems resolve the job and step, then call these.
#ifndef CKPT_SERVICE_ENGINE_ITEM_READS_H_
#define CKPT_SERVICE_ENGINE_ITEM_READS_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "ckpt/storage/v1/records.pb.h"
#include "ckpt/v1/checkpoint.pb.h"
#include "service/engine/item_runs.h"
#include "service/store/store.h"

namespace ckpt {

// Fills `item` (state, attempts, result, error, lease, cursor; with `keys_only` not the
// last three) for the encoded item key `key` of `step`, finding item records with
// `records` (made for this view, job and step: reading a run's items one after another
// reads the run once). NOT_FOUND if it is not registered there; DATA_LOSS if a record is
// corrupt.
absl::Status ReadStepItem(const StoreReader& view, absl::string_view job, absl::string_view step,
                          const std::string& key, bool keys_only, ItemRecordFinder& records,
                          v1::Item* item);

// One page of `r` over `step` (already resolved), in key order, O(page) records read
// (plus the step's grant records for leased items); the page also ends before its
// items pass `max_page_bytes` (it holds at least one). INVALID_ARGUMENT for a page
// token this server did not issue.
absl::Status ListStepItems(const StoreReader& view, const v1::ListItemsRequest& r,
                           absl::string_view step, size_t max_page_bytes,
                           v1::ListItemsResponse* out);

// Items in a ListItems page whose request asks for no limit.
inline constexpr uint32_t kDefaultListItems = 100;

// A page of ListItems built in place in the answer, which lives on its call's arena: an
// item made elsewhere would be copied into it (~5 000 instructions an item with its
// result, and as many to destroy it). Not thread-safe.
class ItemPage {
 public:
  // Adds to `out`, up to `max_bytes` of items (at least one).
  ItemPage(v1::ListItemsResponse* out, size_t max_bytes) : out_(out), max_bytes_(max_bytes) {}

  // A cleared item at the end of the page to fill in, then Keep or Drop.
  v1::Item* Add() { return out_->add_items(); }
  // Takes the item Add gave out back out of the page. On an arena what it held stays
  // allocated until the call ends: for the rare item found unfit once built, not a
  // filter (ListStepItems passes over records before building).
  void Drop() { out_->mutable_items()->RemoveLast(); }
  // Keeps the item Add gave out if the page has room for it; else drops it and returns
  // false: the page is full.
  bool Keep();

 private:
  v1::ListItemsResponse* const out_;
  const size_t max_bytes_;
  size_t bytes_ = 0;  // of the items kept
};

// Leases per grant record (STORAGE_FORMAT.md, 'G'). The cap bounds what ending one lease
// rewrites (the record's other live leases) when a large grant is completed an item at
// a time.
inline constexpr size_t kMaxLeasesPerGrant = 128;

// Writes the grant record's runs of leases (schema 5) out as Lease entries, in grant
// (token) order with its own, and clears them: the form readers and the engine's load
// take. DATA_LOSS naming the job for a run that is empty, wraps around, or takes the
// record past kMaxLeasesPerGrant.
absl::Status ExpandGrantRuns(absl::string_view job, storage::v1::LeaseGrantRecord* grant);

// The job's `n` largest error groups, most items first.
absl::Status ListErrorGroups(const StoreReader& view, absl::string_view job, uint32_t n,
                             v1::ListItemsResponse* out);

}  // namespace ckpt

#endif  // CKPT_SERVICE_ENGINE_ITEM_READS_H_
