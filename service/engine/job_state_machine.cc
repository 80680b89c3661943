#include "service/engine/job_state_machine.h"

#include "absl/strings/str_cat.h"

namespace ckpt {

absl::string_view JobStatusName(v1::JobStatus status) {
  switch (status) {
    case v1::JOB_STATUS_RUNNING:
      return "RUNNING";
    case v1::JOB_STATUS_PAUSED:
      return "PAUSED";
    case v1::JOB_STATUS_STOPPED:
      return "STOPPED";
    case v1::JOB_STATUS_COMPLETED:
      return "COMPLETED";
    case v1::JOB_STATUS_FAILED:
      return "FAILED";
    default:
      return "UNSPECIFIED";
  }
}

bool IsFinished(v1::JobStatus status) {
  return status == v1::JOB_STATUS_COMPLETED || status == v1::JOB_STATUS_FAILED;
}

absl::Status CheckTransition(absl::string_view job_id, v1::JobStatus from, v1::JobStatus to,
                             bool by_reset) {
  using v1::JobStatus;
  bool legal = false;
  if (by_reset) {
    legal = to == v1::JOB_STATUS_RUNNING;
  } else if (from == v1::JOB_STATUS_RUNNING || from == v1::JOB_STATUS_PAUSED) {
    legal = to != v1::JOB_STATUS_UNSPECIFIED;
  } else if (from == to) {
    legal = true;  // STOPPED, COMPLETED, FAILED: repeating the call is a no-op
  } else if (from == v1::JOB_STATUS_FAILED && to == v1::JOB_STATUS_RUNNING) {
    legal = true;  // ResumeJob of a failed run, keeping everything
  }
  if (legal) return absl::OkStatus();
  std::string hint;
  if (from == v1::JOB_STATUS_STOPPED) {
    hint = "; a stopped job cannot run again: ResetJob to start it over";
  } else if (IsFinished(from)) {
    hint = from == v1::JOB_STATUS_FAILED
               ? "; ResumeJob runs it again, ResetItems retries some items, ResetJob starts it over"
               : "; ResetJob, or ResetItems to retry some items";
  }
  return absl::FailedPreconditionError(absl::StrCat("job \"", job_id, "\" is ", JobStatusName(from),
                                                    ": ", JobStatusName(from), " -> ",
                                                    JobStatusName(to), " is not allowed", hint));
}

}  // namespace ckpt
