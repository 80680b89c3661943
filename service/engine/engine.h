// The engine: jobs, items, leases, workers, state blobs and progress over the store.
//
// Design (service/store/STORAGE_FORMAT.md has the records; docs/api.md#design the why):
// - One writer thread applies every change, in arrival order. It takes whatever ops
//   are queued, decides each against its in-memory scheduling state (runtime.h),
//   writes all of them as ONE WriteBatch with one WAL sync (group commit), then
//   publishes the new state to readers and answers the ops. Decisions are made by a
//   single thread, so WAL order is decision order: counters are rewritten whole, and
//   no item needs a lock.
// - Each op checks everything before changing anything, so a failed op leaves no
//   trace in the batch or in memory; if the write itself fails, the in-memory state
//   is rebuilt from the store and republished, and every op of the group gets the
//   error. If that rebuild fails too (the store is unreachable), every write is
//   refused UNAVAILABLE until one succeeds: it is retried before each group and, when
//   no write comes, every expiry_poll.
// - Reads never wait for the writer: GetJob/ListJobs read published snapshots; item
//   and state reads go to RocksDB, which shows only written (synced) data. Either way
//   a reader sees nothing that was not acknowledged. (ListWorkers is the exception:
//   heartbeats live in the writer's memory, so it is queued like a write.)
#ifndef CKPT_SERVICE_ENGINE_ENGINE_H_
#define CKPT_SERVICE_ENGINE_ENGINE_H_

#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "ckpt/v1/checkpoint.pb.h"
#include "service/common/clock.h"
#include "service/engine/engine_observer.h"
#include "service/engine/job_selection.h"
#include "service/engine/log_book.h"
#include "service/engine/retention_index.h"
#include "service/engine/run_directories.h"
#include "service/engine/runtime.h"
#include "service/engine/write_queue.h"
#include "service/store/store.h"

namespace ckpt {

// A job's stored record (config, params, labels and the rest) stays under this, well
// below --max_message_bytes' default, so every answer carrying the job can be sent.
// UpdateJob refuses a change past it (and past the label and param counts)
// INVALID_ARGUMENT, applying nothing.
inline constexpr size_t kMaxJobRecordBytes = 4 << 20;
inline constexpr int kMaxJobLabels = 64;
inline constexpr int kMaxJobParams = 256;
absl::Status CheckJobTotals(const v1::Job& job);

// The most bytes of entries one page of ListJobs, ListItems or ListStates holds
// (EngineOptions::max_page_bytes): a page stops there, with a next_page_token, so that
// no answer passes the message limit.
inline constexpr size_t kDefaultMaxPageBytes = 8 << 20;

// Deleting jobs (the retention sweep, DeleteJobs) takes at most this many per group
// commit, and no more registered items than kItemsPerDeleteGroup (but at least one
// job): deleting a job costs RocksDB a range delete per family, and PostgreSQL a row
// delete per record, so other writes get their turn between a few jobs, and a big job
// goes alone.
inline constexpr size_t kJobsPerDeleteGroup = 8;
inline constexpr uint64_t kItemsPerDeleteGroup = 100000;

struct EngineOptions {
  Clock* clock = Clock::Real();
  // How often the writer looks for expired leases when idle (real time).
  absl::Duration expiry_poll = absl::Milliseconds(250);
  // Told about every group commit (engine_observer.h); may be null. Must outlive the
  // engine.
  EngineObserver* observer = nullptr;
  // Bounds of each item's log and each job's (log_book.h).
  LogLimits log_limits;
  // Bounds of the writer's queue (write_queue.h): past them a write is refused
  // RESOURCE_EXHAUSTED with a retry hint.
  WriteQueueLimits queue;
  // See kDefaultMaxPageBytes. The server sets half of --max_message_bytes.
  size_t max_page_bytes = kDefaultMaxPageBytes;
  // The lease tokens (and grant ids) and worker ids this engine issues: id_first,
  // id_first + id_stride, ... (each counter goes on from where the store's meta record
  // left it). A replica's engine for shard s of S issues s+1, s+1+S, ..., so ids stay
  // unique across every shard of a cluster; 1, 2, 3, ... by default.
  uint64_t id_first = 1;
  uint64_t id_stride = 1;
  // Jobs' retention after they finish (retention_index.h).
  RetentionOptions retention;
};

// A job's totals as last published, for metrics: no item, config or params copied.
struct JobSummary {
  std::string job_id;
  v1::JobStatus status = v1::JOB_STATUS_UNSPECIFIED;
  absl::Time create_time;
  storage::v1::StepCounters counters;  // summed over the steps
  uint32_t active_workers = 0;         // as Progress.active_workers
};

// A fresh job id for a CreateJob without one: "job-YYYYMMDD-HHMMSS-xxxxxx".
std::string GenerateJobId(absl::Time now);

// ListJobs' order (newest first, ties by id) and the page token that resumes after
// `last` ("micros:id"): also for merging the answers of several engines.
bool ListsBefore(const v1::Job& a, const v1::Job& b);
std::string JobPageToken(const v1::Job& last);

// Thread-safe. Requests must be validated (service/rpc/validate.h) before they get
// here; the engine checks what depends on state: existence, job and item states,
// tokens, versions.
class LeaseAnswer;

class Engine {
 public:
  // Runs once the op is durable (OK) or has failed; on the writer thread, so it must
  // not block. The request and response must stay valid until then.
  using Done = std::function<void(absl::Status)>;

