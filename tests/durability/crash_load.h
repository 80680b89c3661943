// The load and the checks of the crash tests (crash_test.cc, postgres_outage_test.cc):
// eight writer threads lease items of one job and complete them with results, logging
// in a Ledger every completion ckptd acknowledged and every one it refused; Verify then
// checks ckptd's state against that log:
//   - every acknowledged completion is there, COMPLETED, with its exact result;
//   - every COMPLETED item carries a result some writer sent, never one ckptd refused;
//   - every item is in exactly one state (none both finished and pending);
//   - GetJob's counters equal a recount through ListItems.
#ifndef CKPT_TESTS_DURABILITY_CRASH_LOAD_H_
#define CKPT_TESTS_DURABILITY_CRASH_LOAD_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "tests/durability/ckptd_process.h"

namespace ckpt {
namespace testutil {

inline constexpr int kWriters = 8;
inline constexpr char kCrashJob[] = "crash";

// The result a writer sends for `index` under lease `token`: unique per grant, with NUL
// and high bytes, so a stored result that compares equal was stored byte for byte.
std::string Payload(uint64_t index, uint64_t token);
std::string OutputPath(uint64_t index, uint64_t token);

// What the writers were told. Thread-safe.
class Ledger {
 public:
  void Sent(uint64_t index, uint64_t token) {
    absl::MutexLock lock(&mu_);
    sent_.insert({index, token});
  }
  void Acked(uint64_t index, uint64_t token) {
    absl::MutexLock lock(&mu_);
    acked_[index] = token;
  }
  void Refused(uint64_t index, uint64_t token) {
    absl::MutexLock lock(&mu_);
    refused_.insert({index, token});
  }
  void Error(std::string error) {
    absl::MutexLock lock(&mu_);
    errors_.push_back(std::move(error));
  }
  // Forgets every acknowledgement but `kept` (index -> token): what a copy of the store
  // taken after those must hold.
  void KeepOnlyAcks(std::map<uint64_t, uint64_t> kept) {
    absl::MutexLock lock(&mu_);
    acked_ = std::move(kept);
  }
  std::map<uint64_t, uint64_t> acked() const {
    absl::MutexLock lock(&mu_);
    return acked_;
  }
  bool WasSent(uint64_t index, uint64_t token) const {
    absl::MutexLock lock(&mu_);
    return sent_.count({index, token}) > 0;
  }
  bool WasRefused(uint64_t index, uint64_t token) const {
    absl::MutexLock lock(&mu_);
    return refused_.count({index, token}) > 0;
  }
  std::vector<std::string> errors() const {
    absl::MutexLock lock(&mu_);
    return errors_;
  }

 private:
  mutable absl::Mutex mu_;
  std::set<std::pair<uint64_t, uint64_t>> sent_ ABSL_GUARDED_BY(mu_);
  std::map<uint64_t, uint64_t> acked_ ABSL_GUARDED_BY(mu_);  // index -> token
  std::set<std::pair<uint64_t, uint64_t>> refused_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> errors_ ABSL_GUARDED_BY(mu_);
};

// One round's shared state between the writers.
struct Round {
  CkptdProcess* server = nullptr;
  uint64_t kill_at = 0;  // 0: never kill (the final drain)
  // What happens at kill_at: by default SIGKILL ckptd (the writers then stop); with
  // `outage`, the fault is the database's and the writers go on through it, retrying
  // what ckptd refuses UNAVAILABLE.
  std::function<void()> fault;
  bool outage = false;
  std::atomic<uint64_t> acks{0};
  std::atomic<bool> killed{false};
  std::atomic<uint64_t> unavailable{0};  // calls refused UNAVAILABLE (outage rounds)
  std::atomic<bool> stop{false};         // a writer failed: everyone stops
};

// A writer: lease 1..8 items of kCrashJob as `worker_id`, complete them with Payload(),
// log the answers; until ckptd is killed (any failed call after that is an unknown
// outcome, logged as nothing), or, without a kill, until the job is finished. At
// round.kill_at acknowledgements (over all writers), the writer that gets there runs
// round.fault (default: SIGKILL ckptd) while the others' calls are in flight. Registers
// again when its worker was declared lost.
void Write(int writer, Round& round, Ledger& ledger, std::string& worker_id, uint64_t seed);

// The checks above, against the ckptd at `server` (gtest assertions).
void Verify(CkptdProcess& server, const Ledger& ledger, uint64_t registered);

}  // namespace testutil
}  // namespace ckpt

#endif  // CKPT_TESTS_DURABILITY_CRASH_LOAD_H_
