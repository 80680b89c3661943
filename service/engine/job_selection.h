// Which jobs a DeleteJobs call selects (docs/api.md, "Retention": DeleteJobs), and in
// which order: oldest finish_time first (a job that has not finished, first of all),
// then by job_id. The caller reads the jobs (published snapshots, or the writer's
// records); this decides. Pure functions and a copyable filter: thread-compatible.
#ifndef CKPT_SERVICE_ENGINE_JOB_SELECTION_H_
#define CKPT_SERVICE_ENGINE_JOB_SELECTION_H_

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "ckpt/v1/checkpoint.pb.h"

namespace ckpt {

// Jobs a DeleteJobs call lists and deletes when it asks for 0.
inline constexpr uint32_t kDefaultDeleteJobsLimit = 100;

// The filter of a DeleteJobsRequest, within a caller's scope.
class JobFilter {
 public:
  // REQUIRES: `request` passed ValidateRequest. `scope_prefix`: the caller may see only
  // jobs whose id starts with it (a confined principal's prefix; "" for every job).
  JobFilter(const v1::DeleteJobsRequest& request, absl::string_view scope_prefix);

  // Whether the filter selects `job` as it is now.
  bool Matches(const v1::Job& job) const;

 private:
  std::vector<v1::JobStatus> statuses_;  // never empty
  std::optional<absl::Time> finished_before_;
  std::vector<std::pair<std::string, std::string>> labels_;
  std::string job_id_prefix_;
  std::string scope_prefix_;
};

// A job's place in the order.
struct JobPosition {
  int64_t finish_micros = 0;  // 0 for a job that has not finished
  std::string job_id;

  static JobPosition Of(const v1::Job& job);
  static JobPosition Of(const v1::DeletedJob& job);
  bool operator<(const JobPosition& other) const {
    return finish_micros != other.finish_micros ? finish_micros < other.finish_micros
                                                : job_id < other.job_id;
  }
};

// One page of the jobs a filter selects.
struct JobSelection {
  std::vector<const v1::Job*> jobs;  // in order, at most the limit; point into the input
  uint64_t matched = 0;              // every job the filter selects, on any page
  std::string next_page_token;       // set when more come after this page
};

// The page token that resumes after `last`, and back: INVALID_ARGUMENT for a token this
// code did not make; nullopt for "" (from the start).
std::string DeletePageToken(const JobPosition& last);
absl::StatusOr<std::optional<JobPosition>> ParseDeletePageToken(absl::string_view token);

// Selects the page of `jobs` that the request asks for (its filter, page token and
// limit) within `scope_prefix`. O(jobs + page log page). INVALID_ARGUMENT for a page
// token this code did not make.
absl::StatusOr<JobSelection> SelectJobs(const std::vector<const v1::Job*>& jobs,
                                        const v1::DeleteJobsRequest& request,
                                        absl::string_view scope_prefix);

// The job as a DeleteJobs answer lists it.
v1::DeletedJob DeletedJobOf(const v1::Job& job);

}  // namespace ckpt

#endif  // CKPT_SERVICE_ENGINE_JOB_SELECTION_H_