  // Loads the in-memory state from `store` (which must outlive the engine) and starts
  // the writer. Leases found in the store get a full lease timeout of grace.
  static absl::StatusOr<std::unique_ptr<Engine>> Open(Store* store, const EngineOptions& options);
  // Runs Open's whole load from `store` and discards it: for a store opened read-only,
  // checked before it is opened for writing (RocksDbStoreOptions::check_load).
  static absl::Status CheckLoad(const StoreReader& store, const EngineOptions& options);
  // Runs the ops still queued, then stops the writer; ops submitted after that are
  // answered UNAVAILABLE.
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Answers every op still queued UNAVAILABLE (not applied) and every later one too;
  // the group being written finishes and is answered as usual. For a shutdown whose
  // grace has run out.
  void RefuseQueued();

  // ---- Writes (semantics: proto/ckpt/v1/checkpoint.proto, docs/api.md) ----
  void CreateJob(const v1::CreateJobRequest& request, v1::CreateJobResponse* response, Done done);
  void UpdateJob(const v1::UpdateJobRequest& request, v1::UpdateJobResponse* response, Done done);
  void PauseJob(const v1::PauseJobRequest& request, v1::PauseJobResponse* response, Done done);
  void ResumeJob(const v1::ResumeJobRequest& request, v1::ResumeJobResponse* response, Done done);
  void StopJob(const v1::StopJobRequest& request, v1::StopJobResponse* response, Done done);
  void FinishJob(const v1::FinishJobRequest& request, v1::FinishJobResponse* response, Done done);
  void ResetJob(const v1::ResetJobRequest& request, v1::ResetJobResponse* response, Done done);
  void DeleteJob(const v1::DeleteJobRequest& request, v1::DeleteJobResponse* response, Done done);
  void AddItems(const v1::AddItemsRequest& request, v1::AddItemsResponse* response, Done done);
  void LeaseItems(const v1::LeaseItemsRequest& request, v1::LeaseItemsResponse* response,
                  Done done);
  void CompleteItems(const v1::CompleteItemsRequest& request, v1::CompleteItemsResponse* response,
                     Done done);
  void FailItems(const v1::FailItemsRequest& request, v1::FailItemsResponse* response, Done done);
  void ResetItems(const v1::ResetItemsRequest& request, v1::ResetItemsResponse* response,
                  Done done);
  void RegisterWorker(const v1::RegisterWorkerRequest& request,
                      v1::RegisterWorkerResponse* response, Done done);
  void Heartbeat(const v1::HeartbeatRequest& request, v1::HeartbeatResponse* response, Done done);
  void UnregisterWorker(const v1::UnregisterWorkerRequest& request,
                        v1::UnregisterWorkerResponse* response, Done done);
  void PutState(const v1::PutStateRequest& request, v1::PutStateResponse* response, Done done);
  void WriteLogs(const v1::WriteLogsRequest& request, v1::WriteLogsResponse* response, Done done);
  // Reads the writer's live view of workers (heartbeats are not persisted), so it is
  // queued like a write; it writes nothing.
  void ListWorkers(const v1::ListWorkersRequest& request, v1::ListWorkersResponse* response,
                   Done done);
  // Returns expired leases to PENDING (counting an attempt) as of the clock's now.
  // The writer does this by itself every expiry_poll; tests with a fake clock call it.
  void ExpireLeases(Done done);
  // Deletes up to kJobsPerDeleteGroup finished jobs whose retention has run out as of
  // the clock's now, in one group commit, as DeleteJob does, and logs each once it is
  // committed. The writer does this by itself every retention.sweep_interval, batch
  // after batch until none is left; tests with a fake clock call it.
  void SweepExpiredJobs(Done done);
  // DeleteJobs (docs/api.md, "Retention": DeleteJobs), seeing only jobs whose id starts
  // with `job_id_prefix` (a confined principal's). The jobs are selected from the
  // published snapshots on the calling thread (dry_run answers there), then deleted
  // kJobsPerDeleteGroup per group commit, each group queued after the one before
  // committed, so other writes go between; each job is checked against the filter
  // again on the writer, and skipped if it no longer matches. If a group fails, the
  // groups before it stay deleted and the error says how many jobs were.
  void DeleteJobsWithPrefix(const v1::DeleteJobsRequest& request, v1::DeleteJobsResponse* response,
                            absl::string_view job_id_prefix, Done done);
  void DeleteJobs(const v1::DeleteJobsRequest& request, v1::DeleteJobsResponse* response,
                  Done done) {
    DeleteJobsWithPrefix(request, response, "", std::move(done));
  }

