#include "service/engine/retention_index.h"

#include "service/common/proto_time.h"

namespace ckpt {

std::optional<absl::Time> RetentionExpiry(const v1::Job& job) {
  switch (job.status()) {
    case v1::JOB_STATUS_COMPLETED:
    case v1::JOB_STATUS_FAILED:
    case v1::JOB_STATUS_STOPPED:
      break;
    default:
      return std::nullopt;
  }
  if (!job.has_finish_time() || !job.has_retention()) return std::nullopt;
  const absl::Duration retention = FromProtoDuration(job.retention());
  if (retention <= absl::ZeroDuration()) return std::nullopt;
  return FromProtoTime(job.finish_time()) + retention;
}

void RetentionIndex::Set(absl::string_view job_id, std::optional<absl::Time> expiry) {
  auto it = expiry_of_.find(job_id);
  if (it != expiry_of_.end()) {
    if (expiry.has_value() && it->second == *expiry) return;
    by_expiry_.erase({it->second, it->first});
    if (!expiry.has_value()) {
      expiry_of_.erase(it);
      return;
    }
    it->second = *expiry;
    by_expiry_.emplace(*expiry, it->first);
    return;
  }
  if (!expiry.has_value()) return;
  expiry_of_.emplace(job_id, *expiry);
  by_expiry_.emplace(*expiry, std::string(job_id));
}

void RetentionIndex::Clear() {
  by_expiry_.clear();
  expiry_of_.clear();
}

std::vector<std::string> RetentionIndex::Expired(absl::Time now, size_t max) const {
  std::vector<std::string> out;
  for (auto it = by_expiry_.begin(); it != by_expiry_.end() && out.size() < max; ++it) {
    if (it->first > now) break;
    out.push_back(it->second);
  }
  return out;
}

bool RetentionIndex::HasExpired(absl::Time now) const {
  return !by_expiry_.empty() && by_expiry_.begin()->first <= now;
}

std::optional<absl::Time> RetentionIndex::ExpiryOf(absl::string_view job_id) const {
  auto it = expiry_of_.find(job_id);
  if (it == expiry_of_.end()) return std::nullopt;
  return it->second;
}

}  // namespace ckpt
