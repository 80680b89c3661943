#include "service/engine/completion_index.h"

#include <deque>
#include <limits>
#include <memory>
#include <optional>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "ckpt/storage/v1/records.pb.h"
#include "service/common/proto_time.h"
#include "service/common/status_macros.h"
#include "service/engine/item_reads.h"
#include "service/engine/item_runs.h"
#include "service/engine/stored_record.h"
#include "service/store/keys.h"

namespace ckpt {
namespace {

// Completion-order page tokens start with this, so they are never taken for key-order
// ones (hex digits) or the other way round.
constexpr char kTokenTag = 'c';

// One completed item: an index entry's, or one of a run entry's items.
struct Entry {
  std::string suffix;  // its key without the step prefix: BE64(micros) <item key>
  int64_t micros = 0;
  std::string item_key;
  std::string worker_id;
};

// An index entry as stored: one item, or a run of `run_size` indices from item_key.
struct StoredEntry {
  int64_t micros = 0;
  std::string item_key;
  std::string worker_id;
  uint64_t run_size = 1;
};

absl::Status ParseEntry(absl::string_view suffix, absl::string_view value, StoredEntry* out) {
  CKPT_ASSIGN_OR_RETURN(const keys::CompletionKey key, keys::ParseCompletionSuffix(suffix));
  storage::v1::CompletionRecord record;
  CKPT_RETURN_IF_ERROR(ParseStored(value, &record, "completion"));
  out->micros = key.micros;
  out->item_key = std::string(key.item_key);
  out->worker_id = record.worker_id();
  out->run_size = record.run_size() > 1 ? record.run_size() : 1;
  if (out->run_size > 1 && !keys::IsIndexKey(out->item_key)) {
    return absl::DataLossError("corrupt completion record: a run of a named item");
  }
  if (out->run_size > kMaxRunItems) {
    return absl::DataLossError(absl::StrCat("corrupt completion record: a run of ", out->run_size,
                                            " items, over ", kMaxRunItems));
  }
  return absl::OkStatus();
}

// The `offset`th item of a stored entry.
Entry ItemOf(const StoredEntry& stored, uint64_t offset) {
  Entry entry;
  entry.micros = stored.micros;
  entry.item_key =
      offset == 0 ? stored.item_key : keys::EncodeIndex(keys::IndexOf(stored.item_key) + offset);
  entry.worker_id = stored.worker_id;
  keys::AppendBigEndian64(&entry.suffix, static_cast<uint64_t>(stored.micros));
  entry.suffix += entry.item_key;
  return entry;
}

// Walks one step's entries newest first (a Floor per entry) or oldest first (a scan),
// after an entry already seen (exclusive) and above a completion time (exclusive).
class Cursor {
 public:
  Cursor(const StoreReader& reader, absl::string_view job, absl::string_view step,
         bool newest_first, absl::string_view after_suffix, std::optional<int64_t> above_micros)
      : reader_(reader),
        prefix_(keys::CompletionPrefix(job, step)),
        newest_first_(newest_first),
        above_micros_(above_micros) {
    if (newest_first_) {
      next_key_ = after_suffix.empty()
                      ? keys::CompletionsUpTo(job, step, std::numeric_limits<int64_t>::max())
                      : keys::CompletionKeyBefore(absl::StrCat(prefix_, after_suffix));
      return;
    }
    std::string start;
    if (!after_suffix.empty()) {
      start = absl::StrCat(prefix_, after_suffix);
      skip_ = start;
    } else if (above_micros_.has_value()) {
      start = keys::CompletionsUpTo(job, step, *above_micros_);
    }
    it_ = reader_.Scan(Cf::kCompletions, prefix_, start);
  }

