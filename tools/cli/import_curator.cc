// ckpt import of a physicsnemo-curator checkpoint database (its PipelineStore, SQLite):
// one run (pipeline_runs) becomes one job with one step, "main", whose items are the
// run's source indices. index_results gives each index's outcome ('completed' with
// output_paths, wall_time_ns, peak and GPU memory, worker_id; or 'error' with its
// message), stage_metrics its per-stage times, and workers.current_index the indices
// that were in progress (PENDING here, as curator runs them again). Rows are read with
// one statement each, stepped row by row: memory stays one batch of items.
#include <sqlite3.h>

#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "service/common/status_macros.h"
#include "tools/cli/import_sources.h"
#include "tools/cli/job_importer.h"

namespace ckpt {
namespace cli {
namespace {

constexpr char kStep[] = "main";

struct DbCloser {
  void operator()(sqlite3* db) const { sqlite3_close(db); }
};
struct StatementFinalizer {
  void operator()(sqlite3_stmt* statement) const { sqlite3_finalize(statement); }
};
using Db = std::unique_ptr<sqlite3, DbCloser>;
using Statement = std::unique_ptr<sqlite3_stmt, StatementFinalizer>;

absl::StatusOr<Db> OpenReadOnly(const std::string& path) {
  sqlite3* raw = nullptr;
  const int rc = sqlite3_open_v2(path.c_str(), &raw, SQLITE_OPEN_READONLY, nullptr);
  Db db(raw);
  if (rc != SQLITE_OK) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": cannot open as SQLite: ", raw == nullptr ? "out of memory" : sqlite3_errmsg(raw)));
  }
  return db;
}

absl::StatusOr<Statement> Prepare(sqlite3* db, const std::string& sql) {
  sqlite3_stmt* raw = nullptr;
  if (sqlite3_prepare_v2(db, sql.c_str(), -1, &raw, nullptr) != SQLITE_OK) {
    return absl::InvalidArgumentError(
        absl::StrCat("not a physicsnemo-curator database: ", sqlite3_errmsg(db)));
  }
  return Statement(raw);
}

std::string Text(sqlite3_stmt* statement, int column) {
  const unsigned char* text = sqlite3_column_text(statement, column);
  return text == nullptr ? "" : reinterpret_cast<const char*>(text);
}

bool IsNull(sqlite3_stmt* statement, int column) {
  return sqlite3_column_type(statement, column) == SQLITE_NULL;
}

// Whether `table` has `column` (older curator databases lack worker_id, total_indices).
bool HasColumn(sqlite3* db, const std::string& table, const std::string& column) {
  auto info = Prepare(db, absl::StrCat("PRAGMA table_info(", table, ")"));
  if (!info.ok()) return false;
  while (sqlite3_step(info->get()) == SQLITE_ROW) {
    if (Text(info->get(), 1) == column) return true;
  }
  return false;
}

struct Run {
  int64_t run_id = 0;
  std::string config_hash;
  std::string config_json;
  std::string started_at;
  std::string run_dir;
  int64_t total_indices = -1;  // -1: not recorded
};

absl::StatusOr<Run> ReadRun(sqlite3* db, int64_t wanted) {
  const std::string columns =
      absl::StrCat("run_id, config_hash, config_json, started_at, ",
                   HasColumn(db, "pipeline_runs", "run_dir") ? "run_dir" : "NULL", ", ",
                   HasColumn(db, "pipeline_runs", "total_indices") ? "total_indices" : "NULL");
  CKPT_ASSIGN_OR_RETURN(Statement select,
                        Prepare(db, absl::StrCat("SELECT ", columns, " FROM pipeline_runs",
                                                 wanted > 0 ? " WHERE run_id = ?"
                                                            : " ORDER BY run_id DESC LIMIT 1")));
  if (wanted > 0) sqlite3_bind_int64(select.get(), 1, wanted);
  if (sqlite3_step(select.get()) != SQLITE_ROW) {
    return absl::NotFoundError(wanted > 0 ? absl::StrCat("the database has no run ", wanted)
                                          : "the database records no pipeline run");
  }
  Run run;
  run.run_id = sqlite3_column_int64(select.get(), 0);
  run.config_hash = Text(select.get(), 1);
  run.config_json = Text(select.get(), 2);
  run.started_at = Text(select.get(), 3);
  run.run_dir = Text(select.get(), 4);
  if (!IsNull(select.get(), 5)) run.total_indices = sqlite3_column_int64(select.get(), 5);
  return run;
}

