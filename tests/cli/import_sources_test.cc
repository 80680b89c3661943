// ckpt import of the checkpoints ckpt replaces, each built here at test time from its
// project's documented layout (docs/migrating.md cites them), into a real ckptd: the
// job resumes where the source left off (completed items are never leased again,
// in-progress ones are pending, failed ones stay failed with their errors).
#include <sqlite3.h>

#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/cli/cli_test_base.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"
#include "tools/cli/format.h"

namespace ckpt {
namespace cli {
namespace {

using ::ckpt::testutil::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;

// physicsnemo-curator's PipelineStore schema (the tables import reads, as it creates them).
constexpr char kCuratorSchema[] = R"sql(
CREATE TABLE pipeline_runs (run_id INTEGER PRIMARY KEY AUTOINCREMENT,
  config_hash TEXT UNIQUE NOT NULL, config_json TEXT NOT NULL, started_at TEXT NOT NULL,
  run_dir TEXT, total_indices INTEGER);
CREATE TABLE index_results (idx INTEGER NOT NULL, run_id INTEGER NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('completed', 'error')), output_paths TEXT,
  completed_at TEXT NOT NULL, wall_time_ns INTEGER, peak_memory_bytes INTEGER,
  gpu_memory_bytes INTEGER, error TEXT, worker_id TEXT, PRIMARY KEY (idx, run_id));
CREATE TABLE stage_metrics (idx INTEGER NOT NULL, run_id INTEGER NOT NULL,
  stage_order INTEGER NOT NULL, stage_name TEXT NOT NULL, wall_time_ns INTEGER NOT NULL,
  PRIMARY KEY (idx, run_id, stage_order));
CREATE TABLE workers (worker_id TEXT PRIMARY KEY, run_id INTEGER NOT NULL,
  pid INTEGER NOT NULL, hostname TEXT NOT NULL, started_at TEXT NOT NULL,
  last_heartbeat TEXT NOT NULL, current_index INTEGER,
  completed_count INTEGER NOT NULL DEFAULT 0, invocation_id TEXT);
CREATE TABLE output_files (path TEXT NOT NULL, idx INTEGER NOT NULL, run_id INTEGER NOT NULL,
  seq INTEGER NOT NULL, PRIMARY KEY (path, run_id));
CREATE TABLE filter_artifacts (path TEXT NOT NULL, idx INTEGER NOT NULL,
  run_id INTEGER NOT NULL, filter_name TEXT NOT NULL, filter_order INTEGER NOT NULL,
  PRIMARY KEY (path, idx, run_id));
CREATE TABLE logs (id INTEGER PRIMARY KEY AUTOINCREMENT, run_id INTEGER NOT NULL,
  timestamp TEXT NOT NULL, level INTEGER NOT NULL, level_name TEXT NOT NULL,
  logger_name TEXT NOT NULL, message TEXT NOT NULL, worker_id TEXT, idx INTEGER);
)sql";

// A run of 6 indices: 0 and 3 completed (by worker aa11), 1 failed (by bb22), 2 in
// progress on bb22, 4 and 5 not started. An older run (run 1) is there too.
constexpr char kCuratorRows[] = R"sql(
INSERT INTO pipeline_runs VALUES (1, 'old0000000000', '{"old":true}', '2026-01-01T00:00:00', NULL, 2);
INSERT INTO pipeline_runs VALUES (2, 'abcdef0123456789', '{"source":"vtk"}', '2026-02-01T00:00:00', '/runs/a', 6);
INSERT INTO index_results VALUES (0, 1, 'completed', '["/old/0"]', 't', 1, 1, NULL, NULL, 'zz');
INSERT INTO index_results VALUES (0, 2, 'completed', '["/out/0.zarr","/out/0.json"]', 't', 1500000000, 4096, 128, NULL, 'aa11');
INSERT INTO index_results VALUES (1, 2, 'error', NULL, 't', 10, NULL, NULL, 'bad mesh at cell 7', 'bb22');
INSERT INTO index_results VALUES (3, 2, 'completed', '["/out/3.zarr"]', 't', 2000000000, 8192, NULL, NULL, 'aa11');
INSERT INTO stage_metrics VALUES (0, 2, 0, 'read', 500000000);
INSERT INTO stage_metrics VALUES (0, 2, 1, 'write', 1000000000);
INSERT INTO workers VALUES ('aa11', 2, 10, 'node-1', 't', 't', NULL, 2, 'inv');
INSERT INTO workers VALUES ('bb22', 2, 11, 'node-2', 't', 't', 2, 0, 'inv');
INSERT INTO output_files VALUES ('/out/0.zarr', 0, 2, 0);
INSERT INTO logs VALUES (1, 2, 't', 40, 'ERROR', 'curator', 'bad mesh', 'bb22', 1);
)sql";

