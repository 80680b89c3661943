#include "service/rpc/validate.h"

#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <ostream>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "ckpt/v1/checkpoint.pb.h"
#include "gmock/gmock.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/duration.pb.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace ckpt {
namespace {

using ::ckpt::testutil::IsOk;
using ::ckpt::testutil::StatusIs;
using ::google::protobuf::Duration;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr uint64_t k2To63 = uint64_t{1} << 63;

// ---- Building blocks ----

std::string Repeat(size_t n, char c = 'x') { return std::string(n, c); }

Duration Seconds(int64_t seconds, int32_t nanos = 0) {
  Duration d;
  d.set_seconds(seconds);
  d.set_nanos(nanos);
  return d;
}

v1::ItemKey Index(uint64_t index) {
  v1::ItemKey key;
  key.set_index(index);
  return key;
}

v1::ItemKey Name(const std::string& name) {
  v1::ItemKey key;
  key.set_name(name);
  return key;
}

// Adds `n` entries "e0", "e1", ... to a map, for count limits.
template <typename Map>
void AddEntries(Map* map, int n) {
  for (int i = 0; i < n; ++i) (*map)[absl::StrCat("e", i)];
}

// A copy of `request` changed by `edit`: With(CreateJob(), [](auto& r) { ... }).
template <typename Request, typename Edit>
Request With(Request request, Edit edit) {
  edit(request);
  return request;
}

// ---- One valid request of each type ----

// A message from text format; the test fails if `text` does not parse.
template <typename Message>
Message Parse(const std::string& text) {
  Message message;
  EXPECT_TRUE(::google::protobuf::TextFormat::ParseFromString(text, &message)) << text;
  return message;
}

// The requests that carry only a job_id.
template <typename Request>
Request ForJob() {
  return Parse<Request>(R"pb(job_id: "job-1")pb");
}

v1::CreateJobRequest CreateJob() {
  return Parse<v1::CreateJobRequest>(R"pb(
    job_id: "batch_20251214_204300"
    display_name: "nightly OCR"
    config: "{\"model\": \"ocr-v2\"}"
    fingerprint: "sha256:0123abcd"
    labels { key: "team" value: "data" }
    labels { key: "k8s.io/app" value: "ocr" }
    params { key: "model" value: "ocr-v2" }
    steps: [ "extract", "load" ]
    lease_timeout { seconds: 60 }
    max_attempts: 3
    max_run_time { seconds: 3600 }
    failure_budget { max_failed_fraction: 0.1 }
  )pb");
}

// Every field of a CreateJob at its largest allowed value.
v1::CreateJobRequest CreateJobAtLimits() {
  v1::CreateJobRequest r = CreateJob();
  r.set_job_id(Repeat(128));
  r.set_display_name(Repeat(256));
  r.set_config(Repeat(1 << 20));
  r.set_fingerprint(Repeat(128));
  (*r.mutable_labels())[Repeat(63)] = Repeat(256);
  (*r.mutable_params())[Repeat(128)] = Repeat(4096);
  *r.mutable_lease_timeout() = Seconds(24 * 3600);
  *r.mutable_max_run_time() = Seconds(7 * 24 * 3600);
  *r.mutable_retention() = Seconds(3650 * 24 * 3600);
  r.set_max_attempts(1000);
  r.mutable_failure_budget()->set_max_failed_fraction(1);
  return r;
}

v1::ListJobsRequest ListJobs() {
  return Parse<v1::ListJobsRequest>(R"pb(
    status: JOB_STATUS_RUNNING
    labels { key: "team" value: "data" }
    name_prefix: "batch_"
    limit: 1000
    page_token: "opaque"
  )pb");
}

v1::UpdateJobRequest UpdateJob() {
  return Parse<v1::UpdateJobRequest>(R"pb(
    job_id: "job-1"
    stage: "transforming"
    set_labels { key: "phase" value: "2" }
    remove_labels: "old"
    set_params { key: "batch_size" value: "64" }
    remove_params: "unused"
    seal: true
  )pb");
}

v1::PauseJobRequest PauseJob() {
  return Parse<v1::PauseJobRequest>(R"pb(job_id: "job-1" reason: "maintenance")pb");
}

v1::StopJobRequest StopJob() {
  return Parse<v1::StopJobRequest>(R"pb(job_id: "job-1" reason: "superseded")pb");
}

v1::FinishJobRequest FinishJob() {
  return Parse<v1::FinishJobRequest>(R"pb(job_id: "job-1"
                                          status: JOB_STATUS_COMPLETED
                                          reason: "done by hand")pb");
}

v1::AddItemsRequest AddItems() {
  return Parse<v1::AddItemsRequest>(R"pb(
    job_id: "job-1"
    names: [ "doc-0001.pdf", "doc-0002.pdf" ]
    indices: 7
    ranges { begin: 0 end: 1000000 }
  )pb");
}

// max_batch entries in total, with the largest name, index and range end.
v1::AddItemsRequest AddItemsAtLimits() {
  v1::AddItemsRequest r = AddItems();
  r.set_names(0, Repeat(1024));
  r.set_indices(0, k2To63 - 1);
  r.mutable_ranges(0)->set_end(k2To63);
  for (int i = 4; i < 8192; ++i) r.add_indices(i);
  return r;
}

v1::LeaseItemsRequest LeaseItems() {
  return Parse<v1::LeaseItemsRequest>(
      R"pb(job_id: "job-1" step: "extract" worker_id: "w-1" max_items: 16)pb");
}

// Record mode's "mark in progress": specific keys, no worker.
v1::LeaseItemsRequest ClaimItems() {
  return Parse<v1::LeaseItemsRequest>(R"pb(job_id: "job-1"
                                           keys { index: 1 }
                                           keys { name: "a.txt" })pb");
}

// `n` completions of items 0..n-1, each with a full result.
v1::CompleteItemsRequest CompleteItems(int n = 2) {
  const auto item = Parse<v1::Completion>(R"pb(
    lease_token: 42
    result {
      output_paths: "s3://bucket/out/1.json"
      payload: "cached"
      metrics {
        wall_time { seconds: 1 nanos: 500000000 }
        stage_times {
          key: "read"
          value { nanos: 200000000 }
        }
      }
    }
  )pb");
  v1::CompleteItemsRequest r;
  r.set_job_id("job-1");
  r.set_worker_id("w-1");
  for (int i = 0; i < n; ++i) {
    *r.add_items() = item;
    *r.mutable_items(i)->mutable_key() = Index(i);
  }
  return r;
}

// Completion `i`'s result.
v1::ItemResult* Result(v1::CompleteItemsRequest* r, int i) {
  return r->mutable_items(i)->mutable_result();
}

// The first completion's stage times.
::google::protobuf::Map<std::string, Duration>* StageTimes(v1::CompleteItemsRequest* r) {
  return Result(r, 0)->mutable_metrics()->mutable_stage_times();
}

// max_batch completions; the first at the limits of an ItemResult.
v1::CompleteItemsRequest CompleteItemsAtLimits() {
  v1::CompleteItemsRequest r = CompleteItems(8192);
  Result(&r, 0)->set_payload(Repeat(65536));
  for (int i = 1; i < 64; ++i) Result(&r, 0)->add_output_paths(Repeat(1024));
  AddEntries(StageTimes(&r), 63);
  return r;
}

// `n` retryable failures of items 0..n-1.
v1::FailItemsRequest FailItems(int n = 2) {
  v1::FailItemsRequest r;
  r.set_job_id("job-1");
  r.set_step("extract");
  for (int i = 0; i < n; ++i) {
    *r.add_items() =
        Parse<v1::Failure>(R"pb(error { message: "timeout reading input" retryable: true })pb");
    *r.mutable_items(i)->mutable_key() = Index(i);
  }
  return r;
}

v1::GetItemRequest GetItem() {
  return Parse<v1::GetItemRequest>(R"pb(job_id: "job-1"
                                        key { name: "doc-0001.pdf" })pb");
}

v1::ListItemsRequest ListItems() {
  return Parse<v1::ListItemsRequest>(R"pb(
    job_id: "job-1"
    state: ITEM_STATE_FAILED
    limit: 8192
    page_token: "opaque"
    error_groups: 100
  )pb");
}

v1::ResetItemsRequest ResetItems() {
  return Parse<v1::ResetItemsRequest>(
      R"pb(job_id: "job-1" state: ITEM_STATE_FAILED dry_run: true)pb");
}

v1::FindOutputRequest FindOutput() {
  return Parse<v1::FindOutputRequest>(R"pb(output_path: "s3://bucket/out/1.json")pb");
}

v1::RegisterWorkerRequest RegisterWorker() {
  return Parse<v1::RegisterWorkerRequest>(R"pb(
    job_id: "job-1"
    hostname: "gpu-node-7"
    pid: 4242
    invocation_id: "launch-2025-12-14"
    labels { key: "gpu" value: "a100" }
  )pb");
}

// `n` held leases of items 0..n-1; the first saves a cursor.
v1::HeartbeatRequest Heartbeat(int n = 2) {
  v1::HeartbeatRequest r;
  r.set_job_id("job-1");
  r.set_worker_id("w-1");
  for (int i = 0; i < n; ++i) {
    v1::HeldLease* lease = r.add_leases();
    *lease->mutable_key() = Index(i);
    lease->set_lease_token(100 + i);
  }
  r.mutable_leases(0)->set_cursor("row 41000");
  return r;
}

v1::UnregisterWorkerRequest UnregisterWorker() {
  return Parse<v1::UnregisterWorkerRequest>(R"pb(job_id: "job-1" worker_id: "w-1")pb");
}

v1::PutStateRequest PutState() {
  return Parse<v1::PutStateRequest>(
      R"pb(
        job_id: "job-1" name: "last_processed_message_id" value: "12345" expected_version: 3
      )pb");
}

v1::GetStateRequest GetState() {
  return Parse<v1::GetStateRequest>(R"pb(job_id: "job-1" name: "chunk_index")pb");
}

v1::WatchJobRequest WatchJob() {
  return Parse<v1::WatchJobRequest>(R"pb(job_id: "job-1"
                                         min_interval { nanos: 100000000 })pb");
}

// ---- The table ----

// One request checked with the default Limits. `path` empty: must pass. Otherwise
// INVALID_ARGUMENT whose message starts with `path` and contains `detail`.
struct Case {
  std::string name;  // "<Rpc>_<What>"
  std::function<absl::Status()> validate;
  std::string path;
  std::string detail;
};

void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

template <typename Request>
Case Ok(std::string name, Request request) {
  return {std::move(name), [request] { return ValidateRequest(request, Limits()); }, "", ""};
}

template <typename Request>
Case Bad(std::string name, Request request, std::string path, std::string detail = "") {
  return {std::move(name), [request] { return ValidateRequest(request, Limits()); },
          std::move(path), std::move(detail)};
}

// Every RPC but CreateJob and FindOutput needs a job_id.
template <typename Request>
Case MissingJobId(const std::string& rpc, Request request) {
  request.clear_job_id();
  return Bad(rpc + "_JobIdMissing", std::move(request), "job_id", "got 0 characters");
}

void Append(std::vector<Case>* all, std::vector<Case> more) {
  for (Case& c : more) all->push_back(std::move(c));
}

std::vector<Case> CreateJobCases() {
  return {
      Ok("CreateJob_Valid", CreateJob()),
      Ok("CreateJob_EmptyUsesDefaults", v1::CreateJobRequest()),
      Ok("CreateJob_RetentionOneSecond",
         With(CreateJob(), [](auto& r) { *r.mutable_retention() = Seconds(1); })),
      Ok("CreateJob_RetentionZeroKeepsForGood",
         With(CreateJob(), [](auto& r) { *r.mutable_retention() = Seconds(0); })),
      Bad("CreateJob_RetentionNegative",
          With(CreateJob(), [](auto& r) { *r.mutable_retention() = Seconds(-1); }), "retention",
          "must not be negative, got -1s"),
      Bad("CreateJob_RetentionUnderASecond",
          With(CreateJob(), [](auto& r) { *r.mutable_retention() = Seconds(0, 999999999); }),
          "retention", "must be 0 (kept until deleted) or 1s..3650 days, got 999.999999ms"),
      Bad("CreateJob_RetentionOverTenYears",
          With(CreateJob(), [](auto& r) { *r.mutable_retention() = Seconds(3650 * 24 * 3600, 1); }),
          "retention", "1s..3650 days"),
      Bad("CreateJob_RetentionMalformed",
          With(CreateJob(), [](auto& r) { *r.mutable_retention() = Seconds(5, -1); }), "retention",
          "malformed duration"),
      Ok("CreateJob_AtLimits", CreateJobAtLimits()),
      Bad("CreateJob_JobIdTooLong", With(CreateJob(), [](auto& r) { r.set_job_id(Repeat(129)); }),
          "job_id", "1..128"),
      Bad("CreateJob_JobIdBadCharacter",
          With(CreateJob(), [](auto& r) { r.set_job_id("nightly run"); }), "job_id",
          "' ' at offset 7"),
      Bad("CreateJob_DisplayNameTooLong",
          With(CreateJob(), [](auto& r) { r.set_display_name(Repeat(257)); }), "display_name",
          "limit of 256"),
      Bad("CreateJob_ConfigTooLarge",
          With(CreateJob(), [](auto& r) { r.set_config(Repeat((1 << 20) + 1)); }), "config",
          "limit of 1048576"),
      Bad("CreateJob_FingerprintTooLong",
          With(CreateJob(), [](auto& r) { r.set_fingerprint(Repeat(129)); }), "fingerprint",
          "limit of 128"),
      Bad("CreateJob_TooManyLabels",
          With(CreateJob(), [](auto& r) { AddEntries(r.mutable_labels(), 63); }), "labels",
          "65 entries exceeds the limit of 64"),
      Bad("CreateJob_LabelKeyEmpty", With(CreateJob(), [](auto& r) { (*r.mutable_labels())[""]; }),
          "labels key \"\"", "1..63"),
      Bad("CreateJob_LabelKeyTooLong",
          With(CreateJob(), [](auto& r) { (*r.mutable_labels())[Repeat(64)]; }), "labels key",
          "1..63"),
      Bad("CreateJob_LabelKeyBadCharacter",
          With(CreateJob(), [](auto& r) { (*r.mutable_labels())["team:x"]; }),
          "labels key \"team:x\"", "[A-Za-z0-9._/-]"),
      Bad("CreateJob_LabelValueTooLong",
          With(CreateJob(), [](auto& r) { (*r.mutable_labels())["team"] = Repeat(257); }),
          "labels[\"team\"]", "limit of 256"),
      Bad("CreateJob_TooManyParams",
          With(CreateJob(), [](auto& r) { AddEntries(r.mutable_params(), 256); }), "params",
          "257 entries exceeds the limit of 256"),
      Bad("CreateJob_ParamKeyEmpty", With(CreateJob(), [](auto& r) { (*r.mutable_params())[""]; }),
          "params key \"\"", "1..128 bytes"),
      Bad("CreateJob_ParamKeyTooLong",
          With(CreateJob(), [](auto& r) { (*r.mutable_params())[Repeat(129)]; }), "params key",
          "limit of 128"),
      Bad("CreateJob_ParamValueTooLong",
          With(CreateJob(), [](auto& r) { (*r.mutable_params())["model"] = Repeat(4097); }),
          "params[\"model\"]", "limit of 4096"),
      Bad("CreateJob_TooManySteps",
          With(CreateJob(),
               [](auto& r) {
                 for (int i = 0; i < 63; ++i) r.add_steps(absl::StrCat("s", i));
               }),
          "steps", "65 entries exceeds the limit of 64"),
      Bad("CreateJob_StepEmpty", With(CreateJob(), [](auto& r) { r.add_steps(""); }), "steps[2]",
          "1..64"),
      Bad("CreateJob_StepBadCharacter", With(CreateJob(), [](auto& r) { r.set_steps(0, "a/b"); }),
          "steps[0]", "'/' at offset 1"),
      Bad("CreateJob_StepTooLong", With(CreateJob(), [](auto& r) { r.set_steps(1, Repeat(65)); }),
          "steps[1]", "got 65 characters"),
      Bad("CreateJob_StepRepeated", With(CreateJob(), [](auto& r) { r.add_steps("extract"); }),
          "steps[2]", "repeats steps[0]"),
      Bad("CreateJob_LeaseTimeoutTooShort",
          With(CreateJob(), [](auto& r) { *r.mutable_lease_timeout() = Seconds(0, 500000000); }),
          "lease_timeout", "1s..24h, got 500ms"),
      Bad("CreateJob_LeaseTimeoutTooLong",
          With(CreateJob(), [](auto& r) { *r.mutable_lease_timeout() = Seconds(24 * 3600 + 1); }),
          "lease_timeout", "1s..24h"),
      Bad("CreateJob_LeaseTimeoutMixedSigns",
          With(CreateJob(), [](auto& r) { *r.mutable_lease_timeout() = Seconds(5, -1); }),
          "lease_timeout", "malformed"),
      Bad("CreateJob_LeaseTimeoutNanosOutOfRange",
          With(CreateJob(), [](auto& r) { *r.mutable_lease_timeout() = Seconds(5, 1000000000); }),
          "lease_timeout", "malformed"),
      Bad("CreateJob_MaxRunTimeNegative",
          With(CreateJob(), [](auto& r) { *r.mutable_max_run_time() = Seconds(-1); }),
          "max_run_time", "got -1s"),
      Bad("CreateJob_MaxRunTimeTooLong",
          With(CreateJob(), [](auto& r) { *r.mutable_max_run_time() = Seconds(8 * 24 * 3600); }),
          "max_run_time", "168h"),
      Bad("CreateJob_MaxAttemptsTooHigh",
          With(CreateJob(), [](auto& r) { r.set_max_attempts(1001); }), "max_attempts",
          "1..1000, got 1001"),
      Bad("CreateJob_FailureFractionAboveOne",
          With(CreateJob(),
               [](auto& r) { r.mutable_failure_budget()->set_max_failed_fraction(1.5); }),
          "failure_budget.max_failed_fraction", "[0, 1]"),
      Bad("CreateJob_FailureFractionNegative",
          With(CreateJob(),
               [](auto& r) { r.mutable_failure_budget()->set_max_failed_fraction(-0.1); }),
          "failure_budget.max_failed_fraction", "got -0.1"),
      Bad("CreateJob_FailureFractionNaN",
          With(CreateJob(),
               [](auto& r) { r.mutable_failure_budget()->set_max_failed_fraction(std::nan("")); }),
          "failure_budget.max_failed_fraction", "nan"),
  };
}

std::vector<Case> GetAndListJobsCases() {
  return {
      Ok("GetJob_Valid", ForJob<v1::GetJobRequest>()),
      MissingJobId("GetJob", ForJob<v1::GetJobRequest>()),

      Ok("ListJobs_Valid", ListJobs()),
      Ok("ListJobs_EmptyMeansAny", v1::ListJobsRequest()),
      Bad("ListJobs_StatusUnknown",
          With(ListJobs(), [](auto& r) { r.set_status(static_cast<v1::JobStatus>(17)); }), "status",
          "unknown value 17"),
      Bad("ListJobs_LimitTooHigh", With(ListJobs(), [](auto& r) { r.set_limit(1001); }), "limit",
          "limit of 1000"),
      Bad("ListJobs_PageTokenTooLong",
          With(ListJobs(), [](auto& r) { r.set_page_token(Repeat(4097)); }), "page_token",
          "limit of 4096"),
      Bad("ListJobs_NamePrefixTooLong",
          With(ListJobs(), [](auto& r) { r.set_name_prefix(Repeat(129)); }), "name_prefix",
          "limit of 128"),
      Bad("ListJobs_LabelFilterBadKey",
          With(ListJobs(), [](auto& r) { (*r.mutable_labels())["a b"] = "x"; }),
          "labels key \"a b\"", "' ' at offset 1"),
      Bad("ListJobs_LabelFilterValueTooLong",
          With(ListJobs(), [](auto& r) { (*r.mutable_labels())["team"] = Repeat(257); }),
          "labels[\"team\"]", "limit of 256"),
  };
}

std::vector<Case> UpdateJobCases() {
  return {
      Ok("UpdateJob_Valid", UpdateJob()),
      Ok("UpdateJob_SealOnly", With(v1::UpdateJobRequest(),
                                    [](auto& r) {
                                      r.set_job_id("job-1");
                                      r.set_seal(true);
                                    })),
      MissingJobId("UpdateJob", UpdateJob()),
      Ok("UpdateJob_RetentionRemoved",
         With(UpdateJob(), [](auto& r) { *r.mutable_retention() = Seconds(0); })),
      Bad("UpdateJob_RetentionNegative",
          With(UpdateJob(), [](auto& r) { *r.mutable_retention() = Seconds(-86400); }), "retention",
          "must not be negative"),
      Bad("UpdateJob_StageTooLong", With(UpdateJob(), [](auto& r) { r.set_stage(Repeat(257)); }),
          "stage", "limit of 256"),
      Bad("UpdateJob_SetLabelsBadKey",
          With(UpdateJob(), [](auto& r) { (*r.mutable_set_labels())["Bad Key"] = ""; }),
          "set_labels key", "[A-Za-z0-9._/-]"),
      Bad("UpdateJob_SetLabelsTooMany",
          With(UpdateJob(), [](auto& r) { AddEntries(r.mutable_set_labels(), 64); }), "set_labels",
          "limit of 64"),
      Bad("UpdateJob_SetParamsValueTooLong",
          With(UpdateJob(), [](auto& r) { (*r.mutable_set_params())["p"] = Repeat(4097); }),
          "set_params[\"p\"]", "limit of 4096"),
      Bad("UpdateJob_RemoveLabelsEmptyKey",
          With(UpdateJob(), [](auto& r) { r.add_remove_labels(""); }), "remove_labels[1]", "1..63"),
      Bad("UpdateJob_RemoveParamsEmptyKey",
          With(UpdateJob(), [](auto& r) { r.add_remove_params(""); }), "remove_params[1]",
          "1..128"),
      Ok("UpdateJob_RaiseBudget",
         With(UpdateJob(), [](auto& r) { r.mutable_failure_budget()->set_max_failed_items(9); })),
      Bad("UpdateJob_BudgetFractionAboveOne",
          With(UpdateJob(),
               [](auto& r) { r.mutable_failure_budget()->set_max_failed_fraction(1.5); }),
          "failure_budget.max_failed_fraction", "[0, 1]"),
  };
}

std::vector<Case> PauseResumeStopCases() {
  return {
      Ok("PauseJob_Valid", PauseJob()),
      Bad("PauseJob_ReasonTooLong", With(PauseJob(), [](auto& r) { r.set_reason(Repeat(1025)); }),
          "reason", "limit of 1024"),
      Bad("PauseJob_JobIdBadCharacter", With(PauseJob(), [](auto& r) { r.set_job_id("a/b"); }),
          "job_id", "'/'"),

      Ok("ResumeJob_Valid", ForJob<v1::ResumeJobRequest>()),
      MissingJobId("ResumeJob", ForJob<v1::ResumeJobRequest>()),

      Ok("StopJob_Valid", StopJob()),
      Bad("StopJob_ReasonTooLong", With(StopJob(), [](auto& r) { r.set_reason(Repeat(1025)); }),
          "reason", "limit of 1024"),
      MissingJobId("StopJob", StopJob()),
  };
}

std::vector<Case> FinishResetDeleteCases() {
  return {
      Ok("FinishJob_Completed", FinishJob()),
      Ok("FinishJob_Failed",
         With(FinishJob(), [](auto& r) { r.set_status(v1::JOB_STATUS_FAILED); })),
      Bad("FinishJob_StatusUnspecified", With(FinishJob(), [](auto& r) { r.clear_status(); }),
          "status", "must be JOB_STATUS_COMPLETED or JOB_STATUS_FAILED"),
      Bad("FinishJob_StatusRunning",
          With(FinishJob(), [](auto& r) { r.set_status(v1::JOB_STATUS_RUNNING); }), "status",
          "got JOB_STATUS_RUNNING"),
      Bad("FinishJob_StatusUnknown",
          With(FinishJob(), [](auto& r) { r.set_status(static_cast<v1::JobStatus>(9)); }), "status",
          "unknown value 9"),
      Bad("FinishJob_ReasonTooLong", With(FinishJob(), [](auto& r) { r.set_reason(Repeat(1025)); }),
          "reason"),
      MissingJobId("FinishJob", FinishJob()),

      Ok("ResetJob_Valid", ForJob<v1::ResetJobRequest>()),
      Bad("ResetJob_JobIdTooLong",
          With(ForJob<v1::ResetJobRequest>(), [](auto& r) { r.set_job_id(Repeat(129)); }),
          "job_id"),

      Ok("DeleteJob_Valid", ForJob<v1::DeleteJobRequest>()),
      MissingJobId("DeleteJob", ForJob<v1::DeleteJobRequest>()),
  };
}

std::vector<Case> AddItemsCases() {
  return {
      Ok("AddItems_Valid", AddItems()),
      Ok("AddItems_AtLimits", AddItemsAtLimits()),
      Ok("AddItems_SealOnly", With(v1::AddItemsRequest(),
                                   [](auto& r) {
                                     r.set_job_id("job-1");
                                     r.set_seal(true);
                                   })),
      Bad("AddItems_NothingToAdd",
          With(v1::AddItemsRequest(), [](auto& r) { r.set_job_id("job-1"); }),
          "names/indices/ranges", "nothing to add"),
      MissingJobId("AddItems", AddItems()),
      Bad("AddItems_StepBadCharacter", With(AddItems(), [](auto& r) { r.set_step("a b"); }), "step",
          "[A-Za-z0-9._:-]"),
      Bad("AddItems_StepTooLong", With(AddItems(), [](auto& r) { r.set_step(Repeat(65)); }), "step",
          "1..64"),
      Bad("AddItems_NameEmpty", With(AddItems(), [](auto& r) { r.set_names(1, ""); }), "names[1]",
          "1..1024 bytes (--max_key_bytes), got 0"),
      Bad("AddItems_NameWithNul",
          With(AddItems(), [](auto& r) { r.set_names(0, std::string("a\0b", 3)); }), "names[0]",
          "NUL byte, found one at offset 1"),
      Bad("AddItems_NameTooLong", With(AddItems(), [](auto& r) { r.set_names(0, Repeat(1025)); }),
          "names[0]", "1025 bytes exceeds the limit of 1024 (--max_key_bytes)"),
      Bad("AddItems_IndexTooLarge", With(AddItems(), [](auto& r) { r.add_indices(k2To63); }),
          "indices[1]", "less than 2^63"),
      Bad("AddItems_RangeEmpty",
          With(AddItems(),
               [](auto& r) {
                 r.mutable_ranges(0)->set_begin(5);
                 r.mutable_ranges(0)->set_end(5);
               }),
          "ranges[0]", "end 5 must be greater than begin 5"),
      Bad("AddItems_RangeReversed",
          With(AddItems(), [](auto& r) { r.mutable_ranges(0)->set_begin(2000000); }), "ranges[0]",
          "must be greater than begin"),
      Bad("AddItems_RangeEndTooLarge",
          With(AddItems(), [](auto& r) { r.mutable_ranges(0)->set_end(k2To63 + 1); }),
          "ranges[0].end", "at most 2^63"),
      Bad("AddItems_TooManyEntries",
          With(AddItems(),
               [](auto& r) {
                 for (int i = 4; i < 8193; ++i) r.add_names("n");
               }),
          "names/indices/ranges", "8193 entries in total exceeds the limit of 8192"),
  };
}

std::vector<Case> LeaseItemsCases() {
  return {
      Ok("LeaseItems_Valid", LeaseItems()),
      Ok("LeaseItems_ClaimKeysWithoutWorker", ClaimItems()),
      Ok("LeaseItems_ClaimNameAndIndexAreDistinct",
         With(ClaimItems(), [](auto& r) { *r.add_keys() = Name("1"); })),
      Ok("LeaseItems_MaxItemsAtLimit", With(LeaseItems(), [](auto& r) { r.set_max_items(8192); })),
      MissingJobId("LeaseItems", LeaseItems()),
      Bad("LeaseItems_StepBadCharacter", With(LeaseItems(), [](auto& r) { r.set_step("é"); }),
          "step", "'\\xc3' at offset 0"),
      Bad("LeaseItems_WorkerMissing", With(LeaseItems(), [](auto& r) { r.clear_worker_id(); }),
          "worker_id", "required unless keys are given"),
      Bad("LeaseItems_WorkerBadCharacter",
          With(LeaseItems(), [](auto& r) { r.set_worker_id("w 1"); }), "worker_id",
          "' ' at offset 1"),
      Bad("LeaseItems_ClaimWorkerTooLong",
          With(ClaimItems(), [](auto& r) { r.set_worker_id(Repeat(129)); }), "worker_id", "1..128"),
      Bad("LeaseItems_MaxItemsZero", With(LeaseItems(), [](auto& r) { r.set_max_items(0); }),
          "max_items", "1..8192 items (--max_batch), got 0"),
      Bad("LeaseItems_MaxItemsTooHigh", With(LeaseItems(), [](auto& r) { r.set_max_items(8193); }),
          "max_items", "limit of 8192 (--max_batch)"),
      Bad("LeaseItems_KeyUnset", With(ClaimItems(), [](auto& r) { r.add_keys(); }), "keys[2]",
          "must set index or name"),
      Bad("LeaseItems_KeyIndexTooLarge",
          With(ClaimItems(), [](auto& r) { *r.mutable_keys(0) = Index(k2To63); }), "keys[0].index",
          "less than 2^63"),
      Bad("LeaseItems_KeyNameTooLong",
          With(ClaimItems(), [](auto& r) { *r.mutable_keys(1) = Name(Repeat(1025)); }),
          "keys[1].name", "--max_key_bytes"),
      Bad("LeaseItems_KeyRepeated",
          With(ClaimItems(), [](auto& r) { *r.add_keys() = Name("a.txt"); }), "keys[2]",
          "repeats keys[1]"),
      Bad("LeaseItems_TooManyKeys",
          With(ClaimItems(),
               [](auto& r) {
                 for (int i = 2; i < 8193; ++i) *r.add_keys() = Index(i);
               }),
          "keys", "8193 entries exceeds the limit of 8192 (--max_batch)"),
  };
}

std::vector<Case> CompleteItemsCases() {
  return {
      Ok("CompleteItems_Valid", CompleteItems()),
      Ok("CompleteItems_RecordModeWithoutWorkerOrResult",
         With(CompleteItems(),
              [](auto& r) {
                r.clear_worker_id();
                r.mutable_items(0)->clear_result();
                r.mutable_items(0)->set_lease_token(0);
              })),
      Ok("CompleteItems_AtLimits", CompleteItemsAtLimits()),
      MissingJobId("CompleteItems", CompleteItems()),
      Bad("CompleteItems_StepBadCharacter",
          With(CompleteItems(), [](auto& r) { r.set_step("a,b"); }), "step"),
      Bad("CompleteItems_WorkerBadCharacter",
          With(CompleteItems(), [](auto& r) { r.set_worker_id("w/1"); }), "worker_id"),
      Bad("CompleteItems_ItemsEmpty", CompleteItems(0), "items",
          "1..8192 entries (--max_batch), got 0"),
      Bad("CompleteItems_TooManyItems", CompleteItems(8193), "items",
          "8193 entries exceeds the limit of 8192 (--max_batch)"),
      Bad("CompleteItems_KeyUnset",
          With(CompleteItems(), [](auto& r) { r.mutable_items(1)->clear_key(); }), "items[1].key",
          "must set index or name"),
      Bad("CompleteItems_KeyRepeated",
          With(CompleteItems(6), [](auto& r) { *r.mutable_items(5)->mutable_key() = Index(2); }),
          "items[5].key: repeats items[2].key"),
      Bad("CompleteItems_TooManyOutputPaths",
          With(CompleteItems(),
               [](auto& r) {
                 for (int i = 0; i < 64; ++i) Result(&r, 0)->add_output_paths("p");
               }),
          "items[0].result.output_paths", "65 entries exceeds the limit of 64"),
      Bad("CompleteItems_OutputPathEmpty",
          With(CompleteItems(), [](auto& r) { Result(&r, 0)->add_output_paths(""); }),
          "items[0].result.output_paths[1]", "1..1024 bytes"),
      Bad("CompleteItems_OutputPathTooLong",
          With(CompleteItems(), [](auto& r) { Result(&r, 1)->set_output_paths(0, Repeat(1025)); }),
          "items[1].result.output_paths[0]", "--max_key_bytes"),
      Bad("CompleteItems_OutputPathWithNul",
          With(CompleteItems(),
               [](auto& r) { Result(&r, 0)->set_output_paths(0, std::string("\0", 1)); }),
          "items[0].result.output_paths[0]", "NUL"),
      Bad("CompleteItems_PayloadTooLarge",
          With(CompleteItems(4), [](auto& r) { Result(&r, 3)->set_payload(Repeat(70000)); }),
          "items[3].result.payload",
          "70000 bytes exceeds the limit of 65536 (--max_payload_bytes)"),
      Bad("CompleteItems_WallTimeNegative",
          With(CompleteItems(),
               [](auto& r) {
                 *Result(&r, 0)->mutable_metrics()->mutable_wall_time() = Seconds(0, -5);
               }),
          "items[0].result.metrics.wall_time", "must not be negative, got -5ns"),
      Bad("CompleteItems_TooManyStageTimes",
          With(CompleteItems(), [](auto& r) { AddEntries(StageTimes(&r), 64); }),
          "items[0].result.metrics.stage_times", "65 entries exceeds the limit of 64"),
      Bad("CompleteItems_StageNameEmpty",
          With(CompleteItems(), [](auto& r) { (*StageTimes(&r))[""]; }),
          "items[0].result.metrics.stage_times key \"\"", "1..64 bytes"),
      Bad("CompleteItems_StageNameTooLong",
          With(CompleteItems(), [](auto& r) { (*StageTimes(&r))[Repeat(65)]; }),
          "items[0].result.metrics.stage_times key", "limit of 64"),
      Bad("CompleteItems_StageTimeNegative",
          With(CompleteItems(), [](auto& r) { (*StageTimes(&r))["read"] = Seconds(-2); }),
          "items[0].result.metrics.stage_times[\"read\"]", "got -2s"),
      Bad("CompleteItems_StageTimeMalformed",
          With(CompleteItems(),
               [](auto& r) { (*StageTimes(&r))["read"] = Seconds(0, 1000000000); }),
          "items[0].result.metrics.stage_times[\"read\"]", "malformed"),
      Ok("CompleteItems_LeaseNext",
         With(CompleteItems(), [](auto& r) { r.mutable_lease_next()->set_max_items(100); })),
      Ok("CompleteItems_LeaseNextAtLimit",
         With(CompleteItems(), [](auto& r) { r.mutable_lease_next()->set_max_items(8192); })),
      Bad("CompleteItems_LeaseNextWithoutWorker",
          With(CompleteItems(),
               [](auto& r) {
                 r.mutable_lease_next()->set_max_items(1);
                 r.clear_worker_id();
               }),
          "worker_id", "required with lease_next"),
      Bad("CompleteItems_LeaseNextZeroItems",
          With(CompleteItems(), [](auto& r) { r.mutable_lease_next(); }), "lease_next.max_items",
          "must be 1..8192 items (--max_batch), got 0"),
      Bad("CompleteItems_LeaseNextTooManyItems",
          With(CompleteItems(), [](auto& r) { r.mutable_lease_next()->set_max_items(8193); }),
          "lease_next.max_items", "8193 items exceeds the limit of 8192 (--max_batch)"),
      Bad("CompleteItems_LeaseNextRecordModeItem",
          With(CompleteItems(3),
               [](auto& r) {
                 r.mutable_lease_next()->set_max_items(1);
                 r.mutable_items(2)->set_lease_token(0);
               }),
          "items[2].lease_token", "required with lease_next"),
  };
}

std::vector<Case> FailItemsCases() {
  return {
      Ok("FailItems_Valid", FailItems()),
      Ok("FailItems_ErrorMessageAtLimit",
         With(FailItems(),
              [](auto& r) { r.mutable_items(0)->mutable_error()->set_message(Repeat(4096)); })),
      MissingJobId("FailItems", FailItems()),
      Bad("FailItems_StepTooLong", With(FailItems(), [](auto& r) { r.set_step(Repeat(65)); }),
          "step"),
      Bad("FailItems_WorkerBadCharacter",
          With(FailItems(), [](auto& r) { r.set_worker_id("w#1"); }), "worker_id"),
      Bad("FailItems_ItemsEmpty", FailItems(0), "items", "got 0"),
      Bad("FailItems_TooManyItems", FailItems(8193), "items", "limit of 8192"),
      Bad("FailItems_KeyUnset", With(FailItems(), [](auto& r) { r.mutable_items(0)->clear_key(); }),
          "items[0].key", "must set index or name"),
      Bad("FailItems_KeyRepeated", With(FailItems(), [](auto& r) { *r.add_items() = r.items(0); }),
          "items[2].key: repeats items[0].key"),
      Bad("FailItems_ErrorMessageEmpty",
          With(FailItems(), [](auto& r) { r.mutable_items(1)->clear_error(); }),
          "items[1].error.message", "1..4096 bytes, got 0"),
      Bad("FailItems_ErrorMessageTooLong",
          With(FailItems(),
               [](auto& r) { r.mutable_items(0)->mutable_error()->set_message(Repeat(4097)); }),
          "items[0].error.message", "limit of 4096"),
  };
}

std::vector<Case> GetAndListItemsCases() {
  return {
      Ok("GetItem_ByName", GetItem()),
      Ok("GetItem_ByIndexZero", With(GetItem(), [](auto& r) { *r.mutable_key() = Index(0); })),
      MissingJobId("GetItem", GetItem()),
      Bad("GetItem_StepBadCharacter", With(GetItem(), [](auto& r) { r.set_step("s\n"); }), "step",
          "'\\n' at offset 1"),
      Bad("GetItem_KeyUnset", With(GetItem(), [](auto& r) { r.clear_key(); }), "key",
          "must set index or name"),
      Bad("GetItem_IndexTooLarge",
          With(GetItem(),
               [](auto& r) { *r.mutable_key() = Index(std::numeric_limits<uint64_t>::max()); }),
          "key.index", "got 18446744073709551615"),
      Bad("GetItem_NameWithNul",
          With(GetItem(), [](auto& r) { *r.mutable_key() = Name(std::string("a\0", 2)); }),
          "key.name", "NUL"),

      Ok("ListItems_Valid", ListItems()),
      Ok("ListItems_DefaultsMeanAny",
         With(v1::ListItemsRequest(), [](auto& r) { r.set_job_id("job-1"); })),
      MissingJobId("ListItems", ListItems()),
      Bad("ListItems_StepBadCharacter", With(ListItems(), [](auto& r) { r.set_step("*"); }),
          "step"),
      Bad("ListItems_StateUnknown",
          With(ListItems(), [](auto& r) { r.set_state(static_cast<v1::ItemState>(7)); }), "state",
          "unknown value 7"),
      Bad("ListItems_LimitTooHigh", With(ListItems(), [](auto& r) { r.set_limit(8193); }), "limit",
          "limit of 8192 (--max_batch)"),
      Bad("ListItems_PageTokenTooLong",
          With(ListItems(), [](auto& r) { r.set_page_token(Repeat(4097)); }), "page_token",
          "limit of 4096"),
      Bad("ListItems_TooManyErrorGroups",
          With(ListItems(), [](auto& r) { r.set_error_groups(101); }), "error_groups",
          "limit of 100"),
      Ok("ListItems_CompletedAfter", With(ListItems(),
                                          [](auto& r) {
                                            r.clear_state();
                                            r.mutable_completed_after()->set_seconds(1700000000);
                                          })),
      Ok("ListItems_NewestCompletedFirst", With(ListItems(),
                                                [](auto& r) {
                                                  r.set_state(v1::ITEM_STATE_COMPLETED);
                                                  r.set_order(
                                                      v1::ITEM_ORDER_COMPLETED_NEWEST_FIRST);
                                                })),
      Bad("ListItems_OrderUnknown",
          With(ListItems(), [](auto& r) { r.set_order(static_cast<v1::ItemOrder>(9)); }), "order",
          "unknown value 9"),
      Bad("ListItems_CompletionOrderOfFailedItems",
          With(ListItems(), [](auto& r) { r.set_order(v1::ITEM_ORDER_COMPLETED_OLDEST_FIRST); }),
          "state", "ITEM_STATE_FAILED"),
      Bad("ListItems_CompletedAfterBefore1970",
          With(ListItems(),
               [](auto& r) {
                 r.clear_state();
                 r.mutable_completed_after()->set_seconds(-1);
               }),
          "completed_after", "from 1970"),
  };
}

std::vector<Case> ResetItemsAndFindOutputCases() {
  return {
      Ok("ResetItems_ByState", ResetItems()),
      Ok("ResetItems_ByKeysInStep", With(ResetItems(),
                                         [](auto& r) {
                                           r.set_step("extract");
                                           *r.add_keys() = Index(3);
                                         })),
      MissingJobId("ResetItems", ResetItems()),
      Bad("ResetItems_StepBadCharacter", With(ResetItems(), [](auto& r) { r.set_step("a b"); }),
          "step"),
      Bad("ResetItems_StateUnknown",
          With(ResetItems(), [](auto& r) { r.set_state(static_cast<v1::ItemState>(-1)); }), "state",
          "unknown value -1"),
      Ok("ResetItems_ByErrorMessage",
         With(ResetItems(), [](auto& r) { r.set_error_message("corrupt header"); })),
      Bad("ResetItems_ErrorMessageWithAnotherState",
          With(ResetItems(),
               [](auto& r) {
                 r.set_state(v1::ITEM_STATE_LEASED);
                 r.set_error_message("corrupt header");
               }),
          "error_message", "FAILED items only"),
      Bad("ResetItems_ErrorMessageTooLong",
          With(ResetItems(), [](auto& r) { r.set_error_message(Repeat(4097)); }), "error_message",
          "4096"),
      Bad("ResetItems_KeysWithoutStep",
          With(ResetItems(), [](auto& r) { *r.add_keys() = Index(3); }), "step",
          "required when keys are given"),
      Bad("ResetItems_KeyUnset",
          With(ResetItems(),
               [](auto& r) {
                 r.set_step("extract");
                 r.add_keys();
               }),
          "keys[0]", "must set index or name"),
      Bad("ResetItems_TooManyKeys",
          With(ResetItems(),
               [](auto& r) {
                 r.set_step("extract");
                 for (int i = 0; i < 8193; ++i) *r.add_keys() = Index(i);
               }),
          "keys", "8193 entries exceeds the limit of 8192"),

      Ok("FindOutput_Valid", FindOutput()),
      Bad("FindOutput_Empty", v1::FindOutputRequest(), "output_path", "1..1024 bytes"),
      Bad("FindOutput_TooLong",
          With(FindOutput(), [](auto& r) { r.set_output_path(Repeat(1025)); }), "output_path",
          "--max_key_bytes"),
      Bad("FindOutput_WithNul",
          With(FindOutput(), [](auto& r) { r.set_output_path(std::string("x\0", 2)); }),
          "output_path", "NUL"),
  };
}

std::vector<Case> WorkerCases() {
  return {
      Ok("RegisterWorker_Valid", RegisterWorker()),
      MissingJobId("RegisterWorker", RegisterWorker()),
      Bad("RegisterWorker_HostnameTooLong",
          With(RegisterWorker(), [](auto& r) { r.set_hostname(Repeat(257)); }), "hostname",
          "limit of 256"),
      Bad("RegisterWorker_InvocationIdTooLong",
          With(RegisterWorker(), [](auto& r) { r.set_invocation_id(Repeat(129)); }),
          "invocation_id", "limit of 128"),
      Bad("RegisterWorker_LabelKeyBadCharacter",
          With(RegisterWorker(), [](auto& r) { (*r.mutable_labels())["gpu type"] = ""; }),
          "labels key", "[A-Za-z0-9._/-]"),
      Bad("RegisterWorker_LabelValueTooLong",
          With(RegisterWorker(), [](auto& r) { (*r.mutable_labels())["gpu"] = Repeat(257); }),
          "labels[\"gpu\"]", "limit of 256"),

      Ok("Heartbeat_Valid", Heartbeat()),
      Ok("Heartbeat_AtLimits",
         With(Heartbeat(8192), [](auto& r) { r.mutable_leases(0)->set_cursor(Repeat(65536)); })),
      MissingJobId("Heartbeat", Heartbeat()),
      Bad("Heartbeat_WorkerMissing", With(Heartbeat(), [](auto& r) { r.clear_worker_id(); }),
          "worker_id", "got 0 characters"),
      Bad("Heartbeat_WorkerBadCharacter",
          With(Heartbeat(), [](auto& r) { r.set_worker_id("w 1"); }), "worker_id"),
      Bad("Heartbeat_TooManyLeases", Heartbeat(8193), "leases",
          "8193 entries exceeds the limit of 8192 (--max_batch)"),
      Bad("Heartbeat_LeaseStepBadCharacter",
          With(Heartbeat(), [](auto& r) { r.mutable_leases(1)->set_step("a b"); }),
          "leases[1].step"),
      Bad("Heartbeat_LeaseKeyUnset",
          With(Heartbeat(), [](auto& r) { r.mutable_leases(0)->clear_key(); }), "leases[0].key",
          "must set index or name"),
      Bad("Heartbeat_CursorTooLarge",
          With(Heartbeat(), [](auto& r) { r.mutable_leases(1)->set_cursor(Repeat(65537)); }),
          "leases[1].cursor", "65537 bytes exceeds the limit of 65536 (--max_cursor_bytes)"),

      Ok("ListWorkers_Valid", ForJob<v1::ListWorkersRequest>()),
      MissingJobId("ListWorkers", ForJob<v1::ListWorkersRequest>()),

      Ok("UnregisterWorker_Valid", UnregisterWorker()),
      MissingJobId("UnregisterWorker", UnregisterWorker()),
      Bad("UnregisterWorker_WorkerMissing",
          With(UnregisterWorker(), [](auto& r) { r.clear_worker_id(); }), "worker_id"),
  };
}

std::vector<Case> StateAndWatchCases() {
  return {
      Ok("PutState_Valid", PutState()),
      Ok("PutState_AtLimits", With(PutState(),
                                   [](auto& r) {
                                     r.set_name(Repeat(256));
                                     r.set_value(Repeat(4 << 20));
                                   })),
      MissingJobId("PutState", PutState()),
      Bad("PutState_NameEmpty", With(PutState(), [](auto& r) { r.clear_name(); }), "name",
          "1..256 bytes, got 0"),
      Bad("PutState_NameTooLong", With(PutState(), [](auto& r) { r.set_name(Repeat(257)); }),
          "name", "limit of 256"),
      Bad("PutState_NameWithNul",
          With(PutState(), [](auto& r) { r.set_name(std::string("a\0", 2)); }), "name", "NUL"),
      Bad("PutState_ValueTooLarge",
          With(PutState(), [](auto& r) { r.set_value(Repeat((4 << 20) + 1)); }), "value",
          "exceeds the limit of 4194304 (--max_state_bytes)"),

      Ok("GetState_Valid", GetState()),
      MissingJobId("GetState", GetState()),
      Bad("GetState_NameEmpty", With(GetState(), [](auto& r) { r.clear_name(); }), "name"),
      Bad("GetState_NameTooLong", With(GetState(), [](auto& r) { r.set_name(Repeat(257)); }),
          "name"),

      Ok("ListStates_Valid", ForJob<v1::ListStatesRequest>()),
      Bad("ListStates_JobIdBadCharacter",
          With(ForJob<v1::ListStatesRequest>(), [](auto& r) { r.set_job_id("job 1"); }), "job_id"),

      Ok("WatchJob_Valid", WatchJob()),
      Ok("WatchJob_DefaultInterval", With(WatchJob(), [](auto& r) { r.clear_min_interval(); })),
      MissingJobId("WatchJob", WatchJob()),
      Bad("WatchJob_MinIntervalNegative",
          With(WatchJob(), [](auto& r) { *r.mutable_min_interval() = Seconds(-1); }),
          "min_interval", "got -1s"),
      Bad("WatchJob_MinIntervalMalformed",
          With(WatchJob(), [](auto& r) { *r.mutable_min_interval() = Seconds(-1, 5); }),
          "min_interval", "malformed"),
  };
}

v1::WriteLogsRequest WriteLogs() {
  return Parse<v1::WriteLogsRequest>(R"pb(job_id: "job-1"
                                          worker_id: "w-1"
                                          items {
                                            step: "parse"
                                            key { index: 7 }
                                            entries {
                                              time { seconds: 1700000000 }
                                              level: LOG_LEVEL_WARNING
                                              logger: "parse.pdf"
                                              message: "slow page"
                                            }
                                          }
                                          items { entries { message: "run started" } })pb");
}

v1::ListLogsRequest ListLogs() {
  return Parse<v1::ListLogsRequest>(R"pb(job_id: "job-1"
                                         step: "parse"
                                         key { name: "doc-1.pdf" }
                                         worker_id: "w-1"
                                         min_level: LOG_LEVEL_ERROR
                                         limit: 1000
                                         page_token: "42"
                                         newest_first: true)pb");
}

std::vector<Case> LogCases() {
  v1::LogEntry long_message;
  long_message.set_message(Repeat(8193));
  return {
      Ok("WriteLogs_Valid", WriteLogs()),
      MissingJobId("WriteLogs", WriteLogs()),
      Bad("WriteLogs_NoItems", With(WriteLogs(), [](auto& r) { r.clear_items(); }), "items",
          "1..8192 entries (--max_batch), got 0"),
      Bad("WriteLogs_NoEntries",
          With(WriteLogs(),
               [](auto& r) {
                 for (auto& item : *r.mutable_items()) item.clear_entries();
               }),
          "items[].entries", "1..8192 log entries in total (--max_batch), got 0"),
      Bad("WriteLogs_TooManyEntries",
          With(WriteLogs(),
               [](auto& r) {
                 for (int i = 0; i < 8192; ++i) r.mutable_items(1)->add_entries()->set_message("x");
               }),
          "items[].entries", "8194 log entries in total exceeds the limit of 8192"),
      Bad("WriteLogs_MessageEmpty",
          With(WriteLogs(),
               [](auto& r) { r.mutable_items(0)->mutable_entries(0)->clear_message(); }),
          "items[0].entries[0].message", "1..8192 bytes (--max_log_message_bytes), got 0"),
      Bad("WriteLogs_MessageTooLong",
          With(WriteLogs(), [&](auto& r) { *r.mutable_items(1)->add_entries() = long_message; }),
          "items[1].entries[1].message", "8193 bytes exceeds the limit of 8192"),
      Bad("WriteLogs_LevelUnknown",
          With(WriteLogs(),
               [](auto& r) {
                 r.mutable_items(0)->mutable_entries(0)->set_level(static_cast<v1::LogLevel>(9));
               }),
          "items[0].entries[0].level", "unknown value 9"),
      Bad("WriteLogs_LoggerTooLong",
          With(WriteLogs(),
               [](auto& r) { r.mutable_items(0)->mutable_entries(0)->set_logger(Repeat(257)); }),
          "items[0].entries[0].logger", "limit of 256"),
      Bad("WriteLogs_TimeBefore1970",
          With(WriteLogs(),
               [](auto& r) {
                 r.mutable_items(0)->mutable_entries(0)->mutable_time()->set_seconds(-5);
               }),
          "items[0].entries[0].time", "from 1970"),
      Bad("WriteLogs_KeyUnset",
          With(WriteLogs(), [](auto& r) { r.mutable_items(0)->mutable_key()->clear_index(); }),
          "items[0].key", "must set index or name"),
      Bad("WriteLogs_WorkerBadCharacter",
          With(WriteLogs(), [](auto& r) { r.set_worker_id("w/1"); }), "worker_id"),

      Ok("ListLogs_Valid", ListLogs()),
      Ok("ListLogs_JobOnly", ForJob<v1::ListLogsRequest>()),
      MissingJobId("ListLogs", ListLogs()),
      Bad("ListLogs_LimitTooHigh", With(ListLogs(), [](auto& r) { r.set_limit(1001); }), "limit",
          "limit of 1000"),
      Bad("ListLogs_LevelUnknown",
          With(ListLogs(), [](auto& r) { r.set_min_level(static_cast<v1::LogLevel>(6)); }),
          "min_level", "unknown value 6"),
      Bad("ListLogs_KeyNameEmpty", With(ListLogs(), [](auto& r) { r.mutable_key()->set_name(""); }),
          "key.name"),
      Bad("ListLogs_StepBadCharacter", With(ListLogs(), [](auto& r) { r.set_step("a b"); }),
          "step"),

      // Entries that ride along with other writes: each checked, all counted together.
      Ok("Heartbeat_WithLogs",
         With(Heartbeat(),
              [](auto& r) { r.mutable_leases(0)->add_logs()->set_message("page 3 of 9"); })),
      Bad("Heartbeat_LogMessageEmpty",
          With(Heartbeat(), [](auto& r) { r.mutable_leases(1)->add_logs(); }),
          "leases[1].logs[0].message", "got 0"),
      Bad("Heartbeat_TooManyLogs",
          With(Heartbeat(),
               [](auto& r) {
                 for (int i = 0; i < 8193; ++i)
                   r.mutable_leases(i % 2)->add_logs()->set_message("x");
               }),
          "leases[].logs", "8193 log entries in total exceeds the limit of 8192"),
      Ok("CompleteItems_WithLogs",
         With(CompleteItems(),
              [](auto& r) { r.mutable_items(0)->add_logs()->set_message("done"); })),
      Bad("CompleteItems_LogMessageTooLong",
          With(CompleteItems(), [&](auto& r) { *r.mutable_items(1)->add_logs() = long_message; }),
          "items[1].logs[0].message", "--max_log_message_bytes"),
      Bad("FailItems_LogLevelUnknown",
          With(FailItems(),
               [](auto& r) {
                 v1::LogEntry* entry = r.mutable_items(0)->add_logs();
                 entry->set_message("x");
                 entry->set_level(static_cast<v1::LogLevel>(-1));
               }),
          "items[0].logs[0].level"),
  };
}

v1::DeleteJobsRequest DeleteJobs() {
  return Parse<v1::DeleteJobsRequest>(R"pb(
    statuses: [ JOB_STATUS_COMPLETED, JOB_STATUS_FAILED, JOB_STATUS_STOPPED ]
    finished_before { seconds: 1760000000 }
    labels { key: "team" value: "data" }
    job_id_prefix: "batch_"
    dry_run: true
    limit: 1000
    page_token: "opaque"
  )pb");
}

std::vector<Case> AdminCases() {
  auto backup = [](std::string dir) {
    v1::BackupStoreRequest r;
    r.set_dir(std::move(dir));
    return r;
  };
  return {
      Ok("DeleteJobs_Valid", DeleteJobs()),
      Ok("DeleteJobs_EmptyMeansEveryFinishedJob", v1::DeleteJobsRequest()),
      Ok("DeleteJobs_UnfinishedWhenSaidSo", With(DeleteJobs(),
                                                 [](auto& r) {
                                                   r.add_statuses(v1::JOB_STATUS_RUNNING);
                                                   r.add_statuses(v1::JOB_STATUS_PAUSED);
                                                   r.set_include_unfinished(true);
                                                 })),
      Bad("DeleteJobs_RunningNotSaidSo",
          With(DeleteJobs(), [](auto& r) { r.add_statuses(v1::JOB_STATUS_RUNNING); }),
          "statuses[3]",
          "JOB_STATUS_RUNNING jobs may still be running a pipeline: deleting them needs "
          "include_unfinished"),
      Bad("DeleteJobs_PausedNotSaidSo",
          With(DeleteJobs(), [](auto& r) { r.set_statuses(0, v1::JOB_STATUS_PAUSED); }),
          "statuses[0]", "JOB_STATUS_PAUSED"),
      Bad("DeleteJobs_StatusUnspecified",
          With(DeleteJobs(), [](auto& r) { r.set_statuses(1, v1::JOB_STATUS_UNSPECIFIED); }),
          "statuses[1]", "JOB_STATUS_UNSPECIFIED is not a status"),
      Bad("DeleteJobs_StatusUnknown",
          With(DeleteJobs(), [](auto& r) { r.set_statuses(2, static_cast<v1::JobStatus>(9)); }),
          "statuses[2]", "unknown value 9"),
      Bad("DeleteJobs_TooManyStatuses",
          With(DeleteJobs(),
               [](auto& r) {
                 for (int i = 0; i < 3; ++i) r.add_statuses(v1::JOB_STATUS_STOPPED);
               }),
          "statuses", "6 entries exceeds the limit of 5"),
      Bad("DeleteJobs_FinishedBeforeAfter9999",
          With(DeleteJobs(),
               [](auto& r) { r.mutable_finished_before()->set_seconds(253402300800); }),
          "finished_before", "from 1970 to 9999"),
      Bad("DeleteJobs_LabelValueTooLong",
          With(DeleteJobs(), [](auto& r) { (*r.mutable_labels())["team"] = Repeat(257); }),
          "labels[\"team\"]", "limit of 256"),
      Bad("DeleteJobs_PrefixTooLong",
          With(DeleteJobs(), [](auto& r) { r.set_job_id_prefix(Repeat(129)); }), "job_id_prefix",
          "got 129 characters"),
      Bad("DeleteJobs_PrefixBadCharacter",
          With(DeleteJobs(), [](auto& r) { r.set_job_id_prefix("batch/"); }), "job_id_prefix",
          "'/' at offset 5"),
      Bad("DeleteJobs_LimitTooHigh", With(DeleteJobs(), [](auto& r) { r.set_limit(1001); }),
          "limit", "1001 jobs exceeds the limit of 1000"),
      Bad("DeleteJobs_PageTokenTooLong",
          With(DeleteJobs(), [](auto& r) { r.set_page_token(Repeat(4097)); }), "page_token",
          "limit of 4096"),
      Ok("BackupStore_Valid", backup("/backups/ckpt-1")),
      Bad("BackupStore_Empty", backup(""), "dir", "must be 1..4096 bytes"),
      Bad("BackupStore_Relative", backup("backups/1"), "dir",
          "must be an absolute path (a directory on ckptd's machine), got \"backups/1\""),
      Bad("BackupStore_Nul", backup(std::string("/b\0c", 4)), "dir", "NUL"),
      Bad("BackupStore_TooLong", backup("/" + Repeat(4096)), "dir", "limit of 4096"),
  };
}

const std::vector<Case>& AllCases() {
  static const std::vector<Case>* const cases = [] {
    auto* all = new std::vector<Case>();
    Append(all, CreateJobCases());
    Append(all, GetAndListJobsCases());
    Append(all, UpdateJobCases());
    Append(all, PauseResumeStopCases());
    Append(all, FinishResetDeleteCases());
    Append(all, AddItemsCases());
    Append(all, LeaseItemsCases());
    Append(all, CompleteItemsCases());
    Append(all, FailItemsCases());
    Append(all, GetAndListItemsCases());
    Append(all, ResetItemsAndFindOutputCases());
    Append(all, WorkerCases());
    Append(all, StateAndWatchCases());
    Append(all, LogCases());
    Append(all, AdminCases());
    return all;
  }();
  return *cases;
}

class ValidateRequestTest : public ::testing::TestWithParam<Case> {};

TEST_P(ValidateRequestTest, Checks) {
  const Case& c = GetParam();
  if (c.path.empty()) {
    EXPECT_THAT(c.validate(), IsOk());
  } else {
    EXPECT_THAT(c.validate(), StatusIs(absl::StatusCode::kInvalidArgument,
                                       AllOf(StartsWith(c.path), HasSubstr(c.detail))));
  }
}

INSTANTIATE_TEST_SUITE_P(AllRpcs, ValidateRequestTest, ::testing::ValuesIn(AllCases()),
                         [](const ::testing::TestParamInfo<Case>& info) {
                           return info.param.name;
                         });

// The table covers every RPC of the service with a valid and an invalid request.
TEST(ValidateRequestCoverageTest, EveryRpcHasValidAndInvalidCases) {
  std::set<std::string> valid, invalid;
  for (const Case& c : AllCases()) {
    const std::string rpc = c.name.substr(0, c.name.find('_'));
    (c.path.empty() ? valid : invalid).insert(rpc);
  }
  const auto* service = v1::CreateJobRequest::descriptor()->file()->FindServiceByName("Checkpoint");
  ASSERT_NE(service, nullptr);
  for (int i = 0; i < service->method_count(); ++i) {
    const std::string rpc = service->method(i)->name();
    EXPECT_TRUE(valid.count(rpc)) << rpc << " has no valid case";
    EXPECT_TRUE(invalid.count(rpc)) << rpc << " has no invalid case";
  }
}

// ---- Messages, exactly ----

TEST(ValidateMessageTest, MatchesTheDocumentedExamples) {
  EXPECT_EQ(
      ValidateRequest(With(ForJob<v1::GetJobRequest>(), [](auto& r) { r.set_job_id(Repeat(130)); }),
                      Limits())
          .message(),
      "job_id: must be 1..128 characters of [A-Za-z0-9._:-], got 130 characters");
  EXPECT_EQ(ValidateRequest(
                With(CompleteItems(4), [](auto& r) { Result(&r, 3)->set_payload(Repeat(70000)); }),
                Limits())
                .message(),
            "items[3].result.payload: 70000 bytes exceeds the limit of 65536 "
            "(--max_payload_bytes)");
  v1::AddItemsRequest empty_range = AddItems();
  empty_range.add_ranges()->set_end(1);
  empty_range.add_ranges()->set_begin(5);
  empty_range.mutable_ranges(2)->set_end(5);
  EXPECT_EQ(ValidateRequest(empty_range, Limits()).message(),
            "ranges[2]: end 5 must be greater than begin 5");
  EXPECT_EQ(ValidateRequest(With(CompleteItems(6),
                                 [](auto& r) { *r.mutable_items(5)->mutable_key() = Index(2); }),
                            Limits())
                .message(),
            "items[5].key: repeats items[2].key");
}

// ---- Server flags change the limits ----

TEST(ValidateLimitsTest, FlagLimitsAreHonoured) {
  Limits limits;
  limits.max_key_bytes = 8;
  limits.max_payload_bytes = 16;
  limits.max_cursor_bytes = 4;
  limits.max_state_bytes = 10;
  limits.max_batch = 2;

  EXPECT_THAT(ValidateRequest(With(AddItems(),
                                   [](auto& r) {
                                     r.clear_indices();
                                     r.clear_ranges();
                                   }),
                              limits),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("names[0]: 12 bytes exceeds the limit of 8 (--max_key_bytes)")));
  EXPECT_THAT(ValidateRequest(CompleteItems(3), limits),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("items: 3 entries exceeds the limit of 2 (--max_batch)")));
  EXPECT_THAT(ValidateRequest(With(CompleteItems(1),
                                   [](auto& r) {
                                     Result(&r, 0)->set_output_paths(0, "p");
                                     Result(&r, 0)->set_payload(Repeat(17));
                                   }),
                              limits),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("items[0].result.payload: 17 bytes exceeds the limit of 16")));
  EXPECT_THAT(
      ValidateRequest(With(Heartbeat(1), [](auto& r) { r.mutable_leases(0)->set_cursor("12345"); }),
                      limits),
      StatusIs(absl::StatusCode::kInvalidArgument,
               HasSubstr("leases[0].cursor: 5 bytes exceeds the limit of 4")));
  EXPECT_THAT(ValidateRequest(With(PutState(), [](auto& r) { r.set_value(Repeat(11)); }), limits),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("value: 11 bytes exceeds the limit of 10")));
  CKPT_EXPECT_OK(ValidateRequest(With(CompleteItems(2),
                                      [](auto& r) {
                                        for (auto& item : *r.mutable_items()) {
                                          item.mutable_result()->set_output_paths(0, "p");
                                        }
                                      }),
                                 limits));
}

