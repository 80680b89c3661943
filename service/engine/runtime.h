// The engine's in-memory state of each job: the scheduling structures that let it
// lease, complete and count without scanning items. It mirrors the sched column family
// exactly (STORAGE_FORMAT.md) and is rebuilt from it at start-up.
//
// Owned and touched only by the engine's writer thread, so it needs no lock. Readers
// see JobSnapshot, published after each commit.
#ifndef CKPT_SERVICE_ENGINE_RUNTIME_H_
#define CKPT_SERVICE_ENGINE_RUNTIME_H_

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/time/time.h"
#include "ckpt/storage/v1/records.pb.h"
#include "ckpt/v1/checkpoint.pb.h"
#include "service/engine/interval_set.h"
#include "service/engine/log_book.h"
#include "service/engine/progress.h"

namespace ckpt {

// A live lease (an entry of a sched 'G' record, or a schema-1 'L' record, plus its
// expiry, which is not persisted: after a restart every lease gets a fresh
// lease_timeout of grace).
struct LeaseInfo {
  std::string worker_id;  // empty for a record-mode claim
  uint64_t token = 0;
  uint32_t attempts = 0;  // before this grant
  std::string cursor;
  absl::Time granted;
  // Heartbeat expiry of a lease with its own 'L' record. A grant's leases expire
  // together at LeaseGrant::deadline, and this is not kept.
  absl::Time deadline;
  uint64_t grant = 0;      // the LeaseGrant it is stored in; 0: its own 'L' record
  bool no_record = false;  // leased from the untouched set: the item has no record
};

// The leases one LeaseItems call (or CompleteItems' lease_next) granted, stored as one
// 'G' record keyed by the first token. The record lists the grant's leases that are
// still live: it is rewritten in the batch that ends or changes one of them, and deleted
// with the last.
struct LeaseGrant {
  std::string worker_id;
  absl::Time granted;
  std::vector<std::string> keys;  // in grant order; some may have left
  uint32_t live = 0;              // keys still leased under this grant
  // lease_next's: the token of its request's first completion, which a repeat of the
  // request presents again; 0 for LeaseItems.
  uint64_t asked_by = 0;
  // Heartbeat expiry of every live lease of the grant. They share it: they are granted
  // together, a heartbeat renews all of its worker's leases, and a restart gives each
  // the same grace. The expiry index holds one entry per grant, not per lease.
  absl::Time deadline = absl::InfiniteFuture();
};

// Where a registered item is. Every registered item is in exactly one place.
enum class ItemPlace {
  kUntouched,     // index in the step's untouched ranges: PENDING, no record
  kPendingRetry,  // explicit PENDING with attempts (leased first)
  kPendingFresh,  // explicit PENDING never tried (names, reset items)
  kLeased,
  kFailed,
  kCompleted,  // only on disk
  kUnregistered,
};

// An item about to be leased: where it is now, and what its next lease carries.
struct LeasePlan {
  std::string key;
  ItemPlace place;
  uint32_t attempts = 0;
  std::string cursor;
  bool left = false;       // already taken out of `place` (untouched runs leave together)
  bool no_record = false;  // the item has no record (untouched, or leased from there)
};

struct StepRuntime {
  std::string name;
  storage::v1::StepCounters counters;
  bool counters_dirty = false;
  IntervalSet registered;               // every registered index
  IntervalSet untouched;                // registered indices with no record and no lease
  std::set<std::string> pending_retry;  // encoded item keys
  std::set<std::string> pending_fresh;
  absl::flat_hash_map<std::string, LeaseInfo> leases;
  absl::flat_hash_map<uint64_t, LeaseGrant> grants;  // by first token
  absl::flat_hash_set<uint64_t> dirty_grants;        // to rewrite or delete at flush
  // LeaseGrant::asked_by -> its live grants, in grant order.
  absl::flat_hash_map<uint64_t, std::vector<uint64_t>> asked_grants;
  // FAILED items -> hash of their last error's message (their error group).
  absl::flat_hash_map<std::string, uint64_t> failed;
  RateMeter rate;
};

// The few recent completions GetJob returns (and `ckpt status` shows) without a scan.
inline constexpr size_t kRecentCompletions = 10;

struct WorkerRuntime {
  storage::v1::WorkerRecord record;
  absl::Time last_heartbeat;  // or when ckptd started, for a worker from before
  // What it holds: (step index, grant id) of its grants with live leases, and (step
  // index, encoded key) of its leases with records of their own (schema 1). One entry
  // per grant, not per lease; Engine::HeldLeases lists the leases.
  std::set<std::pair<int, uint64_t>> grants;
  std::set<std::pair<int, std::string>> own_leases;
};

struct JobRuntime {
  storage::v1::JobRecord record;
  bool record_dirty = false;   // to write at flush
  bool record_changed = true;  // to copy at publish
  std::shared_ptr<const storage::v1::JobRecord> published_record;
  std::vector<StepRuntime> steps;
  // Error groups of failed items: message hash -> record.
  absl::flat_hash_map<uint64_t, storage::v1::ErrorGroupRecord> error_groups;
  absl::flat_hash_set<uint64_t> dirty_error_groups;
  RateMeter rate;
  JobLog log;  // the job's log counts and next sequence ('J')
  // The latest completions, newest first, at most kRecentCompletions; read from the
  // completion index at load, then kept up to date.
  std::deque<v1::RecentCompletion> recent_completions;
  absl::flat_hash_map<std::string, WorkerRuntime> workers;
  absl::flat_hash_set<std::string> dirty_workers;

  const std::string& id() const { return record.job().job_id(); }
  v1::JobStatus status() const { return record.job().status(); }
  // The step's index, or -1.
  int StepIndex(absl::string_view step) const;
};

// An entry of the lease expiry index: a grant's (its leases expire together) or a
// lease's with its own record. Ordered by deadline, then by `token` (unique: a grant's
// id is its first lease's token, and a lease with its own record is in no grant), so
// finding an entry compares two integers rather than ids and keys.
struct ExpiryKey {
  absl::Time deadline;
  uint64_t token = 0;  // the grant's id, or the lease's token
  std::string job_id;
  int step = 0;
  std::string key;  // the lease's item key; empty for a grant
};

// Orders ExpiryKeys, and finds them by (deadline, token) alone.
struct ExpiryOrder {
  using is_transparent = void;
  using Position = std::pair<absl::Time, uint64_t>;
  static Position Of(const ExpiryKey& k) { return {k.deadline, k.token}; }
  static const Position& Of(const Position& p) { return p; }
  template <typename A, typename B>
  bool operator()(const A& a, const B& b) const {
    return Of(a) < Of(b);
  }
};

// What readers see of a job: immutable, replaced whole after each commit that
// changes the job.
struct JobSnapshot {
  std::shared_ptr<const storage::v1::JobRecord> record;
  std::vector<storage::v1::StepCounters> step_counters;  // in step order
  std::vector<RateMeter> step_rates;                     // in step order
  RateMeter rate;
  // Last heartbeats of the workers that have not unregistered; a worker counts as
  // active at read time if it was heard from within the lease timeout.
  std::vector<absl::Time> worker_heartbeats;
  std::vector<v1::RecentCompletion> recent_completions;  // newest first
  absl::Duration lease_timeout;
  uint64_t version = 0;  // grows with every publish; WatchJob compares it
};

}  // namespace ckpt

#endif  // CKPT_SERVICE_ENGINE_RUNTIME_H_