class ImportSourcesTest : public CliTest {
 protected:
  void SetUp() override {
    CliTest::SetUp();
    dir_ = testutil::NewTempDir("import");
  }

  std::string Write(const std::string& name, const std::string& text) {
    const std::string path = dir_ + "/" + name;
    std::ofstream(path) << text;
    return path;
  }

  std::string CuratorDb(const std::string& sql) {
    const std::string path = dir_ + "/pipeline.db";
    sqlite3* db = nullptr;
    EXPECT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
    char* error = nullptr;
    EXPECT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &error), SQLITE_OK)
        << (error ? error : "");
    sqlite3_free(error);
    sqlite3_close(db);
    return path;
  }

  v1::Job GetJob(const std::string& job_id) {
    v1::GetJobRequest get;
    get.set_job_id(job_id);
    auto job = client_->GetJob(get);
    EXPECT_TRUE(job.ok()) << job.status();
    return job.ok() ? job->job() : v1::Job();
  }

  v1::Item GetItem(const std::string& job_id, const std::string& step, v1::ItemKey key) {
    v1::GetItemRequest get;
    get.set_job_id(job_id);
    get.set_step(step);
    *get.mutable_key() = key;
    auto item = client_->GetItem(get);
    EXPECT_TRUE(item.ok()) << item.status();
    return item.ok() ? item->item() : v1::Item();
  }

  // KeyText of everything a worker can lease from `step` now.
  std::vector<std::string> LeaseAll(const std::string& job_id, const std::string& step) {
    v1::RegisterWorkerRequest reg;
    reg.set_job_id(job_id);
    auto worker = client_->RegisterWorker(reg);
    EXPECT_TRUE(worker.ok()) << worker.status();
    v1::LeaseItemsRequest lease;
    lease.set_job_id(job_id);
    lease.set_step(step);
    lease.set_worker_id(worker.ok() ? worker->worker_id() : "");
    lease.set_max_items(1000);
    auto leased = client_->LeaseItems(lease);
    EXPECT_TRUE(leased.ok()) << leased.status();
    std::vector<std::string> keys;
    if (leased.ok()) {
      for (const v1::Lease& l : leased->leases()) keys.push_back(KeyText(l.key()));
    }
    return keys;
  }

  std::string dir_;
};

TEST_F(ImportSourcesTest, ACuratorDatabaseBecomesAJobThatRunsOnlyWhatIsLeft) {
  const std::string db = CuratorDb(std::string(kCuratorSchema) + kCuratorRows);
  auto out = Run({"import", db, "--job", "aero"});
  CKPT_ASSERT_OK(out);
  EXPECT_THAT(*out, HasSubstr("imported job aero: 6 items (2 completed, 1 failed, 3 pending)"));
  const v1::Job job = GetJob("aero");
  EXPECT_EQ(job.config(), R"({"source":"vtk"})");
  EXPECT_TRUE(job.sealed());
  EXPECT_EQ(job.params().at("run_dir"), "/runs/a");
  const v1::Item done = GetItem("aero", "main", IndexKey(0));
  EXPECT_EQ(done.state(), v1::ITEM_STATE_COMPLETED);
  EXPECT_EQ(done.worker_id(), "aa11");
  EXPECT_THAT(done.result().output_paths(), ElementsAre("/out/0.zarr", "/out/0.json"));
  EXPECT_EQ(done.result().metrics().wall_time().seconds(), 1);
  EXPECT_EQ(done.result().metrics().wall_time().nanos(), 500000000);
  EXPECT_EQ(done.result().metrics().peak_memory_bytes(), 4096u);
  EXPECT_EQ(done.result().metrics().stage_times().at("write").seconds(), 1);
  const v1::Item failed = GetItem("aero", "main", IndexKey(1));
  EXPECT_EQ(failed.state(), v1::ITEM_STATE_FAILED);
  EXPECT_EQ(failed.last_error().message(), "bad mesh at cell 7");
  EXPECT_EQ(failed.worker_id(), "bb22");
  EXPECT_THAT(LeaseAll("aero", "main"), UnorderedElementsAre("2", "4", "5"));
}