// ---- Exported building blocks ----

TEST(ValidateBuildingBlocksTest, JobId) {
  CKPT_EXPECT_OK(ValidateJobId("job_id", "batch_20251214_204300"));
  CKPT_EXPECT_OK(ValidateJobId("job_id", "a.b:c-d_E9"));
  EXPECT_THAT(ValidateJobId("job.id", ""),
              StatusIs(absl::StatusCode::kInvalidArgument, StartsWith("job.id: ")));
  EXPECT_THAT(ValidateJobId("job_id", "a/b"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("'/' at offset 1")));
}

TEST(ValidateBuildingBlocksTest, StepNameIsNeverEmpty) {
  CKPT_EXPECT_OK(ValidateStepName("step", "main"));
  CKPT_EXPECT_OK(ValidateStepName("step", Repeat(64)));
  EXPECT_THAT(ValidateStepName("step", ""),
              StatusIs(absl::StatusCode::kInvalidArgument, StartsWith("step: must be 1..64")));
  EXPECT_THAT(ValidateStepName("step", Repeat(65)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("got 65 characters")));
}

TEST(ValidateBuildingBlocksTest, ItemKey) {
  CKPT_EXPECT_OK(ValidateItemKey("key", Index(0), Limits()));
  CKPT_EXPECT_OK(ValidateItemKey("key", Index(k2To63 - 1), Limits()));
  CKPT_EXPECT_OK(ValidateItemKey("key", Name(std::string("\xff\xfe", 2)), Limits()));
  EXPECT_THAT(ValidateItemKey("key", v1::ItemKey(), Limits()),
              StatusIs(absl::StatusCode::kInvalidArgument, "key: must set index or name"));
  EXPECT_THAT(ValidateItemKey("a.key", Index(k2To63), Limits()),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "a.key.index: must be less than 2^63 (9223372036854775808), got "
                       "9223372036854775808"));
  EXPECT_THAT(ValidateItemKey("key", Name(""), Limits()),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "key.name: must be 1..1024 bytes (--max_key_bytes), got 0"));
}

}  // namespace
}  // namespace ckpt