  // ---- Reads: never block on the writer; see only committed state ----
  absl::Status GetJob(const v1::GetJobRequest& request, v1::GetJobResponse* response) const;
  absl::Status ListJobs(const v1::ListJobsRequest& request, v1::ListJobsResponse* response) const {
    return ListJobsWithPrefix(request, response, "");
  }
  // ListJobs and FindOutput that see only jobs whose id starts with `job_id_prefix`: a
  // principal confined to a prefix sees nothing of other jobs.
  absl::Status ListJobsWithPrefix(const v1::ListJobsRequest& request,
                                  v1::ListJobsResponse* response,
                                  absl::string_view job_id_prefix) const;
  absl::Status GetItem(const v1::GetItemRequest& request, v1::GetItemResponse* response) const;
  absl::Status ListItems(const v1::ListItemsRequest& request,
                         v1::ListItemsResponse* response) const;
  absl::Status FindOutput(const v1::FindOutputRequest& request,
                          v1::FindOutputResponse* response) const {
    return FindOutputWithPrefix(request, response, "");
  }
  absl::Status FindOutputWithPrefix(const v1::FindOutputRequest& request,
                                    v1::FindOutputResponse* response,
                                    absl::string_view job_id_prefix) const;
  absl::Status GetState(const v1::GetStateRequest& request, v1::GetStateResponse* response) const;
  // Reads the job's logs at one view of the store (log_reads.h).
  absl::Status ListLogs(const v1::ListLogsRequest& request, v1::ListLogsResponse* response) const;
  absl::Status ListStates(const v1::ListStatesRequest& request,
                          v1::ListStatesResponse* response) const;

  // The job as last published, or nullptr if there is no such job.
  std::shared_ptr<const JobSnapshot> Snapshot(absl::string_view job_id) const;
  // Every job as last published, in no particular order.
  std::vector<std::shared_ptr<const JobSnapshot>> AllSnapshots() const;
  // The job with its progress, built from a snapshot.
  v1::Job JobFromSnapshot(const JobSnapshot& snapshot) const;

