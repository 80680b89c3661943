// The finished jobs that carry a retention (Job.retention), ordered by when it runs out
// (finish_time + retention), so the writer finds the expired ones without looking at any
// other job: O(log jobs) per change, O(expired) per look.
//
// Writer thread only, like the rest of the engine's memory (runtime.h): no lock.
#ifndef CKPT_SERVICE_ENGINE_RETENTION_INDEX_H_
#define CKPT_SERVICE_ENGINE_RETENTION_INDEX_H_

#include <cstddef>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "ckpt/v1/checkpoint.pb.h"

namespace ckpt {

// Jobs' retention after they finish (docs/api.md, "Retention"), as ckptd's flags set it.
struct RetentionOptions {
  // The retention of a job created without one (CreateJobRequest.retention unset).
  // Zero: none, such a job is kept until deleted.
  absl::Duration default_retention = absl::ZeroDuration();
  // How often the engine's writer deletes the finished jobs whose retention has run out
  // (the clock's time): a few per group commit, until none is left. InfiniteDuration:
  // never by itself (Engine::SweepExpiredJobs still does).
  absl::Duration sweep_interval = absl::Minutes(1);
};

// When `job` expires: finish_time + retention for a COMPLETED, FAILED or STOPPED job
// that has both; nullopt for any other (kept until deleted).
std::optional<absl::Time> RetentionExpiry(const v1::Job& job);

class RetentionIndex {
 public:
  // Files the job under `expiry`, replacing what it had; nullopt takes it out.
  void Set(absl::string_view job_id, std::optional<absl::Time> expiry);
  void Remove(absl::string_view job_id) { Set(job_id, std::nullopt); }
  void Clear();

  // Up to `max` jobs whose expiry is at or before `now`, soonest first (then by id).
  std::vector<std::string> Expired(absl::Time now, size_t max) const;
  bool HasExpired(absl::Time now) const;
  // The job's expiry, or nullopt if it is not filed.
  std::optional<absl::Time> ExpiryOf(absl::string_view job_id) const;
  size_t size() const { return expiry_of_.size(); }

 private:
  std::set<std::pair<absl::Time, std::string>> by_expiry_;
  absl::flat_hash_map<std::string, absl::Time> expiry_of_;
};

}  // namespace ckpt

#endif  // CKPT_SERVICE_ENGINE_RETENTION_INDEX_H_