TEST_F(ImportSourcesTest, ACuratorRunIsChosenWithRunAndTheJobIdComesFromItsHash) {
  const std::string db = CuratorDb(std::string(kCuratorSchema) + kCuratorRows);
  CKPT_ASSERT_OK(Run({"import", db, "--run", "1"}));
  const v1::Job job = GetJob("curator-old000000000");
  EXPECT_EQ(job.progress().total(), 2u);
  EXPECT_EQ(job.progress().completed(), 1u);
  EXPECT_EQ(GetItem("curator-old000000000", "main", IndexKey(0)).worker_id(), "zz");
}

TEST_F(ImportSourcesTest, ACuratorDatabaseWithoutATotalKeepsTheJobOpen) {
  const std::string db = CuratorDb(std::string(kCuratorSchema) + kCuratorRows +
                                   "UPDATE pipeline_runs SET total_indices = NULL;");
  CKPT_ASSERT_OK(Run({"import", db, "--job", "aero"}));
  const v1::Job job = GetJob("aero");
  EXPECT_FALSE(job.sealed());
  EXPECT_EQ(job.progress().total(), 4u);  // 0, 1, 3 with results; 2 in progress
  EXPECT_THAT(LeaseAll("aero", "main"), ElementsAre("2"));
}

TEST_F(ImportSourcesTest, AnSqliteFileThatIsNotCuratorsIsRefusedBeforeAnyJobExists) {
  const std::string db = CuratorDb("CREATE TABLE t (x INTEGER);");
  EXPECT_THAT(Run({"import", db, "--job", "aero"}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("not a physicsnemo-curator database")));
  v1::GetJobRequest get;
  get.set_job_id("aero");
  EXPECT_THAT(client_->GetJob(get), StatusIs(absl::StatusCode::kNotFound, HasSubstr("aero")));
}

// The layout of the seed's CheckpointManager: steps in pipeline order, items as dicts.
constexpr char kPipelineCheckpoint[] = R"json({
  "metadata": {"created_at": "2025-01-01T12:00:00", "last_updated": "2025-01-01T13:00:00",
               "pipeline_type": "FRID_LEVEL"},
  "steps": {
    "enrich_data": {
      "completed_items": [{"foodcourt_id": "f1", "restaurant_id": "r1", "item_id": "i1"},
                          {"foodcourt_id": "f1", "restaurant_id": "r1", "item_id": "i2"}],
      "failed_items": [{"foodcourt_id": "f1", "restaurant_id": "r2", "item_name": "soup",
                        "error": "timeout"},
                       {"foodcourt_id": "f1", "restaurant_id": "r1", "item_id": "i2",
                        "error": "old failure"}],
      "in_progress_items": [{"foodcourt_id": "f2", "restaurant_id": "r1", "item_id": "i9"}]
    },
    "preprocessing": {"completed_items": [{"foodcourt_id": "f1", "restaurant_id": "r1",
                                           "item_id": "i1"}],
                      "failed_items": [], "in_progress_items": []},
    "model_generation": {"completed_items": [], "failed_items": [], "in_progress_items": []}
  }
})json";

TEST_F(ImportSourcesTest, APipelineCheckpointKeepsItsStepsInOrderAndReRunsWhatWasInProgress) {
  const std::string path = Write("pipeline_checkpoint.json", kPipelineCheckpoint);
  auto out = Run({"import", path, "--job", "frid"});
  CKPT_ASSERT_OK(out);
  EXPECT_THAT(*out, HasSubstr("imported job frid: 5 items (3 completed, 1 failed, 1 pending)"));
  const v1::Job job = GetJob("frid");
  EXPECT_THAT(job.steps(), ElementsAre("enrich_data", "preprocessing", "model_generation"));
  EXPECT_EQ(job.display_name(), "FRID_LEVEL");
  // Completion wins over a stale failure of the same item, as the seed skips it.
  const v1::Item done = GetItem("frid", "enrich_data", NameKey("f1|r1|i2"));
  EXPECT_EQ(done.state(), v1::ITEM_STATE_COMPLETED);
  EXPECT_THAT(done.result().payload(), HasSubstr("\"item_id\":\"i2\""));
  const v1::Item failed = GetItem("frid", "enrich_data", NameKey("f1|r2|soup"));
  EXPECT_EQ(failed.state(), v1::ITEM_STATE_FAILED);
  EXPECT_EQ(failed.last_error().message(), "timeout");
  EXPECT_THAT(LeaseAll("frid", "enrich_data"), ElementsAre("f2|r1|i9"));
  EXPECT_THAT(LeaseAll("frid", "preprocessing"), ElementsAre());
}

