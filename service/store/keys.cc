#include "service/store/keys.h"

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace ckpt {
namespace keys {

void AppendBigEndian64(std::string* out, uint64_t value) {
  for (int shift = 56; shift >= 0; shift -= 8) {
    out->push_back(static_cast<char>((value >> shift) & 0xff));
  }
}

uint64_t ReadBigEndian64(absl::string_view bytes) {
  uint64_t value = 0;
  for (int i = 0; i < 8; ++i) {
    value = (value << 8) | static_cast<uint8_t>(bytes[i]);
  }
  return value;
}

std::string EncodeIndex(uint64_t index) {
  std::string out(1, kIndexTag);
  AppendBigEndian64(&out, index);
  return out;
}

std::string EncodeName(absl::string_view name) {
  std::string out(1, kNameTag);
  out.append(name.data(), name.size());
  return out;
}

std::string EncodeItemKey(const v1::ItemKey& key) {
  return key.key_case() == v1::ItemKey::kIndex ? EncodeIndex(key.index()) : EncodeName(key.name());
}

absl::StatusOr<v1::ItemKey> DecodeItemKey(absl::string_view encoded) {
  v1::ItemKey key;
  if (encoded.size() == 9 && encoded[0] == kIndexTag) {
    key.set_index(ReadBigEndian64(encoded.substr(1)));
    return key;
  }
  if (encoded.size() >= 2 && encoded[0] == kNameTag) {
    key.set_name(std::string(encoded.substr(1)));
    return key;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("not an encoded item key: \"", absl::CHexEscape(encoded), "\""));
}

bool IsIndexKey(absl::string_view encoded) {
  return encoded.size() == 9 && encoded[0] == kIndexTag;
}

uint64_t IndexOf(absl::string_view encoded) { return ReadBigEndian64(encoded.substr(1)); }

std::string DescribeItemKey(absl::string_view encoded) {
  if (IsIndexKey(encoded)) return absl::StrCat("index ", IndexOf(encoded));
  return absl::StrCat("name \"", absl::CHexEscape(encoded.substr(1)), "\"");
}

std::string JobPrefix(absl::string_view job_id) {
  return absl::StrCat(job_id, absl::string_view("\0", 1));
}

std::string StepPrefix(absl::string_view job_id, absl::string_view step) {
  const absl::string_view nul("\0", 1);
  return absl::StrCat(job_id, nul, step, nul);
}

std::string JobLevelPrefix(absl::string_view job_id) {
  return absl::StrCat(job_id, absl::string_view("\0\0", 2));
}

std::string Item(absl::string_view job_id, absl::string_view step, absl::string_view item_key) {
  return absl::StrCat(StepPrefix(job_id, step), item_key);
}

std::string RunDirectoryPrefix(absl::string_view job_id) {
  return absl::StrCat(kRunDirectoryLead, JobPrefix(job_id));
}

std::string RunDirectory(absl::string_view job_id, absl::string_view step, uint64_t block) {
  std::string out = absl::StrCat(RunDirectoryPrefix(job_id), step, absl::string_view("\0", 1));
  AppendBigEndian64(&out, block);
  return out;
}

std::string SchedPrefix(absl::string_view job_id, absl::string_view step, SchedTag tag) {
  std::string out = StepPrefix(job_id, step);
  out.push_back(static_cast<char>(tag));
  return out;
}

std::string Counters(absl::string_view job_id, absl::string_view step) {
  return SchedPrefix(job_id, step, SchedTag::kCounters);
}

std::string RangeStart(absl::string_view job_id, absl::string_view step, SchedTag tag,
                       uint64_t begin) {
  std::string out = SchedPrefix(job_id, step, tag);
  AppendBigEndian64(&out, begin);
  return out;
}

std::string Pending(absl::string_view job_id, absl::string_view step, char pending_class,
                    absl::string_view item_key) {
  std::string out = SchedPrefix(job_id, step, SchedTag::kPending);
  out.push_back(pending_class);
  out.append(item_key.data(), item_key.size());
  return out;
}

std::string Leased(absl::string_view job_id, absl::string_view step, absl::string_view item_key) {
  return absl::StrCat(SchedPrefix(job_id, step, SchedTag::kLeased), item_key);
}

std::string Grant(absl::string_view job_id, absl::string_view step, uint64_t first_token) {
  return RangeStart(job_id, step, SchedTag::kGrant, first_token);
}

std::string Failed(absl::string_view job_id, absl::string_view step, absl::string_view item_key) {
  return absl::StrCat(SchedPrefix(job_id, step, SchedTag::kFailed), item_key);
}

std::string ErrorGroupPrefix(absl::string_view job_id) {
  return absl::StrCat(JobLevelPrefix(job_id), "E");
}

std::string ErrorGroup(absl::string_view job_id, uint64_t message_hash) {
  std::string out = ErrorGroupPrefix(job_id);
  AppendBigEndian64(&out, message_hash);
  return out;
}

std::string Worker(absl::string_view job_id, absl::string_view worker_id) {
  return absl::StrCat(JobPrefix(job_id), worker_id);
}

std::string State(absl::string_view job_id, absl::string_view name) {
  return absl::StrCat(JobPrefix(job_id), name);
}

std::string CompletionPrefix(absl::string_view job_id, absl::string_view step) {
  return StepPrefix(job_id, step);
}

std::string Completion(absl::string_view job_id, absl::string_view step, int64_t micros,
                       absl::string_view item_key) {
  std::string out = CompletionPrefix(job_id, step);
  AppendBigEndian64(&out, static_cast<uint64_t>(micros));
  out.append(item_key.data(), item_key.size());
  return out;
}

absl::StatusOr<CompletionKey> ParseCompletionSuffix(absl::string_view suffix) {
  if (suffix.size() < 10 || !DecodeItemKey(suffix.substr(8)).ok()) {
    return absl::DataLossError(
        absl::StrCat("corrupt completions key \"", absl::CHexEscape(suffix), "\""));
  }
  CompletionKey key;
  key.micros = static_cast<int64_t>(ReadBigEndian64(suffix));
  key.item_key = suffix.substr(8);
  return key;
}

std::string CompletionsUpTo(absl::string_view job_id, absl::string_view step, int64_t micros) {
  std::string out = CompletionPrefix(job_id, step);
  AppendBigEndian64(&out, static_cast<uint64_t>(micros));
  out.push_back('\x03');  // above kIndexTag and kNameTag
  return out;
}

std::string CompletionKeyBefore(absl::string_view key) {
  std::string out(key);
  if (out.empty()) return out;
  if (out.back() == '\0') {
    out.pop_back();
    return out;
  }
  out.back() = static_cast<char>(static_cast<unsigned char>(out.back()) - 1);
  // Nothing with the new prefix can be longer than an index key by more than 8 bytes of
  // 0xff (names are UTF-8), so this is above all of them.
  out.append(9, '\xff');
  return out;
}

std::string JobLogStats(absl::string_view job_id) { return absl::StrCat(JobPrefix(job_id), "J"); }

std::string ItemLogStats(absl::string_view job_id, absl::string_view step,
                         absl::string_view item_key) {
  return absl::StrCat(JobPrefix(job_id), "S", step, absl::string_view("\0", 1), item_key);
}

std::string LogEntryPrefix(absl::string_view job_id) {
  return absl::StrCat(JobPrefix(job_id), "T");
}

std::string LogEntry(absl::string_view job_id, uint64_t sequence) {
  std::string out = LogEntryPrefix(job_id);
  AppendBigEndian64(&out, sequence);
  return out;
}

std::string ItemLogPrefix(absl::string_view job_id, absl::string_view step,
                          absl::string_view item_key) {
  // The item key is terminated: a name may be a prefix of another name.
  const absl::string_view nul("\0", 1);
  return absl::StrCat(JobPrefix(job_id), "I", step, nul, item_key, nul);
}

std::string ItemLog(absl::string_view job_id, absl::string_view step, absl::string_view item_key,
                    uint64_t sequence) {
  std::string out = ItemLogPrefix(job_id, step, item_key);
  AppendBigEndian64(&out, sequence);
  return out;
}

absl::StatusOr<uint64_t> ParseLogSequence(absl::string_view key, size_t prefix_size) {
  if (key.size() != prefix_size + 8) {
    return absl::DataLossError(absl::StrCat("corrupt logs key \"", absl::CHexEscape(key), "\""));
  }
  return ReadBigEndian64(key.substr(prefix_size));
}

std::string PrefixSuccessor(absl::string_view prefix) {
  std::string out(prefix);
  while (!out.empty()) {
    unsigned char last = static_cast<unsigned char>(out.back());
    if (last != 0xff) {
      out.back() = static_cast<char>(last + 1);
      return out;
    }
    out.pop_back();
  }
  return out;
}

namespace {

absl::Status CorruptSchedKey(absl::string_view job_id, absl::string_view suffix) {
  return absl::DataLossError(
      absl::StrCat("corrupt sched key \"", absl::CHexEscape(suffix), "\" in job \"", job_id, "\""));
}

}  // namespace

absl::StatusOr<SchedKey> ParseSchedKey(absl::string_view job_id, absl::string_view suffix) {
  SchedKey key;
  if (!suffix.empty() && suffix[0] == '\0') {  // job-level: error groups
    if (suffix.size() != 10 || suffix[1] != 'E') return CorruptSchedKey(job_id, suffix);
    key.error_group = true;
    key.error_hash = ReadBigEndian64(suffix.substr(2));
    return key;
  }
  const size_t nul = suffix.find('\0');
  if (nul == absl::string_view::npos || nul == 0 || nul + 1 >= suffix.size()) {
    return CorruptSchedKey(job_id, suffix);
  }
  key.step = suffix.substr(0, nul);
  key.tag = static_cast<SchedTag>(suffix[nul + 1]);
  key.rest = suffix.substr(nul + 2);
  bool well_formed = false;
  switch (key.tag) {
    case SchedTag::kCounters:
      well_formed = key.rest.empty();
      break;
    case SchedTag::kRegistered:
    case SchedTag::kUntouched:
    case SchedTag::kGrant:
      well_formed = key.rest.size() == 8;
      if (well_formed) key.number = ReadBigEndian64(key.rest);
      break;
    case SchedTag::kPending:
      well_formed = key.rest.size() >= 2 &&
                    (key.rest[0] == kPendingRetry || key.rest[0] == kPendingFresh) &&
                    DecodeItemKey(key.rest.substr(1)).ok();
      break;
    case SchedTag::kLeased:
    case SchedTag::kFailed:
      well_formed = DecodeItemKey(key.rest).ok();
      break;
  }
  if (!well_formed) return CorruptSchedKey(job_id, suffix);
  return key;
}

absl::StatusOr<uint64_t> ParseRangeEnd(absl::string_view value) {
  return ParseBigEndian64Value(value, "index range");
}

absl::StatusOr<v1::ItemKey> ParseStoredItemKey(absl::string_view encoded) {
  absl::StatusOr<v1::ItemKey> key = DecodeItemKey(encoded);
  if (!key.ok())
    return absl::DataLossError(absl::StrCat("corrupt record: ", key.status().message()));
  return key;
}

absl::StatusOr<uint64_t> ParseBigEndian64Value(absl::string_view value, absl::string_view what) {
  if (value.size() != 8) {
    return absl::DataLossError(
        absl::StrCat("corrupt ", what, " record: ", value.size(), " bytes, not 8"));
  }
  return ReadBigEndian64(value);
}

uint64_t Fnv1a64(absl::string_view data) {
  uint64_t hash = 0xcbf29ce484222325ULL;
  for (unsigned char c : data) {
    hash ^= c;
    hash *= 0x100000001b3ULL;
  }
  return hash;
}

}  // namespace keys
}  // namespace ckpt
