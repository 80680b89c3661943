// ckpt export and ckpt import of its own export against a real ckptd: the round trip keeps
// every item's state, attempts, worker, result and last error, the job's definition
// (its retention too) and its states, and the imported job resumes where the exported
// one was.
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/cli/cli_test_base.h"
#include "tests/cli/import_test_util.h"
#include "tests/testing/status_matchers.h"
#include "tools/cli/job_importer.h"

namespace ckpt {
namespace cli {
namespace {

using ::ckpt::testutil::StatusIs;
using ::testing::HasSubstr;

class ExportImportTest : public CliTest {
 protected:
  // "src": steps "s1" (indices 0..5) and "s2" (names), max 3 attempts, two states.
  //   s1/0 completed by host-a with outputs and metrics, after one failed try
  //   s1/1 failed twice (recorded by host-b): "bad block"
  //   s1/2 pending after one retryable failure by a worker ("flaky")
  //   s1/3 leased now by a worker; s1/4, s1/5 untouched
  //   s2/"a" completed by host-c; s2/"b" failed once: "no such file"
  void MakeSourceJob() {
    v1::CreateJobRequest create;
    create.set_job_id("src");
    create.set_display_name("the source");
    create.set_config(R"({"model":"x"})");
    create.add_steps("s1");
    create.add_steps("s2");
    create.set_max_attempts(3);
    (*create.mutable_labels())["team"] = "ml";
    (*create.mutable_params())["shard"] = "7";
    create.mutable_failure_budget()->set_max_failed_items(10);
    create.mutable_retention()->set_seconds(7 * 86400);
    CKPT_ASSERT_OK(client_->CreateJob(create));
    Add("s1", {}, 6);
    Add("s2", {"a", "b"}, 0);
    Fail("s1", IndexKey(0), "oom", "host-a");
    Complete("s1", IndexKey(0), "host-a");
    Fail("s1", IndexKey(1), "bad block", "host-b");
    Fail("s1", IndexKey(1), "bad block", "host-b");
    RetryOnce("s1", 2, "flaky");
    Lease("s1", 3);
    Complete("s2", NameKey("a"), "host-c");
    Fail("s2", NameKey("b"), "no such file", "");
    Put("cursor", "offset=42");
    Put("model", std::string("\0\1bin", 5));
  }

  void Add(const std::string& step, std::vector<std::string> names, uint64_t range_end) {
    v1::AddItemsRequest add;
    add.set_job_id("src");
    add.set_step(step);
    for (const std::string& name : names) add.add_names(name);
    if (range_end > 0) add.add_ranges()->set_end(range_end);
    CKPT_ASSERT_OK(client_->AddItems(add));
  }

  void Complete(const std::string& step, const v1::ItemKey& key, const std::string& worker) {
    v1::CompleteItemsRequest complete;
    complete.set_job_id("src");
    complete.set_step(step);
    complete.set_worker_id(worker);
    v1::Completion* c = complete.add_items();
    *c->mutable_key() = key;
    c->mutable_result()->add_output_paths(absl::StrCat("/out/", step, "/", KeyText(key)));
    c->mutable_result()->set_payload("payload");
    c->mutable_result()->mutable_metrics()->mutable_wall_time()->set_seconds(2);
    c->mutable_result()->mutable_metrics()->set_peak_memory_bytes(1 << 20);
    (*c->mutable_result()->mutable_metrics()->mutable_stage_times())["read"].set_seconds(1);
    CKPT_ASSERT_OK(client_->CompleteItems(complete));
  }

  void Fail(const std::string& step, const v1::ItemKey& key, const std::string& message,
            const std::string& worker) {
    v1::FailItemsRequest fail;
    fail.set_job_id("src");
    fail.set_step(step);
    fail.set_worker_id(worker);
    v1::Failure* f = fail.add_items();
    *f->mutable_key() = key;
    f->mutable_error()->set_message(message);
    CKPT_ASSERT_OK(client_->FailItems(fail));
  }