TEST_F(ImportSourcesTest, APipelineCheckpointNeedsAJobIdAndValidItems) {
  const std::string path = Write("pipeline_checkpoint.json", kPipelineCheckpoint);
  EXPECT_THAT(Run({"import", path}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--job ID")));
  const std::string bad =
      Write("bad.json", R"({"steps": {"s": {"completed_items": [{"colour": "red"}]}}})");
  EXPECT_THAT(Run({"import", bad, "--job", "frid"}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("steps.s.completed_items[0]: an item is")));
  v1::GetJobRequest get;
  get.set_job_id("frid");
  EXPECT_THAT(client_->GetJob(get), StatusIs(absl::StatusCode::kNotFound, HasSubstr("frid")));
}

// The layout of the progressive-saving guide's checkpoint ({job_id}.json).
constexpr char kProgressive[] = R"json({
  "job_id": "f90aa645", "batch_id": "batch_20251214_204300", "status": "PAUSED",
  "total_documents": 6, "processed_documents": 3, "failed_documents": 1,
  "processed_doc_ids": ["doc_101", "doc_102", "doc_104"], "failed_doc_ids": ["doc_103"],
  "created_at": "2025-12-14T20:43:00Z", "updated_at": "2025-12-14T21:45:30Z",
  "metadata": {"progressive_save_enabled": true}
})json";

TEST_F(ImportSourcesTest, AProgressiveCheckpointKeepsItsIdsStatusAndProcessedDocuments) {
  const std::string path = Write("f90aa645.json", kProgressive);
  auto out = Run({"import", path});
  CKPT_ASSERT_OK(out);
  EXPECT_THAT(*out, HasSubstr("imported job f90aa645: 4 items (3 completed, 1 failed, 0 pending); "
                              "PAUSED"));
  const v1::Job job = GetJob("f90aa645");
  EXPECT_EQ(job.display_name(), "batch_20251214_204300");
  EXPECT_EQ(job.params().at("total_documents"), "6");
  EXPECT_EQ(GetItem("f90aa645", "main", NameKey("doc_103")).state(), v1::ITEM_STATE_FAILED);
  // Resumed, the pipeline adds its documents again: only the unprocessed ones are new.
  CKPT_ASSERT_OK(Run({"resume", "f90aa645"}));
  v1::AddItemsRequest add;
  add.set_job_id("f90aa645");
  for (const char* doc : {"doc_101", "doc_102", "doc_103", "doc_104", "doc_105", "doc_106"}) {
    add.add_names(doc);
  }
  auto added = client_->AddItems(add);
  CKPT_ASSERT_OK(added);
  EXPECT_EQ(added->added(), 2u);
  EXPECT_THAT(LeaseAll("f90aa645", "main"), UnorderedElementsAre("doc_105", "doc_106"));
}

TEST_F(ImportSourcesTest, AJsonCheckpointComesOnStdinWithItsFormatNamed) {
  CKPT_ASSERT_OK(Run({"import", "-", "--format", "progressive"}, kProgressive));
  EXPECT_EQ(GetJob("f90aa645").progress().completed(), 3u);
  EXPECT_THAT(Run({"import", "-", "--format", "curator"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("give its path")));
}

TEST_F(ImportSourcesTest, AProgressiveCheckpointWithAnUnknownStatusIsRefused) {
  std::string text = kProgressive;
  text.replace(text.find("PAUSED"), 6, "SLEEPY");
  const std::string path = Write("f90aa645.json", text);
  EXPECT_THAT(Run({"import", path}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("\"SLEEPY\" is none of")));
}

}  // namespace
}  // namespace cli
}  // namespace ckpt