  // The next entry, or nullopt at the end.
  absl::StatusOr<std::optional<Entry>> Next() {
    if (!started_) {
      started_ = true;
      if (!newest_first_ && !skip_.empty()) CKPT_RETURN_IF_ERROR(ResumeInRun());
    }
    if (pending_.empty()) {
      CKPT_RETURN_IF_ERROR(newest_first_ ? Older() : Newer());
    }
    if (pending_.empty()) return std::optional<Entry>();
    Entry entry = std::move(pending_.front());
    pending_.pop_front();
    return std::optional<Entry>(std::move(entry));
  }

 private:
  // Oldest first after an item of a run: the run's entry is below the token's key, so
  // the scan does not see it; its items after the token come first.
  absl::Status ResumeInRun() {
    CKPT_ASSIGN_OR_RETURN(auto found, reader_.Floor(Cf::kCompletions, prefix_, skip_));
    if (!found.has_value()) return absl::OkStatus();
    StoredEntry stored;
    CKPT_RETURN_IF_ERROR(
        ParseEntry(absl::string_view(found->first).substr(prefix_.size()), found->second, &stored));
    for (uint64_t i = 0; i < stored.run_size; ++i) {
      Entry entry = ItemOf(stored, i);
      if (absl::StrCat(prefix_, entry.suffix) > skip_) pending_.push_back(std::move(entry));
    }
    return absl::OkStatus();
  }

  // Queues the items of the next older entry that are at or below next_key_.
  absl::Status Older() {
    if (done_) return absl::OkStatus();
    CKPT_ASSIGN_OR_RETURN(auto found, reader_.Floor(Cf::kCompletions, prefix_, next_key_));
    StoredEntry stored;
    if (found.has_value()) {
      CKPT_RETURN_IF_ERROR(ParseEntry(absl::string_view(found->first).substr(prefix_.size()),
                                      found->second, &stored));
    }
    if (!found.has_value() || (above_micros_.has_value() && stored.micros <= *above_micros_)) {
      done_ = true;
      return absl::OkStatus();
    }
    for (uint64_t i = stored.run_size; i-- > 0;) {
      Entry entry = ItemOf(stored, i);
      if (absl::StrCat(prefix_, entry.suffix) <= next_key_) pending_.push_back(std::move(entry));
    }
    next_key_ = keys::CompletionKeyBefore(found->first);
    return absl::OkStatus();
  }

  // Queues the items of the next newer entry.
  absl::Status Newer() {
    if (it_->Valid() && !skip_.empty() && it_->key() == skip_) it_->Next();
    skip_.clear();
    if (!it_->Valid()) return it_->status();
    StoredEntry stored;
    CKPT_RETURN_IF_ERROR(ParseEntry(it_->suffix(), it_->value(), &stored));
    for (uint64_t i = 0; i < stored.run_size; ++i) pending_.push_back(ItemOf(stored, i));
    it_->Next();
    return absl::OkStatus();
  }

