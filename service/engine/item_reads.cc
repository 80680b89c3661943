#include "service/engine/item_reads.h"

#include <algorithm>
#include <cstdint>
#include <functional>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "ckpt/storage/v1/records.pb.h"
#include "service/common/proto_time.h"
#include "service/common/status_macros.h"
#include "service/engine/stored_record.h"
#include "service/store/keys.h"

namespace ckpt {
namespace {

using storage::v1::ItemRecord;

// A sorted stream of encoded item keys of one kind, each optionally with a value.
class KeyStream {
 public:
  virtual ~KeyStream() = default;
  virtual bool Valid() const = 0;
  virtual const std::string& key() const = 0;
  virtual absl::string_view value() const { return {}; }
  virtual void Next() = 0;
  virtual absl::Status status() const { return absl::OkStatus(); }
  // The item record at key(), for a stream of item records. Its result may be parsed
  // into `answer`'s instead (nullptr: never), as RecordItems::Item does.
  virtual absl::Status Record(ItemRecord* out, v1::Item* /*answer*/) const {
    return ParseStored(value(), out, "item");
  }
  // The state the item record at key() gives its item, for a stream of item records.
  virtual absl::StatusOr<v1::ItemState> RecordState() const {
    ItemRecord record;
    CKPT_RETURN_IF_ERROR(ParseStored(value(), &record, "item"));
    return record.state();
  }
};

// Keys under a store prefix (the rest of the key is the item key), after `after`.
class PrefixStream : public KeyStream {
 public:
  PrefixStream(const StoreReader& store, Cf cf, const std::string& prefix, const std::string& after)
      : it_(store.Scan(cf, prefix, prefix + after)), after_(after) {
    Settle();
  }
  bool Valid() const override { return it_->Valid(); }
  const std::string& key() const override { return key_; }
  absl::string_view value() const override { return it_->value(); }
  void Next() override {
    it_->Next();
    Settle();
  }
  absl::Status status() const override { return it_->status(); }

 private:
  void Settle() {
    if (it_->Valid()) key_ = std::string(it_->suffix());
    if (it_->Valid() && !after_.empty() && key_ == after_) {
      it_->Next();
      if (it_->Valid()) key_ = std::string(it_->suffix());
    }
  }
  std::unique_ptr<StoreIterator> it_;
  const std::string after_;
  std::string key_;
};

// The step's item records in key order after `after`, a run's items one by one (its
// record read once, each item parsed when asked for).
class RecordStream : public KeyStream {
 public:
  RecordStream(const StoreReader& store, const std::string& prefix, const std::string& after)
      : it_(store.Scan(Cf::kItems, prefix, prefix + after)), prefix_(prefix) {
    if (keys::IsIndexKey(after)) {
      // `after` may be inside a run that starts below it.
      auto floor = store.Floor(Cf::kItems, prefix + keys::kIndexTag, prefix + after);
      if (!floor.ok()) {
        status_ = floor.status();
        return;
      }
      if (floor->has_value() && !Load((*floor)->first, (*floor)->second)) return;
      if (run_size_ > 0 && SpanCovers(run_key_, run_size_, after)) {
        offset_ = keys::IndexOf(after) - keys::IndexOf(run_key_);
        if (it_->Valid() && it_->key() == (*floor)->first) it_->Next();
        Next();
        return;
      }
      run_size_ = 0;
    }
    if (it_->Valid() && !after.empty() && it_->suffix() == after) it_->Next();
    Settle();
  }
  bool Valid() const override { return status_.ok() && (run_size_ > 0 || it_->Valid()); }
  const std::string& key() const override { return key_; }
  void Next() override {
    if (run_size_ > 0 && ++offset_ < run_size_) {
      key_ = keys::EncodeIndex(keys::IndexOf(run_key_) + offset_);
      return;
    }
    const bool advance = run_size_ == 0 || run_from_it_;  // else the scan is past it
    run_size_ = 0;
    if (advance) it_->Next();
    Settle();
  }
  absl::Status status() const override { return status_.ok() ? it_->status() : status_; }
  absl::Status Record(ItemRecord* out, v1::Item* answer) const override {
    if (run_size_ == 0) return ParseStored(it_->value(), out, "item");
    CKPT_ASSIGN_OR_RETURN(*out, run_.Item(offset_, answer));
    return absl::OkStatus();
  }
  absl::StatusOr<v1::ItemState> RecordState() const override {
    if (run_size_ > 0) return run_.state();
    ItemRecord record;
    CKPT_RETURN_IF_ERROR(ParseStored(it_->value(), &record, "item"));
    return record.state();
  }

