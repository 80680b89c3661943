// What the engine reports about its own work, for metrics, without knowing about
// Prometheus: the server passes an EngineObserver in EngineOptions and turns the reports
// into histograms and counters.
#ifndef CKPT_SERVICE_ENGINE_ENGINE_OBSERVER_H_
#define CKPT_SERVICE_ENGINE_ENGINE_OBSERVER_H_

#include <cstddef>
#include <cstdint>

#include "absl/time/time.h"

namespace ckpt {

// One group commit: the ops the writer decided together and the batch it wrote.
struct GroupCommitStats {
  size_t ops = 0;          // ops decided (lease expiry counts as one)
  size_t batch_bytes = 0;  // bytes of the WriteBatch; 0 when nothing was written
  // Time in Store::Write (the WAL write and its sync), measured on a monotonic clock;
  // zero when nothing was written.
  absl::Duration write_time;
  bool write_failed = false;  // the write failed: every op got its error
  // Items that moved in this group (all zero when the write failed).
  uint64_t items_completed = 0;  // became COMPLETED
  uint64_t items_failed = 0;     // became FAILED
  uint64_t items_leased = 0;     // granted a lease (worker leases and claims)
  // Jobs deleted in this group (zero when the write failed): by the retention sweep,
  // and by DeleteJob or DeleteJobs.
  uint64_t jobs_expired = 0;
  uint64_t jobs_deleted = 0;
};

// Thread-safety: OnGroupCommitted runs on the engine's writer thread after every group
// that decided at least one op, before the ops are answered. Everything waits for it:
// it must be cheap and must not block (atomics; no locks, no allocation, no I/O).
class EngineObserver {
 public:
  virtual ~EngineObserver() = default;
  virtual void OnGroupCommitted(const GroupCommitStats& stats) = 0;
};

}  // namespace ckpt

#endif  // CKPT_SERVICE_ENGINE_ENGINE_OBSERVER_H_
