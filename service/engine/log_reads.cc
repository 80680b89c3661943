#include "service/engine/log_reads.h"

#include <algorithm>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "ckpt/storage/v1/records.pb.h"
#include "service/common/proto_time.h"
#include "service/common/status_macros.h"
#include "service/engine/stored_record.h"
#include "service/store/keys.h"

namespace ckpt {
namespace {

constexpr uint32_t kDefaultListLogs = 100;

// A stored entry's sequence and the value under its key (a LogRecord for the job's
// log, a size for an item's index).
struct Found {
  uint64_t sequence = 0;
  std::string value;
};

// Walks the sequences stored under `prefix` (8-byte big-endian at the end of each key)
// after an exclusive bound: a scan oldest first, one Floor per entry newest first.
class SequenceWalker {
 public:
  SequenceWalker(const StoreReader& view, std::string prefix, bool newest_first,
                 std::optional<uint64_t> after)
      : view_(view), prefix_(std::move(prefix)), newest_first_(newest_first) {
    if (newest_first_) {
      next_ = after.has_value() ? *after - 1 : std::numeric_limits<uint64_t>::max();
      done_ = after.has_value() && *after == 0;
      return;
    }
    done_ = after.has_value() && *after == std::numeric_limits<uint64_t>::max();
    it_ = view_.Scan(Cf::kLogs, prefix_, done_ ? "" : Key(after.has_value() ? *after + 1 : 0));
  }

  absl::StatusOr<std::optional<Found>> Next() {
    if (done_) return std::optional<Found>();
    if (!newest_first_) {
      if (!it_->Valid()) {
        CKPT_RETURN_IF_ERROR(it_->status());
        return std::optional<Found>();
      }
      CKPT_ASSIGN_OR_RETURN(const uint64_t sequence,
                            keys::ParseLogSequence(it_->key(), prefix_.size()));
      Found found{sequence, std::string(it_->value())};
      it_->Next();
      return std::optional<Found>(std::move(found));
    }
    CKPT_ASSIGN_OR_RETURN(auto entry, view_.Floor(Cf::kLogs, prefix_, Key(next_)));
    if (!entry.has_value()) {
      done_ = true;
      return std::optional<Found>();
    }
    CKPT_ASSIGN_OR_RETURN(const uint64_t sequence,
                          keys::ParseLogSequence(entry->first, prefix_.size()));
    done_ = sequence == 0;
    next_ = sequence - 1;
    return std::optional<Found>(Found{sequence, std::move(entry->second)});
  }

 private:
  std::string Key(uint64_t sequence) const {
    std::string key = prefix_;
    keys::AppendBigEndian64(&key, sequence);
    return key;
  }

