#include "service/rpc/fanout.h"

#include <algorithm>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "service/common/proto_time.h"
#include "service/engine/engine.h"

namespace ckpt {
namespace {

constexpr uint32_t kDefaultListJobs = 50;  // as the engine's

}  // namespace

v1::ListJobsResponse MergeListJobs(const v1::ListJobsRequest& request,
                                   std::vector<v1::ListJobsResponse> parts) {
  if (parts.size() == 1) return std::move(parts.front());
  std::vector<v1::Job> rows;
  bool more = false;
  for (v1::ListJobsResponse& part : parts) {
    more = more || !part.next_page_token().empty();
    for (v1::Job& job : *part.mutable_jobs()) rows.push_back(std::move(job));
  }
  std::sort(rows.begin(), rows.end(), &ListsBefore);
  const size_t limit = request.limit() > 0 ? request.limit() : kDefaultListJobs;
  v1::ListJobsResponse out;
  for (size_t i = 0; i < rows.size() && i < limit; ++i) *out.add_jobs() = std::move(rows[i]);
  if ((more || rows.size() > limit) && out.jobs_size() > 0) {
    out.set_next_page_token(JobPageToken(out.jobs(out.jobs_size() - 1)));
  }
  return out;
}

v1::DeleteJobsResponse MergeDeleteJobs(const v1::DeleteJobsRequest& request,
                                       std::vector<v1::DeleteJobsResponse> parts) {
  if (parts.size() == 1) return std::move(parts.front());
  v1::DeleteJobsResponse out;
  std::vector<v1::DeletedJob> rows;
  std::optional<JobPosition> resume;  // a delete's: the earliest token of a part
  bool more = false;
  for (v1::DeleteJobsResponse& part : parts) {
    out.set_matched(out.matched() + part.matched());
    for (v1::DeletedJob& job : *part.mutable_jobs()) rows.push_back(std::move(job));
    if (part.next_page_token().empty()) continue;
    more = true;
    // The engines made these tokens; one that does not parse cannot come back.
    auto position = ParseDeletePageToken(part.next_page_token());
    if (position.ok() && position->has_value() && (!resume || **position < *resume)) {
      resume = **position;
    }
  }
  std::sort(rows.begin(), rows.end(), [](const v1::DeletedJob& a, const v1::DeletedJob& b) {
    return JobPosition::Of(a) < JobPosition::Of(b);
  });
  const size_t limit = request.limit() > 0 ? request.limit() : kDefaultDeleteJobsLimit;
  if (request.dry_run() && rows.size() > limit) {
    rows.resize(limit);
    more = true;
  }
  for (v1::DeletedJob& job : rows) *out.add_jobs() = std::move(job);
  if (!more) return out;
  if (request.dry_run() && out.jobs_size() > 0) {
    out.set_next_page_token(DeletePageToken(JobPosition::Of(out.jobs(out.jobs_size() - 1))));
  } else if (!request.dry_run() && resume) {
    out.set_next_page_token(DeletePageToken(*resume));
  }
  return out;
}

absl::StatusOr<v1::DeleteJobsResponse> MergeDeleteJobsParts(
    const v1::DeleteJobsRequest& request,
    std::vector<absl::StatusOr<v1::DeleteJobsResponse>> parts) {
  std::vector<v1::DeleteJobsResponse> answered;
  std::optional<absl::Status> failed;
  int deleted = 0;
  for (absl::StatusOr<v1::DeleteJobsResponse>& part : parts) {
    if (!part.ok()) {
      if (!failed) failed = part.status();
      continue;
    }
    if (!request.dry_run()) deleted += part->jobs_size();
    answered.push_back(std::move(*part));
  }
  if (!failed) return MergeDeleteJobs(request, std::move(answered));
  if (deleted == 0) return *failed;
  return absl::Status(failed->code(), absl::StrCat("DeleteJobs deleted ", deleted,
                                                   " jobs on other shards, then a shard "
                                                   "answered: ",
                                                   failed->message()));
}

uint32_t ShardDeleteLimit(const v1::DeleteJobsRequest& request, int shards) {
  const uint32_t limit = request.limit() > 0 ? request.limit() : kDefaultDeleteJobsLimit;
  if (request.dry_run() || shards <= 1) return limit;
  const uint32_t n = static_cast<uint32_t>(shards);
  return (limit + n - 1) / n;
}

absl::StatusOr<v1::FindOutputResponse> MergeFindOutput(
    std::vector<absl::StatusOr<v1::FindOutputResponse>> parts) {
  const v1::FindOutputResponse* best = nullptr;
  const absl::Status* not_found = nullptr;
  for (const auto& part : parts) {
    if (!part.ok()) {
      if (!absl::IsNotFound(part.status())) return part.status();
      if (not_found == nullptr) not_found = &part.status();
      continue;
    }
    if (best == nullptr) {
      best = &*part;
      continue;
    }
    const absl::Time a = FromProtoTime(part->item().update_time());
    const absl::Time b = FromProtoTime(best->item().update_time());
    if (a > b || (a == b && part->job_id() < best->job_id())) best = &*part;
  }
  if (best != nullptr) return *best;
  if (not_found != nullptr) return *not_found;
  return absl::NotFoundError("no shard answered");
}

}  // namespace ckpt