 private:
  // Reads the record at the iterator: a run is located and walked; one item is parsed
  // when asked for.
  void Settle() {
    run_size_ = 0;
    if (!it_->Valid()) return;
    key_ = std::string(it_->suffix());
    if (!keys::IsIndexKey(key_)) return;
    if (!Load(it_->key(), it_->value())) return;
    offset_ = 0;
    run_from_it_ = true;
  }
  // Reads a stored index record; keeps it if it is a run. False on corruption.
  bool Load(absl::string_view full_key, absl::string_view value) {
    run_size_ = 0;
    status_ = run_.Read(std::make_unique<OwnedStoreValue>(std::string(value)));
    if (!status_.ok()) return false;
    if (run_.span() > 1) {
      run_size_ = run_.span();
      run_key_ = std::string(full_key.substr(prefix_.size()));
    }
    return true;
  }
  std::unique_ptr<StoreIterator> it_;
  const std::string prefix_;
  std::string key_;
  absl::Status status_;
  RecordItems run_;           // the run being walked
  std::string run_key_;       // its item key
  uint64_t run_size_ = 0;     // 0: not in a run
  uint64_t offset_ = 0;       // of key_ in the run
  bool run_from_it_ = false;  // the run is the scan's current record
};

// Indices of the step's untouched ranges (sched 'U'), after `after`.
class UntouchedStream : public KeyStream {
 public:
  UntouchedStream(const StoreReader& store, const std::string& prefix, const std::string& after)
      : it_(store.Scan(Cf::kSched, prefix)) {
    if (!after.empty() && !keys::IsIndexKey(after)) {
      done_ = true;  // every index sorts before every name
      return;
    }
    next_ = after.empty() ? 0 : keys::IndexOf(after) + 1;
    Settle();
  }
  bool Valid() const override { return !done_; }
  const std::string& key() const override { return key_; }
  void Next() override {
    ++next_;
    Settle();
  }
  absl::Status status() const override { return status_.ok() ? it_->status() : status_; }

