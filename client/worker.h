// ckpt::Worker: the loop every pipeline worker writes by hand, once.
//
//   ckpt::WorkerOptions options;
//   options.job_id = "thumbnails";
//   CKPT_ASSIGN_OR_RETURN(auto worker, ckpt::Worker::Register(client.get(), options));
//   absl::Status status = worker->Run([](ckpt::WorkItem& item) -> absl::Status {
//     std::string out = Render(item.index());       // the pipeline's work
//     item.AddOutput(out);                            // recorded with the completion
//     return absl::OkStatus();                        // an error fails the item
//   });
//
// Register() registers a worker with ckptd and starts a heartbeat thread that beats at
// the server's suggested interval (a third of the job's lease timeout), extends every
// lease held, sends saved cursors and learns the job's control word. Run() leases items
// in batches and calls the handler for each, one at a time, on the calling thread:
//
// - OK: the item is completed with WorkItem::result(). Completions are batched (one
//   CompleteItems per `max_pending_completions` items, per lease batch, or after
//   `max_completion_delay`, whichever comes first) and always sent before Run() returns
//   or waits. An item the server has given to someone else meanwhile (lease lost) is
//   dropped, as docs/api.md says. The completions that end a lease batch also ask for
//   the next batch (CompleteItems' lease_next): one call and one synced commit per
//   batch. Against a ckptd that predates lease_next, or when that call is refused, the
//   completions are sent alone and the next batch is leased with LeaseItems.
// - an error status, or an exception (std::exception's what(), else "unknown
//   exception"): the item is failed with that message. It is retryable (the server
//   gives it to a worker again while attempts remain) unless the status is
//   INVALID_ARGUMENT: bad input does not get better by retrying.
//
// PAUSE: the worker finishes the item in hand, sends its completions and waits, still
// heartbeating, until the job is resumed or stopped. STOP, a finished job, a drained
// step, or Stop(): it finishes the item in hand, sends its completions and Run() returns
// OK. Leases it holds but has not started stay held until the Worker is destroyed.
//
// The destructor stops the heartbeats and unregisters, which returns unstarted leases to
// PENDING without counting an attempt. A worker the server has declared lost (silent past
// the lease timeout, e.g. a stopped process) registers again under a new id; its leases
// still complete their items until they expire, since tokens fence, not workers. A
// LeaseItems answer lost to DEADLINE_EXCEEDED (ckptd may have granted leases no one
// will see) makes the worker unregister, which returns them without counting an
// attempt, and register again.
#ifndef CKPT_CLIENT_WORKER_H_
#define CKPT_CLIENT_WORKER_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "ckpt/v1/checkpoint.pb.h"
#include "client/client.h"

