// The engine's recurring error answers, worded once. Internal to the engine.
#ifndef CKPT_SERVICE_ENGINE_ERRORS_H_
#define CKPT_SERVICE_ENGINE_ERRORS_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "service/engine/runtime.h"
#include "service/store/keys.h"

namespace ckpt {

// NOT_FOUND: job "J" not found.
inline absl::Status JobNotFound(absl::string_view job_id) {
  return absl::NotFoundError(absl::StrCat("job \"", job_id, "\" not found"));
}

// INVALID_ARGUMENT naming the step and listing the job's steps, so the caller can fix
// the request: step: job "J" has no step "S" (its steps: a, b).
template <typename StepNames>
absl::Status UnknownStep(absl::string_view job_id, absl::string_view step, const StepNames& steps) {
  return absl::InvalidArgumentError(absl::StrCat("step: job \"", job_id, "\" has no step \"", step,
                                                 "\" (its steps: ", absl::StrJoin(steps, ", "),
                                                 ")"));
}

// NOT_FOUND: `field`: the item is not registered in the step of the job (AddItems first).
inline absl::Status NotRegistered(absl::string_view field, const std::string& key,
                                  const JobRuntime& job, int step) {
  return absl::NotFoundError(absl::StrCat(field, ": ", keys::DescribeItemKey(key),
                                          " is not registered in step \"", job.steps[step].name,
                                          "\" of job \"", job.id(), "\" (AddItems first)"));
}

// The state an item in `place` shows, for messages.
inline const char* PlaceName(ItemPlace place) {
  switch (place) {
    case ItemPlace::kLeased:
      return "LEASED";
    case ItemPlace::kFailed:
      return "FAILED";
    case ItemPlace::kCompleted:
      return "COMPLETED";
    default:
      return "PENDING";
  }
}

}  // namespace ckpt

#endif  // CKPT_SERVICE_ENGINE_ERRORS_H_