  // Blocks until anything is published after `seen` (a value this returned before;
  // 0 at first), `deadline` passes, or the engine stops. Returns the latest publish
  // number. One waiter can serve every WatchJob stream: writers pay one condition
  // check per commit, whatever the number of watchers.
  uint64_t AwaitPublish(uint64_t seen, absl::Time deadline) const;

  // ---- Administration ----
  // Copies the store into request.dir (Store::Checkpoint) while writes go on, on the
  // calling thread, which it blocks for the copy; the writer does not wait for it.
  absl::Status BackupStore(const v1::BackupStoreRequest& request,
                           v1::BackupStoreResponse* response) const;

  // ---- For metrics: cheap, never wait on the writer ----
  // Every job as last published, in no particular order. O(jobs).
  std::vector<JobSummary> JobSummaries() const;
  // Ops waiting for the writer (not counting the group it is deciding).
  size_t QueuedOps() const;

 private:
  class Group;
  struct Op {
    std::function<absl::Status(Group&)> decide;
    Done done;
    size_t bytes = 0;  // the request's size, for the queue's bounds
  };

  Engine(Store* store, const EngineOptions& options);

  // Queues an op for the writer, or answers it at once if the queue refuses it.
  void Submit(size_t bytes, std::function<absl::Status(Group&)> decide, Done done);
  void WriterLoop();
  void RunGroup(std::vector<Op>* ops);
  absl::Status Load() { return LoadFrom(*store_); }
  absl::Status LoadFrom(const StoreReader& store);
  // Load, then republish every job; sets or clears unloaded_ and logs the change.
  absl::Status Reload();
  // Publishes every job in memory, and unpublishes the ones that are not.
  void PublishAll();
  // The next value of `counter` (next_token_ or next_worker_), advancing it.
  uint64_t Issue(uint64_t* counter);
  void Flush(Group& group);
  void FlushJob(Group& group, JobRuntime& job);
  // Rewrites a grant's record with its live leases, or deletes it when none is left.
  void FlushGrant(Group& group, JobRuntime& job, StepRuntime& step, uint64_t grant_id);
  void Publish(const Group& group);
  // Reports the group to options_.observer (not null).
  void Observe(const Group& group, size_t ops, bool written, GroupCommitStats* stats);

