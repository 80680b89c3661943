// Without libFuzzer: runs request_fuzzer.cc's entry point over corpus files, as a
// regression test in every build (gcc, asan), and writes the seed corpus.
//
//   corpus_main DIR_OR_FILE...       runs every input; exit 0 if none aborted
//   corpus_main --make_seeds=DIR     writes the seeds (tests/fuzz/corpus/ holds them)
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "ckpt/v1/checkpoint.pb.h"
#include "google/protobuf/text_format.h"
#include "tests/fuzz/request_fuzzer.h"

namespace {

namespace fs = std::filesystem;

// Call numbers of request_fuzzer.cc's kCalls.
enum CallId : uint8_t {
  kCreateJob = 0,
  kGetJob,
  kListJobs,
  kUpdateJob,
  kPauseJob,
  kResumeJob,
  kStopJob,
  kFinishJob,
  kResetJob,
  kDeleteJob,
  kAddItems,
  kLeaseItems,
  kCompleteItems,
  kFailItems,
  kGetItem,
  kListItems,
  kResetItems,
  kFindOutput,
  kRegisterWorker,
  kHeartbeat,
  kListWorkers,
  kUnregisterWorker,
  kPutState,
  kGetState,
  kListStates,
  kAdvanceClock,
  kDeleteJobs,
  kSweepJobs,
};

class Seed {
 public:
  template <typename Message>
  Seed& Add(CallId call, const std::string& text) {
    Message message;
    if (!google::protobuf::TextFormat::ParseFromString(text, &message)) {
      std::cerr << "bad seed text: " << text << "\n";
      std::abort();
    }
    return AddBytes(call, message.SerializeAsString());
  }
  Seed& AddBytes(CallId call, const std::string& bytes) {
    bytes_.push_back(static_cast<char>(call));
    bytes_.push_back(static_cast<char>(bytes.size() >> 8));
    bytes_.push_back(static_cast<char>(bytes.size() & 0xff));
    bytes_ += bytes;
    return *this;
  }
  const std::string& bytes() const { return bytes_; }