v1::Job JobOf(const Run& run, const ImportOptions& options) {
  v1::Job job;
  job.set_job_id(options.job_id.empty() ? absl::StrCat("curator-", run.config_hash.substr(0, 12))
                                        : options.job_id);
  job.set_config(run.config_json);
  job.set_fingerprint(absl::StrCat("curator:", run.config_hash));
  (*job.mutable_labels())["imported-from"] = "physicsnemo-curator";
  (*job.mutable_params())["curator_run_id"] = absl::StrCat(run.run_id);
  (*job.mutable_params())["started_at"] = run.started_at;
  if (!run.run_dir.empty()) (*job.mutable_params())["run_dir"] = run.run_dir;
  job.add_steps(kStep);
  // Curator knows its total; once every index is done the job completes (or fails).
  job.set_sealed(run.total_indices >= 0);
  job.set_status(v1::JOB_STATUS_RUNNING);
  return job;
}

absl::Status AddStageTimes(sqlite3_stmt* stages, int64_t run_id, int64_t index,
                           v1::ItemMetrics* metrics) {
  sqlite3_reset(stages);
  sqlite3_bind_int64(stages, 1, index);
  sqlite3_bind_int64(stages, 2, run_id);
  while (sqlite3_step(stages) == SQLITE_ROW) {
    const int64_t ns = sqlite3_column_int64(stages, 1);
    google::protobuf::Duration& d = (*metrics->mutable_stage_times())[Text(stages, 0)];
    d.set_seconds(ns / 1000000000);
    d.set_nanos(static_cast<int32_t>(ns % 1000000000));
  }
  return absl::OkStatus();
}

absl::Status SetOutputs(const std::string& json, int64_t index, v1::ItemResult* result) {
  if (json.empty()) return absl::OkStatus();
  google::protobuf::ListValue paths;
  if (!google::protobuf::util::JsonStringToMessage(json, &paths).ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("index_results idx ", index, ": output_paths is not a JSON list"));
  }
  for (const google::protobuf::Value& path : paths.values()) {
    result->add_output_paths(path.string_value());
  }
  return absl::OkStatus();
}

// One index_results row (idx, status, output_paths, wall_time_ns, peak_memory_bytes,
// gpu_memory_bytes, error, worker_id) as an item.
absl::StatusOr<v1::Item> ItemOf(sqlite3_stmt* row, sqlite3_stmt* stages, int64_t run_id) {
  v1::Item item;
  item.set_step(kStep);
  const int64_t index = sqlite3_column_int64(row, 0);
  item.mutable_key()->set_index(static_cast<uint64_t>(index));
  item.set_worker_id(Text(row, 7));
  const std::string status = Text(row, 1);
  if (status == "error") {
    item.set_state(v1::ITEM_STATE_FAILED);
    item.set_attempts(1);
    const std::string error = Text(row, 6);
    item.mutable_last_error()->set_message(error.empty() ? "error (curator recorded no message)"
                                                         : error);
    return item;
  }
  if (status != "completed") {
    return absl::InvalidArgumentError(absl::StrCat("index_results idx ", index, ": status \"",
                                                   status, "\" is neither completed nor error"));
  }
  item.set_state(v1::ITEM_STATE_COMPLETED);
  v1::ItemResult* result = item.mutable_result();
  CKPT_RETURN_IF_ERROR(SetOutputs(Text(row, 2), index, result));
  const int64_t wall_ns = sqlite3_column_int64(row, 3);
  result->mutable_metrics()->mutable_wall_time()->set_seconds(wall_ns / 1000000000);
  result->mutable_metrics()->mutable_wall_time()->set_nanos(
      static_cast<int32_t>(wall_ns % 1000000000));
  result->mutable_metrics()->set_peak_memory_bytes(sqlite3_column_int64(row, 4));
  result->mutable_metrics()->set_gpu_memory_bytes(sqlite3_column_int64(row, 5));
  CKPT_RETURN_IF_ERROR(AddStageTimes(stages, run_id, index, result->mutable_metrics()));
  return item;
}

