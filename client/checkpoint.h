// ckpt::Checkpoint: one job's checkpoint, for pipelines that iterate themselves and only
// record (record mode), and the progress queries pipeline authors know from
// physicsnemo-curator's checkpoint manager.
//
//   v1::CreateJobRequest job;
//   job.set_job_id("curate-2025-12");
//   job.set_config(config_json);  // its SHA-256 is the fingerprint: a changed config
//                                 // refuses to resume (FAILED_PRECONDITION)
//   CKPT_ASSIGN_OR_RETURN(auto checkpoint, ckpt::Checkpoint::Open(client.get(), job));
//   CKPT_RETURN_IF_ERROR(checkpoint->AddIndices(0, files.size(), /*seal=*/true));
//   for (uint64_t i = 0; i < files.size(); ++i) {
//     CKPT_ASSIGN_OR_RETURN(bool done, checkpoint->IsCompleted(ckpt::IndexKey(i)));
//     if (done) continue;                       // finished in an earlier run
//     absl::Status processed = Process(files[i]);
//     if (processed.ok()) checkpoint->MarkCompleted(ckpt::IndexKey(i), result);
//     else checkpoint->MarkFailed(ckpt::IndexKey(i), processed.message());
//   }
//
// Every method is one or a few RPCs through the Client and returns the server's status
// unchanged: NOT_FOUND for an unregistered key, FAILED_PRECONDITION for a record-mode
// write to a STOPPED or finished job (see docs/api.md). Nothing is cached.
//
// Thread-safe.
#ifndef CKPT_CLIENT_CHECKPOINT_H_
#define CKPT_CLIENT_CHECKPOINT_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "ckpt/v1/checkpoint.pb.h"
#include "client/client.h"

namespace ckpt {

// A job's progress at a glance, from one GetJob and one ListItems (no scans).
struct JobSummary {
  v1::JobStatus status = v1::JOB_STATUS_UNSPECIFIED;
  uint64_t total = 0;
  uint64_t completed = 0;
  uint64_t failed = 0;
  uint64_t remaining = 0;  // pending + leased
  double percent = 0;
  std::vector<v1::ErrorGroup> errors;  // the 10 most frequent, most frequent first
  absl::Duration avg_time;             // average item wall time
  absl::Duration elapsed;
  double rate = 0;       // completions per second over the last minute
  uint32_t workers = 0;  // active workers
};

class Checkpoint {
 public:
  // Creates the job, or resumes it if it exists with the same fingerprint (resumed()).
  // The handle works on `job.steps(0)` (default "main") unless `step` is given.
  // `client` must outlive the handle.
  static absl::StatusOr<std::unique_ptr<Checkpoint>> Open(Client* client,
                                                          const v1::CreateJobRequest& job,
                                                          absl::string_view step = "");
  // A handle on an existing job: NOT_FOUND if there is none.
  static absl::StatusOr<std::unique_ptr<Checkpoint>> Attach(Client* client,
                                                            absl::string_view job_id,
                                                            absl::string_view step = "");

  const std::string& job_id() const { return job_id_; }
  const std::string& step() const { return step_; }
  // Open() found the job already there (same fingerprint).
  bool resumed() const { return resumed_; }

  // ---- Registering items (repeats are counted as duplicates and ignored) ----
  absl::Status AddIndices(uint64_t begin, uint64_t end, bool seal = false);
  absl::Status AddNames(const std::vector<std::string>& names, bool seal = false);
  // No more items: the job completes once every item is finished.
  absl::Status Seal();

  // ---- Record mode ----

  // Whether the item is COMPLETED; if so and `result` is not null, its recorded outputs,
  // payload and metrics, so a resumed run reuses them instead of recomputing.
  absl::StatusOr<bool> IsCompleted(const v1::ItemKey& key, v1::ItemResult* result = nullptr);
  // Claims a PENDING or FAILED item ("in progress" in ListItems, ckpt status). The claim
  // lasts the job's lease timeout; MarkCompleted/MarkFailed end it. FAILED_PRECONDITION
  // if the item is completed or someone else holds it.
  absl::Status MarkInProgress(const v1::ItemKey& key);
  // Records the item as done with `result`. Completing it again keeps the first result
  // and is OK. `worker_id` (optional, e.g. "host:pid") is recorded as who did it
  // (Item.worker_id), as curator records the worker per index.
  absl::Status MarkCompleted(const v1::ItemKey& key, const v1::ItemResult& result = {},
                             absl::string_view worker_id = {});
  // Records the item as FAILED with `error` (1..4096 bytes); it is listed with that
  // error until processed again. `worker_id` as for MarkCompleted.
  absl::Status MarkFailed(const v1::ItemKey& key, absl::string_view error,
                          absl::string_view worker_id = {});

  // Adds an entry to the item's log in ckptd (ckpt logs JOB --item KEY), timed now, as
  // curator's logs table keeps a record per index; `worker_id` as for MarkCompleted.
  // `message` is cut to 8 KiB.
  absl::Status Log(const v1::ItemKey& key, v1::LogLevel level, absl::string_view message,
                   absl::string_view worker_id = {});

  // ---- Queries (physicsnemo-curator's names) ----

  // Ascending. These page through ListItems, so they cost O(items listed).
  absl::StatusOr<std::vector<uint64_t>> CompletedIndices();
  absl::StatusOr<std::map<uint64_t, std::string>> FailedIndices();  // index -> error
  absl::StatusOr<std::vector<uint64_t>> RemainingIndices();         // pending or leased
  absl::StatusOr<JobSummary> Summary();
  // The step's items completed strictly after `after`, oldest first, at most
  // `max_items`: what a monitor has not seen yet. O(items returned) on the server.
  absl::StatusOr<std::vector<v1::Item>> CompletedSince(absl::Time after, size_t max_items);
  // The step's `n` latest completed items, newest first.
  absl::StatusOr<std::vector<v1::Item>> LatestCompleted(size_t n);
  // All progress cleared: every item PENDING again, states deleted (ResetJob).
  absl::Status Reset();
  // A PAUSED or FAILED job runs again with everything kept: results, failed items (still
  // FAILED), states (ResumeJob). FAILED_PRECONDITION over its failure budget, or when
  // sealed with nothing left but failures; the message says what to do.
  absl::Status Resume();
  // Replaces the job's failure budget (UpdateJob); zeros mean no limit.
  absl::Status SetFailureBudget(const v1::FailureBudget& budget);
  // One item back to PENDING as if new.
  absl::Status ResetIndex(uint64_t index);
  absl::StatusOr<std::vector<v1::Worker>> ActiveWorkers();

 private:
  Checkpoint(Client* client, std::string job_id, std::string step, bool resumed)
      : client_(client), job_id_(std::move(job_id)), step_(std::move(step)), resumed_(resumed) {}

  // Every key in `state`, in key order, through every page.
  absl::StatusOr<std::vector<v1::Item>> ListAll(v1::ItemState state, bool keys_only);
  absl::StatusOr<std::vector<uint64_t>> IndicesIn(v1::ItemState state);
  // Up to `max_items` of a completion-order listing, through its pages.
  absl::StatusOr<std::vector<v1::Item>> ListCompleted(v1::ListItemsRequest request,
                                                      size_t max_items);

  Client* const client_;
  const std::string job_id_;
  const std::string step_;
  const bool resumed_;
};

}  // namespace ckpt

#endif  // CKPT_CLIENT_CHECKPOINT_H_