namespace ckpt {

struct WorkerOptions {
  std::string job_id;  // required
  std::string step;    // empty: the job's first step
  // Items asked for per LeaseItems.
  uint32_t lease_batch = 16;
  // Completions waiting to be sent are flushed at this many, at the end of each lease
  // batch, or once the oldest has waited `max_completion_delay`.
  size_t max_pending_completions = 256;
  absl::Duration max_completion_delay = absl::Seconds(1);
  // How long Run() waits before asking again when nothing is pending but the step is
  // not drained (others hold items, or more may be added), or while the job is paused.
  absl::Duration idle_wait = absl::Seconds(1);
  // Zero: the server's suggestion (a third of the lease timeout). A heartbeat that
  // cannot reach ckptd is retried until the next one is due, no longer.
  absl::Duration heartbeat_interval = absl::ZeroDuration();
  // How long the destructor retries UnregisterWorker while ckptd is unreachable; after
  // that the worker's unstarted leases come back only when they expire.
  absl::Duration unregister_retry_for = absl::Seconds(5);
  // Passed to RegisterWorker. Hostname and pid are filled in.
  std::string invocation_id;
  std::map<std::string, std::string> labels;
  // Called on the worker's threads when the control word changes (RUN, PAUSE, STOP),
  // e.g. to log "paused". Must not block or call the Worker.
  std::function<void(v1::ControlWord)> on_control;
};

// What Run() has done so far.
struct WorkerStats {
  uint64_t completed = 0;      // completions the server accepted (or already had)
  uint64_t failed = 0;         // failures the server accepted
  uint64_t lease_lost = 0;     // items dropped because the server gave them to another
  uint64_t heartbeats = 0;     // heartbeats answered OK
  uint64_t registrations = 0;  // 1, plus one per re-registration after being lost
  // LeaseItems answers lost to DEADLINE_EXCEEDED; each time the worker unregisters
  // (returning what ckptd may have granted unseen) and registers again.
  uint64_t lost_lease_answers = 0;
  // Lease batches asked for with the completions of the one before (lease_next), and
  // those whose answer came without a lease part (a ckptd that predates it) or was
  // refused, so that LeaseItems was called instead.
  uint64_t leased_with_completions = 0;
  uint64_t lease_next_fallbacks = 0;
};

class Worker;

// One leased item, handed to the handler. Valid only during the handler's call.
// Not thread-safe, except SaveCursor(), Log() and lease_lost(), which the pipeline may
// call from its own threads while the handler runs.
class WorkItem {
 public:
  const v1::ItemKey& key() const { return lease_.key(); }
  bool has_index() const { return lease_.key().has_index(); }
  uint64_t index() const { return lease_.key().index(); }          // REQUIRES: has_index()
  const std::string& name() const { return lease_.key().name(); }  // REQUIRES: !has_index()
  const std::string& step() const { return lease_.step(); }
  uint32_t attempt() const { return lease_.attempt(); }  // 1 for the first try
  // The cursor last saved for this item (by any worker), empty if none: resume there.
  const std::string& cursor() const { return lease_.cursor(); }

  // Saves how far the item got; sent with the next heartbeat and handed back with the
  // item's next lease if this try does not finish it.
  void SaveCursor(std::string cursor);
  // Adds an entry to the item's log in ckptd (ckpt logs JOB --item KEY), timed now; sent
  // with the next heartbeat, the completion or the failure. `message` is cut to 8 KiB;
  // at most 1000 entries wait, the oldest dropped first.
  void Log(v1::LogLevel level, absl::string_view message, absl::string_view logger = "");
  // True once a heartbeat has reported the lease lost: the item is someone else's now,
  // and whatever this handler returns is dropped. Long handlers may check it and stop.
  bool lease_lost() const;

  // What the completion records: outputs, payload, metrics. metrics.wall_time is set to
  // the handler's run time unless the handler sets it.
  v1::ItemResult& result() { return result_; }
  void AddOutput(std::string path) { result_.add_output_paths(std::move(path)); }

 private:
  friend class Worker;
  WorkItem(Worker* worker, v1::Lease lease) : worker_(worker), lease_(std::move(lease)) {}

  Worker* const worker_;
  const v1::Lease lease_;
  v1::ItemResult result_;
};

using ItemHandler = std::function<absl::Status(WorkItem& item)>;

// Thread-safe: Run() on one thread at a time; Stop(), stats() and worker_id() from any.
class Worker {
 public:
  // Registers with the server and starts heartbeating. `client` must outlive the Worker.
  // Errors are RegisterWorker's (NOT_FOUND for an unknown job).
  static absl::StatusOr<std::unique_ptr<Worker>> Register(Client* client, WorkerOptions options);

  // Stops heartbeating and unregisters (best effort: errors are ignored).
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Processes items until the job is stopped or finished, the step drained, or Stop()
  // (OK), or a call fails in a way retries could not fix (that error: NOT_FOUND when the
  // job was deleted, UNAVAILABLE when ckptd stayed away past the retry policy).
  absl::Status Run(const ItemHandler& handler);

  // Asks Run() to return after the item in hand. Callable from any thread, e.g. a
  // signal-watching one.
  void Stop();

