// The only place RocksDB keys are built and parsed. The grammar is specified in
// STORAGE_FORMAT.md; on-disk bytes never change meaning.
//
// Integers are fixed 8-byte big-endian so byte order is numeric order. Ids and step
// names are validated (no NUL) before they get here and are NUL-terminated, so no id is
// a key prefix of another id's keys.
#ifndef CKPT_SERVICE_STORE_KEYS_H_
#define CKPT_SERVICE_STORE_KEYS_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "ckpt/v1/checkpoint.pb.h"

namespace ckpt {
namespace keys {

// Column families.
inline constexpr char kMetaCf[] = "meta";
inline constexpr char kJobsCf[] = "jobs";
inline constexpr char kItemsCf[] = "items";
inline constexpr char kSchedCf[] = "sched";
inline constexpr char kWorkersCf[] = "workers";
inline constexpr char kStatesCf[] = "states";
inline constexpr char kOutputsCf[] = "outputs";
inline constexpr char kLogsCf[] = "logs";                // schema 3
inline constexpr char kCompletionsCf[] = "completions";  // schema 3

// meta keys.
inline constexpr char kSchemaKey[] = "schema";
inline constexpr char kNextTokenKey[] = "next_token";
inline constexpr char kNextWorkerKey[] = "next_worker";

// Item keys, encoded: 0x01 + index (8 bytes BE), or 0x02 + name bytes. Indices sort
// before names; within each, numeric / bytewise order. Used as the in-memory identity
// of an item too: compact, hashable and ordered like the disk.
inline constexpr char kIndexTag = '\x01';
inline constexpr char kNameTag = '\x02';

std::string EncodeIndex(uint64_t index);
std::string EncodeName(absl::string_view name);
// REQUIRES: `key` has a key set.
std::string EncodeItemKey(const v1::ItemKey& key);
// INVALID_ARGUMENT if `encoded` is not an encoded item key.
absl::StatusOr<v1::ItemKey> DecodeItemKey(absl::string_view encoded);
bool IsIndexKey(absl::string_view encoded);
// REQUIRES: IsIndexKey(encoded).
uint64_t IndexOf(absl::string_view encoded);
// A readable form for messages: "index 42" or "name \"a.txt\"".
std::string DescribeItemKey(absl::string_view encoded);

// Fixed 8-byte big-endian integers.
void AppendBigEndian64(std::string* out, uint64_t value);
// REQUIRES: bytes.size() >= 8.
uint64_t ReadBigEndian64(absl::string_view bytes);

// <job_id> \0 : every key of a job in jobs-scoped families starts with this.
std::string JobPrefix(absl::string_view job_id);
// <job_id> \0 <step> \0
std::string StepPrefix(absl::string_view job_id, absl::string_view step);
// <job_id> \0 \0 : job-level records in sched (step names are never empty).
std::string JobLevelPrefix(absl::string_view job_id);

// jobs/<job_id>
inline std::string Job(absl::string_view job_id) { return std::string(job_id); }
// items/<step prefix><item key>
std::string Item(absl::string_view job_id, absl::string_view step, absl::string_view item_key);

// sched family: per-step scheduling records (see STORAGE_FORMAT.md).
enum class SchedTag : char {
  kCounters = 'C',    // StepCounters
  kRegistered = 'R',  // + begin -> end: registered index ranges
  kUntouched = 'U',   // + begin -> end: registered, never touched, so PENDING
  kPending = 'P',     // + class + item key: explicit PENDING items
  kLeased = 'L',      // + item key -> LeaseRecord (schema 1 leases)
  kGrant = 'G',       // + BE64(first token) -> LeaseGrantRecord
  kFailed = 'F',      // + item key: FAILED items
};
// Pending classes: retries are leased before fresh items.
inline constexpr char kPendingRetry = '\x00';
inline constexpr char kPendingFresh = '\x01';

std::string SchedPrefix(absl::string_view job_id, absl::string_view step, SchedTag tag);
std::string Counters(absl::string_view job_id, absl::string_view step);
std::string RangeStart(absl::string_view job_id, absl::string_view step, SchedTag tag,
                       uint64_t begin);
std::string Pending(absl::string_view job_id, absl::string_view step, char pending_class,
                    absl::string_view item_key);
std::string Leased(absl::string_view job_id, absl::string_view step, absl::string_view item_key);
std::string Failed(absl::string_view job_id, absl::string_view step, absl::string_view item_key);
std::string Grant(absl::string_view job_id, absl::string_view step, uint64_t first_token);
// sched/<job level prefix> 'E' <hash>: ErrorGroupRecord.
std::string ErrorGroup(absl::string_view job_id, uint64_t message_hash);
std::string ErrorGroupPrefix(absl::string_view job_id);

// meta/0xff 'R' <job_id> \0 <step> \0 BE64(block): a RunDirectoryRecord, where the runs
// (service/engine/item_runs.h) that cover an index of one block of kRunBlockIndices
// indices begin. In meta, not items: rewritten as runs are written, these keys would
// sit in every items SST file and make each overlap all the others, so that RocksDB
// could no longer move files between levels without rewriting them. Ids never begin
// with 0xff, so no other meta key starts with this prefix; deleted with the job.
inline constexpr uint64_t kRunBlockIndices = 128;
inline constexpr absl::string_view kRunDirectoryLead = "\xffR";
std::string RunDirectoryPrefix(absl::string_view job_id);
std::string RunDirectory(absl::string_view job_id, absl::string_view step, uint64_t block);

// A sched key of one job with its JobPrefix removed, parsed and checked.
struct SchedKey {
  bool error_group = false;            // <job level prefix> 'E' <hash>
  uint64_t error_hash = 0;             // if error_group
  absl::string_view step;              // otherwise: the step's name,
  SchedTag tag = SchedTag::kCounters;  // its tag,
  // and what follows the tag: for kRegistered/kUntouched/kGrant the 8-byte integer
  // (see `number`); for kPending the class byte and the item key; for kLeased and
  // kFailed the item key; for kCounters nothing.
  absl::string_view rest;
  uint64_t number = 0;  // kRegistered/kUntouched: begin; kGrant: first token
};
// DATA_LOSS naming the job if `suffix` is not a well-formed sched key (unknown tag,
// wrong length, empty item key). Views point into `suffix`.
absl::StatusOr<SchedKey> ParseSchedKey(absl::string_view job_id, absl::string_view suffix);
// The value of a kRegistered/kUntouched record: the range's end. DATA_LOSS if it is
// not 8 bytes.
absl::StatusOr<uint64_t> ParseRangeEnd(absl::string_view value);
// An item key read from the store (a key suffix or a record field). DATA_LOSS if it
// is not an encoded item key.
absl::StatusOr<v1::ItemKey> ParseStoredItemKey(absl::string_view encoded);
// An 8-byte big-endian value of the meta family (counters). DATA_LOSS naming `what`.
absl::StatusOr<uint64_t> ParseBigEndian64Value(absl::string_view value, absl::string_view what);

// workers/<job_id>\0<worker_id>, states/<job_id>\0<name>, outputs/<path>.
std::string Worker(absl::string_view job_id, absl::string_view worker_id);
std::string State(absl::string_view job_id, absl::string_view name);
inline std::string Output(absl::string_view path) { return std::string(path); }

// completions/<step prefix> BE64(micros) <item key>: the completed items of a step by
// completion time. The value is a CompletionRecord.
std::string CompletionPrefix(absl::string_view job_id, absl::string_view step);
std::string Completion(absl::string_view job_id, absl::string_view step, int64_t micros,
                       absl::string_view item_key);
// A completions key with its CompletionPrefix removed, parsed and checked.
struct CompletionKey {
  int64_t micros = 0;
  absl::string_view item_key;  // points into the parsed suffix
};
// DATA_LOSS if `suffix` is not BE64(micros) followed by an encoded item key.
absl::StatusOr<CompletionKey> ParseCompletionSuffix(absl::string_view suffix);
// A key below every completions key of its prefix with completion time > `micros`
// and above every one with completion time <= `micros`: BE64(micros) then a byte
// greater than any item key's tag. Floor() of it finds the newest completion at or
// before `micros`.
std::string CompletionsUpTo(absl::string_view job_id, absl::string_view step, int64_t micros);
// A key K < `key` such that no completions key lies strictly between K and `key`, for
// stepping backwards with Floor(). Relies on item names being UTF-8 (never 0xff) and
// indices being 8 bytes.
std::string CompletionKeyBefore(absl::string_view key);

// logs family (schema 3), every key under JobPrefix:
//   'J'                          LogStatsRecord of the job's log
//   'S' step 0x00 ikey           LogStatsRecord of one item's log
//   'T' BE64(seq)                LogRecord: the entry with that sequence
//   'I' step 0x00 ikey 0x00 BE64(seq)  raw BE64(size of the LogRecord): the item's index
std::string JobLogStats(absl::string_view job_id);
std::string ItemLogStats(absl::string_view job_id, absl::string_view step,
                         absl::string_view item_key);
std::string LogEntryPrefix(absl::string_view job_id);
std::string LogEntry(absl::string_view job_id, uint64_t sequence);
std::string ItemLogPrefix(absl::string_view job_id, absl::string_view step,
                          absl::string_view item_key);
std::string ItemLog(absl::string_view job_id, absl::string_view step, absl::string_view item_key,
                    uint64_t sequence);
// The sequence at the end of a 'T' or 'I' key (its last 8 bytes). DATA_LOSS if shorter
// than `prefix_size` + 8.
absl::StatusOr<uint64_t> ParseLogSequence(absl::string_view key, size_t prefix_size);

// The smallest key greater than every key starting with `prefix`, for iterator upper
// bounds and DeleteRange. Empty if there is none (prefix all 0xff).
std::string PrefixSuccessor(absl::string_view prefix);

// A stable 64-bit FNV-1a hash (error messages -> error group keys). Never changes.
uint64_t Fnv1a64(absl::string_view data);

}  // namespace keys
}  // namespace ckpt

#endif  // CKPT_SERVICE_STORE_KEYS_H_
