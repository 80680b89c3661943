// Rebuilding one job's in-memory state (runtime.h) from the store, as at start-up and
// after a failed write. Internal to the engine.
#ifndef CKPT_SERVICE_ENGINE_JOB_LOADER_H_
#define CKPT_SERVICE_ENGINE_JOB_LOADER_H_

#include <memory>
#include <set>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "ckpt/storage/v1/records.pb.h"
#include "service/engine/runtime.h"
#include "service/store/keys.h"
#include "service/store/store.h"

namespace ckpt {

// Not thread-safe: used by the engine's writer (or by Engine::Open before it starts).
class JobLoader {
 public:
  // Live grants, and live leases with records of their own, are added to `expiry`
  // with a full lease timeout of grace from `now`. `store` and `expiry` must outlive the loader.
  JobLoader(const StoreReader* store, absl::Time now, std::set<ExpiryKey, ExpiryOrder>* expiry)
      : store_(store), now_(now), expiry_(expiry) {}

  // The job of `record` with its steps' scheduling state, error groups, workers and
  // recent completions.
  // DATA_LOSS when a record or key is corrupt or contradicts another.
  absl::StatusOr<std::unique_ptr<JobRuntime>> Load(const storage::v1::JobRecord& record);

 private:
  absl::Status LoadSchedRecord(JobRuntime& job, const keys::SchedKey& key, absl::string_view value);
  absl::Status LoadGrant(JobRuntime& job, int step, uint64_t grant_id, absl::string_view value);
  absl::Status LoadLease(JobRuntime& job, int step, std::string key, LeaseInfo lease);
  absl::Status LoadWorkers(JobRuntime& job);
  // A lease found live gets a full lease timeout of grace from now (a restart is not
  // its holder's silence), capped by the job's max_run_time from when it was granted.
  absl::Time Deadline(const JobRuntime& job, absl::Time granted) const;

  const StoreReader* const store_;
  const absl::Time now_;
  std::set<ExpiryKey, ExpiryOrder>* const expiry_;
};

}  // namespace ckpt

#endif  // CKPT_SERVICE_ENGINE_JOB_LOADER_H_