  std::string Worker(const std::string& job) {
    v1::RegisterWorkerRequest reg;
    reg.set_job_id(job);
    auto worker = client_->RegisterWorker(reg);
    EXPECT_TRUE(worker.ok()) << worker.status();
    return worker.ok() ? worker->worker_id() : "";
  }

  v1::Lease Lease(const std::string& step, uint64_t index) {
    v1::LeaseItemsRequest lease;
    lease.set_job_id("src");
    lease.set_step(step);
    lease.set_worker_id(Worker("src"));
    *lease.add_keys() = IndexKey(index);
    auto leased = client_->LeaseItems(lease);
    EXPECT_TRUE(leased.ok() && leased->leases_size() == 1);
    return leased.ok() && leased->leases_size() == 1 ? leased->leases(0) : v1::Lease();
  }

  void RetryOnce(const std::string& step, uint64_t index, const std::string& message) {
    const v1::Lease lease = Lease(step, index);
    v1::FailItemsRequest fail;
    fail.set_job_id("src");
    fail.set_step(step);
    v1::Failure* f = fail.add_items();
    *f->mutable_key() = lease.key();
    f->set_lease_token(lease.lease_token());
    f->mutable_error()->set_message(message);
    f->mutable_error()->set_retryable(true);
    auto failed = client_->FailItems(fail);
    CKPT_ASSERT_OK(failed);
    ASSERT_EQ(failed->states(0), v1::ITEM_STATE_PENDING);
  }

  void Put(const std::string& name, const std::string& value) {
    v1::PutStateRequest put;
    put.set_job_id("src");
    put.set_name(name);
    put.set_value(value);
    CKPT_ASSERT_OK(client_->PutState(put));
  }