  // ---- Decisions, on the writer thread (engine_jobs.cc, engine_items.cc, ...) ----
  absl::Status DoCreateJob(Group& g, const v1::CreateJobRequest& r, v1::CreateJobResponse* out);
  absl::Status DoUpdateJob(Group& g, const v1::UpdateJobRequest& r, v1::UpdateJobResponse* out);
  absl::Status DoTransition(Group& g, absl::string_view job_id, v1::JobStatus to,
                            absl::string_view reason, v1::Job* out);
  absl::Status DoResetJob(Group& g, const v1::ResetJobRequest& r, v1::ResetJobResponse* out);
  absl::Status DoDeleteJob(Group& g, const v1::DeleteJobRequest& r);
  absl::Status DoAddItems(Group& g, const v1::AddItemsRequest& r, v1::AddItemsResponse* out);
  absl::Status DoLeaseItems(Group& g, const v1::LeaseItemsRequest& r, v1::LeaseItemsResponse* out);
  // With lease_next, the completions and the next lease are one op: decided together,
  // written in the same group (engine_leases.cc).
  absl::Status DoCompleteItems(Group& g, const v1::CompleteItemsRequest& r,
                               v1::CompleteItemsResponse* out);
  // Applies checked completions (`checked` holds their outcomes): records, runs,
  // counters, the worker's credit, rates and recent completions.
  void ApplyCompletions(Group& g, JobRuntime& job, int step, const v1::CompleteItemsRequest& r,
                        const std::vector<LeasePlan>& plans,
                        const v1::CompleteItemsResponse& checked);
  // What a CompleteItems' lease_next grants, chosen before its completions apply.
  struct NextLease {
    std::vector<uint64_t> again;   // a repeat's: the first call's grants, answered again
    std::vector<LeasePlan> plans;  // pending items to grant now
  };
  // Plans r.lease_next for r.worker_id (checked live). Changes nothing.
  absl::Status PlanNextLease(Group& g, JobRuntime& job, int step, const v1::CompleteItemsRequest& r,
                             NextLease* next);
  // Answers r.lease_next after the completions applied: the repeat's live leases, then
  // the planned grants (unless the job is no longer RUNNING), with LeaseItems' shortfall.
  void GrantNextLease(Group& g, JobRuntime& job, int step, const v1::CompleteItemsRequest& r,
                      NextLease* next, v1::LeaseItemsResponse* out);
  // r.items(i): where it is, what completing it would do (COMPLETED, ALREADY_COMPLETED,
  // or LEASE_LOST with skip_lost_leases), or why the call is refused. Changes nothing.
  absl::StatusOr<v1::CompletionOutcome> CheckCompletion(Group& g, JobRuntime& job, int step,
                                                        const v1::CompleteItemsRequest& r, int i,
                                                        LeasePlan* plan);
  // Moves a checked item to COMPLETED with its result, counters, completion index entry
  // and output records. Returns who completed it (ItemRecord.worker_id).
  std::string RecordCompletion(Group& g, JobRuntime& job, int step, const v1::Completion& item,
                               const LeasePlan& plan, const std::string& worker_id,
                               storage::v1::OutputRecord* output);
  // The end of the run of r.items that starts at `begin`: the items after it that are
  // completed now, have no record, and follow its index one by one under the same
  // worker. begin + 1 if it cannot start a run.
  int RunEnd(const JobRuntime& job, int step, const v1::CompleteItemsRequest& r,
             const v1::CompleteItemsResponse& checked, const std::vector<LeasePlan>& plans,
             int begin) const;
  // Completes r.items [begin, end), a run (RunEnd), as one item record and one
  // completion-index entry; appends (request index, worker) of each to `completed`.
  void RecordRun(Group& g, JobRuntime& job, int step, const v1::CompleteItemsRequest& r,
                 const std::vector<LeasePlan>& plans, int begin, int end,
                 storage::v1::OutputRecord* output,
                 std::vector<std::pair<int, std::string>>* completed);
  // What completing one checked item changes besides its record: its place, counters,
  // wall time and output paths.
  void MoveToCompleted(Group& g, JobRuntime& job, int step, const v1::Completion& item,
                       const LeasePlan& plan, storage::v1::OutputRecord* output);
  absl::Status DoFailItems(Group& g, const v1::FailItemsRequest& r, v1::FailItemsResponse* out);
  absl::Status DoResetItems(Group& g, const v1::ResetItemsRequest& r, v1::ResetItemsResponse* out);
  absl::Status DoRegisterWorker(Group& g, const v1::RegisterWorkerRequest& r,
                                v1::RegisterWorkerResponse* out);
  absl::Status DoHeartbeat(Group& g, const v1::HeartbeatRequest& r, v1::HeartbeatResponse* out);
  // The log entries a heartbeat carries, planned (leases' steps already resolved).
  absl::StatusOr<LogPlan> PlanHeartbeatLogs(Group& g, const JobRuntime& job,
                                            const v1::HeartbeatRequest& r,
                                            const std::vector<int>& steps);
  absl::Status DoUnregisterWorker(Group& g, const v1::UnregisterWorkerRequest& r,
                                  v1::UnregisterWorkerResponse* out);
  absl::Status DoPutState(Group& g, const v1::PutStateRequest& r, v1::PutStateResponse* out);
  absl::Status DoWriteLogs(Group& g, const v1::WriteLogsRequest& r, v1::WriteLogsResponse* out);
  absl::Status DoExpireLeases(Group& g);
  absl::Status DoListWorkers(Group& g, const v1::ListWorkersRequest& r,
                             v1::ListWorkersResponse* out);