 private:
  void Settle() {
    for (; it_->Valid(); it_->Next()) {
      absl::StatusOr<uint64_t> begin =
          keys::ParseBigEndian64Value(it_->suffix(), "untouched range key");
      absl::StatusOr<uint64_t> end = keys::ParseRangeEnd(it_->value());
      if (!begin.ok() || !end.ok()) {
        status_ = begin.ok() ? end.status() : begin.status();
        break;
      }
      if (next_ < *begin) next_ = *begin;
      if (next_ < *end) {
        key_ = keys::EncodeIndex(next_);
        return;
      }
    }
    done_ = true;
  }
  std::unique_ptr<StoreIterator> it_;
  uint64_t next_ = 0;
  bool done_ = false;
  absl::Status status_;
  std::string key_;
};

// Calls `fn` with each of the step's grant records ('G'). Reads every one: O(live
// leases of the step), never O(items).
absl::Status ForEachGrant(const StoreReader& store, absl::string_view job, absl::string_view step,
                          const std::function<void(const storage::v1::LeaseGrantRecord&)>& fn) {
  auto it = store.Scan(Cf::kSched, keys::SchedPrefix(job, step, keys::SchedTag::kGrant));
  storage::v1::LeaseGrantRecord grant;
  for (; it->Valid(); it->Next()) {
    CKPT_RETURN_IF_ERROR(ParseStored(it->value(), &grant, "lease grant"));
    CKPT_RETURN_IF_ERROR(ExpandGrantRuns(job, &grant));
    fn(grant);
  }
  return it->status();
}

// One granted lease as the LeaseRecord a schema-1 'L' record would hold.
std::string AsLeaseRecord(const storage::v1::LeaseGrantRecord& grant,
                          const storage::v1::LeaseGrantRecord::Lease& entry) {
  storage::v1::LeaseRecord lease;
  lease.set_worker_id(grant.worker_id());
  lease.set_token(entry.token());
  lease.set_attempts(entry.attempts());
  lease.set_cursor(entry.cursor());
  lease.set_grant_time_micros(grant.grant_time_micros());
  return lease.SerializeAsString();
}

// The granted lease of `key`, as a LeaseRecord, or nullopt.
absl::StatusOr<std::optional<std::string>> FindGrantedLease(const StoreReader& store,
                                                            absl::string_view job,
                                                            absl::string_view step,
                                                            const std::string& key) {
  std::optional<std::string> found;
  CKPT_RETURN_IF_ERROR(ForEachGrant(store, job, step, [&](const auto& grant) {
    for (const auto& entry : grant.leases()) {
      if (entry.key() == key) found = AsLeaseRecord(grant, entry);
    }
  }));
  return found;
}

// The `limit` smallest keys after `after` of the step's granted leases, each with its
// LeaseRecord: all one page of ListItems can use, in O(limit) memory.
absl::StatusOr<std::map<std::string, std::string>> GrantedLeases(const StoreReader& store,
                                                                 absl::string_view job,
                                                                 absl::string_view step,
                                                                 const std::string& after,
                                                                 size_t limit) {
  std::map<std::string, std::string> leases;
  CKPT_RETURN_IF_ERROR(ForEachGrant(store, job, step, [&](const auto& grant) {
    for (const auto& entry : grant.leases()) {
      if (!after.empty() && entry.key() <= after) continue;
      if (leases.size() >= limit && entry.key() >= leases.rbegin()->first) continue;
      leases[entry.key()] = AsLeaseRecord(grant, entry);
      if (leases.size() > limit) leases.erase(std::prev(leases.end()));
    }
  }));
  return leases;
}

// GrantedLeases as a stream.
class GrantStream : public KeyStream {
 public:
  explicit GrantStream(std::map<std::string, std::string> leases)
      : leases_(std::move(leases)), it_(leases_.begin()) {}
  bool Valid() const override { return it_ != leases_.end(); }
  const std::string& key() const override { return it_->first; }
  absl::string_view value() const override { return it_->second; }
  void Next() override { ++it_; }