absl::Status ImportResults(sqlite3* db, const Run& run, JobImporter* importer) {
  const bool has_worker = HasColumn(db, "index_results", "worker_id");
  CKPT_ASSIGN_OR_RETURN(
      Statement rows,
      Prepare(db, absl::StrCat("SELECT idx, status, output_paths, wall_time_ns, "
                               "peak_memory_bytes, gpu_memory_bytes, error, ",
                               has_worker ? "worker_id" : "NULL",
                               " FROM index_results WHERE run_id = ? ORDER BY idx")));
  CKPT_ASSIGN_OR_RETURN(Statement stages,
                        Prepare(db,
                                "SELECT stage_name, wall_time_ns FROM stage_metrics "
                                "WHERE idx = ? AND run_id = ? ORDER BY stage_order"));
  sqlite3_bind_int64(rows.get(), 1, run.run_id);
  int rc;
  while ((rc = sqlite3_step(rows.get())) == SQLITE_ROW) {
    CKPT_ASSIGN_OR_RETURN(v1::Item item, ItemOf(rows.get(), stages.get(), run.run_id));
    CKPT_RETURN_IF_ERROR(importer->AddItem(std::move(item)));
  }
  if (rc != SQLITE_DONE) {
    return absl::DataLossError(absl::StrCat("reading index_results: ", sqlite3_errmsg(db)));
  }
  return absl::OkStatus();
}

// Without a recorded total, the indices that exist are the ones curator touched: those
// with a result (imported above) and those workers had in progress.
absl::Status ImportInProgress(sqlite3* db, const Run& run, JobImporter* importer) {
  if (run.total_indices >= 0) return absl::OkStatus();
  CKPT_ASSIGN_OR_RETURN(Statement rows,
                        Prepare(db,
                                "SELECT DISTINCT current_index FROM workers WHERE run_id = ? AND "
                                "current_index IS NOT NULL AND current_index NOT IN "
                                "(SELECT idx FROM index_results WHERE run_id = ?)"));
  sqlite3_bind_int64(rows.get(), 1, run.run_id);
  sqlite3_bind_int64(rows.get(), 2, run.run_id);
  while (sqlite3_step(rows.get()) == SQLITE_ROW) {
    v1::Item item;
    item.set_step(kStep);
    item.mutable_key()->set_index(static_cast<uint64_t>(sqlite3_column_int64(rows.get(), 0)));
    item.set_state(v1::ITEM_STATE_PENDING);
    CKPT_RETURN_IF_ERROR(importer->AddItem(std::move(item)));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<v1::Job> ImportCurator(Client* client, const std::string& path,
                                      const ImportOptions& options) {
  CKPT_ASSIGN_OR_RETURN(Db db, OpenReadOnly(path));
  // Fails early, before a job exists, if the tables are not curator's.
  CKPT_RETURN_IF_ERROR(Prepare(db.get(), "SELECT idx, status FROM index_results LIMIT 0").status());
  CKPT_ASSIGN_OR_RETURN(const Run run, ReadRun(db.get(), options.curator_run));
  const v1::Job job = JobOf(run, options);
  CKPT_ASSIGN_OR_RETURN(auto importer, JobImporter::Start(client, job));
  if (run.total_indices > 0) {
    CKPT_RETURN_IF_ERROR(
        importer->AddIndexRange(kStep, 0, static_cast<uint64_t>(run.total_indices)));
  }
  CKPT_RETURN_IF_ERROR(ImportResults(db.get(), run, importer.get()));
  CKPT_RETURN_IF_ERROR(ImportInProgress(db.get(), run, importer.get()));
  return importer->Finish(job);
}

}  // namespace cli
}  // namespace ckpt