  const StoreReader& view_;
  const std::string prefix_;
  const bool newest_first_;
  uint64_t next_ = 0;  // newest first: the greatest sequence still to look at
  bool done_ = false;
  std::unique_ptr<StoreIterator> it_;  // oldest first
};

absl::StatusOr<std::optional<uint64_t>> ParsePageToken(absl::string_view token) {
  if (token.empty()) return std::optional<uint64_t>();
  uint64_t sequence = 0;
  if (!absl::SimpleAtoi(token, &sequence)) {
    return absl::InvalidArgumentError("page_token: not a token this server issued");
  }
  return std::optional<uint64_t>(sequence);
}

absl::StatusOr<storage::v1::LogStatsRecord> ReadStats(const StoreReader& view,
                                                      const std::string& key) {
  storage::v1::LogStatsRecord stats;
  CKPT_ASSIGN_OR_RETURN(std::optional<std::string> bytes, view.Get(Cf::kLogs, key));
  if (bytes.has_value()) CKPT_RETURN_IF_ERROR(ParseStored(*bytes, &stats, "log counts"));
  return stats;
}

bool Wanted(const storage::v1::LogRecord& record, const v1::ListLogsRequest& r,
            absl::string_view step) {
  if (!r.has_key() && !step.empty() && record.step() != step) return false;
  if (!r.worker_id().empty() && record.worker_id() != r.worker_id()) return false;
  return record.level() >= r.min_level();
}

absl::Status ToLogLine(uint64_t sequence, const storage::v1::LogRecord& record, v1::LogLine* line) {
  line->set_sequence(sequence);
  v1::LogEntry* entry = line->mutable_entry();
  *entry->mutable_time() = ToProtoTime(absl::FromUnixMicros(record.time_micros()));
  entry->set_level(record.level());
  entry->set_logger(record.logger());
  entry->set_message(record.message());
  line->set_step(record.step());
  line->set_worker_id(record.worker_id());
  if (!record.item_key().empty()) {
    CKPT_ASSIGN_OR_RETURN(*line->mutable_key(), keys::ParseStoredItemKey(record.item_key()));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ListLogEntries(const StoreReader& view, const v1::ListLogsRequest& r,
                            absl::string_view step, v1::ListLogsResponse* out) {
  CKPT_ASSIGN_OR_RETURN(const std::optional<uint64_t> after, ParsePageToken(r.page_token()));
  const uint32_t limit = r.limit() > 0 ? r.limit() : kDefaultListLogs;
  const std::string item_key = r.has_key() ? keys::EncodeItemKey(r.key()) : "";
  CKPT_ASSIGN_OR_RETURN(const storage::v1::LogStatsRecord job,
                        ReadStats(view, keys::JobLogStats(r.job_id())));
  const uint64_t newest = job.next_sequence() > 0 ? job.next_sequence() - 1 : 0;
  if (r.has_key()) {
    CKPT_ASSIGN_OR_RETURN(const storage::v1::LogStatsRecord item,
                          ReadStats(view, keys::ItemLogStats(r.job_id(), step, item_key)));
    out->set_dropped(item.dropped());
  } else {
    out->set_dropped(job.dropped());
  }
  SequenceWalker walker(view,
                        r.has_key() ? keys::ItemLogPrefix(r.job_id(), step, item_key)
                                    : keys::LogEntryPrefix(r.job_id()),
                        r.newest_first(), after);
  uint64_t examined = 0;
  std::optional<uint64_t> last;
  bool at_end = false;
  for (;;) {
    if (static_cast<uint32_t>(out->entries_size()) == limit || examined == kMaxLogEntriesExamined) {
      CKPT_ASSIGN_OR_RETURN(std::optional<Found> more, walker.Next());  // is there a next page?
      at_end = !more.has_value();
      break;
    }
    CKPT_ASSIGN_OR_RETURN(std::optional<Found> found, walker.Next());
    if (!found.has_value()) {
      at_end = true;
      break;
    }
    ++examined;
    last = found->sequence;
    storage::v1::LogRecord record;
    if (r.has_key()) {  // the index points to the record
      CKPT_ASSIGN_OR_RETURN(std::optional<std::string> bytes,
                            view.Get(Cf::kLogs, keys::LogEntry(r.job_id(), found->sequence)));
      if (!bytes.has_value()) return absl::DataLossError("item log index names a missing entry");
      found->value = std::move(*bytes);
    }
    CKPT_RETURN_IF_ERROR(ParseStored(found->value, &record, "log"));
    if (Wanted(record, r, step)) {
      CKPT_RETURN_IF_ERROR(ToLogLine(found->sequence, record, out->add_entries()));
    }
  }
  if (!at_end && last.has_value()) out->set_next_page_token(absl::StrCat(*last));
  // Oldest first and stopped early: the next entry to follow is after the last one
  // looked at. Otherwise everything up to the newest entry was looked at, or (newest
  // first) lies below what was.
  const uint64_t follow = !r.newest_first() && !at_end && last.has_value() ? *last : newest;
  out->set_follow_token(absl::StrCat(std::max(follow, r.newest_first() ? 0 : after.value_or(0))));
  return absl::OkStatus();
}

}  // namespace ckpt