 private:
  const std::map<std::string, std::string> leases_;
  std::map<std::string, std::string>::const_iterator it_;
};

std::string PageToken(const std::string& key) { return absl::BytesToHexString(key); }

absl::StatusOr<std::string> FromPageToken(absl::string_view token) {
  if (token.empty()) return std::string();
  const std::string key = absl::HexStringToBytes(token);
  if (token.size() % 2 != 0 || !keys::DecodeItemKey(key).ok()) {
    return absl::InvalidArgumentError("page_token: not a token this server issued");
  }
  return key;
}

absl::Status ParseRecord(absl::string_view bytes, ItemRecord* record) {
  return ParseStored(bytes, record, "item");
}

// Fills `item` from `record`, moving the record's result, error and cursor into it
// rather than copying them (a result can be kilobytes). Moves, not Swaps: a response
// lives on its call's arena and a record on the heap, and between arenas a move copies
// once where Swap copies three times through reflection (4 600 instructions a result).
void FillFromRecord(ItemRecord* record, bool keys_only, v1::Item* item) {
  item->set_state(record->state());
  item->set_attempts(record->attempts());
  item->set_worker_id(record->worker_id());
  *item->mutable_update_time() = ToProtoTime(absl::FromUnixMicros(record->update_time_micros()));
  if (keys_only) return;
  if (record->has_result()) *item->mutable_result() = std::move(*record->mutable_result());
  if (record->has_last_error()) {
    *item->mutable_last_error() = std::move(*record->mutable_last_error());
  }
  item->set_cursor(std::move(*record->mutable_cursor()));
}

absl::Status FillFromLease(absl::string_view bytes, bool keys_only, v1::Item* item) {
  storage::v1::LeaseRecord lease;
  CKPT_RETURN_IF_ERROR(ParseStored(bytes, &lease, "lease"));
  item->set_state(v1::ITEM_STATE_LEASED);
  item->set_attempts(lease.attempts());
  item->set_worker_id(lease.worker_id());
  item->set_lease_token(lease.token());
  if (!keys_only) item->set_cursor(lease.cursor());
  return absl::OkStatus();
}

// Sources in ListItems' merge, by what their keys mean.
enum class Source { kRecord, kUntouched, kLease, kPending, kFailed };
using Streams = std::vector<std::pair<Source, std::unique_ptr<KeyStream>>>;

// The streams whose merge lists the items of `state` in `step`, after `after`.
absl::StatusOr<Streams> OpenStreams(const StoreReader& view, absl::string_view job,
                                    absl::string_view step, v1::ItemState state,
                                    const std::string& after, uint32_t limit) {
  Streams streams;
  auto sched = [&](keys::SchedTag tag) { return keys::SchedPrefix(job, step, tag); };
  auto add = [&](Source source, Cf cf, const std::string& prefix) {
    streams.emplace_back(source, std::make_unique<PrefixStream>(view, cf, prefix, after));
  };
  auto add_untouched = [&]() {
    streams.emplace_back(Source::kUntouched, std::make_unique<UntouchedStream>(
                                                 view, sched(keys::SchedTag::kUntouched), after));
  };
  auto add_leased = [&]() -> absl::Status {
    add(Source::kLease, Cf::kSched, sched(keys::SchedTag::kLeased));
    // One more than a page: if it is left over, there is a next page.
    CKPT_ASSIGN_OR_RETURN(auto granted, GrantedLeases(view, job, step, after, limit + size_t{1}));
    streams.emplace_back(Source::kLease, std::make_unique<GrantStream>(std::move(granted)));
    return absl::OkStatus();
  };
  const std::string pending = sched(keys::SchedTag::kPending);
  switch (state) {
    case v1::ITEM_STATE_PENDING:
      add_untouched();
      add(Source::kPending, Cf::kSched, pending + keys::kPendingRetry);
      add(Source::kPending, Cf::kSched, pending + keys::kPendingFresh);
      break;
    case v1::ITEM_STATE_LEASED:
      CKPT_RETURN_IF_ERROR(add_leased());
      break;
    case v1::ITEM_STATE_FAILED:
      add(Source::kFailed, Cf::kSched, sched(keys::SchedTag::kFailed));
      break;
    default:  // COMPLETED (filtered by the caller) or any state
      streams.emplace_back(Source::kRecord, std::make_unique<RecordStream>(
                                                view, keys::StepPrefix(job, step), after));
      if (state == v1::ITEM_STATE_UNSPECIFIED) {
        add_untouched();
        CKPT_RETURN_IF_ERROR(add_leased());
      }
  }
  return streams;
}

// Builds the item `key` from the streams positioned on it, and moves them past it.
absl::Status MergeItem(const StoreReader& view, absl::string_view job, absl::string_view step,
                       const std::string& key, bool keys_only, Streams& streams, v1::Item* item) {
  CKPT_ASSIGN_OR_RETURN(*item->mutable_key(), keys::ParseStoredItemKey(key));
  item->set_step(std::string(step));
  for (auto& [source, stream] : streams) {
    if (!stream->Valid() || stream->key() != key) continue;
    if (source == Source::kRecord) {
      const bool fill = item->state() != v1::ITEM_STATE_LEASED;  // else the lease says
      ItemRecord record;
      CKPT_RETURN_IF_ERROR(stream->Record(&record, fill && !keys_only ? item : nullptr));
      if (fill) FillFromRecord(&record, keys_only, item);
    } else if (source == Source::kLease) {
      CKPT_RETURN_IF_ERROR(FillFromLease(stream->value(), keys_only, item));
    } else if (source == Source::kUntouched) {
      item->set_state(v1::ITEM_STATE_PENDING);
    } else {  // pending or failed: the details are in the item's record
      CKPT_ASSIGN_OR_RETURN(std::optional<std::string> bytes,
                            view.Get(Cf::kItems, keys::Item(job, step, key)));
      ItemRecord record;
      if (bytes.has_value()) CKPT_RETURN_IF_ERROR(ParseRecord(*bytes, &record));
      FillFromRecord(&record, keys_only, item);
      item->set_state(source == Source::kFailed ? v1::ITEM_STATE_FAILED : v1::ITEM_STATE_PENDING);
    }
    stream->Next();
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ReadStepItem(const StoreReader& view, absl::string_view job, absl::string_view step,
                          const std::string& key, bool keys_only, ItemRecordFinder& records,
                          v1::Item* item) {
  // A result not wanted is not put into the answer: on its call's arena, clearing it
  // would not free it until the call ends.
  CKPT_ASSIGN_OR_RETURN(std::optional<ItemRecord> record,
                        records.Find(key, keys_only ? nullptr : item));
  if (record.has_value()) {
    FillFromRecord(&*record, keys_only, item);
    if (record->state() == v1::ITEM_STATE_COMPLETED) return absl::OkStatus();  // never leased
  } else if (keys::IsIndexKey(key)) {
    // An untouched index: PENDING with no record. Its range starts at or before it.
    const uint64_t index = keys::IndexOf(key);
    const std::string prefix = keys::SchedPrefix(job, step, keys::SchedTag::kUntouched);
    CKPT_ASSIGN_OR_RETURN(
        auto range, view.Floor(Cf::kSched, prefix,
                               keys::RangeStart(job, step, keys::SchedTag::kUntouched, index)));
    if (range.has_value()) {
      CKPT_ASSIGN_OR_RETURN(const uint64_t end, keys::ParseRangeEnd(range->second));
      if (end > index) {
        item->set_state(v1::ITEM_STATE_PENDING);
        return absl::OkStatus();
      }
    }
  }
  // Leased, in its own 'L' record (schema 1) or in a grant; or PENDING/FAILED as its
  // record says.
  CKPT_ASSIGN_OR_RETURN(std::optional<std::string> lease,
                        view.Get(Cf::kSched, keys::Leased(job, step, key)));
  if (!lease.has_value()) {
    CKPT_ASSIGN_OR_RETURN(lease, FindGrantedLease(view, job, step, key));
  }
  if (lease.has_value()) CKPT_RETURN_IF_ERROR(FillFromLease(*lease, keys_only, item));
  if (record.has_value() || lease.has_value()) return absl::OkStatus();
  return absl::NotFoundError(absl::StrCat(keys::DescribeItemKey(key),
                                          " is not registered in step \"", step, "\" of job \"",
                                          job, "\""));
}

absl::Status ListStepItems(const StoreReader& view, const v1::ListItemsRequest& r,
                           absl::string_view step, size_t max_page_bytes,
                           v1::ListItemsResponse* out) {
  CKPT_ASSIGN_OR_RETURN(const std::string after, FromPageToken(r.page_token()));
  const uint32_t limit = r.limit() > 0 ? r.limit() : kDefaultListItems;
  CKPT_ASSIGN_OR_RETURN(Streams streams,
                        OpenStreams(view, r.job_id(), step, r.state(), after, limit));
  std::string last;
  ItemPage page(out, max_page_bytes);
  bool full = false;  // stopped by max_page_bytes with the item at `last` not sent
  std::string last_sent;
  while (static_cast<uint32_t>(out->items_size()) < limit) {
    const std::string* smallest = nullptr;
    for (const auto& [kind, stream] : streams) {
      if (stream->Valid() && (smallest == nullptr || stream->key() < *smallest)) {
        smallest = &stream->key();
      }
    }
    if (smallest == nullptr) break;
    last = *smallest;
    if (r.state() == v1::ITEM_STATE_COMPLETED) {
      // Only item records are streamed (OpenStreams). One of an item in another state is
      // passed over before anything of it is built in the answer, whose arena frees
      // nothing until the call ends, however many records a page passes over.
      auto& records = *streams.front().second;
      CKPT_ASSIGN_OR_RETURN(const v1::ItemState state, records.RecordState());
      if (state != v1::ITEM_STATE_COMPLETED) {
        records.Next();
        continue;
      }
    }
    v1::Item* item = page.Add();
    CKPT_RETURN_IF_ERROR(MergeItem(view, r.job_id(), step, last, r.keys_only(), streams, item));
    if (r.state() == v1::ITEM_STATE_COMPLETED && item->state() != v1::ITEM_STATE_COMPLETED) {
      page.Drop();
      continue;
    }
    if (!page.Keep()) {
      full = true;
      break;
    }
    last_sent = last;
  }
  if (full) {
    out->set_next_page_token(PageToken(last_sent));
    return absl::OkStatus();
  }
  bool more = false;
  for (const auto& [kind, stream] : streams) {
    CKPT_RETURN_IF_ERROR(stream->status());
    more = more || stream->Valid();
  }
  if (more && !last.empty()) out->set_next_page_token(PageToken(last));
  return absl::OkStatus();
}

bool ItemPage::Keep() {
  const size_t bytes = out_->items(out_->items_size() - 1).ByteSizeLong();
  if (out_->items_size() > 1 && bytes_ + bytes > max_bytes_) {
    Drop();
    return false;
  }
  bytes_ += bytes;
  return true;
}

absl::Status ListErrorGroups(const StoreReader& view, absl::string_view job, uint32_t n,
                             v1::ListItemsResponse* out) {
  std::vector<v1::ErrorGroup> groups;
  auto it = view.Scan(Cf::kSched, keys::ErrorGroupPrefix(job));
  for (; it->Valid(); it->Next()) {
    storage::v1::ErrorGroupRecord record;
    CKPT_RETURN_IF_ERROR(ParseStored(it->value(), &record, "error group"));
    v1::ErrorGroup group;
    group.set_message(record.message());
    group.set_count(record.count());
    groups.push_back(std::move(group));
  }
  CKPT_RETURN_IF_ERROR(it->status());
  std::sort(groups.begin(), groups.end(), [](const v1::ErrorGroup& a, const v1::ErrorGroup& b) {
    return a.count() != b.count() ? a.count() > b.count() : a.message() < b.message();
  });
  for (size_t i = 0; i < groups.size() && i < n; ++i) {
    *out->add_error_groups() = groups[i];
  }
  return absl::OkStatus();
}

absl::Status ExpandGrantRuns(absl::string_view job, storage::v1::LeaseGrantRecord* grant) {
  if (grant->runs().empty()) return absl::OkStatus();
  const auto corrupt = [&] {
    return absl::DataLossError(
        absl::StrCat("corrupt lease grant record in job \"", job, "\": bad run of leases"));
  };
  uint64_t leases = static_cast<uint64_t>(grant->leases_size());
  for (const storage::v1::LeaseGrantRecord::Run& run : grant->runs()) {
    const uint64_t token_step = run.token_step() == 0 ? 1 : run.token_step();
    const uint64_t count = run.count();
    // No record holds more than kMaxLeasesPerGrant leases, no token is 0, and neither
    // the indices nor the tokens of a run wrap around.
    leases += count;
    if (count == 0 || leases > kMaxLeasesPerGrant || run.first_token() == 0 ||
        run.first_index() + count < run.first_index() ||
        (count - 1) * token_step > UINT64_MAX - run.first_token()) {
      return corrupt();
    }
    for (uint64_t i = 0; i < count; ++i) {
      storage::v1::LeaseGrantRecord::Lease* lease = grant->add_leases();
      lease->set_key(keys::EncodeIndex(run.first_index() + i));
      lease->set_token(run.first_token() + i * token_step);
      lease->set_no_record(true);
    }
  }
  grant->clear_runs();
  // Back in grant order: tokens are issued in increasing order within a grant.
  std::sort(grant->mutable_leases()->begin(), grant->mutable_leases()->end(),
            [](const auto& a, const auto& b) { return a.token() < b.token(); });
  return absl::OkStatus();
}

}  // namespace ckpt
