// Hostile input over the wire: every RPC with each kind of bad field (empty, oversized
// or invalid ids; unknown jobs, steps, workers and items; huge batches; oversized
// payloads and messages; unknown enum values; negative durations; bad ranges and keys)
// gets the documented code with a message that names the field, and leaves the state
// exactly as it was: every job, item (with its result), worker and state blob is
// compared before and after each refused call. A last test sends large refused
// requests over and over and checks that memory stays bounded.
//
// validate_test.cc checks the validation rules one by one in process; this is the same
// contract as a client sees it, including what only the engine or gRPC can refuse.
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/notification.h"
#include "ckpt/v1/checkpoint.grpc.pb.h"
#include "gmock/gmock.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/duration.pb.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"
#include "service/common/grpc_status.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/test_server.h"

namespace ckpt {
namespace {

using ::ckpt::testutil::Call;
using ::ckpt::testutil::TestServer;
using ::google::protobuf::Message;
using ::testing::HasSubstr;
using ::testing::StartsWith;
using Stub = v1::Checkpoint::Stub;

// ---------------------------------------------------------------- calling any RPC

using Invoker = std::function<absl::Status(Stub&, const Message&)>;

template <typename Request, typename Response>
Invoker Unary(grpc::Status (Stub::*method)(grpc::ClientContext*, const Request&, Response*)) {
  return [method](Stub& stub, const Message& request) {
    return Call(stub, method, static_cast<const Request&>(request)).status();
  };
}

// The stream's first answer: OK if a snapshot came, else the status it ended with.
absl::Status Watch(Stub& stub, const Message& request) {
  grpc::ClientContext context;
  auto stream = stub.WatchJob(&context, static_cast<const v1::WatchJobRequest&>(request));
  v1::WatchJobResponse response;
  if (!stream->Read(&response)) return FromGrpcStatus(stream->Finish());
  context.TryCancel();
  while (stream->Read(&response)) {
  }
  stream->Finish();
  return absl::OkStatus();
}

const std::map<std::string, Invoker>& Invokers() {
#define CKPT_UNARY(name) \
  { #name, Unary(&Stub::name) }
  static const auto* const invokers = new std::map<std::string, Invoker>{
      CKPT_UNARY(CreateJob),        CKPT_UNARY(GetJob),      CKPT_UNARY(ListJobs),
      CKPT_UNARY(UpdateJob),        CKPT_UNARY(PauseJob),    CKPT_UNARY(ResumeJob),
      CKPT_UNARY(StopJob),          CKPT_UNARY(FinishJob),   CKPT_UNARY(ResetJob),
      CKPT_UNARY(DeleteJob),        CKPT_UNARY(AddItems),    CKPT_UNARY(LeaseItems),
      CKPT_UNARY(CompleteItems),    CKPT_UNARY(FailItems),   CKPT_UNARY(GetItem),
      CKPT_UNARY(ListItems),        CKPT_UNARY(ResetItems),  CKPT_UNARY(FindOutput),
      CKPT_UNARY(RegisterWorker),   CKPT_UNARY(Heartbeat),   CKPT_UNARY(ListWorkers),
      CKPT_UNARY(UnregisterWorker), CKPT_UNARY(PutState),    CKPT_UNARY(GetState),
      CKPT_UNARY(ListStates),       {"WatchJob", Watch},     CKPT_UNARY(WriteLogs),
      CKPT_UNARY(ListLogs),         CKPT_UNARY(BackupStore), CKPT_UNARY(DeleteJobs),
  };
#undef CKPT_UNARY
  return *invokers;
}

// ---------------------------------------------------------------- the state

// Everything a client can read, as text: jobs (without the fields that move with the
// clock), every item of every step with its result, workers, state blobs, an output.
std::string Fingerprint(Stub& stub) {
  std::string out;
  v1::ListJobsRequest list_jobs;
  list_jobs.set_limit(1000);
  auto jobs = Call(stub, &Stub::ListJobs, list_jobs);
  if (!jobs.ok()) return jobs.status().ToString();
  for (v1::Job job : jobs->jobs()) {
    auto steady = [](v1::Progress* p) {
      p->clear_elapsed();
      p->clear_eta();
      p->clear_recent_rate();
    };
    steady(job.mutable_progress());
    for (auto& step : *job.mutable_step_progress()) steady(step.mutable_progress());
    absl::StrAppend(&out, "job ", job.ShortDebugString(), "\n");
    for (const std::string& step : job.steps()) {
      v1::ListItemsRequest list;
      list.set_job_id(job.job_id());
      list.set_step(step);
      list.set_limit(1000);
      auto items = Call(stub, &Stub::ListItems, list);
      if (!items.ok()) return items.status().ToString();
      for (const v1::Item& item : items->items()) {
        absl::StrAppend(&out, "item ", item.ShortDebugString(), "\n");
      }
    }
    v1::ListWorkersRequest workers;
    workers.set_job_id(job.job_id());
    workers.set_include_exited(true);
    auto listed = Call(stub, &Stub::ListWorkers, workers);
    absl::StrAppend(&out, "workers ", listed.ok() ? listed->ShortDebugString() : "?", "\n");
    v1::ListStatesRequest states;
    states.set_job_id(job.job_id());
    states.set_include_values(true);
    auto blobs = Call(stub, &Stub::ListStates, states);
    absl::StrAppend(&out, "states ", blobs.ok() ? blobs->ShortDebugString() : "?", "\n");
  }
  v1::FindOutputRequest find;
  find.set_output_path("/out/0");
  auto found = Call(stub, &Stub::FindOutput, find);
  absl::StrAppend(&out, "output ", found.ok() ? found->ShortDebugString() : "?", "\n");
  return out;
}

// ---------------------------------------------------------------- the table

struct Case {
  std::string name;    // "<Rpc>_<What>"
  std::string method;  // the RPC
  std::shared_ptr<Message> request;
  absl::StatusCode code;
  std::string field;        // INVALID_ARGUMENT and NOT_FOUND messages start with it
  std::string detail = "";  // and contain this
};

void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

std::string g_worker;  // registered by the fixture
uint64_t g_token = 0;  // its lease on item "a"/4

// A valid request of each RPC against the fixture's state ("WORKER" and the token are
// filled in by Resolve()). Sent as they are, they would be accepted; the table only sends them
// broken.
std::map<std::string, std::string> BaseTexts() {
  return {
      {"CreateJob", R"pb(job_id: "fresh"
                         config: "{}"
                         lease_timeout { seconds: 60 }
                         max_run_time { seconds: 9 })pb"},
      {"GetJob", R"pb(job_id: "strict")pb"},
      {"ListJobs", R"pb(status: JOB_STATUS_RUNNING limit: 10)pb"},
      {"UpdateJob", R"pb(job_id: "strict" stage: "s")pb"},
      {"PauseJob", R"pb(job_id: "strict" reason: "r")pb"},
      {"ResumeJob", R"pb(job_id: "strict")pb"},
      {"StopJob", R"pb(job_id: "strict")pb"},
      {"FinishJob", R"pb(job_id: "strict" status: JOB_STATUS_COMPLETED)pb"},
      {"ResetJob", R"pb(job_id: "strict")pb"},
      {"DeleteJob", R"pb(job_id: "strict")pb"},
      {"AddItems", R"pb(job_id: "strict"
                        step: "a"
                        names: "n9"
                        ranges { begin: 100 end: 200 })pb"},
      {"LeaseItems", R"pb(job_id: "strict" step: "a" worker_id: "WORKER" max_items: 1)pb"},
      {"CompleteItems",
       R"pb(job_id: "strict"
            step: "a"
            items {
              key { index: 5 }
              result {
                payload: "p"
                output_paths: "/out/5"
                metrics { wall_time { seconds: 1 } }
              }
            })pb"},
      {"FailItems",
       R"pb(job_id: "strict"
            step: "a"
            items {
              key { index: 6 }
              error { message: "m" }
            })pb"},
      {"GetItem", R"pb(job_id: "strict"
                       step: "a"
                       key { index: 0 })pb"},
      {"ListItems", R"pb(job_id: "strict" step: "a" state: ITEM_STATE_COMPLETED)pb"},
      {"ResetItems", R"pb(job_id: "strict" step: "a" state: ITEM_STATE_FAILED)pb"},
      {"FindOutput", R"pb(output_path: "/out/0")pb"},
      {"RegisterWorker", R"pb(job_id: "strict" hostname: "h")pb"},
      {"Heartbeat",
       R"pb(job_id: "strict"
            worker_id: "WORKER"
            leases {
              step: "a"
              key { index: 2 }
              lease_token: 424242
              cursor: "c"
            })pb"},
      {"ListWorkers", R"pb(job_id: "strict")pb"},
      {"UnregisterWorker", R"pb(job_id: "strict" worker_id: "WORKER")pb"},
      {"PutState", R"pb(job_id: "strict" name: "c" value: "v")pb"},
      {"GetState", R"pb(job_id: "strict" name: "cursor")pb"},
      {"ListStates", R"pb(job_id: "strict")pb"},
      {"WatchJob", R"pb(job_id: "strict"
                        min_interval { nanos: 100000000 })pb"},
      {"WriteLogs", R"pb(job_id: "strict"
                         worker_id: "WORKER"
                         items {
                           step: "a"
                           key { index: 0 }
                           entries { message: "m" }
                         })pb"},
      {"ListLogs", R"pb(job_id: "strict" step: "a" worker_id: "WORKER")pb"},
      {"BackupStore", R"pb(dir: "/no-such-parent-of-ckpt/copy")pb"},
      // Would delete the running "strict": every broken form must leave it be.
      {"DeleteJobs", R"pb(job_id_prefix: "strict"
                          statuses: JOB_STATUS_RUNNING
                          include_unfinished: true)pb"},
  };
}

std::shared_ptr<Message> Base(const std::string& method) {
  const auto* service = v1::CreateJobRequest::descriptor()->file()->FindServiceByName("Checkpoint");
  const auto* input = service->FindMethodByName(method)->input_type();
  std::shared_ptr<Message> request(
      google::protobuf::MessageFactory::generated_factory()->GetPrototype(input)->New());
  if (!google::protobuf::TextFormat::ParseFromString(BaseTexts().at(method), request.get())) {
    std::abort();
  }
  return request;
}

// The table is built before the fixture registers its worker: requests name it
// "WORKER" and its lease token kTokenPlaceholder, filled in when sent.
constexpr uint64_t kTokenPlaceholder = 424242;
std::unique_ptr<Message> Resolve(const Message& request) {
  std::unique_ptr<Message> resolved(request.New());
  resolved->CopyFrom(request);
  const auto* worker = resolved->GetDescriptor()->FindFieldByName("worker_id");
  if (worker != nullptr && resolved->GetReflection()->GetString(*resolved, worker) == "WORKER") {
    resolved->GetReflection()->SetString(resolved.get(), worker, g_worker);
  }
  if (auto* heartbeat = dynamic_cast<v1::HeartbeatRequest*>(resolved.get())) {
    for (auto& lease : *heartbeat->mutable_leases()) {
      if (lease.lease_token() == kTokenPlaceholder) lease.set_lease_token(g_token);
    }
  }
  if (auto* complete = dynamic_cast<v1::CompleteItemsRequest*>(resolved.get())) {
    for (auto& item : *complete->mutable_items()) {
      if (item.lease_token() == kTokenPlaceholder) item.set_lease_token(g_token);
    }
  }
  return resolved;
}

// A copy of the base request of `method` (typed as Request) changed by `edit`.
template <typename Request>
std::shared_ptr<Message> Edited(const std::string& method, std::function<void(Request&)> edit) {
  std::shared_ptr<Message> request = Base(method);
  edit(static_cast<Request&>(*request));
  return request;
}

// Sets a top-level string field by name.
std::shared_ptr<Message> WithString(const std::string& method, const std::string& field,
                                    const std::string& value) {
  std::shared_ptr<Message> request = Base(method);
  request->GetReflection()->SetString(request.get(),
                                      request->GetDescriptor()->FindFieldByName(field), value);
  return request;
}

// The same mistakes in the ids of every RPC that has them, found by field name.
std::vector<Case> IdCases() {
  std::vector<Case> cases;
  const auto* service = v1::CreateJobRequest::descriptor()->file()->FindServiceByName("Checkpoint");
  for (int m = 0; m < service->method_count(); ++m) {
    const std::string method = service->method(m)->name();
    const auto* input = service->method(m)->input_type();
    const auto kInvalid = absl::StatusCode::kInvalidArgument;
    if (input->FindFieldByName("job_id") != nullptr) {
      if (method != "CreateJob") {
        cases.push_back({method + "_JobIdEmpty", method, WithString(method, "job_id", ""), kInvalid,
                         "job_id", "got 0 characters"});
        cases.push_back({method + "_JobIdUnknown", method, WithString(method, "job_id", "ghost"),
                         absl::StatusCode::kNotFound, "", "\"ghost\""});
      }
      cases.push_back({method + "_JobIdWithSpace", method,
                       WithString(method, "job_id", "has space"), kInvalid, "job_id", "' '"});
      cases.push_back({method + "_JobIdTooLong", method,
                       WithString(method, "job_id", std::string(129, 'j')), kInvalid, "job_id",
                       "got 129 characters"});
      cases.push_back({method + "_JobIdNotUtf8Safe", method,
                       WithString(method, "job_id", "job\x01"), kInvalid, "job_id", ""});
    }
    if (input->FindFieldByName("worker_id") != nullptr) {
      cases.push_back({method + "_WorkerIdWithSpace", method,
                       WithString(method, "worker_id", "w 1"), kInvalid, "worker_id", ""});
      cases.push_back({method + "_WorkerIdTooLong", method,
                       WithString(method, "worker_id", std::string(129, 'w')), kInvalid,
                       "worker_id", ""});
      // CompleteItems and FailItems ignore an unknown worker (it is only credited);
      // WriteLogs records it and ListLogs filters by it.
      if (method != "CompleteItems" && method != "FailItems" && method != "WriteLogs" &&
          method != "ListLogs") {
        cases.push_back({method + "_WorkerIdUnknown", method,
                         WithString(method, "worker_id", "w-999999"), absl::StatusCode::kNotFound,
                         "worker_id", "\"w-999999\""});
      }
    }
    if (input->FindFieldByName("step") != nullptr) {
      cases.push_back({method + "_StepWithSlash", method, WithString(method, "step", "a/b"),
                       kInvalid, "step", "'/'"});
      cases.push_back({method + "_StepTooLong", method,
                       WithString(method, "step", std::string(65, 's')), kInvalid, "step", ""});
      cases.push_back({method + "_StepUnknown", method, WithString(method, "step", "nostep"),
                       kInvalid, "step", "\"nostep\""});
    }
    // Every top-level enum, one value past the known ones.
    for (int f = 0; f < input->field_count(); ++f) {
      const auto* field = input->field(f);
      if (field->type() != google::protobuf::FieldDescriptor::TYPE_ENUM || field->is_repeated()) {
        continue;
      }
      std::shared_ptr<Message> request = Base(method);
      request->GetReflection()->SetEnumValue(request.get(), field, 99);
      cases.push_back({absl::StrCat(method, "_", field->camelcase_name(), "Unknown"), method,
                       request, kInvalid, field->name(), "99"});
    }
    // Every top-level duration, negative.
    for (int f = 0; f < input->field_count(); ++f) {
      const auto* field = input->field(f);
      if (field->message_type() != google::protobuf::Duration::descriptor()) continue;
      std::shared_ptr<Message> request = Base(method);
      auto* duration = static_cast<google::protobuf::Duration*>(
          request->GetReflection()->MutableMessage(request.get(), field));
      duration->set_seconds(-5);
      duration->set_nanos(0);
      cases.push_back({absl::StrCat(method, "_", field->camelcase_name(), "Negative"), method,
                       request, kInvalid, field->name(), "-5s"});
    }
  }
  return cases;
}

constexpr uint64_t k2To63 = uint64_t{1} << 63;
const auto kInvalid = absl::StatusCode::kInvalidArgument;

std::vector<Case> FieldCases() {
  using v1::AddItemsRequest;
  using v1::CompleteItemsRequest;
  std::vector<Case> cases = {
      // Batches over --max_batch (8192).
      {"AddItems_TooManyNames", "AddItems",
       Edited<AddItemsRequest>("AddItems",
                               [](auto& r) {
                                 for (int i = 0; i < 8192; ++i) r.add_names(absl::StrCat("n", i));
                               }),
       kInvalid, "", "exceeds the limit of 8192 (--max_batch)"},
      {"CompleteItems_TooManyItems", "CompleteItems",
       Edited<CompleteItemsRequest>("CompleteItems",
                                    [](auto& r) {
                                      for (int i = 0; i < 8192; ++i) {
                                        r.add_items()->mutable_key()->set_index(1000 + i);
                                      }
                                    }),
       kInvalid, "items", "8193 entries exceeds the limit of 8192"},
      {"FailItems_TooManyItems", "FailItems",
       Edited<v1::FailItemsRequest>("FailItems",
                                    [](auto& r) {
                                      for (int i = 0; i < 8192; ++i) {
                                        auto* f = r.add_items();
                                        f->mutable_key()->set_index(1000 + i);
                                        f->mutable_error()->set_message("m");
                                      }
                                    }),
       kInvalid, "items", "8193 entries"},
      {"LeaseItems_TooManyKeys", "LeaseItems",
       Edited<v1::LeaseItemsRequest>("LeaseItems",
                                     [](auto& r) {
                                       for (int i = 0; i < 8193; ++i) r.add_keys()->set_index(i);
                                     }),
       kInvalid, "keys", "8193 entries"},
      {"LeaseItems_MaxItemsTooMany", "LeaseItems",
       Edited<v1::LeaseItemsRequest>("LeaseItems", [](auto& r) { r.set_max_items(8193); }),
       kInvalid, "max_items", "8192"},
      {"LeaseItems_MaxItemsZero", "LeaseItems",
       Edited<v1::LeaseItemsRequest>("LeaseItems", [](auto& r) { r.set_max_items(0); }), kInvalid,
       "max_items", ""},
      {"ResetItems_TooManyKeys", "ResetItems",
       Edited<v1::ResetItemsRequest>("ResetItems",
                                     [](auto& r) {
                                       for (int i = 0; i < 8193; ++i) r.add_keys()->set_index(i);
                                     }),
       kInvalid, "keys", "8193 entries"},
      {"Heartbeat_TooManyLeases", "Heartbeat",
       Edited<v1::HeartbeatRequest>("Heartbeat",
                                    [](auto& r) {
                                      for (int i = 0; i < 8192; ++i)
                                        r.add_leases()->mutable_key()->set_index(i);
                                    }),
       kInvalid, "leases", "8193 entries"},
      {"ListItems_LimitTooHigh", "ListItems",
       Edited<v1::ListItemsRequest>("ListItems", [](auto& r) { r.set_limit(8193); }), kInvalid,
       "limit", "8192"},
      {"ListJobs_LimitTooHigh", "ListJobs",
       Edited<v1::ListJobsRequest>("ListJobs", [](auto& r) { r.set_limit(1001); }), kInvalid,
       "limit", "1000"},
      // Oversized fields.
      {"CompleteItems_PayloadTooLarge", "CompleteItems",
       Edited<CompleteItemsRequest>("CompleteItems",
                                    [](auto& r) {
                                      r.mutable_items(0)->mutable_result()->set_payload(
                                          std::string(65537, 'p'));
                                    }),
       kInvalid, "items[0].result.payload", "65537 bytes exceeds the limit of 65536"},
      {"CompleteItems_OutputPathTooLong", "CompleteItems",
       Edited<CompleteItemsRequest>("CompleteItems",
                                    [](auto& r) {
                                      r.mutable_items(0)->mutable_result()->set_output_paths(
                                          0, std::string(1025, 'o'));
                                    }),
       kInvalid, "items[0].result.output_paths[0]", "--max_key_bytes"},
      {"CompleteItems_WallTimeNegative", "CompleteItems",
       Edited<CompleteItemsRequest>("CompleteItems",
                                    [](auto& r) {
                                      r.mutable_items(0)
                                          ->mutable_result()
                                          ->mutable_metrics()
                                          ->mutable_wall_time()
                                          ->set_seconds(-1);
                                    }),
       kInvalid, "items[0].result.metrics.wall_time", ""},
      {"Heartbeat_CursorTooLarge", "Heartbeat",
       Edited<v1::HeartbeatRequest>(
           "Heartbeat", [](auto& r) { r.mutable_leases(0)->set_cursor(std::string(65537, 'c')); }),
       kInvalid, "leases[0].cursor", "--max_cursor_bytes"},
      {"PutState_ValueTooLarge", "PutState",
       Edited<v1::PutStateRequest>("PutState",
                                   [](auto& r) { r.set_value(std::string((4 << 20) + 1, 'v')); }),
       kInvalid, "value", "--max_state_bytes"},
      {"AddItems_NameTooLong", "AddItems",
       Edited<AddItemsRequest>("AddItems", [](auto& r) { r.set_names(0, std::string(1025, 'n')); }),
       kInvalid, "names[0]", "--max_key_bytes"},
      {"FailItems_MessageTooLong", "FailItems",
       Edited<v1::FailItemsRequest>("FailItems",
                                    [](auto& r) {
                                      r.mutable_items(0)->mutable_error()->set_message(
                                          std::string(4097, 'm'));
                                    }),
       kInvalid, "items[0].error.message", ""},
      {"CreateJob_ConfigTooLarge", "CreateJob",
       Edited<v1::CreateJobRequest>("CreateJob",
                                    [](auto& r) { r.set_config(std::string((1 << 20) + 1, 'c')); }),
       kInvalid, "config", ""},
      // Messages over --max_message_bytes (16 MiB): gRPC refuses them.
      {"PutState_MessageOver16MiB", "PutState",
       Edited<v1::PutStateRequest>("PutState",
                                   [](auto& r) { r.set_value(std::string(17 << 20, 'v')); }),
       absl::StatusCode::kResourceExhausted, "", ""},
      {"CompleteItems_MessageOver16MiB", "CompleteItems",
       Edited<CompleteItemsRequest>("CompleteItems",
                                    [](auto& r) {
                                      for (int i = 0; i < 300; ++i) {
                                        auto* c = r.add_items();
                                        c->mutable_key()->set_index(1000 + i);
                                        c->mutable_result()->set_payload(std::string(60000, 'p'));
                                      }
                                    }),
       absl::StatusCode::kResourceExhausted, "", ""},
      // Bad ranges and keys.
      {"AddItems_RangeEmpty", "AddItems",
       Edited<AddItemsRequest>("AddItems", [](auto& r) { r.mutable_ranges(0)->set_end(100); }),
       kInvalid, "ranges[0]", "end 100 must be greater than begin 100"},
      {"AddItems_RangeBackwards", "AddItems",
       Edited<AddItemsRequest>("AddItems", [](auto& r) { r.mutable_ranges(0)->set_end(50); }),
       kInvalid, "ranges[0]", ""},
      {"AddItems_RangePast2To63", "AddItems",
       Edited<AddItemsRequest>("AddItems",
                               [](auto& r) { r.mutable_ranges(0)->set_end(k2To63 + 1); }),
       kInvalid, "ranges[0]", ""},
      {"AddItems_IndexPast2To63", "AddItems",
       Edited<AddItemsRequest>("AddItems", [](auto& r) { r.add_indices(k2To63); }), kInvalid,
       "indices[0]", ""},
      {"AddItems_NameWithNul", "AddItems",
       Edited<AddItemsRequest>("AddItems", [](auto& r) { r.set_names(0, std::string("a\0b", 3)); }),
       kInvalid, "names[0]", "NUL"},
      {"GetItem_KeyUnset", "GetItem",
       Edited<v1::GetItemRequest>("GetItem", [](auto& r) { r.clear_key(); }), kInvalid, "key",
       "must set index or name"},
      {"GetItem_NameEmpty", "GetItem",
       Edited<v1::GetItemRequest>("GetItem", [](auto& r) { r.mutable_key()->set_name(""); }),
       kInvalid, "key.name", ""},
      {"GetItem_IndexUnregistered", "GetItem",
       Edited<v1::GetItemRequest>("GetItem", [](auto& r) { r.mutable_key()->set_index(999999); }),
       absl::StatusCode::kNotFound, "", ""},
      {"CompleteItems_KeyRepeated", "CompleteItems",
       Edited<CompleteItemsRequest>("CompleteItems", [](auto& r) { *r.add_items() = r.items(0); }),
       kInvalid, "items[1].key", "repeats items[0].key"},
      {"CompleteItems_ItemUnregistered", "CompleteItems",
       Edited<CompleteItemsRequest>(
           "CompleteItems", [](auto& r) { r.add_items()->mutable_key()->set_name("never-added"); }),
       absl::StatusCode::kNotFound, "", "never-added"},
      {"CompleteItems_StaleToken", "CompleteItems",
       Edited<CompleteItemsRequest>("CompleteItems",
                                    [](auto& r) {
                                      auto* c = r.add_items();
                                      c->mutable_key()->set_index(2);  // leased
                                      c->set_lease_token(kTokenPlaceholder + 1);
                                    }),
       absl::StatusCode::kFailedPrecondition, "", ""},
      // lease_next: a worker's completions with their tokens, and a live worker, checked
      // before the completions apply (the lease of item 2 stays as it is).
      {"CompleteItems_LeaseNextWithoutWorker", "CompleteItems",
       Edited<CompleteItemsRequest>("CompleteItems",
                                    [](auto& r) {
                                      r.mutable_items(0)->set_lease_token(kTokenPlaceholder);
                                      r.mutable_lease_next()->set_max_items(1);
                                    }),
       kInvalid, "worker_id", "required with lease_next"},
      {"CompleteItems_LeaseNextMaxItemsZero", "CompleteItems",
       Edited<CompleteItemsRequest>("CompleteItems",
                                    [](auto& r) {
                                      r.set_worker_id("WORKER");
                                      r.mutable_items(0)->set_lease_token(kTokenPlaceholder);
                                      r.mutable_lease_next();
                                    }),
       kInvalid, "lease_next.max_items", "got 0"},
      {"CompleteItems_LeaseNextRecordModeItem", "CompleteItems",
       Edited<CompleteItemsRequest>("CompleteItems",
                                    [](auto& r) {
                                      r.set_worker_id("WORKER");
                                      r.mutable_lease_next()->set_max_items(1);
                                    }),
       kInvalid, "items[0].lease_token", "required with lease_next"},
      {"CompleteItems_LeaseNextUnknownWorker", "CompleteItems",
       Edited<CompleteItemsRequest>("CompleteItems",
                                    [](auto& r) {
                                      r.set_worker_id("w-999999");
                                      r.mutable_items(0)->mutable_key()->set_index(2);  // leased
                                      r.mutable_items(0)->set_lease_token(kTokenPlaceholder);
                                      r.mutable_lease_next()->set_max_items(1);
                                    }),
       absl::StatusCode::kNotFound, "worker_id", "\"w-999999\""},
      {"ResetItems_KeysWithoutStep", "ResetItems",
       Edited<v1::ResetItemsRequest>("ResetItems",
                                     [](auto& r) {
                                       r.clear_step();
                                       r.add_keys()->set_index(1);
                                     }),
       kInvalid, "step", "required when keys are given"},
      {"ListItems_PageTokenForged", "ListItems",
       Edited<v1::ListItemsRequest>("ListItems", [](auto& r) { r.set_page_token("zz-not-hex"); }),
       kInvalid, "page_token", ""},
      {"ListJobs_PageTokenForged", "ListJobs",
       Edited<v1::ListJobsRequest>("ListJobs", [](auto& r) { r.set_page_token("no colon"); }),
       kInvalid, "page_token", ""},
      {"FindOutput_Empty", "FindOutput",
       Edited<v1::FindOutputRequest>("FindOutput", [](auto& r) { r.clear_output_path(); }),
       kInvalid, "output_path", ""},
      {"FindOutput_Unknown", "FindOutput",
       Edited<v1::FindOutputRequest>("FindOutput", [](auto& r) { r.set_output_path("/nowhere"); }),
       absl::StatusCode::kNotFound, "", ""},
      {"DeleteJobs_RunningWithoutSayingSo", "DeleteJobs",
       Edited<v1::DeleteJobsRequest>("DeleteJobs", [](auto& r) { r.clear_include_unfinished(); }),
       kInvalid, "statuses[0]", "JOB_STATUS_RUNNING jobs may still be running a pipeline"},
      {"DeleteJobs_StatusUnspecified", "DeleteJobs",
       Edited<v1::DeleteJobsRequest>("DeleteJobs",
                                     [](auto& r) { r.add_statuses(v1::JOB_STATUS_UNSPECIFIED); }),
       kInvalid, "statuses[1]", "leave statuses empty"},
      {"DeleteJobs_StatusUnknown", "DeleteJobs",
       Edited<v1::DeleteJobsRequest>(
           "DeleteJobs", [](auto& r) { r.set_statuses(0, static_cast<v1::JobStatus>(17)); }),
       kInvalid, "statuses[0]", "unknown value 17"},
      {"DeleteJobs_LimitTooHigh", "DeleteJobs",
       Edited<v1::DeleteJobsRequest>("DeleteJobs", [](auto& r) { r.set_limit(1001); }), kInvalid,
       "limit", "1001 jobs exceeds the limit of 1000"},
      {"DeleteJobs_PrefixWithSpace", "DeleteJobs",
       Edited<v1::DeleteJobsRequest>("DeleteJobs", [](auto& r) { r.set_job_id_prefix("st rict"); }),
       kInvalid, "job_id_prefix", "' '"},
      {"DeleteJobs_FinishedBefore1969", "DeleteJobs",
       Edited<v1::DeleteJobsRequest>("DeleteJobs",
                                     [](auto& r) { r.mutable_finished_before()->set_seconds(-1); }),
       kInvalid, "finished_before", "from 1970 to 9999"},
      {"DeleteJobs_LabelBadKey", "DeleteJobs",
       Edited<v1::DeleteJobsRequest>("DeleteJobs",
                                     [](auto& r) { (*r.mutable_labels())["a b"] = "x"; }),
       kInvalid, "labels key \"a b\"", ""},
      {"DeleteJobs_PageTokenForged", "DeleteJobs",
       Edited<v1::DeleteJobsRequest>("DeleteJobs", [](auto& r) { r.set_page_token("no colon"); }),
       kInvalid, "page_token", "not a token this server issued"},
      {"BackupStore_Empty", "BackupStore",
       Edited<v1::BackupStoreRequest>("BackupStore", [](auto& r) { r.clear_dir(); }), kInvalid,
       "dir", "must be 1..4096 bytes"},
      {"BackupStore_Relative", "BackupStore",
       Edited<v1::BackupStoreRequest>("BackupStore", [](auto& r) { r.set_dir("backups/1"); }),
       kInvalid, "dir", "must be an absolute path"},
      {"BackupStore_TooLong", "BackupStore",
       Edited<v1::BackupStoreRequest>("BackupStore",
                                      [](auto& r) { r.set_dir("/" + std::string(4096, 'd')); }),
       kInvalid, "dir", "4097 bytes exceeds the limit of 4096"},
      {"BackupStore_Exists", "BackupStore",
       Edited<v1::BackupStoreRequest>("BackupStore", [](auto& r) { r.set_dir("/"); }),
       absl::StatusCode::kFailedPrecondition, "dir: / already exists", ""},
      {"BackupStore_NoParent", "BackupStore", Base("BackupStore"),
       absl::StatusCode::kFailedPrecondition, "dir", "is not an existing directory"},
      {"GetState_Unknown", "GetState",
       Edited<v1::GetStateRequest>("GetState", [](auto& r) { r.set_name("nothing"); }),
       absl::StatusCode::kNotFound, "", ""},
      {"PutState_StaleVersion", "PutState",
       Edited<v1::PutStateRequest>("PutState",
                                   [](auto& r) {
                                     r.set_name("cursor");
                                     r.set_expected_version(7);
                                   }),
       absl::StatusCode::kAborted, "", ""},
      {"CreateJob_FingerprintMismatch", "CreateJob",
       Edited<v1::CreateJobRequest>("CreateJob",
                                    [](auto& r) {
                                      r.set_job_id("strict");
                                      r.set_fingerprint("sha256:other");
                                    }),
       absl::StatusCode::kFailedPrecondition, "", "sha256:other"},
      {"CreateJob_RetentionNegative", "CreateJob",
       Edited<v1::CreateJobRequest>("CreateJob",
                                    [](auto& r) { r.mutable_retention()->set_seconds(-60); }),
       kInvalid, "retention", "must not be negative, got -1m"},
      {"UpdateJob_RetentionTooLong", "UpdateJob",
       Edited<v1::UpdateJobRequest>(
           "UpdateJob", [](auto& r) { r.mutable_retention()->set_seconds(3651LL * 86400); }),
       kInvalid, "retention", "must be 0 (kept until deleted) or 1s..3650 days, got 87624h"},
      {"UpdateJob_RetentionUnderASecond", "UpdateJob",
       Edited<v1::UpdateJobRequest>("UpdateJob",
                                    [](auto& r) { r.mutable_retention()->set_nanos(500000000); }),
       kInvalid, "retention", "got 500ms"},
      {"CreateJob_LeaseTimeoutTooShort", "CreateJob",
       Edited<v1::CreateJobRequest>("CreateJob",
                                    [](auto& r) { r.mutable_lease_timeout()->set_seconds(0); }),
       kInvalid, "lease_timeout", ""},
      {"CreateJob_StepsRepeated", "CreateJob",
       Edited<v1::CreateJobRequest>("CreateJob",
                                    [](auto& r) {
                                      r.add_steps("x");
                                      r.add_steps("x");
                                    }),
       kInvalid, "steps[1]", "repeats"},
  };
  return cases;
}

std::vector<Case> AllCases() {
  std::vector<Case> cases = IdCases();
  for (Case& c : FieldCases()) cases.push_back(std::move(c));
  return cases;
}

// ---------------------------------------------------------------- fixture

class BadInputTableTest : public ::testing::TestWithParam<Case> {
 protected:
  // One server for the table: refused calls change nothing, and each case compares
  // the state before and after itself anyway.
  static void SetUpTestSuite() {
    auto server = TestServer::Start();
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = server->release();
    Stub& stub = server_->stub();
    auto ok = [](const auto& answer) { ASSERT_TRUE(answer.ok()) << answer.status(); };
    ok(Call(stub, &Stub::CreateJob,
            Parse<v1::CreateJobRequest>(R"pb(job_id: "strict"
                                             steps: [ "a", "b" ]
                                             lease_timeout { seconds: 3600 })pb")));
    ok(Call(stub, &Stub::CreateJob, Parse<v1::CreateJobRequest>(R"pb(job_id: "other")pb")));
    ok(Call(stub, &Stub::AddItems, Parse<v1::AddItemsRequest>(R"pb(job_id: "strict"
                                                                   step: "a"
                                                                   names: [ "n1", "n2" ]
                                                                   ranges { end: 20 })pb")));
    ok(Call(stub, &Stub::AddItems, Parse<v1::AddItemsRequest>(R"pb(job_id: "strict"
                                                                   step: "b"
                                                                   ranges { end: 5 })pb")));
    ok(Call(stub, &Stub::CompleteItems, Parse<v1::CompleteItemsRequest>(R"pb(
              job_id: "strict"
              items {
                key { index: 0 }
                result { payload: "zero" output_paths: "/out/0" }
              }
              items {
                key { index: 1 }
                result { payload: "one" }
              }
              items {
                key { name: "n1" }
                result { payload: "\000\377" }
              }
            )pb")));
    ok(Call(stub, &Stub::FailItems, Parse<v1::FailItemsRequest>(R"pb(
              job_id: "strict"
              items {
                key { index: 3 }
                error { message: "broken input" }
              })pb")));
    auto worker = Call(stub, &Stub::RegisterWorker,
                       Parse<v1::RegisterWorkerRequest>(R"pb(job_id: "strict")pb"));
    ok(worker);
    g_worker = worker->worker_id();
    v1::LeaseItemsRequest lease;
    lease.set_job_id("strict");
    lease.set_step("a");
    lease.set_worker_id(g_worker);
    lease.set_max_items(1);
    auto leased = Call(stub, &Stub::LeaseItems, lease);
    ok(leased);
    ASSERT_EQ(leased->leases_size(), 1);
    ASSERT_EQ(leased->leases(0).key().index(), 2u);
    g_token = leased->leases(0).lease_token();
    ok(Call(stub, &Stub::PutState, Parse<v1::PutStateRequest>(R"pb(job_id: "strict"
                                                                   name: "cursor"
                                                                   value: "41000")pb")));
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }

  template <typename Proto>
  static Proto Parse(const std::string& text) {
    Proto proto;
    if (!google::protobuf::TextFormat::ParseFromString(text, &proto)) std::abort();
    return proto;
  }

  static TestServer* server_;
};

TestServer* BadInputTableTest::server_ = nullptr;

TEST_P(BadInputTableTest, RefusedWithTheDocumentedCodeAndNothingChanges) {
  ASSERT_NE(server_, nullptr);
  const Case& c = GetParam();
  Stub& stub = server_->stub();
  const std::string before = Fingerprint(stub);
  const absl::Status status = Invokers().at(c.method)(stub, *Resolve(*c.request));
  EXPECT_EQ(status.code(), c.code) << status;
  EXPECT_THAT(std::string(status.message()), StartsWith(c.field)) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr(c.detail)) << status;
  EXPECT_EQ(Fingerprint(stub), before) << "the state changed";
}

INSTANTIATE_TEST_SUITE_P(AllRpcs, BadInputTableTest, ::testing::ValuesIn(AllCases()),
                         [](const ::testing::TestParamInfo<Case>& info) {
                           return info.param.name;
                         });

// Every RPC of the service is in the table, with an unknown or invalid job (or, for
// FindOutput and ListJobs, some bad field).
TEST(BadInputTableCoverageTest, EveryRpcIsCovered) {
  std::map<std::string, int> per_rpc;
  for (const Case& c : AllCases()) ++per_rpc[c.method];
  const auto* service = v1::CreateJobRequest::descriptor()->file()->FindServiceByName("Checkpoint");
  for (int i = 0; i < service->method_count(); ++i) {
    EXPECT_GE(per_rpc[service->method(i)->name()], 2) << service->method(i)->name();
  }
}

// ---------------------------------------------------------------- requests that do not parse

// Sends `bytes` as the request of `method` and returns the status.
absl::Status CallRaw(const std::shared_ptr<grpc::Channel>& channel, const std::string& method,
                     const std::string& bytes) {
  grpc::GenericStub stub(channel);
  grpc::Slice slice(bytes);
  grpc::ByteBuffer request(&slice, 1);
  grpc::ByteBuffer response;
  grpc::ClientContext context;
  absl::Notification done;
  grpc::Status status;
  stub.UnaryCall(&context, absl::StrCat("/ckpt.v1.Checkpoint/", method), grpc::StubOptions(),
                 &request, &response, [&](grpc::Status s) {
                   status = std::move(s);
                   done.Notify();
                 });
  done.WaitForNotification();
  return FromGrpcStatus(status);
}

// A varint, as the wire format writes tags and lengths.
std::string Varint(uint64_t value) {
  std::string out;
  do {
    out.push_back(static_cast<char>((value & 0x7f) | (value > 0x7f ? 0x80 : 0)));
    value >>= 7;
  } while (value != 0);
  return out;
}

// Bytes that are not a valid request of any method, with what the answer must say.
struct Unparsable {
  std::string name;
  std::string bytes;
  std::string reason;  // a piece of the message
};

std::vector<Unparsable> UnparsableRequests(const google::protobuf::Descriptor& input) {
  std::vector<Unparsable> out;
  for (int i = 0; i < input.field_count(); ++i) {
    const auto* field = input.field(i);
    if (field->type() != google::protobuf::FieldDescriptor::TYPE_STRING || field->is_repeated()) {
      continue;
    }
    out.push_back({"invalid UTF-8 in " + field->name(),
                   Varint(field->number() << 3 | 2) + Varint(2) + "\xff\xfe", "invalid UTF-8"});
    break;
  }
  // Field 1 says 5 bytes follow; 2 do.
  out.push_back({"truncated", Varint(1 << 3 | 2) + Varint(5) + "ab", "does not parse"});
  // 200 nested groups of an unknown field: past protobuf's recursion limit of 100.
  std::string deep;
  for (int i = 0; i < 200; ++i) deep += Varint(1000 << 3 | 3);
  for (int i = 0; i < 200; ++i) deep += Varint(1000 << 3 | 4);
  out.push_back({"nested too deep", deep, "does not parse"});
  return out;
}

// Every method answers a request that does not parse INVALID_ARGUMENT saying so (gRPC's
// own handlers answer UNIMPLEMENTED with no message), and nothing changes.
TEST(UnparsableRequestTest, EveryRpcAnswersInvalidArgumentWithAReason) {
  auto server = TestServer::Start();
  ASSERT_TRUE(server.ok()) << server.status();
  auto channel =
      grpc::CreateChannel((*server)->server().address(), grpc::InsecureChannelCredentials());
  Stub& stub = (*server)->stub();
  v1::CreateJobRequest create;
  create.set_job_id("strict");
  ASSERT_TRUE(Call(stub, &Stub::CreateJob, create).ok());
  const std::string before = Fingerprint(stub);
  const auto* service = v1::CreateJobRequest::descriptor()->file()->FindServiceByName("Checkpoint");
  for (int m = 0; m < service->method_count(); ++m) {
    const auto* method = service->method(m);
    for (const Unparsable& bad : UnparsableRequests(*method->input_type())) {
      SCOPED_TRACE(absl::StrCat(method->name(), ": ", bad.name));
      const absl::Status status = CallRaw(channel, method->name(), bad.bytes);
      EXPECT_EQ(status.code(), kInvalid) << status;
      EXPECT_THAT(
          std::string(status.message()),
          HasSubstr(absl::StrCat("request does not parse as ", method->input_type()->full_name())));
      EXPECT_THAT(std::string(status.message()), HasSubstr(bad.reason));
    }
  }
  EXPECT_EQ(Fingerprint(stub), before) << "the state changed";
}

// Resident memory of this process (client and server), from /proc.
int64_t ResidentBytes() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    int64_t kib = 0;
    if (line.rfind("VmRSS:", 0) == 0 &&
        absl::SimpleAtoi(absl::StripAsciiWhitespace(line.substr(6, line.size() - 9)), &kib)) {
      return kib << 10;
    }
  }
  return -1;
}

// Large refused requests, again and again: memory stays where the first few took it.
TEST(BadInputMemoryTest, RepeatedHugeRefusedRequestsKeepMemoryBounded) {
  auto server = TestServer::Start();
  ASSERT_TRUE(server.ok()) << server.status();
  Stub& stub = (*server)->stub();
  v1::CreateJobRequest create;
  create.set_job_id("mem");
  ASSERT_TRUE(Call(stub, &Stub::CreateJob, create).ok());
  v1::PutStateRequest refused_by_ckpt;  // 15 MiB: parsed, then INVALID_ARGUMENT
  refused_by_ckpt.set_job_id("mem");
  refused_by_ckpt.set_name("blob");
  refused_by_ckpt.set_value(std::string(15 << 20, 'x'));
  v1::PutStateRequest refused_by_grpc = refused_by_ckpt;  // 20 MiB: over the message limit
  refused_by_grpc.set_value(std::string(20 << 20, 'y'));
  v1::CompleteItemsRequest huge_batch;  // 8193 items: INVALID_ARGUMENT
  huge_batch.set_job_id("mem");
  for (int i = 0; i < 8193; ++i) {
    auto* item = huge_batch.add_items();
    item->mutable_key()->set_index(i);
    item->mutable_result()->set_payload(std::string(1000, 'p'));
  }
  auto round = [&] {
    EXPECT_EQ(Call(stub, &Stub::PutState, refused_by_ckpt).status().code(), kInvalid);
    EXPECT_EQ(Call(stub, &Stub::PutState, refused_by_grpc).status().code(),
              absl::StatusCode::kResourceExhausted);
    EXPECT_EQ(Call(stub, &Stub::CompleteItems, huge_batch).status().code(), kInvalid);
  };
  for (int i = 0; i < 10; ++i) round();  // warm-up: allocator arenas, channel buffers
  const int64_t warm = ResidentBytes();
  for (int i = 0; i < 40; ++i) round();  // ~1.7 GB more through the server
  const int64_t after = ResidentBytes();
  ASSERT_GT(warm, 0);
  std::cerr << "resident: " << (warm >> 20) << " MiB after warm-up, " << (after >> 20)
            << " MiB after 40 more rounds\n";
  // A leak of even one request per round would add 600 MiB or more; glibc spreading
  // freed blocks over its per-thread arenas levels off well below the bound (about
  // +100 MiB after 400 rounds).
  EXPECT_LT(after - warm, int64_t{128} << 20);
}

}  // namespace
}  // namespace ckpt