  // ---- Deleting jobs: retention and DeleteJobs (engine_retention.cc) ----
  // A job deleted by a group, and the line that logs it once the group is committed.
  struct Removal {
    v1::DeletedJob job;
    std::string log_line;
  };
  // Removes the job and everything it holds, in memory and in the group's batch.
  // `job` is gone afterwards.
  void RemoveJob(Group& g, JobRuntime& job);
  // Whether `job` still fits in a group that has removed `removed` jobs holding `items`
  // registered items; adds its items if so.
  bool FitsDeleteGroup(const JobRuntime& job, size_t removed, uint64_t* items) const;
  // One batch of the retention sweep; sets next_sweep_ once no expired job is left.
  absl::Status DoSweepExpiredJobs(Group& g, std::vector<Removal>* removed);
  // Removes those of `ids` that still exist and match `filter`, in order, until the
  // group is full; `*consumed`: how many of `ids` it got through (skipped ones count).
  absl::Status DoDeleteMatching(Group& g, const JobFilter& filter,
                                const std::vector<std::string>& ids, std::vector<Removal>* removed,
                                size_t* consumed);
  // Whether the writer should run a batch of the sweep now.
  bool SweepDue(absl::Time now) const;
  // An op running one batch of the sweep, logging what it deleted once committed.
  Op SweepOp(Done done);
  // One DeleteJobs call in progress, and queuing its next group.
  struct BulkDelete;
  void SubmitBulkDeleteGroup(std::shared_ptr<BulkDelete> run);

