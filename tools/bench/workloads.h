// The client side of each workload, over ckpt.v1.Checkpoint on loopback. Every client
// thread has its own channel. Each returns what it measured; bench_main turns that
// into rows. Errors carry the failing call and its status.
#ifndef CKPT_TOOLS_BENCH_WORKLOADS_H_
#define CKPT_TOOLS_BENCH_WORKLOADS_H_

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "tools/bench/clients.h"

namespace ckpt {
namespace bench {

// Creates job `job_id` with indices [0, items), sealed.
absl::Status CreateRangeJob(v1::Checkpoint::Stub* stub, const std::string& job_id, uint64_t items);

// `threads` threads send CompleteItems calls of `per_call` items each, covering
// [0, items) once, each thread its own contiguous share. `token` goes in every
// completion (0: record mode); `results` false sends completions without results.
// Works against ckptd (record mode needs a registered job) and the ceiling servers
// alike. Latency: one call.
absl::StatusOr<ClientsResult> CompleteInCalls(const std::string& address, const std::string& job_id,
                                              int threads, uint64_t items, int per_call,
                                              uint64_t token, bool results);

// The worker loop on an existing sealed job: each thread registers a worker, then
// leases `per_call` items and completes them with results, until nothing is left to
// lease. With `lease_next`, each CompleteItems also leases the next batch (one call per
// round after the first), as the SDK workers do; a ckptd that answers without a lease
// part gets LeaseItems for the next round. Without, every round is LeaseItems then
// CompleteItems. `leased_alone` (may be null) counts the LeaseItems calls. Latency: one
// round. Checks every item was completed.
absl::StatusOr<ClientsResult> WorkerLoop(const std::string& address, const std::string& job_id,
                                         int threads, int per_call, bool lease_next,
                                         std::atomic<uint64_t>* leased_alone);

// Where one worker thread of a worker loop calls, and on which job.
struct WorkerSeat {
  std::string address;
  std::string job_id;
  // Each result names an output path of its own (job and index). By default they repeat
  // every 1000 indices (ResultFor), so jobs worked side by side would share paths: one
  // group of calls to several jobs would write each shared path once.
  bool unique_paths = false;
};
// The worker loop over several jobs and servers at once: one thread per seat, each as
// above on its seat's job through its seat's address. Checks every job was completed.
absl::StatusOr<ClientsResult> WorkerLoop(const std::vector<WorkerSeat>& seats, int per_call,
                                         bool lease_next, std::atomic<uint64_t>* leased_alone);

// Reads while the worker loop runs: one thread calls GetJob back to back, one holds a
// WatchJob stream, both until the workers finish.
struct ReadsDuringLoop {
  ClientsResult workers;
  ClientsResult get_job;    // items = calls
  ClientsResult watch_job;  // items = snapshots; latency = gap between snapshots
};
absl::StatusOr<ReadsDuringLoop> WorkerLoopWithReaders(const std::string& address,
                                                      const std::string& job_id, int threads,
                                                      int per_call, bool lease_next);

// Admission control under a flood: `flooders` threads each send `calls` CompleteItems
// calls of `per_call` record-mode items with results (about 1 MiB each at 8192) on the
// sealed job `job_id` (which must hold flooders * calls * per_call indices), honouring
// ckptd's RESOURCE_EXHAUSTED retry hint as the SDKs do; meanwhile one more client sends
// one-item PutState calls back to back. Latency of the small writes is what matters.
struct FloodResult {
  ClientsResult flood;   // items = completions; latency = one call, retries included
  ClientsResult small;   // items = PutState calls
  uint64_t refused = 0;  // RESOURCE_EXHAUSTED answers with a retry hint
};
absl::StatusOr<FloodResult> FloodWithSmallWrites(const std::string& address,
                                                 const std::string& job_id, int flooders, int calls,
                                                 int per_call);

// Latency of one client's calls against two jobs, alternating call by call so both
// see the same conditions.
struct PairedLatency {
  ClientsResult a;
  ClientsResult b;
};
// `calls` GetJob calls on each.
absl::StatusOr<PairedLatency> GetJobLatency(const std::string& address, const std::string& job_a,
                                            const std::string& job_b, int calls);
// A job and how many of its items are pending when the measurement starts.
struct JobRef {
  std::string id;
  uint64_t pending = 0;
};
// `calls` LeaseItems(max_items = per_call) on each, by a worker registered on each;
// the leased items are completed after each timed call, and a job about to run out of
// pending items is reset (ResetJob; both untimed). ResetJob makes every item pending,
// so `pending` should be the job's size if it will ever be reset.
absl::StatusOr<PairedLatency> LeaseLatency(const std::string& address, const JobRef& job_a,
                                           const JobRef& job_b, int calls, int per_call);

// Reads of a job whose items [0, items) are all completed with ResultFor's results, by
// one client, the four kinds in turn so that each sees the same conditions, `calls` of
// each: GetItem of a random index; the next page of ListItems (COMPLETED, key order,
// `page` items with their results; from the start again at the end); the next page of
// ListItems by completion time, newest first; FindOutput of a random one of the output
// paths. Checks each answer's item is COMPLETED. Latency: one call.
struct ItemReads {
  ClientsResult get_item;
  ClientsResult list_by_key;
  ClientsResult list_newest;
  ClientsResult find_output;
};
absl::StatusOr<ItemReads> ReadCompletedItems(const std::string& address, const std::string& job_id,
                                             uint64_t items, int calls, uint32_t page);

}  // namespace bench
}  // namespace ckpt

#endif  // CKPT_TOOLS_BENCH_WORKLOADS_H_
