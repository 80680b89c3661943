// The checkpoints `ckpt import` reads, each turned into a ckpt job by a JobImporter
// (job_importer.h). docs/migrating.md documents each layout and its mapping.
//
//   ckpt export          JSON Lines: a header with the job, its states, its items, an end
//                        line with the counts (a file without it is refused as cut short)
//   physicsnemo-curator  its SQLite database: pipeline_runs, index_results,
//                        stage_metrics, workers (output_files, filter_artifacts and logs
//                        are not needed: index_results holds the same outputs)
//   pipeline_checkpoint  {"metadata": {...}, "steps": {STEP: {"completed_items": [...],
//                        "failed_items": [...], "in_progress_items": [...]}}}
//   progressive saving   {"job_id", "batch_id", "status", "total_documents",
//                        "processed_doc_ids": [...], "failed_doc_ids": [...], ...}
//
// Each returns the job as the import left it. A source that is not what it claims to be
// is INVALID_ARGUMENT naming what is wrong, before the job is created where the reader
// can tell; after that, the job stays labelled ckpt.import=incomplete (see JobImporter).
//
// Thread-safety: the functions share nothing.
#ifndef CKPT_TOOLS_CLI_IMPORT_SOURCES_H_
#define CKPT_TOOLS_CLI_IMPORT_SOURCES_H_

#include <cstdint>
#include <istream>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "ckpt/v1/checkpoint.pb.h"
#include "client/client.h"
#include "google/protobuf/message.h"
#include "google/protobuf/struct.pb.h"

namespace ckpt {
namespace cli {

struct ImportOptions {
  std::string job_id;       // --job: the new job's id; empty: the source's (or an error)
  int64_t curator_run = 0;  // --run: the curator run_id; 0: the latest
};

// `in` holds a `ckpt export`, read line by line (constant memory).
absl::StatusOr<v1::Job> ImportExport(Client* client, std::istream& in,
                                     const ImportOptions& options);
// The physicsnemo-curator database at `path`, opened read-only.
absl::StatusOr<v1::Job> ImportCurator(Client* client, const std::string& path,
                                      const ImportOptions& options);
// `text` is a pipeline_checkpoint.json.
absl::StatusOr<v1::Job> ImportPipelineCheckpoint(Client* client, const std::string& text,
                                                 const ImportOptions& options);
// `text` is a progressive-saving job checkpoint.
absl::StatusOr<v1::Job> ImportProgressive(Client* client, const std::string& text,
                                          const ImportOptions& options);

// JSON text parsed as a protobuf Struct (an object); INVALID_ARGUMENT naming `what`.
absl::StatusOr<google::protobuf::Struct> ParseJsonObject(absl::string_view text,
                                                         absl::string_view what);
// A JSON value converted to `message` through its JSON form (unknown fields ignored).
absl::Status ValueToMessage(const google::protobuf::Value& value,
                            google::protobuf::Message* message, absl::string_view what);

}  // namespace cli
}  // namespace ckpt

#endif  // CKPT_TOOLS_CLI_IMPORT_SOURCES_H_
