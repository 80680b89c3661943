// libFuzzer target over ckptd's request handlers: an input is a sequence of calls, each
// decoded into one request and run as the gRPC handlers run it (ValidateRequest, then
// the engine) against a real engine and a real RocksDB store in a temp dir, with a fake
// clock that only the input moves.
//
// Input format, repeated until the input ends:
//   byte 0      which call: kCalls[byte % size] (or advance the clock)
//   bytes 1..2  N, big-endian: the length of the request
//   N bytes     the request, serialized protobuf (parsed leniently: garbage is skipped)
//
// Beyond crashes and sanitizer reports, a run aborts when the service breaks a rule it
// documents: a validated request that the engine answers INTERNAL, DATA_LOSS or
// UNKNOWN; an INVALID_ARGUMENT whose message does not name a field; a job whose counters
// do not add up to its total.
//
// Built as a libFuzzer binary with `--config=fuzz` (clang); otherwise a plain binary
// (corpus_main.cc) runs the seed corpus through the same entry point.
#include "tests/fuzz/request_fuzzer.h"

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "ckpt/v1/checkpoint.pb.h"
#include "service/common/clock.h"
#include "service/engine/engine.h"
#include "service/rpc/validate.h"
#include "service/store/rocksdb_store.h"

namespace ckpt {
namespace fuzz {
namespace {

// Small limits, so that the fuzzer reaches them.
Limits FuzzLimits() {
  Limits limits;
  limits.max_key_bytes = 64;
  limits.max_payload_bytes = 256;
  limits.max_cursor_bytes = 128;
  limits.max_state_bytes = 1024;
  limits.max_batch = 32;
  return limits;
}

struct World {
  FakeClock clock;
  std::unique_ptr<Store> store;
  std::unique_ptr<Engine> engine;
  Limits limits = FuzzLimits();
  // Ids the server issued during this input, so that seeds can refer to them: a
  // worker_id "$w" means the last worker registered, a lease token 1..99 the n-th
  // token granted.
  std::string last_worker;
  std::vector<uint64_t> tokens;
};

World* g_world = nullptr;

[[noreturn]] void Violation(const std::string& what) {
  std::fprintf(stderr, "request_fuzzer: rule broken: %s\n", what.c_str());
  std::fflush(stderr);
  std::abort();
}

// The documented codes a validated request may get from the engine.
void CheckEngineStatus(const char* call, const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kOk:
    case absl::StatusCode::kInvalidArgument:  // unknown step, foreign page token
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kAborted:
    case absl::StatusCode::kResourceExhausted:
    case absl::StatusCode::kUnavailable:
      break;
    default:
      Violation(absl::StrCat(call, " answered ", status.ToString()));
  }
  if (status.code() == absl::StatusCode::kInvalidArgument && status.message().empty()) {
    Violation(absl::StrCat(call, ": INVALID_ARGUMENT without a message"));
  }
}

// ---- Rewriting ids the input cannot know, and remembering the ones issued ----

void RewriteWorker(std::string* worker_id) {
  if (*worker_id == "$w" && !g_world->last_worker.empty()) *worker_id = g_world->last_worker;
}
uint64_t RewriteToken(uint64_t token) {
  if (token >= 1 && token < 100 && token <= g_world->tokens.size()) {
    return g_world->tokens[token - 1];
  }
  return token;
}

template <typename Request>
void Rewrite(Request* r) {}
void Rewrite(v1::LeaseItemsRequest* r) { RewriteWorker(r->mutable_worker_id()); }
void Rewrite(v1::UnregisterWorkerRequest* r) { RewriteWorker(r->mutable_worker_id()); }
void Rewrite(v1::CompleteItemsRequest* r) {
  RewriteWorker(r->mutable_worker_id());
  for (auto& item : *r->mutable_items()) item.set_lease_token(RewriteToken(item.lease_token()));
}
void Rewrite(v1::FailItemsRequest* r) {
  RewriteWorker(r->mutable_worker_id());
  for (auto& item : *r->mutable_items()) item.set_lease_token(RewriteToken(item.lease_token()));
}
void Rewrite(v1::HeartbeatRequest* r) {
  RewriteWorker(r->mutable_worker_id());
  for (auto& lease : *r->mutable_leases()) lease.set_lease_token(RewriteToken(lease.lease_token()));
}

template <typename Response>
void Observe(const Response& r) {}
void Observe(const v1::RegisterWorkerResponse& r) { g_world->last_worker = r.worker_id(); }
void Observe(const v1::LeaseItemsResponse& r) {
  for (const v1::Lease& lease : r.leases()) g_world->tokens.push_back(lease.lease_token());
}
void Observe(const v1::CompleteItemsResponse& r) { Observe(r.leased()); }

// A write, as the handler runs it: validate, queue to the engine, wait for the commit.
template <typename Request, typename Response>
void Write(const char* call, absl::string_view bytes,
           void (Engine::*method)(const Request&, Response*, Engine::Done)) {
  Request request;
  if (!request.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) return;
  Rewrite(&request);
  const absl::Status valid = ValidateRequest(request, g_world->limits);
  if (!valid.ok()) {
    if (valid.code() != absl::StatusCode::kInvalidArgument || valid.message().empty()) {
      Violation(absl::StrCat(call, " validation answered ", valid.ToString()));
    }
    return;
  }
  Response response;
  absl::Notification done;
  absl::Status status;
  (g_world->engine.get()->*method)(request, &response, [&](absl::Status s) {
    status = std::move(s);
    done.Notify();
  });
  done.WaitForNotification();
  CheckEngineStatus(call, status);
  if (status.ok()) Observe(response);
}

template <typename Request, typename Response>
void Read(const char* call, absl::string_view bytes,
          absl::Status (Engine::*method)(const Request&, Response*) const) {
  Request request;
  if (!request.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) return;
  const absl::Status valid = ValidateRequest(request, g_world->limits);
  if (!valid.ok()) {
    if (valid.code() != absl::StatusCode::kInvalidArgument || valid.message().empty()) {
      Violation(absl::StrCat(call, " validation answered ", valid.ToString()));
    }
    return;
  }
  Response response;
  CheckEngineStatus(call, (g_world->engine.get()->*method)(request, &response));
}

void AdvanceClock(absl::string_view bytes) {
  const int64_t seconds = bytes.empty() ? 1 : static_cast<uint8_t>(bytes[0]);
  g_world->clock.Advance(absl::Seconds(seconds));
  absl::Notification done;
  g_world->engine->ExpireLeases([&](absl::Status s) {
    CheckEngineStatus("ExpireLeases", s);
    done.Notify();
  });
  done.WaitForNotification();
}

// The retention sweep, as the writer runs it when a job's retention has run out.
void SweepJobs(absl::string_view) {
  absl::Notification done;
  g_world->engine->SweepExpiredJobs([&](absl::Status s) {
    CheckEngineStatus("SweepExpiredJobs", s);
    done.Notify();
  });
  done.WaitForNotification();
}

using Call = void (*)(absl::string_view);
#define CKPT_WRITE(name) [](absl::string_view b) { Write(#name, b, &Engine::name); }
#define CKPT_READ(name) [](absl::string_view b) { Read(#name, b, &Engine::name); }

// The order is the input format: never reorder, only append (the corpus depends on it).
const Call kCalls[] = {
    CKPT_WRITE(CreateJob),      CKPT_READ(GetJob),
    CKPT_READ(ListJobs),        CKPT_WRITE(UpdateJob),
    CKPT_WRITE(PauseJob),       CKPT_WRITE(ResumeJob),
    CKPT_WRITE(StopJob),        CKPT_WRITE(FinishJob),
    CKPT_WRITE(ResetJob),       CKPT_WRITE(DeleteJob),
    CKPT_WRITE(AddItems),       CKPT_WRITE(LeaseItems),
    CKPT_WRITE(CompleteItems),  CKPT_WRITE(FailItems),
    CKPT_READ(GetItem),         CKPT_READ(ListItems),
    CKPT_WRITE(ResetItems),     CKPT_READ(FindOutput),
    CKPT_WRITE(RegisterWorker), CKPT_WRITE(Heartbeat),
    CKPT_WRITE(ListWorkers),    CKPT_WRITE(UnregisterWorker),
    CKPT_WRITE(PutState),       CKPT_READ(GetState),
    CKPT_READ(ListStates),      AdvanceClock,
    CKPT_WRITE(DeleteJobs),     SweepJobs,
};
constexpr size_t kNumCalls = sizeof(kCalls) / sizeof(kCalls[0]);

// Every job's counters add up, and nothing is left behind for the next input.
void CheckAndClear() {
  v1::ListJobsRequest list;
  list.set_limit(1000);
  v1::ListJobsResponse jobs;
  CheckEngineStatus("ListJobs", g_world->engine->ListJobs(list, &jobs));
  for (const v1::Job& job : jobs.jobs()) {
    const v1::Progress& p = job.progress();
    if (p.pending() + p.leased() + p.completed() + p.failed() != p.total()) {
      Violation(
          absl::StrCat("job ", job.job_id(), " counters do not add up: ", p.ShortDebugString()));
    }
    uint64_t steps_total = 0;
    for (const v1::StepProgress& step : job.step_progress()) steps_total += step.progress().total();
    if (steps_total != p.total()) {
      Violation(
          absl::StrCat("job ", job.job_id(), " steps total ", steps_total, " != ", p.total()));
    }
    v1::DeleteJobRequest remove;
    remove.set_job_id(job.job_id());
    v1::DeleteJobResponse removed;
    absl::Notification done;
    g_world->engine->DeleteJob(remove, &removed, [&](absl::Status s) {
      CheckEngineStatus("DeleteJob", s);
      done.Notify();
    });
    done.WaitForNotification();
  }
}

}  // namespace

void Initialize() {
  const char* root = std::getenv("TEST_TMPDIR");
  std::string dir = absl::StrCat(root != nullptr ? root : "/tmp", "/request_fuzzer.XXXXXX");
  if (::mkdtemp(dir.data()) == nullptr) Violation("mkdtemp failed");
  g_world = new World();
  RocksDbStoreOptions store;
  store.path = dir;
  store.sync = false;  // a process crash still loses nothing; fuzzing wants speed
  store.block_cache_bytes = 8 << 20;
  auto opened = RocksDbStore::Open(store);
  if (!opened.ok()) Violation(opened.status().ToString());
  g_world->store = std::move(*opened);
  EngineOptions options;
  options.clock = &g_world->clock;
  options.expiry_poll = absl::Hours(1);  // leases expire only when the input says so
  auto engine = Engine::Open(g_world->store.get(), options);
  if (!engine.ok()) Violation(engine.status().ToString());
  g_world->engine = std::move(*engine);
}

void RunOne(const uint8_t* data, size_t size) {
  g_world->last_worker.clear();
  g_world->tokens.clear();
  size_t at = 0;
  while (at + 3 <= size) {
    const Call call = kCalls[data[at] % kNumCalls];
    const size_t length =
        std::min<size_t>((size_t{data[at + 1]} << 8) | data[at + 2], size - at - 3);
    call(absl::string_view(reinterpret_cast<const char*>(data + at + 3), length));
    at += 3 + length;
  }
  CheckAndClear();
}

}  // namespace fuzz
}  // namespace ckpt

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  ckpt::fuzz::Initialize();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ckpt::fuzz::RunOne(data, size);
  return 0;
}