  // ---- Helpers for decisions ----
  absl::StatusOr<JobRuntime*> FindJob(absl::string_view job_id);
  absl::StatusOr<int> FindStep(const JobRuntime& job, absl::string_view step) const;
  // Where the item is; reads the store only for a name (or index) in no in-memory set.
  absl::StatusOr<ItemPlace> Locate(Group& g, const JobRuntime& job, int step,
                                   const std::string& key);
  // The item's record as of this group (its own writes first), or nullopt.
  absl::StatusOr<std::optional<storage::v1::ItemRecord>> ReadItem(Group& g, const JobRuntime& job,
                                                                  int step, const std::string& key);
  // The record holding `key` as of this group, whole (a run's, for an index in one),
  // with the item key it is stored under; nullopt if the item has none.
  absl::StatusOr<std::optional<std::pair<std::string, storage::v1::ItemRecord>>> ReadStoredItem(
      Group& g, const JobRuntime& job, int step, const std::string& key);
  void WriteItem(Group& g, const JobRuntime& job, int step, const std::string& key,
                 const storage::v1::ItemRecord& record);
  // The same with the record already serialized.
  void WriteItemBytes(Group& g, const JobRuntime& job, int step, const std::string& key,
                      std::string bytes);
  // Moves an item out of `from` / into `to`, with its sched key and counters.
  void Leave(Group& g, JobRuntime& job, int step, const std::string& key, ItemPlace from);
  void Enter(Group& g, JobRuntime& job, int step, const std::string& key, ItemPlace to);
  void EnterFailed(Group& g, JobRuntime& job, int step, const std::string& key,
                   absl::string_view message);
  void AddErrorGroup(Group& g, JobRuntime& job, absl::string_view message, int64_t delta);
  // Takes the plans' untouched indices out of the untouched set a run of consecutive
  // indices at a time (one interval change per run instead of one per index), and
  // marks them left.
  void LeaveUntouchedInRuns(JobRuntime& job, int step, std::vector<LeasePlan>* plans);
  // Leases the planned item as part of the grant `grant_id` (its record is written at
  // flush), adding it to `answer`.
  void Grant(Group& g, JobRuntime& job, int step, const LeasePlan& plan,
             const std::string& worker_id, uint64_t grant_id, LeaseAnswer* answer);
  // Grants the plans to `worker_id` (empty: a claim) as grant records of at most 128
  // leases, marked `asked_by` (LeaseGrant), appending the leases to `out` (runs of them
  // as LeaseRuns if `packed`).
  void GrantPlans(Group& g, JobRuntime& job, int step, std::vector<LeasePlan>* plans,
                  const std::string& worker_id, uint64_t asked_by, bool packed,
                  v1::LeaseItemsResponse* out);
  // The leases an answer gives: its Leases and those of its runs.
  static uint32_t LeaseCount(const v1::LeaseItemsResponse& answer);
  // Expires the leases of the expiry index's entry `entry`, due now.
  void ExpireEntry(Group& g, const ExpiryKey& entry);
  // If the job is not RUNNING: the shortfall saying why nothing is leased, and true.
  bool AnswerNotRunning(const JobRuntime& job, v1::LeaseItemsResponse* out) const;
  // The shortfall of a lease of `max_items` that got out->leases(): NONE_PENDING or
  // STEP_DRAINED, or nothing if it got them all.
  void SetShortfall(const JobRuntime& job, int step, uint32_t max_items,
                    v1::LeaseItemsResponse* out) const;
  // Up to `n` pending items of the step, retries first, then key order; reads the
  // records of retries for their attempts and cursors. Changes nothing.
  absl::Status SelectPending(Group& g, JobRuntime& job, int step, uint32_t n,
                             std::vector<LeasePlan>* out);
  // An item's attempts and cursor before a new try, from memory or its record.
  absl::Status FillPlan(Group& g, const JobRuntime& job, int step, LeasePlan* plan);
  // Ends a lease without completing the item: back to PENDING (retry), or FAILED when
  // it is out of attempts, with `error` as its last error and error.worker_id as who
  // failed it. `count_attempt`: an expiry (attempts + 1, error time now); else a
  // release, which keeps the attempts and the error as given. Returns the new place.
  ItemPlace EndLeaseUnfinished(Group& g, JobRuntime& job, int step, const std::string& key,
                               const v1::ItemError& error, bool count_attempt);
  // Who finished the planned item (ItemRecord.worker_id): the request's worker, else
  // the holder of the lease whose `token` the request presented.
  std::string FinishingWorker(const JobRuntime& job, int step, const LeasePlan& plan,
                              const std::string& worker_id, uint64_t token) const;
  // Moves the job to COMPLETED or FAILED when sealed and nothing is left, or to FAILED
  // when its failure budget is exceeded.
  void MaybeFinishJob(Group& g, JobRuntime& job);
  // Why the job is over its failure budget, or "" if it is not.
  std::string BudgetExceeded(const JobRuntime& job) const;
  // FAILED_PRECONDITION if ResumeJob cannot bring the FAILED job back to RUNNING: it is
  // over its failure budget, or sealed with nothing left to run.
  absl::Status CheckResumable(const JobRuntime& job) const;
  void SetStatus(Group& g, JobRuntime& job, v1::JobStatus status, absl::string_view reason);
  void Touch(Group& g, JobRuntime& job);
  std::shared_ptr<JobSnapshot> MakeSnapshot(JobRuntime& job);
  void RebuildSteps(Group& g, JobRuntime& job);
  // Clears a job's progress (and with remove_items, its items) back to RUNNING.
  void ResetJobState(Group& g, JobRuntime& job, bool remove_items);
  absl::StatusOr<std::vector<std::string>> ListNames(Group& g, const JobRuntime& job, int step);
  void DeleteItem(Group& g, const JobRuntime& job, int step, const std::string& key);
  // Adds the run [first, first + size) to the run directory of each block it covers
  // (item_runs.h), dropping the stale firsts inside it; or, without `add`, removes
  // `first` from them (its run is gone or split). Blocks come from run_directories_
  // only, never from the store: one not cached is begun afresh (adding) or left as it
  // is (removing), which a hint allows.
  void UpdateRunDirectory(Group& g, const JobRuntime& job, int step, uint64_t first, uint64_t size,
                          bool add);
  // Resets the targets (ResetItems, not a dry run), then updates the job's status.
  absl::Status ApplyResets(Group& g, JobRuntime& job,
                           const std::vector<std::tuple<int, std::string, ItemPlace>>& targets);
  // A record that completed targets of a reset leave: a run (with the offsets of the
  // targets in it) or one completed item's own record.
  struct CompletedHolder {
    int step = 0;
    std::string key;  // the item key it is stored under
    storage::v1::ItemRecord record;
    std::vector<uint64_t> offsets;  // a run's: the targets' offsets in it
  };
  // The records the COMPLETED targets are in, as of this group, each read once.
  absl::StatusOr<std::vector<CompletedHolder>> ReadCompletedHolders(
      Group& g, const JobRuntime& job,
      const std::vector<std::tuple<int, std::string, ItemPlace>>& targets);
  absl::Status CollectResetTargets(Group& g, const JobRuntime& job, int step,
                                   const std::function<bool(ItemPlace)>& wanted,
                                   std::vector<std::tuple<int, std::string, ItemPlace>>* targets);
  // FAILED_PRECONDITION if the worker was declared lost (silent past the lease
  // timeout) or has unregistered; NOT_FOUND if unknown.
  absl::StatusOr<WorkerRuntime*> FindLiveWorker(Group& g, JobRuntime& job,
                                                absl::string_view worker_id);
  void MarkRecordChanged(Group& g, JobRuntime& job);
  // Sets when a lease with its own record (grant 0) expires, capped by the job's
  // max_run_time, in the lease and the expiry index.
  void SetDeadline(JobRuntime& job, int step, const std::string& key, LeaseInfo& lease,
                   absl::Time deadline);
  // The same for all the leases of a grant at once.
  void SetGrantDeadline(JobRuntime& job, int step, uint64_t grant_id, LeaseGrant& grant,
                        absl::Time deadline);
  // Removes the lease's (grant 0) or the grant's entry from the expiry index, if any.
  void ForgetExpiry(const LeaseInfo& lease);
  void ForgetGrantExpiry(uint64_t grant_id, const LeaseGrant& grant);
  // Removes every lease of the job from the expiry index (its leases are being dropped
  // wholesale: the job is reset or removed).
  void ForgetJobExpiries(const JobRuntime& job);
  // The (step, key) of every live lease the worker holds, in that order.
  static std::vector<std::pair<int, std::string>> HeldLeases(const JobRuntime& job,
                                                             const WorkerRuntime& worker);
  absl::Duration LeaseTimeout(const JobRuntime& job) const;
  // Deletes every record of the job in the per-job families (not the job record).
  void DeleteJobData(Group& g, absl::string_view job_id);
  v1::ControlWord ControlFor(const JobRuntime& job) const;

