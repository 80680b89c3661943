// JobImporter rebuilds a job in ckptd, item by item, from another checkpoint's contents
// (ckpt's own export, a physicsnemo-curator database, a pipeline_checkpoint.json, a
// progressive-saving checkpoint) using only the public API, so it works against any
// ckptd the caller may write to:
//
//   CreateJob (RUNNING, no failure budget, labelled ckpt.import=incomplete)
//   per batch of one step: AddItems; then, round r = 1..max attempts, record-mode
//   FailItems for FAILED and COMPLETED items with at least r failed tries, and a claim
//   plus a retryable FailItems for PENDING ones (each round adds one attempt); then
//   record-mode CompleteItems with the result and the worker
//   Finish: UpdateJob (stage, seal, failure budget, label removed), then the status
//
// So an item ends in its state with its attempts, worker, result (outputs, payload,
// metrics) and last error message. Not carried, because the API sets them itself: times
// (update and error times are the import's), a pending item's cursor, state versions
// (each state starts at 1), lease tokens (a LEASED item becomes PENDING), workers.
//
// Memory is one batch (kBatch items) whatever the job's size. Nothing is atomic across
// calls: an import that fails leaves the job labelled ckpt.import=incomplete, and the
// error says so.
//
// Thread-safety: not thread-safe; one importer per import.
#ifndef CKPT_TOOLS_CLI_JOB_IMPORTER_H_
#define CKPT_TOOLS_CLI_JOB_IMPORTER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "ckpt/v1/checkpoint.pb.h"
#include "client/client.h"

namespace ckpt {
namespace cli {

// The label an import in progress carries, removed when it finishes.
inline constexpr char kImportLabel[] = "ckpt.import";

class JobImporter {
 public:
  // Items per batch (each batch is a few calls); at most ckptd's --max_batch.
  static constexpr size_t kBatch = 500;

  // Creates `job` (its id, display name, config, fingerprint, labels, params, steps,
  // lease timeout, max attempts, max run time). FAILED_PRECONDITION if a job with that
  // id exists already: nothing is changed then.
  static absl::StatusOr<std::unique_ptr<JobImporter>> Start(Client* client, const v1::Job& job);

  // Writes a state blob (its name and value).
  absl::Status PutState(const v1::State& state);
  // Registers indices [begin, end) of `step` as PENDING (a source that knows its total).
  absl::Status AddIndexRange(const std::string& step, uint64_t begin, uint64_t end);
  // Queues one item: its step, key, state, attempts, worker_id, result and last_error.
  // LEASED is taken as PENDING. Applied in batches; an error may come from a later call.
  absl::Status AddItem(v1::Item item);
  // Applies what is queued, then `final`'s stage, seal, failure budget and status (with
  // its status_reason), and removes the import label. Returns the job as it ends.
  absl::StatusOr<v1::Job> Finish(const v1::Job& final);

  const std::string& job_id() const { return job_id_; }
  uint64_t items() const { return items_; }
  uint64_t states() const { return states_; }

 private:
  JobImporter(Client* client, std::string job_id, uint32_t max_attempts)
      : client_(client), job_id_(std::move(job_id)), max_attempts_(max_attempts) {}

  absl::Status Flush();
  absl::Status Register();
  // Failed tries an item needs before its last call.
  uint32_t FailuresBefore(const v1::Item& item) const;
  absl::Status FailRound(uint32_t round);
  absl::Status ClaimAndRetry(const std::string& worker, const std::vector<const v1::Item*>& items);
  absl::Status CompleteBatch();
  absl::Status ApplyStatus(const v1::Job& final);

  Client* client_;
  std::string job_id_;
  uint32_t max_attempts_;
  std::string step_;             // of the queued batch
  std::vector<v1::Item> batch_;  // at most kBatch
  uint64_t items_ = 0;
  uint64_t states_ = 0;
};

}  // namespace cli
}  // namespace ckpt

#endif  // CKPT_TOOLS_CLI_JOB_IMPORTER_H_
