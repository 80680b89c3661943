// The job state machine of docs/api.md ("Job states"), as one table.
#ifndef CKPT_SERVICE_ENGINE_JOB_STATE_MACHINE_H_
#define CKPT_SERVICE_ENGINE_JOB_STATE_MACHINE_H_

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "ckpt/v1/checkpoint.pb.h"

namespace ckpt {

// "RUNNING" for JOB_STATUS_RUNNING, etc.
absl::string_view JobStatusName(v1::JobStatus status);

// True for COMPLETED and FAILED.
bool IsFinished(v1::JobStatus status);

// Whether `from` -> `to` is a legal transition:
//   RUNNING <-> PAUSED; RUNNING|PAUSED -> STOPPED, COMPLETED, FAILED; FAILED -> RUNNING
//   (ResumeJob of a failed run); any -> RUNNING by a reset (`by_reset`). A transition
//   to the same state is legal (the calls are idempotent). Whether a FAILED job may
//   resume also depends on its items (Engine::DoTransition).
// FAILED_PRECONDITION naming the job, from and to otherwise.
absl::Status CheckTransition(absl::string_view job_id, v1::JobStatus from, v1::JobStatus to,
                             bool by_reset = false);

}  // namespace ckpt

#endif  // CKPT_SERVICE_ENGINE_JOB_STATE_MACHINE_H_