  Store* const store_;
  const EngineOptions options_;
  // Recent run directory blocks for GetItem and for the writer's rewrites of them; written
  // through by the writer after each group commits (run_directories.h).
  static constexpr size_t kRunDirectoryCacheBlocks = 8192;
  RunDirectories run_directories_;

  // Writer-thread state: no lock; only the writer thread (or Open, before it starts)
  // touches it.
  absl::flat_hash_map<std::string, std::unique_ptr<JobRuntime>> jobs_;
  // Every live grant and every live lease with its own record, by deadline.
  std::set<ExpiryKey, ExpiryOrder> expiry_;
  // Finished jobs with a retention, by when it runs out; set at flush from each job
  // record written, rebuilt by Load.
  RetentionIndex retention_;
  absl::Time next_sweep_ = absl::InfinitePast();  // no sweep before this
  uint64_t next_token_ = 1;
  uint64_t next_worker_ = 1;
  bool meta_dirty_ = false;
  // Not OK after a write failed and the rebuild from the store failed too: memory may
  // be missing jobs, so every group is refused until a Load succeeds.
  absl::Status unloaded_;

  WriteQueue<Op> queue_;

  mutable absl::Mutex publish_mu_;
  absl::flat_hash_map<std::string, std::shared_ptr<const JobSnapshot>> published_
      ABSL_GUARDED_BY(publish_mu_);
  uint64_t publish_version_ ABSL_GUARDED_BY(publish_mu_) = 0;
  bool reads_stopped_ ABSL_GUARDED_BY(publish_mu_) = false;

  std::thread writer_;
};

}  // namespace ckpt

#endif  // CKPT_SERVICE_ENGINE_ENGINE_H_
