#include "service/engine/job_selection.h"

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "service/common/proto_time.h"

namespace ckpt {

std::string DeletePageToken(const JobPosition& position) {
  return absl::StrCat(position.finish_micros, ":", position.job_id);
}

absl::StatusOr<std::optional<JobPosition>> ParseDeletePageToken(absl::string_view token) {
  if (token.empty()) return std::optional<JobPosition>();
  std::vector<absl::string_view> parts = absl::StrSplit(token, absl::MaxSplits(':', 1));
  JobPosition position;
  if (parts.size() != 2 || !absl::SimpleAtoi(parts[0], &position.finish_micros)) {
    return absl::InvalidArgumentError("page_token: not a token this server issued");
  }
  position.job_id = std::string(parts[1]);
  return std::optional<JobPosition>(std::move(position));
}

JobFilter::JobFilter(const v1::DeleteJobsRequest& request, absl::string_view scope_prefix)
    : job_id_prefix_(request.job_id_prefix()), scope_prefix_(scope_prefix) {
  for (int status : request.statuses()) statuses_.push_back(static_cast<v1::JobStatus>(status));
  if (statuses_.empty()) {
    statuses_ = {v1::JOB_STATUS_COMPLETED, v1::JOB_STATUS_FAILED, v1::JOB_STATUS_STOPPED};
  }
  if (request.has_finished_before()) finished_before_ = FromProtoTime(request.finished_before());
  labels_.assign(request.labels().begin(), request.labels().end());
}

bool JobFilter::Matches(const v1::Job& job) const {
  if (!absl::StartsWith(job.job_id(), scope_prefix_) ||
      !absl::StartsWith(job.job_id(), job_id_prefix_)) {
    return false;
  }
  if (std::find(statuses_.begin(), statuses_.end(), job.status()) == statuses_.end()) {
    return false;
  }
  if (finished_before_.has_value() &&
      (!job.has_finish_time() || FromProtoTime(job.finish_time()) >= *finished_before_)) {
    return false;
  }
  for (const auto& [key, value] : labels_) {
    auto it = job.labels().find(key);
    if (it == job.labels().end() || it->second != value) return false;
  }
  return true;
}

JobPosition JobPosition::Of(const v1::Job& job) {
  JobPosition position;
  if (job.has_finish_time()) {
    position.finish_micros = absl::ToUnixMicros(FromProtoTime(job.finish_time()));
  }
  position.job_id = job.job_id();
  return position;
}

JobPosition JobPosition::Of(const v1::DeletedJob& job) {
  JobPosition position;
  if (job.has_finish_time()) {
    position.finish_micros = absl::ToUnixMicros(FromProtoTime(job.finish_time()));
  }
  position.job_id = job.job_id();
  return position;
}

absl::StatusOr<JobSelection> SelectJobs(const std::vector<const v1::Job*>& jobs,
                                        const v1::DeleteJobsRequest& request,
                                        absl::string_view scope_prefix) {
  absl::StatusOr<std::optional<JobPosition>> after = ParseDeletePageToken(request.page_token());
  if (!after.ok()) return after.status();
  const JobFilter filter(request, scope_prefix);
  JobSelection selection;
  std::vector<std::pair<JobPosition, const v1::Job*>> rows;
  for (const v1::Job* job : jobs) {
    if (!filter.Matches(*job)) continue;
    ++selection.matched;
    JobPosition position = JobPosition::Of(*job);
    if (after->has_value() && !(**after < position)) continue;
    rows.emplace_back(std::move(position), job);
  }
  const size_t limit = request.limit() > 0 ? request.limit() : kDefaultDeleteJobsLimit;
  auto by_position = [](const auto& a, const auto& b) { return a.first < b.first; };
  const size_t page = std::min(limit, rows.size());
  std::partial_sort(rows.begin(), rows.begin() + page, rows.end(), by_position);
  for (size_t i = 0; i < page; ++i) selection.jobs.push_back(rows[i].second);
  if (rows.size() > page) selection.next_page_token = DeletePageToken(rows[page - 1].first);
  return selection;
}

v1::DeletedJob DeletedJobOf(const v1::Job& job) {
  v1::DeletedJob deleted;
  deleted.set_job_id(job.job_id());
  deleted.set_status(job.status());
  if (job.has_finish_time()) *deleted.mutable_finish_time() = job.finish_time();
  return deleted;
}

}  // namespace ckpt