  std::string worker_id() const;
  v1::ControlWord control() const;
  WorkerStats stats() const;
  // Blocks until `condition(stats())` holds, or `timeout` passes; returns whether it
  // holds. E.g. for a monitor: AwaitStats([](auto& s) { return s.completed >= 100; }, ...).
  bool AwaitStats(const std::function<bool(const WorkerStats&)>& condition,
                  absl::Duration timeout) const;

 private:
  friend class WorkItem;

  // A lease this worker holds: from grant until its completion or failure is sent.
  struct Held {
    v1::ItemKey key;
    std::string step;
    std::string cursor;
    bool cursor_unsent = false;
    bool lost = false;
    std::vector<v1::LogEntry> logs;  // not sent yet, oldest first
  };
  // The held lease's log entries, taken to be sent; none if it is not held.
  std::vector<v1::LogEntry> TakeLogs(uint64_t token) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  Worker(Client* client, WorkerOptions options);

  absl::Status RegisterWithServer();
  absl::Status UnregisterFromServer(absl::Duration retry_for = absl::InfiniteDuration());
  void HeartbeatLoop();
  absl::Status HeartbeatOnce();
  void SetControl(v1::ControlWord control) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Run()'s parts.
  absl::StatusOr<v1::LeaseItemsResponse> Lease();
  // Holds the answer's leases and takes its control word.
  void Hold(const v1::LeaseItemsResponse& leased);
  // Whether the completions ending `leased`'s batch should also lease the next one: the
  // batch was worked through, and the job runs.
  bool WantsNext(const v1::LeaseItemsResponse& leased, int processed) const;
  // Sends the waiting completions with lease_next and returns the next batch; falls back
  // to FlushCompletions() and Lease() (see the class comment).
  absl::StatusOr<v1::LeaseItemsResponse> FlushAndLease();
  v1::CompleteItemsRequest CompletionRequest(std::vector<v1::Completion> completions) const;
  // Records an answered CompleteItems: held leases end, outcomes counted.
  void Completed(const v1::CompleteItemsRequest& request, const v1::CompleteItemsResponse& answer)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Process(const ItemHandler& handler, const v1::Lease& lease);
  // Fails the item with `why` (retryable unless INVALID_ARGUMENT); a lost lease is dropped.
  absl::Status Fail(const v1::ItemKey& key, uint64_t token, const absl::Status& why);
  absl::Status FlushCompletions();
  absl::Status CompleteOneByOne(std::vector<v1::Completion> completions);
  // Waits up to `timeout` for Stop(), a fatal error, or (if `until_not_paused`) a
  // control word other than PAUSE.
  void Wait(absl::Duration timeout, bool until_not_paused);
  bool ShouldReturn() const;
  // While the job is PAUSED: sends completions, then waits, asking the server every
  // `idle_wait` whether it has been resumed.
  absl::Status WaitWhilePaused();

  Client* const client_;
  const WorkerOptions options_;
  std::vector<v1::Completion> pending_completions_;  // Run()'s thread only
  absl::Time oldest_pending_;                        // Run()'s thread only

  mutable absl::Mutex mu_;
  std::string worker_id_ ABSL_GUARDED_BY(mu_);
  absl::Duration heartbeat_interval_ ABSL_GUARDED_BY(mu_);
  v1::ControlWord control_ ABSL_GUARDED_BY(mu_) = v1::CONTROL_WORD_RUN;
  absl::flat_hash_map<uint64_t, Held> held_ ABSL_GUARDED_BY(mu_);  // by lease token
  bool stop_requested_ ABSL_GUARDED_BY(mu_) = false;
  bool shutting_down_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status fatal_ ABSL_GUARDED_BY(mu_);
  WorkerStats stats_ ABSL_GUARDED_BY(mu_);
  std::thread heartbeat_thread_;
};

}  // namespace ckpt

#endif  // CKPT_CLIENT_WORKER_H_
