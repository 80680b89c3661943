#include "service/engine/item_runs.h"

#include <algorithm>
#include <iterator>

#include "google/protobuf/io/coded_stream.h"
#include "service/common/status_macros.h"
#include "service/engine/stored_record.h"
#include "service/store/keys.h"

namespace ckpt {
namespace {

using google::protobuf::io::CodedInputStream;
using google::protobuf::io::CodedOutputStream;
using storage::v1::ItemRecord;

void AppendVarint(uint64_t value, std::string* out) {
  while (value >= 0x80) {
    out->push_back(static_cast<char>(value | 0x80));
    value >>= 7;
  }
  out->push_back(static_cast<char>(value));
}

// Field `number` of wire type `type`, as its tag.
constexpr uint64_t Tag(int number, int type) { return (static_cast<uint64_t>(number) << 3) | type; }
constexpr int kVarint = 0;
constexpr int kLengthDelimited = 2;

// Appends `message` (of `size` bytes, its cached size) as length-delimited field `number`.
void AppendMessageField(int number, const google::protobuf::MessageLite& message, size_t size,
                        std::string* out) {
  AppendVarint(Tag(number, kLengthDelimited), out);
  AppendVarint(size, out);
  const size_t at = out->size();
  out->resize(at + size);
  message.SerializeWithCachedSizesToArray(reinterpret_cast<uint8_t*>(&(*out)[at]));
}

// The serialized record of items [begin, end) of the run `record`.
std::string SubRun(const ItemRecord& record, int begin, int end) {
  if (end - begin == 1)
    return ItemOfRecord(record, static_cast<uint64_t>(begin)).SerializeAsString();
  ItemRecord part;
  part.set_state(record.state());
  part.set_update_time_micros(record.update_time_micros());
  part.set_worker_id(record.worker_id());
  for (int i = begin; i < end; ++i) *part.add_run() = record.run(i);
  return part.SerializeAsString();
}

}  // namespace

bool RecordCovers(absl::string_view stored_key, const ItemRecord& record, absl::string_view key) {
  return SpanCovers(stored_key, RecordSpan(record), key);
}

bool SpanCovers(absl::string_view stored_key, uint64_t span, absl::string_view key) {
  if (stored_key == key) return true;
  if (span < 2 || !keys::IsIndexKey(stored_key) || !keys::IsIndexKey(key)) return false;
  const uint64_t first = keys::IndexOf(stored_key);
  const uint64_t index = keys::IndexOf(key);
  return index >= first && index - first < span;
}

// The record of one item of the run `record` (whose own run items are not read).
ItemRecord ItemOfRun(const ItemRecord& record, const storage::v1::RunItem& item) {
  ItemRecord out;
  out.set_state(record.state());
  out.set_update_time_micros(record.update_time_micros());
  out.set_worker_id(record.worker_id());
  out.set_attempts(item.attempts());
  out.set_completed_token(item.completed_token());
  if (item.has_result()) *out.mutable_result() = item.result();
  return out;
}

ItemRecord ItemOfRecord(const ItemRecord& record, uint64_t offset) {
  if (record.run_size() == 0) return record;
  return ItemOfRun(record, record.run(static_cast<int>(offset)));
}

namespace {

// Reads a varint at `*at`, moving past it; false if `end` comes first or it is longer
// than 10 bytes.
bool ReadVarint(const char** at, const char* end, uint64_t* value) {
  *value = 0;
  for (int shift = 0; shift < 64 && *at < end; shift += 7) {
    const auto byte = static_cast<uint8_t>(*(*at)++);
    *value |= static_cast<uint64_t>(byte & 0x7f) << shift;
    if (byte < 0x80) return true;
  }
  return false;
}

// Moves `*at` past the value of a field with wire type `type`; false if it is cut short
// or a group (ItemRecord has none).
bool SkipValue(int type, const char** at, const char* end) {
  uint64_t size = 0;
  switch (type) {
    case kVarint:
      return ReadVarint(at, end, &size);
    case 1:  // 64-bit
      size = 8;
      break;
    case kLengthDelimited:
      if (!ReadVarint(at, end, &size)) return false;
      break;
    case 5:  // 32-bit
      size = 4;
      break;
    default:
      return false;
  }
  if (size > static_cast<uint64_t>(end - *at)) return false;
  *at += size;
  return true;
}

}  // namespace

absl::Status RecordItems::Read(std::unique_ptr<StoreValue> value) {
  value_ = std::move(value);
  runs_.clear();
  const auto corrupt = [] { return absl::DataLossError("corrupt item record"); };
  // One pass over the fields: each run item's place, and the bytes of the others. The
  // framing is read here rather than by a CodedInputStream: a run has ~100 items.
  std::string own;
  const absl::string_view bytes = value_->view();
  const char* const begin = bytes.data();
  const char* const end = begin + bytes.size();
  constexpr uint64_t kRunTag = Tag(ItemRecord::kRunFieldNumber, kLengthDelimited);
  for (const char* at = begin; at < end;) {
    const char* const field = at;
    uint64_t tag = 0;
    if (!ReadVarint(&at, end, &tag) || (tag >> 3) == 0) return corrupt();
    if (tag == kRunTag) {
      uint64_t size = 0;
      if (!ReadVarint(&at, end, &size) || size > static_cast<uint64_t>(end - at)) return corrupt();
      if (runs_.empty()) runs_.reserve(kMaxRunItems);
      runs_.emplace_back(static_cast<size_t>(at - begin), static_cast<size_t>(size));
      at += size;
      continue;
    }
    if (!SkipValue(static_cast<int>(tag & 7), &at, end)) return corrupt();
    own.append(field, static_cast<size_t>(at - field));
  }
  if (runs_.size() == 1) return corrupt();  // a run has at least two items
  if (!record_.ParseFromString(own)) return corrupt();
  return absl::OkStatus();
}

absl::StatusOr<ItemRecord> RecordItems::Item(uint64_t offset, v1::Item* answer) const {
  if (runs_.empty()) return record_;
  const auto corrupt = [] { return absl::DataLossError("corrupt item record"); };
  // The RunItem's fields, read in place: its result is parsed once, where it goes.
  const auto [start, size] = runs_[static_cast<size_t>(offset)];
  const char* at = bytes().data() + start;
  const char* const end = at + size;
  ItemRecord out = ItemOfRun(record_, storage::v1::RunItem());
  constexpr uint64_t kResultTag = Tag(storage::v1::RunItem::kResultFieldNumber, kLengthDelimited);
  constexpr uint64_t kTokenTag = Tag(storage::v1::RunItem::kCompletedTokenFieldNumber, kVarint);
  constexpr uint64_t kAttemptsTag = Tag(storage::v1::RunItem::kAttemptsFieldNumber, kVarint);
  while (at < end) {
    uint64_t tag = 0;
    uint64_t value = 0;
    if (!ReadVarint(&at, end, &tag) || (tag >> 3) == 0) return corrupt();
    if (tag == kResultTag) {
      if (!ReadVarint(&at, end, &value) || value > static_cast<uint64_t>(end - at)) {
        return corrupt();
      }
      v1::ItemResult* result = answer != nullptr ? answer->mutable_result() : out.mutable_result();
      // Merged, as a parser merges a message field that appears twice.
      CodedInputStream input(reinterpret_cast<const uint8_t*>(at), static_cast<int>(value));
      if (!result->MergeFromCodedStream(&input) || !input.ConsumedEntireMessage()) {
        return corrupt();
      }
      at += value;
    } else if (tag == kTokenTag || tag == kAttemptsTag) {
      if (!ReadVarint(&at, end, &value)) return corrupt();
      if (tag == kTokenTag) {
        out.set_completed_token(value);
      } else {
        out.set_attempts(static_cast<uint32_t>(value));
      }
    } else if (!SkipValue(static_cast<int>(tag & 7), &at, end)) {
      return corrupt();
    }
  }
  return out;
}

void AppendResultField(const v1::ItemResult& result, std::string* record) {
  const size_t size = result.ByteSizeLong();
  if (size == 0) return;  // proto3 leaves an empty message out
  AppendMessageField(ItemRecord::kResultFieldNumber, result, size, record);
}

void AppendRunItem(const v1::ItemResult& result, uint64_t token, uint32_t attempts,
                   std::string* record) {
  const size_t result_size = result.ByteSizeLong();
  size_t size = 0;
  if (result_size > 0) size += 1 + CodedOutputStream::VarintSize64(result_size) + result_size;
  if (token != 0) size += 1 + CodedOutputStream::VarintSize64(token);
  if (attempts != 0) size += 1 + CodedOutputStream::VarintSize32(attempts);
  AppendVarint(Tag(ItemRecord::kRunFieldNumber, kLengthDelimited), record);
  AppendVarint(size, record);
  if (result_size > 0) {
    AppendMessageField(storage::v1::RunItem::kResultFieldNumber, result, result_size, record);
  }
  if (token != 0) {
    AppendVarint(Tag(storage::v1::RunItem::kCompletedTokenFieldNumber, kVarint), record);
    AppendVarint(token, record);
  }
  if (attempts != 0) {
    AppendVarint(Tag(storage::v1::RunItem::kAttemptsFieldNumber, kVarint), record);
    AppendVarint(attempts, record);
  }
}

std::vector<RunPiece> SplitRun(const ItemRecord& record, uint64_t first,
                               const std::vector<uint64_t>& offsets) {
  std::vector<RunPiece> pieces;
  int begin = 0;
  auto add = [&](int end) {
    if (end > begin) {
      pieces.push_back({first + static_cast<uint64_t>(begin), static_cast<uint64_t>(end - begin),
                        SubRun(record, begin, end)});
    }
  };
  for (uint64_t offset : offsets) {
    add(static_cast<int>(offset));
    begin = static_cast<int>(offset) + 1;
  }
  add(record.run_size());
  return pieces;
}

absl::StatusOr<std::vector<uint64_t>> ParseRunDirectory(absl::string_view bytes) {
  storage::v1::RunDirectoryRecord record;
  if (!record.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return absl::DataLossError("corrupt run directory record");
  }
  std::vector<uint64_t> firsts(record.firsts().begin(), record.firsts().end());
  if (!std::is_sorted(firsts.begin(), firsts.end())) {
    return absl::DataLossError("corrupt run directory record: firsts out of order");
  }
  return firsts;
}

std::string SerializeRunDirectory(const std::vector<uint64_t>& firsts) {
  storage::v1::RunDirectoryRecord record;
  record.mutable_firsts()->Add(firsts.begin(), firsts.end());
  return record.SerializeAsString();
}

ItemRecordFinder::ItemRecordFinder(const StoreReader& reader, absl::string_view job,
                                   absl::string_view step, const RunDirectories* directories)
    : reader_(reader),
      directories_(directories),
      job_(job),
      step_(step),
      prefix_(keys::StepPrefix(job, step)) {}

absl::StatusOr<std::optional<std::pair<std::string, std::unique_ptr<StoreValue>>>>
ItemRecordFinder::DirectoryRun(const std::string& key) const {
  using Found = std::optional<std::pair<std::string, std::unique_ptr<StoreValue>>>;
  const uint64_t index = keys::IndexOf(key);
  const std::string block = keys::RunDirectory(job_, step_, RunBlock(index));
  absl::StatusOr<std::vector<uint64_t>> firsts = std::vector<uint64_t>();
  if (directories_ != nullptr) {
    firsts = directories_->Read(block);
  } else {
    CKPT_ASSIGN_OR_RETURN(std::optional<std::string> directory,
                          reader_.Get(kRunDirectoryFamily, block));
    if (directory.has_value()) firsts = ParseRunDirectory(*directory);
  }
  if (absl::IsDataLoss(firsts.status())) return Found();  // a damaged hint names nothing
  CKPT_RETURN_IF_ERROR(firsts.status());
  auto above = std::upper_bound(firsts->begin(), firsts->end(), index);
  if (above == firsts->begin()) return Found();
  std::string first = keys::EncodeIndex(*std::prev(above));
  // A run's record is ~100 results: read in place, not copied.
  CKPT_ASSIGN_OR_RETURN(std::unique_ptr<StoreValue> value,
                        reader_.GetPinned(Cf::kItems, prefix_ + first));
  if (value == nullptr) return Found();
  return Found(std::make_pair(std::move(first), std::move(value)));
}

absl::StatusOr<std::optional<std::pair<std::string, std::string>>> ItemRecordFinder::FloorRecord(
    const std::string& key) const {
  using Found = std::optional<std::pair<std::string, std::string>>;
  CKPT_ASSIGN_OR_RETURN(auto floor,
                        reader_.Floor(Cf::kItems, prefix_ + keys::kIndexTag, prefix_ + key));
  if (!floor.has_value()) return Found();
  std::string stored_key = floor->first.substr(prefix_.size());
  if (stored_key.size() != key.size()) return Found();
  return Found(std::make_pair(std::move(stored_key), std::move(floor->second)));
}

absl::StatusOr<std::optional<std::pair<std::string, RecordItems>>> ItemRecordFinder::Holder(
    const std::string& key) const {
  using Found = std::optional<std::pair<std::string, RecordItems>>;
  RecordItems record;
  auto take = [&](std::string stored_key,
                  std::unique_ptr<StoreValue> value) -> absl::StatusOr<Found> {
    CKPT_RETURN_IF_ERROR(record.Read(std::move(value)));
    if (!SpanCovers(stored_key, record.span(), key)) return Found();
    return Found(std::make_pair(std::move(stored_key), std::move(record)));
  };
  auto own = [&](std::string bytes) { return std::make_unique<OwnedStoreValue>(std::move(bytes)); };
  if (!keys::IsIndexKey(key)) {
    CKPT_ASSIGN_OR_RETURN(std::optional<std::string> bytes, reader_.Get(Cf::kItems, prefix_ + key));
    if (!bytes.has_value()) return Found();
    return take(key, own(std::move(*bytes)));
  }
  if (!reader_.FloorIsCheap()) {
    // The run the directory names, if it holds the key. A damaged record named for a
    // neighbour is passed over: the seek below meets it (DATA_LOSS, as before the
    // directory) only if it is the nearest record at or below the key.
    CKPT_ASSIGN_OR_RETURN(auto stored, DirectoryRun(key));
    const bool named_key = stored.has_value() && stored->first == key;
    if (stored.has_value()) {
      absl::StatusOr<Found> found = take(std::move(stored->first), std::move(stored->second));
      if (named_key || (found.ok() && found->has_value())) return found;
    }
    // The key's own record.
    CKPT_ASSIGN_OR_RETURN(std::optional<std::string> bytes, reader_.Get(Cf::kItems, prefix_ + key));
    if (bytes.has_value()) return take(key, own(std::move(*bytes)));
  }
  // A run the directory does not name (written before it), or a store whose seek costs
  // what a point read does: the seek.
  CKPT_ASSIGN_OR_RETURN(auto stored, FloorRecord(key));
  if (!stored.has_value()) return Found();
  return take(std::move(stored->first), own(std::move(stored->second)));
}

absl::StatusOr<std::optional<ItemRecord>> ItemRecordFinder::Find(const std::string& key,
                                                                 v1::Item* answer) {
  using Found = std::optional<ItemRecord>;
  if (!cached_key_.empty() && SpanCovers(cached_key_, cached_.span(), key)) {
    CKPT_ASSIGN_OR_RETURN(ItemRecord item,
                          cached_.Item(keys::IndexOf(key) - keys::IndexOf(cached_key_), answer));
    return Found(std::move(item));
  }
  CKPT_ASSIGN_OR_RETURN(auto holder, Holder(key));
  if (!holder.has_value()) return Found();
  auto& [stored_key, record] = *holder;
  const uint64_t offset = record.span() > 1 ? keys::IndexOf(key) - keys::IndexOf(stored_key) : 0;
  CKPT_ASSIGN_OR_RETURN(ItemRecord item, record.Item(offset, answer));
  if (record.span() > 1) {  // its neighbours are likely asked for next
    cached_key_ = std::move(stored_key);
    cached_ = std::move(record);
  }
  return Found(std::move(item));
}

absl::StatusOr<std::optional<std::pair<std::string, ItemRecord>>> ItemRecordFinder::FindStored(
    const std::string& key) {
  using Found = std::optional<std::pair<std::string, ItemRecord>>;
  CKPT_ASSIGN_OR_RETURN(auto holder, Holder(key));
  if (!holder.has_value()) return Found();
  ItemRecord record;
  CKPT_RETURN_IF_ERROR(ParseStored(holder->second.bytes(), &record, "item"));
  return Found(std::make_pair(std::move(holder->first), std::move(record)));
}

}  // namespace ckpt
