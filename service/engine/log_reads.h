// Reading a job's logs (the logs family, STORAGE_FORMAT.md) at one view of the store,
// for ListLogs. Internal to the engine: Engine::ListLogs resolves the job and step.
#ifndef CKPT_SERVICE_ENGINE_LOG_READS_H_
#define CKPT_SERVICE_ENGINE_LOG_READS_H_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "ckpt/v1/checkpoint.pb.h"
#include "service/store/store.h"

namespace ckpt {

// Entries one ListLogs call looks at, at most, whatever its filters skip.
inline constexpr uint64_t kMaxLogEntriesExamined = 10000;

// One page of `r` at `view`. `step` is the resolved step: the item's with r.key, else
// r.step() (empty: every step's and the job's own entries). An item's entries are read
// through its index; the job's in sequence order. O(entries examined), at most
// kMaxLogEntriesExamined. INVALID_ARGUMENT for a page token this server did not issue;
// DATA_LOSS for a corrupt record.
absl::Status ListLogEntries(const StoreReader& view, const v1::ListLogsRequest& r,
                            absl::string_view step, v1::ListLogsResponse* out);

}  // namespace ckpt

#endif  // CKPT_SERVICE_ENGINE_LOG_READS_H_