  std::string Export(const std::string& job) {
    auto exported = Run({"export", job});
    EXPECT_TRUE(exported.ok()) << exported.status();
    return exported.ok() ? *exported : "";
  }
};

TEST_F(ExportImportTest, ExportIsAHeaderTheStatesOneLinePerItemAndAnEndLine) {
  MakeSourceJob();
  const std::vector<ExportLine> lines = ParseExport(Export("src"));
  ASSERT_EQ(lines.size(), 1u + 2 + 8 + 1);
  EXPECT_EQ(lines[0].kind, "ckpt_export");
  EXPECT_EQ(lines[0].job.job_id(), "src");
  EXPECT_EQ(lines[1].kind, "state");
  EXPECT_EQ(lines[1].state.name(), "cursor");
  EXPECT_EQ(lines[2].state.value(), std::string("\0\1bin", 5));
  EXPECT_EQ(lines[3].kind, "item");
  const v1::Item& done = lines[3].item;  // s1/0
  EXPECT_EQ(done.state(), v1::ITEM_STATE_COMPLETED);
  EXPECT_EQ(done.attempts(), 1u);
  EXPECT_EQ(done.worker_id(), "host-a");
  EXPECT_EQ(done.result().output_paths(0), "/out/s1/0");
  EXPECT_EQ(done.result().metrics().peak_memory_bytes(), 1u << 20);
  EXPECT_EQ(lines[4].item.last_error().message(), "bad block");
  EXPECT_EQ(lines[4].item.attempts(), 2u);
  EXPECT_EQ(lines[10].item.key().name(), "b");
  EXPECT_EQ(lines[11].kind, "end");
}

TEST_F(ExportImportTest, ImportOfAnExportRebuildsTheJobItemForItem) {
  MakeSourceJob();
  const std::string first = Export("src");
  auto imported = Run({"import", "-", "--job", "copy"}, first);
  CKPT_ASSERT_OK(imported);
  EXPECT_THAT(*imported,
              HasSubstr("imported job copy: 8 items (2 completed, 2 failed, 4 pending)"));
  // Export of the copy equals the export of the source, but for what the API sets
  // itself (times, lease tokens, versions) and the lease: a leased item comes back
  // PENDING with its attempts.
  std::vector<ExportLine> want = ParseExport(first);
  std::vector<ExportLine> got = ParseExport(Export("copy"));
  ASSERT_EQ(got.size(), want.size());
  for (ExportLine& line : want) {
    if (line.item.state() == v1::ITEM_STATE_LEASED) {
      line.item.set_state(v1::ITEM_STATE_PENDING);
      line.item.clear_worker_id();
    }
  }
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(Comparable(got[i]), Comparable(want[i])) << "line " << i + 1;
  }
}

TEST_F(ExportImportTest, TheImportedJobResumesWhereTheSourceWas) {
  MakeSourceJob();
  CKPT_ASSERT_OK(Run({"import", "-", "--job", "copy"}, Export("src")));
  // Everything leasable in s1: the retried item (its second try), the lease that was
  // cut off, and the untouched ones; never the completed or failed ones.
  v1::LeaseItemsRequest lease;
  lease.set_job_id("copy");
  lease.set_step("s1");
  lease.set_worker_id(Worker("copy"));
  lease.set_max_items(100);
  auto leased = client_->LeaseItems(lease);
  CKPT_ASSERT_OK(leased);
  std::map<uint64_t, uint32_t> attempt_of;
  for (const v1::Lease& l : leased->leases()) attempt_of[l.key().index()] = l.attempt();
  EXPECT_EQ(attempt_of, (std::map<uint64_t, uint32_t>{{2, 2}, {3, 1}, {4, 1}, {5, 1}}));
  v1::GetItemRequest get;
  get.set_job_id("copy");
  get.set_step("s1");
  *get.mutable_key() = IndexKey(1);
  auto failed = client_->GetItem(get);
  CKPT_ASSERT_OK(failed);
  EXPECT_EQ(failed->item().state(), v1::ITEM_STATE_FAILED);
  EXPECT_EQ(failed->item().last_error().message(), "bad block");
  EXPECT_EQ(failed->item().last_error().worker_id(), "host-b");
  v1::FindOutputRequest find;
  find.set_output_path("/out/s2/a");
  auto found = client_->FindOutput(find);
  CKPT_ASSERT_OK(found);
  EXPECT_EQ(found->job_id(), "copy");  // the latest completion owns a path
}

TEST_F(ExportImportTest, AJobsStatusAndSealComeAlong) {
  MakeSourceJob();
  CKPT_ASSERT_OK(Run({"pause", "src", "--reason", "maintenance"}));
  CKPT_ASSERT_OK(Run({"import", "-", "--job", "copy"}, Export("src")));
  v1::GetJobRequest get;
  get.set_job_id("copy");
  auto job = client_->GetJob(get);
  CKPT_ASSERT_OK(job);
  EXPECT_EQ(job->job().status(), v1::JOB_STATUS_PAUSED);
  EXPECT_EQ(job->job().status_reason(), "maintenance");
  EXPECT_EQ(job->job().failure_budget().max_failed_items(), 10u);
  EXPECT_EQ(job->job().retention().seconds(), 7 * 86400);
  EXPECT_FALSE(job->job().labels().contains(kImportLabel));
}

TEST_F(ExportImportTest, AnExportCutShortIsRefusedAndSaysSo) {
  MakeSourceJob();
  std::string text = Export("src");
  text.resize(text.rfind("{\"end\""));
  EXPECT_THAT(Run({"import", "-", "--job", "copy"}, text),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("cut short")));
}

TEST_F(ExportImportTest, AnExistingJobIsNotTouched) {
  MakeSourceJob();
  const std::string text = Export("src");
  EXPECT_THAT(Run({"import", "-"}, text),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("exists already")));
  EXPECT_EQ(ParseExport(Export("src")).size(), ParseExport(text).size());
}

TEST_F(ExportImportTest, NotAnExportIsRefusedBeforeAnyJobExists) {
  EXPECT_THAT(Run({"import", "-", "--job", "copy"}, "{\"hello\": 1}\n"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not a ckpt export")));
  EXPECT_THAT(Run({"import", "-", "--format", "xml"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--format must be")));
  v1::GetJobRequest get;
  get.set_job_id("copy");
  EXPECT_THAT(client_->GetJob(get), StatusIs(absl::StatusCode::kNotFound, HasSubstr("copy")));
}

}  // namespace
}  // namespace cli
}  // namespace ckpt