 private:
  std::string bytes_;
};

using namespace ckpt::v1;  // NOLINT: seeds only

Seed JobWithItems() {
  Seed s;
  s.Add<CreateJobRequest>(kCreateJob, R"pb(job_id: "j"
                                           steps: [ "a", "b" ]
                                           lease_timeout { seconds: 2 }
                                           max_attempts: 2)pb")
      .Add<AddItemsRequest>(kAddItems, R"pb(job_id: "j"
                                            names: [ "x", "y" ]
                                            ranges { begin: 0 end: 20 })pb")
      .Add<AddItemsRequest>(kAddItems, R"pb(job_id: "j"
                                            step: "b"
                                            indices: [ 1, 5 ]
                                            seal: true)pb");
  return s;
}

std::vector<std::pair<std::string, std::string>> Seeds() {
  std::vector<std::pair<std::string, std::string>> seeds;
  seeds.emplace_back("empty_job", Seed()
                                      .Add<CreateJobRequest>(kCreateJob, R"pb(job_id: "j")pb")
                                      .Add<GetJobRequest>(kGetJob, R"pb(job_id: "j")pb")
                                      .bytes());
  Seed worker = JobWithItems();
  worker.Add<RegisterWorkerRequest>(kRegisterWorker, R"pb(job_id: "j" hostname: "h")pb")
      .Add<LeaseItemsRequest>(kLeaseItems, R"pb(job_id: "j" worker_id: "$w" max_items: 3)pb")
      .Add<HeartbeatRequest>(kHeartbeat, R"pb(job_id: "j"
                                              worker_id: "$w"
                                              leases {
                                                key { index: 0 }
                                                lease_token: 1
                                                cursor: "row 7"
                                              })pb")
      .Add<CompleteItemsRequest>(kCompleteItems, R"pb(job_id: "j"
                                                      worker_id: "$w"
                                                      items {
                                                        key { index: 0 }
                                                        lease_token: 1
                                                        result { payload: "p" output_paths: "/o/0" }
                                                      })pb")
      .Add<FailItemsRequest>(kFailItems, R"pb(job_id: "j"
                                              worker_id: "$w"
                                              items {
                                                key { index: 1 }
                                                lease_token: 2
                                                error { message: "boom" retryable: true }
                                              })pb")
      .AddBytes(kAdvanceClock, "\x05")
      .Add<ListItemsRequest>(kListItems, R"pb(job_id: "j" error_groups: 3)pb")
      .Add<ListWorkersRequest>(kListWorkers, R"pb(job_id: "j" include_exited: true)pb")
      .Add<UnregisterWorkerRequest>(kUnregisterWorker, R"pb(job_id: "j" worker_id: "$w")pb")
      .Add<FindOutputRequest>(kFindOutput, R"pb(output_path: "/o/0")pb");
  seeds.emplace_back("worker_flow", worker.bytes());
  Seed record = JobWithItems();
  record
      .Add<CompleteItemsRequest>(kCompleteItems, R"pb(job_id: "j"
                                                      items {
                                                        key { name: "x" }
                                                        result { payload: "r" }
                                                      }
                                                      items { key { index: 3 } })pb")
      .Add<FailItemsRequest>(kFailItems, R"pb(job_id: "j"
                                              items {
                                                key { name: "y" }
                                                error { message: "bad input" }
                                              })pb")
      .Add<LeaseItemsRequest>(kLeaseItems, R"pb(job_id: "j"
                                                keys { name: "y" }
                                                keys { index: 4 })pb")
      .Add<ResetItemsRequest>(kResetItems, R"pb(job_id: "j" state: ITEM_STATE_FAILED)pb")
      .Add<GetItemRequest>(kGetItem, R"pb(job_id: "j"
                                          key { name: "x" })pb")
      .Add<ListItemsRequest>(kListItems, R"pb(job_id: "j" step: "b" limit: 2)pb");
  seeds.emplace_back("record_mode", record.bytes());
  Seed lifecycle = JobWithItems();
  lifecycle
      .Add<UpdateJobRequest>(kUpdateJob, R"pb(job_id: "j"
                                              stage: "s"
                                              set_labels { key: "k" value: "v" }
                                              seal: true)pb")
      .Add<PauseJobRequest>(kPauseJob, R"pb(job_id: "j" reason: "r")pb")
      .Add<ResumeJobRequest>(kResumeJob, R"pb(job_id: "j")pb")
      .Add<PutStateRequest>(kPutState,
                            R"pb(job_id: "j" name: "c" value: "1" expected_version: 0)pb")
      .Add<GetStateRequest>(kGetState, R"pb(job_id: "j" name: "c")pb")
      .Add<ListStatesRequest>(kListStates, R"pb(job_id: "j" include_values: true)pb")
      .Add<ResetJobRequest>(kResetJob, R"pb(job_id: "j")pb")
      .Add<FinishJobRequest>(kFinishJob, R"pb(job_id: "j" status: JOB_STATUS_FAILED reason: "r")pb")
      .Add<ResetJobRequest>(kResetJob, R"pb(job_id: "j" remove_items: true)pb")
      .Add<StopJobRequest>(kStopJob, R"pb(job_id: "j")pb")
      .Add<ListJobsRequest>(kListJobs, R"pb(limit: 5)pb")
      .Add<DeleteJobRequest>(kDeleteJob, R"pb(job_id: "j")pb");
  seeds.emplace_back("job_lifecycle", lifecycle.bytes());
  Seed budget;
  budget
      .Add<CreateJobRequest>(kCreateJob, R"pb(job_id: "b"
                                              failure_budget { max_failed_items: 1 }
                                              max_run_time { seconds: 3 })pb")
      .Add<AddItemsRequest>(kAddItems, R"pb(job_id: "b"
                                            ranges { begin: 0 end: 5 }
                                            seal: true)pb")
      .Add<RegisterWorkerRequest>(kRegisterWorker, R"pb(job_id: "b")pb")
      .Add<LeaseItemsRequest>(kLeaseItems, R"pb(job_id: "b" worker_id: "$w" max_items: 5)pb")
      .AddBytes(kAdvanceClock, "\x04")
      .Add<LeaseItemsRequest>(kLeaseItems, R"pb(job_id: "b" worker_id: "$w" max_items: 5)pb")
      .Add<FailItemsRequest>(kFailItems, R"pb(job_id: "b"
                                              items {
                                                key { index: 0 }
                                                lease_token: 6
                                                error { message: "x" }
                                              }
                                              items {
                                                key { index: 1 }
                                                lease_token: 7
                                                error { message: "y" }
                                              })pb");
  seeds.emplace_back("budget_and_expiry", budget.bytes());
  Seed retention = JobWithItems();
  retention
      .Add<UpdateJobRequest>(kUpdateJob, R"pb(job_id: "j"
                                              retention { seconds: 2 })pb")
      .Add<FinishJobRequest>(kFinishJob, R"pb(job_id: "j" status: JOB_STATUS_COMPLETED)pb")
      .Add<CreateJobRequest>(kCreateJob, R"pb(job_id: "k"
                                              retention { seconds: 1 })pb")
      .Add<StopJobRequest>(kStopJob, R"pb(job_id: "k")pb")
      .Add<CreateJobRequest>(kCreateJob, R"pb(job_id: "m")pb")
      .Add<FinishJobRequest>(kFinishJob, R"pb(job_id: "m" status: JOB_STATUS_FAILED)pb")
      .AddBytes(kAdvanceClock, "\x01")
      .AddBytes(kSweepJobs, "")
      .Add<DeleteJobsRequest>(kDeleteJobs, R"pb(dry_run: true limit: 1)pb")
      .Add<DeleteJobsRequest>(kDeleteJobs, R"pb(statuses: JOB_STATUS_FAILED)pb")
      .AddBytes(kAdvanceClock, "\x02")
      .AddBytes(kSweepJobs, "");
  seeds.emplace_back("retention_and_bulk_delete", retention.bytes());
  // The worker loop with lease_next: a completion leases the next batch (tokens 3 and 4),
  // is repeated as after a lost answer (3 and 4 again, and one more), and the next one
  // completes those while the job is paused.
  Seed loop = JobWithItems();
  loop.Add<RegisterWorkerRequest>(kRegisterWorker, R"pb(job_id: "j" hostname: "h")pb")
      .Add<LeaseItemsRequest>(kLeaseItems, R"pb(job_id: "j" worker_id: "$w" max_items: 2)pb")
      .Add<CompleteItemsRequest>(kCompleteItems, R"pb(job_id: "j"
                                                      worker_id: "$w"
                                                      items {
                                                        key { index: 0 }
                                                        lease_token: 1
                                                      }
                                                      items {
                                                        key { index: 1 }
                                                        lease_token: 2
                                                      }
                                                      lease_next { max_items: 2 })pb")
      .Add<CompleteItemsRequest>(kCompleteItems, R"pb(job_id: "j"
                                                      worker_id: "$w"
                                                      items {
                                                        key { index: 0 }
                                                        lease_token: 1
                                                      }
                                                      lease_next { max_items: 3 })pb")
      .Add<PauseJobRequest>(kPauseJob, R"pb(job_id: "j")pb")
      .Add<CompleteItemsRequest>(kCompleteItems, R"pb(job_id: "j"
                                                      worker_id: "$w"
                                                      skip_lost_leases: true
                                                      items {
                                                        key { index: 2 }
                                                        lease_token: 3
                                                      }
                                                      items {
                                                        key { index: 3 }
                                                        lease_token: 4
                                                        result { output_paths: "/o/3" }
                                                      }
                                                      lease_next { max_items: 2 })pb")
      .Add<ResumeJobRequest>(kResumeJob, R"pb(job_id: "j")pb")
      .Add<GetItemRequest>(kGetItem, R"pb(job_id: "j"
                                          key { index: 4 })pb");
  seeds.emplace_back("lease_next", loop.bytes());
  return seeds;
}

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream bytes;
  bytes << in.rdbuf();
  return bytes.str();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 2 && absl::StartsWith(argv[1], "--make_seeds=")) {
    const fs::path dir = std::string(argv[1]).substr(13);
    fs::create_directories(dir);
    for (const auto& [name, bytes] : Seeds()) {
      std::ofstream(dir / name, std::ios::binary) << bytes;
    }
    return 0;
  }
  LLVMFuzzerInitialize(&argc, &argv);
  int runs = 0;
  for (int i = 1; i < argc; ++i) {
    std::vector<fs::path> files;
    if (fs::is_directory(argv[i])) {
      for (const auto& entry : fs::directory_iterator(argv[i])) files.push_back(entry.path());
    } else {
      files.push_back(argv[i]);
    }
    std::sort(files.begin(), files.end());
    for (const fs::path& file : files) {
      const std::string bytes = ReadFile(file);
      std::cerr << "running " << file.filename() << " (" << bytes.size() << " bytes)\n";
      LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
      ++runs;
    }
  }
  std::cerr << runs << " inputs ran\n";
  return runs > 0 ? 0 : 1;
}
