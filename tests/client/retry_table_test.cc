// client/retry_table.cc against docs/api.md's table "Retrying a write": the doc is the one
// source, and the Python SDK is checked against the same rows
// (client/python/tests/retry_table_test.py), so changing one SDK's table, or the doc,
// without the other fails a test.
#include "client/retry_table.h"

#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "ckpt/v1/checkpoint.pb.h"
#include "gtest/gtest.h"

namespace ckpt {
namespace {

using Sample = std::pair<std::string, std::shared_ptr<google::protobuf::Message>>;

template <typename Request>
Sample Make(const std::string& method, const std::function<void(Request*)>& fill = nullptr) {
  auto request = std::make_shared<Request>();
  if (fill) fill(request.get());
  return {method, request};
}

// Requests that each row of the doc's table is about, by the row's first cell.
std::map<std::string, std::vector<Sample>> Samples() {
  return {
      {"GetJob, ListJobs, GetItem, ListItems, FindOutput, ListWorkers, GetState, ListStates, "
       "WatchJob, ListLogs",
       {Make<v1::GetJobRequest>("GetJob"), Make<v1::ListJobsRequest>("ListJobs"),
        Make<v1::GetItemRequest>("GetItem"), Make<v1::ListItemsRequest>("ListItems"),
        Make<v1::FindOutputRequest>("FindOutput"), Make<v1::ListWorkersRequest>("ListWorkers"),
        Make<v1::GetStateRequest>("GetState"), Make<v1::ListStatesRequest>("ListStates"),
        Make<v1::WatchJobRequest>("WatchJob"), Make<v1::ListLogsRequest>("ListLogs")}},
      {"CreateJob with `job_id`",
       {Make<v1::CreateJobRequest>("CreateJob", [](auto* r) { r->set_job_id("j"); })}},
      {"CreateJob without `job_id`", {Make<v1::CreateJobRequest>("CreateJob")}},
      {"UpdateJob, PauseJob, ResumeJob, StopJob, FinishJob (same status), UnregisterWorker",
       {Make<v1::UpdateJobRequest>("UpdateJob"), Make<v1::PauseJobRequest>("PauseJob"),
        Make<v1::ResumeJobRequest>("ResumeJob"), Make<v1::StopJobRequest>("StopJob"),
        Make<v1::FinishJobRequest>("FinishJob"),
        Make<v1::UnregisterWorkerRequest>("UnregisterWorker")}},
      {"Heartbeat", {Make<v1::HeartbeatRequest>("Heartbeat")}},
      {"WriteLogs", {Make<v1::WriteLogsRequest>("WriteLogs")}},
      {"AddItems, sealing or not",
       {Make<v1::AddItemsRequest>("AddItems", [](auto* r) { r->add_indices(1); }),
        Make<v1::AddItemsRequest>("AddItems",
                                  [](auto* r) {
                                    r->add_indices(1);
                                    r->set_seal(true);
                                  }),
        Make<v1::AddItemsRequest>("AddItems", [](auto* r) { r->set_seal(true); })}},
      {"CompleteItems",
       {Make<v1::CompleteItemsRequest>("CompleteItems",
                                       [](auto* r) {
                                         r->add_items()->set_lease_token(0);
                                         r->add_items()->set_lease_token(7);
                                       })}},
      {"CompleteItems with `lease_next`",
       {Make<v1::CompleteItemsRequest>("CompleteItems",
                                       [](auto* r) {
                                         r->set_worker_id("w-1");
                                         r->add_items()->set_lease_token(7);
                                         r->mutable_lease_next()->set_max_items(100);
                                       })}},
      {"FailItems, every item with a token",
       {Make<v1::FailItemsRequest>("FailItems",
                                   [](auto* r) {
                                     r->add_items()->set_lease_token(7);
                                     r->add_items()->set_lease_token(8);
                                   })}},
      {"FailItems with a token-0 item",
       {Make<v1::FailItemsRequest>("FailItems",
                                   [](auto* r) {
                                     r->add_items()->set_lease_token(7);
                                     r->add_items()->set_lease_token(0);
                                   })}},
      {"LeaseItems",
       {Make<v1::LeaseItemsRequest>("LeaseItems",
                                    [](auto* r) {
                                      r->set_worker_id("w-1");
                                      r->set_max_items(1);
                                    })}},
      {"RegisterWorker", {Make<v1::RegisterWorkerRequest>("RegisterWorker")}},
      {"ResetItems with `dry_run`",
       {Make<v1::ResetItemsRequest>("ResetItems", [](auto* r) { r->set_dry_run(true); })}},
      {"ResetItems",
       {Make<v1::ResetItemsRequest>("ResetItems",
                                    [](auto* r) { r->set_state(v1::ITEM_STATE_FAILED); })}},
      {"ResetJob", {Make<v1::ResetJobRequest>("ResetJob")}},
      {"DeleteJob", {Make<v1::DeleteJobRequest>("DeleteJob")}},
      {"BackupStore", {Make<v1::BackupStoreRequest>("BackupStore")}},
      {"DeleteJobs with `dry_run`",
       {Make<v1::DeleteJobsRequest>("DeleteJobs", [](auto* r) { r->set_dry_run(true); })}},
      {"DeleteJobs", {Make<v1::DeleteJobsRequest>("DeleteJobs")}},
      {"PutState without `expected_version`",
       {Make<v1::PutStateRequest>("PutState", [](auto* r) { r->set_name("n"); })}},
      {"PutState with `expected_version`",
       {Make<v1::PutStateRequest>("PutState",
                                  [](auto* r) {
                                    r->set_name("n");
                                    r->set_expected_version(0);
                                  }),
        Make<v1::PutStateRequest>("PutState",
                                  [](auto* r) {
                                    r->set_name("n");
                                    r->set_expected_version(3);
                                  })}},
  };
}

// {first cell: re-sent} of the table under "## Retrying a write" in docs/api.md.
std::map<std::string, bool> DocTable() {
  const std::string path = std::string(std::getenv("TEST_SRCDIR")) + "/ckpt/docs/api.md";
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  const std::string doc = text.str();
  const size_t start = doc.find("## Retrying a write");
  EXPECT_NE(start, std::string::npos) << path;
  const size_t end = doc.find("\n## ", start + 1);
  std::map<std::string, bool> rows;
  for (absl::string_view line :
       absl::StrSplit(absl::string_view(doc).substr(start, end - start), '\n')) {
    line = absl::StripAsciiWhitespace(line);
    if (!absl::ConsumePrefix(&line, "|") || !absl::ConsumeSuffix(&line, "|")) continue;
    std::vector<std::string> cells = absl::StrSplit(line, '|');
    if (cells.size() != 3) continue;
    const std::string verdict(absl::StripAsciiWhitespace(cells[2]));
    if (verdict != "yes" && verdict != "no") continue;
    rows[std::string(absl::StripAsciiWhitespace(cells[0]))] = verdict == "yes";
  }
  return rows;
}

TEST(RetryTableTest, EveryRowOfTheDocHasSamplesAndEverySampleARow) {
  std::set<std::string> rows, sampled;
  for (const auto& [row, resend] : DocTable()) rows.insert(row);
  for (const auto& [row, samples] : Samples()) sampled.insert(row);
  EXPECT_EQ(rows, sampled);
}

TEST(RetryTableTest, TheSdkResendsExactlyWhatTheDocSays) {
  const auto samples = Samples();
  for (const auto& [row, resend] : DocTable()) {
    const auto it = samples.find(row);
    if (it == samples.end()) continue;  // reported by the test above
    for (const auto& [method, request] : it->second) {
      EXPECT_EQ(ResendAfterLostAnswer(method, *request), resend)
          << row << ": " << method << "(" << request->ShortDebugString() << ")";
    }
  }
}

TEST(RetryTableTest, EveryRpcIsInTheDocAndInTheTable) {
  std::set<std::string> service, sampled;
  const auto* descriptor = v1::GetJobRequest::descriptor()->file()->FindServiceByName("Checkpoint");
  for (int i = 0; i < descriptor->method_count(); ++i)
    service.insert(descriptor->method(i)->name());
  for (const auto& [row, samples] : Samples()) {
    for (const auto& [method, request] : samples) sampled.insert(method);
  }
  EXPECT_EQ(sampled, service);
  const std::vector<std::string> table = RetryTableMethods();
  EXPECT_EQ(std::set<std::string>(table.begin(), table.end()), service);
}

}  // namespace
}  // namespace ckpt
