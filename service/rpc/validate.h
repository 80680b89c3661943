// Request validation at the RPC edge: every limit stated in
// proto/ckpt/v1/checkpoint.proto, checked before a request reaches the engine, so the
// engine may assume well-formed input.
//
// Each function returns OK or INVALID_ARGUMENT; nothing else. The message starts with the
// field path (indices for repeated fields), says what is wrong and names the limit, and
// the ckptd flag when a flag sets it:
//   "job_id: must be 1..128 characters of [A-Za-z0-9._:-], got 130 characters"
//   "items[3].result.payload: 70000 bytes exceeds the limit of 65536
//   (--max_payload_bytes)" "items[5].key: repeats items[2].key"
// The first problem found is reported. Checks are stateless: whether a job, step, item
// or worker exists, and limits on a job's totals (e.g. labels after an UpdateJob), are
// the engine's to check.
//
// Thread-safe: pure functions.
#ifndef CKPT_SERVICE_RPC_VALIDATE_H_
#define CKPT_SERVICE_RPC_VALIDATE_H_

#include <cstddef>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "ckpt/v1/checkpoint.pb.h"
#include "service/common/api_limits.h"

namespace ckpt {

// Server limits (flags of ckptd), with the API's defaults.
struct Limits {
  size_t max_key_bytes = 1024;                                // item names, output paths
  size_t max_payload_bytes = 64 << 10;                        // ItemResult.payload
  size_t max_cursor_bytes = 64 << 10;                         // HeldLease.cursor
  size_t max_state_bytes = 4 << 20;                           // State value
  size_t max_batch = 8192;                                    // entries per batch RPC
  size_t max_log_message_bytes = kDefaultMaxLogMessageBytes;  // LogEntry.message
};

// One overload per request message of ckpt.v1.Checkpoint.
absl::Status ValidateRequest(const v1::CreateJobRequest& r, const Limits& limits);
absl::Status ValidateRequest(const v1::GetJobRequest& r, const Limits& limits);
absl::Status ValidateRequest(const v1::ListJobsRequest& r, const Limits& limits);
absl::Status ValidateRequest(const v1::UpdateJobRequest& r, const Limits& limits);
absl::Status ValidateRequest(const v1::PauseJobRequest& r, const Limits& limits);
absl::Status ValidateRequest(const v1::ResumeJobRequest& r, const Limits& limits);
absl::Status ValidateRequest(const v1::StopJobRequest& r, const Limits& limits);
absl::Status ValidateRequest(const v1::FinishJobRequest& r, const Limits& limits);
absl::Status ValidateRequest(const v1::ResetJobRequest& r, const Limits& limits);
absl::Status ValidateRequest(const v1::DeleteJobRequest& r, const Limits& limits);
absl::Status ValidateRequest(const v1::AddItemsRequest& r, const Limits& limits);
absl::Status ValidateRequest(const v1::LeaseItemsRequest& r, const Limits& limits);
absl::Status ValidateRequest(const v1::CompleteItemsRequest& r, const Limits& limits);
absl::Status ValidateRequest(const v1::FailItemsRequest& r, const Limits& limits);
absl::Status ValidateRequest(const v1::GetItemRequest& r, const Limits& limits);
absl::Status ValidateRequest(const v1::ListItemsRequest& r, const Limits& limits);
absl::Status ValidateRequest(const v1::ResetItemsRequest& r, const Limits& limits);
absl::Status ValidateRequest(const v1::FindOutputRequest& r, const Limits& limits);
absl::Status ValidateRequest(const v1::RegisterWorkerRequest& r, const Limits& limits);
absl::Status ValidateRequest(const v1::HeartbeatRequest& r, const Limits& limits);
absl::Status ValidateRequest(const v1::ListWorkersRequest& r, const Limits& limits);
absl::Status ValidateRequest(const v1::UnregisterWorkerRequest& r, const Limits& limits);
absl::Status ValidateRequest(const v1::PutStateRequest& r, const Limits& limits);
absl::Status ValidateRequest(const v1::GetStateRequest& r, const Limits& limits);
absl::Status ValidateRequest(const v1::ListStatesRequest& r, const Limits& limits);
absl::Status ValidateRequest(const v1::WatchJobRequest& r, const Limits& limits);
absl::Status ValidateRequest(const v1::WriteLogsRequest& r, const Limits& limits);
absl::Status ValidateRequest(const v1::ListLogsRequest& r, const Limits& limits);
absl::Status ValidateRequest(const v1::BackupStoreRequest& r, const Limits& limits);
absl::Status ValidateRequest(const v1::DeleteJobsRequest& r, const Limits& limits);

// Building blocks, for other callers (client-side checks, tools). `field` is the path
// that starts the error message.

// 1..128 characters of [A-Za-z0-9._:-]. CreateJob's "empty: generate one" is checked by
// its caller.
absl::Status ValidateJobId(absl::string_view field, absl::string_view job_id);

// A step name as CreateJob.steps defines it: 1..64 characters of [A-Za-z0-9._:-]. The
// requests whose proto allows an empty step ("the job's first step") skip this when the
// step is empty.
absl::Status ValidateStepName(absl::string_view field, absl::string_view step);

// A job's retention: 0 (none) or 1 s..kMaxRetentionDays days.
absl::Status ValidateRetention(absl::string_view field,
                               const google::protobuf::Duration& retention);

// Exactly one of index (< 2^63) or name (1..max_key_bytes bytes, no NUL) set.
absl::Status ValidateItemKey(absl::string_view field, const v1::ItemKey& key, const Limits& limits);

}  // namespace ckpt

#endif  // CKPT_SERVICE_RPC_VALIDATE_H_