  const StoreReader& reader_;
  const std::string prefix_;
  const bool newest_first_;
  const std::optional<int64_t> above_micros_;
  std::string next_key_;  // newest first: Floor from here
  bool done_ = false;
  std::unique_ptr<StoreIterator> it_;  // oldest first
  std::string skip_;                   // oldest first: the entry the token names
  bool started_ = false;
  std::deque<Entry> pending_;  // items of the entry read last, not yet returned
};

absl::StatusOr<std::string> SuffixFromPageToken(absl::string_view token) {
  if (token.empty()) return std::string();
  const absl::Status invalid = absl::InvalidArgumentError(
      "page_token: not a token this server issued for a completion-order listing");
  if (token[0] != kTokenTag || (token.size() - 1) % 2 != 0) return invalid;
  std::string suffix = absl::HexStringToBytes(token.substr(1));
  if (!keys::ParseCompletionSuffix(suffix).ok()) return invalid;
  return suffix;
}

}  // namespace

void PutCompletion(WriteBatch& batch, absl::string_view job, absl::string_view step, int64_t micros,
                   absl::string_view item_key, absl::string_view worker_id, uint64_t run_size) {
  storage::v1::CompletionRecord record;
  record.set_worker_id(std::string(worker_id));
  if (run_size > 1) record.set_run_size(run_size);
  batch.Put(Cf::kCompletions, keys::Completion(job, step, micros, item_key),
            record.SerializeAsString());
}

void DeleteCompletion(WriteBatch& batch, absl::string_view job, absl::string_view step,
                      int64_t micros, absl::string_view item_key) {
  batch.Delete(Cf::kCompletions, keys::Completion(job, step, micros, item_key));
}

absl::StatusOr<std::vector<v1::RecentCompletion>> NewestCompletions(
    const StoreReader& reader, absl::string_view job, const std::vector<std::string>& steps,
    size_t n) {
  std::vector<std::unique_ptr<Cursor>> cursors;
  std::vector<std::optional<Entry>> heads;
  for (const std::string& step : steps) {
    cursors.push_back(
        std::make_unique<Cursor>(reader, job, step, /*newest_first=*/true, "", std::nullopt));
    CKPT_ASSIGN_OR_RETURN(heads.emplace_back(), cursors.back()->Next());
  }
  std::vector<v1::RecentCompletion> out;
  while (out.size() < n) {
    int newest = -1;
    for (size_t i = 0; i < heads.size(); ++i) {
      if (heads[i].has_value() && (newest < 0 || heads[i]->micros > heads[newest]->micros)) {
        newest = static_cast<int>(i);
      }
    }
    if (newest < 0) break;
    const Entry& entry = *heads[newest];
    v1::RecentCompletion& recent = out.emplace_back();
    CKPT_ASSIGN_OR_RETURN(*recent.mutable_key(), keys::ParseStoredItemKey(entry.item_key));
    recent.set_step(steps[newest]);
    *recent.mutable_time() = ToProtoTime(absl::FromUnixMicros(entry.micros));
    recent.set_worker_id(entry.worker_id);
    CKPT_ASSIGN_OR_RETURN(heads[newest], cursors[newest]->Next());
  }
  return out;
}

bool WantsCompletionOrder(const v1::ListItemsRequest& r) {
  return r.order() != v1::ITEM_ORDER_UNSPECIFIED || r.has_completed_after();
}

absl::Status ListCompletedItems(const StoreReader& view, const v1::ListItemsRequest& r,
                                absl::string_view step, size_t max_page_bytes,
                                v1::ListItemsResponse* out) {
  CKPT_ASSIGN_OR_RETURN(const std::string after, SuffixFromPageToken(r.page_token()));
  const uint32_t limit = r.limit() > 0 ? r.limit() : kDefaultListItems;
  std::optional<int64_t> above;
  if (r.has_completed_after()) {
    above = absl::ToUnixMicros(FromProtoTime(r.completed_after()));
  }
  Cursor cursor(view, r.job_id(), step, r.order() == v1::ITEM_ORDER_COMPLETED_NEWEST_FIRST, after,
                above);
  ItemRecordFinder records(view, r.job_id(), step);  // a run's items: one read
  std::string last;
  ItemPage page(out, max_page_bytes);
  for (;;) {
    CKPT_ASSIGN_OR_RETURN(std::optional<Entry> entry, cursor.Next());
    if (!entry.has_value()) return absl::OkStatus();  // the end: no token
    if (static_cast<uint32_t>(out->items_size()) == limit) break;
    v1::Item* item = page.Add();
    *item->mutable_key() = *keys::DecodeItemKey(entry->item_key);
    item->set_step(std::string(step));
    CKPT_RETURN_IF_ERROR(
        ReadStepItem(view, r.job_id(), step, entry->item_key, r.keys_only(), records, item));
    if (item->state() != v1::ITEM_STATE_COMPLETED) {  // cannot happen: reset deletes
      page.Drop();
      last = entry->suffix;
      continue;
    }
    if (!page.Keep()) break;  // full: `last` stays
    last = entry->suffix;
  }
  out->set_next_page_token(absl::StrCat(std::string(1, kTokenTag), absl::BytesToHexString(last)));
  return absl::OkStatus();
}

}  // namespace ckpt
