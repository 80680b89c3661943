#include "tools/bench/workloads.h"

#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "service/common/grpc_status.h"

namespace ckpt {
namespace bench {
namespace {

using Stub = v1::Checkpoint::Stub;
using StubPtr = std::unique_ptr<Stub>;

absl::StatusOr<std::string> RegisterWorker(Stub* stub, const std::string& job_id, int t) {
  grpc::ClientContext context;
  v1::RegisterWorkerRequest request;
  request.set_job_id(job_id);
  request.set_hostname("bench");
  request.set_pid(static_cast<uint32_t>(::getpid()));
  request.set_invocation_id(absl::StrCat("bench-", t));
  v1::RegisterWorkerResponse response;
  grpc::Status status = stub->RegisterWorker(&context, request, &response);
  if (!status.ok()) return CallFailed("RegisterWorker", status);
  return response.worker_id();
}

absl::StatusOr<v1::Job> GetJob(Stub* stub, const std::string& job_id) {
  grpc::ClientContext context;
  v1::GetJobRequest request;
  request.set_job_id(job_id);
  v1::GetJobResponse response;
  grpc::Status status = stub->GetJob(&context, request, &response);
  if (!status.ok()) return CallFailed("GetJob", status);
  return response.job();
}

// Calls fn(index, token) for each lease of `leased` (all by index here): its Leases,
// then its runs'.
template <typename Fn>
void ForEachLease(const v1::LeaseItemsResponse& leased, Fn fn) {
  for (const v1::Lease& l : leased.leases()) fn(l.key().index(), l.lease_token());
  for (const v1::LeaseRun& run : leased.lease_runs()) {
    const uint64_t token_step = run.token_step() == 0 ? 1 : run.token_step();
    for (uint32_t i = 0; i < run.count(); ++i) {
      fn(run.first_index() + i, run.first_lease_token() + i * token_step);
    }
  }
}

uint64_t LeaseCount(const v1::LeaseItemsResponse& leased) {
  uint64_t count = static_cast<uint64_t>(leased.leases_size());
  for (const v1::LeaseRun& run : leased.lease_runs()) count += run.count();
  return count;
}

// The worker loop's leases, packed: a batch of fresh indices is one LeaseRun (a ckptd
// that predates packed leases answers a Lease each; ForEachLease reads both).
absl::StatusOr<v1::LeaseItemsResponse> Lease(Stub* stub, const std::string& job_id,
                                             const std::string& worker_id, int per_call) {
  v1::LeaseItemsRequest lease;
  lease.set_job_id(job_id);
  lease.set_worker_id(worker_id);
  lease.set_max_items(static_cast<uint32_t>(per_call));
  lease.set_packed(true);
  v1::LeaseItemsResponse leased;
  grpc::ClientContext context;
  grpc::Status status = stub->LeaseItems(&context, lease, &leased);
  if (!status.ok()) return CallFailed("LeaseItems", status);
  return leased;
}

// Completes the leased batch with results; with `lease_next`, the same call leases the
// next batch into `*next` (left without a value by a ckptd that predates lease_next).
// With `unique_paths`, each result names an output path of its own job and index.
absl::Status CompleteBatch(Stub* stub, const std::string& job_id, const std::string& worker_id,
                           const v1::LeaseItemsResponse& leased, int lease_next, bool unique_paths,
                           std::optional<v1::LeaseItemsResponse>* next) {
  v1::CompleteItemsRequest done;
  done.set_job_id(job_id);
  done.set_worker_id(worker_id);
  ForEachLease(leased, [&](uint64_t index, uint64_t token) {
    v1::Completion* item = done.add_items();
    FillCompletion(index, token, item);
    if (unique_paths) {
      item->mutable_result()->set_output_paths(
          0, absl::StrCat("/data/out/", job_id, "/item-", index, ".parquet"));
    }
  });
  if (lease_next > 0) {
    done.mutable_lease_next()->set_max_items(static_cast<uint32_t>(lease_next));
    done.mutable_lease_next()->set_packed(true);
  }
  v1::CompleteItemsResponse response;
  grpc::ClientContext context;
  grpc::Status status = stub->CompleteItems(&context, done, &response);
  if (!status.ok()) return CallFailed("CompleteItems", status);
  for (int outcome : response.outcomes()) {
    if (outcome != v1::COMPLETION_OUTCOME_COMPLETED) {
      return absl::InternalError(absl::StrCat("CompleteItems answered outcome ", outcome));
    }
  }
  next->reset();
  if (response.has_leased()) *next = std::move(*response.mutable_leased());
  return absl::OkStatus();
}

absl::Status ExpectAllCompleted(Stub* stub, const std::string& job_id, uint64_t items) {
  absl::StatusOr<v1::Job> job = GetJob(stub, job_id);
  if (!job.ok()) return job.status();
  if (job->progress().completed() != items || job->status() != v1::JOB_STATUS_COMPLETED) {
    return absl::InternalError(absl::StrCat("job ", job_id, " ended with ",
                                            job->progress().completed(), " of ", items,
                                            " completed, status ", job->status()));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<StubPtr>> Stubs(const std::string& address, int n) {
  std::vector<StubPtr> stubs;
  for (int i = 0; i < n; ++i) {
    absl::StatusOr<StubPtr> stub = ConnectedStub(address);
    if (!stub.ok()) return stub.status();
    stubs.push_back(std::move(*stub));
  }
  return stubs;
}

}  // namespace

absl::Status CreateRangeJob(Stub* stub, const std::string& job_id, uint64_t items) {
  {
    grpc::ClientContext context;
    v1::CreateJobRequest request;
    request.set_job_id(job_id);
    request.set_config("{\"bench\": true}");
    v1::CreateJobResponse response;
    grpc::Status status = stub->CreateJob(&context, request, &response);
    if (!status.ok()) return CallFailed("CreateJob", status);
  }
  grpc::ClientContext context;
  v1::AddItemsRequest request;
  request.set_job_id(job_id);
  v1::IndexRange* range = request.add_ranges();
  range->set_begin(0);
  range->set_end(items);
  request.set_seal(true);
  v1::AddItemsResponse response;
  grpc::Status status = stub->AddItems(&context, request, &response);
  if (!status.ok()) return CallFailed("AddItems", status);
  return absl::OkStatus();
}

absl::StatusOr<ClientsResult> CompleteInCalls(const std::string& address, const std::string& job_id,
                                              int threads, uint64_t items, int per_call,
                                              uint64_t token, bool results) {
  std::vector<StubPtr> stubs(threads);
  const uint64_t per_thread = items / threads;
  return RunClients(
      threads,
      [&](int t) -> absl::Status {
        absl::StatusOr<StubPtr> stub = ConnectedStub(address);
        if (!stub.ok()) return stub.status();
        stubs[t] = std::move(*stub);
        return absl::OkStatus();
      },
      [&](int t, Latencies* latencies) -> absl::StatusOr<uint64_t> {
        const uint64_t begin = per_thread * t;
        const uint64_t end = t == threads - 1 ? items : begin + per_thread;
        v1::CompleteItemsRequest request;
        request.set_job_id(job_id);
        if (token != 0) request.set_worker_id("w-1");
        v1::CompleteItemsResponse response;
        for (uint64_t i = begin; i < end;) {
          request.clear_items();
          for (int k = 0; k < per_call && i < end; ++k, ++i) {
            v1::Completion* item = request.add_items();
            if (results) {
              FillCompletion(i, token, item);
            } else {
              item->mutable_key()->set_index(i);
              item->set_lease_token(token);
            }
          }
          grpc::ClientContext context;
          response.Clear();
          const absl::Time start = absl::Now();
          grpc::Status status = stubs[t]->CompleteItems(&context, request, &response);
          latencies->Add(absl::Now() - start);
          if (!status.ok()) return CallFailed("CompleteItems", status);
          if (response.outcomes_size() != request.items_size()) {
            return absl::InternalError("CompleteItems answered the wrong number of outcomes");
          }
        }
        return end - begin;
      });
}

namespace {

// ckptd's retry hint on a RESOURCE_EXHAUSTED, or zero.
absl::Duration RetryAfter(const grpc::ClientContext& context) {
  const auto& trailers = context.GetServerTrailingMetadata();
  const auto hint = trailers.find(kRetryAfterMetadataKey);
  int64_t millis = 0;
  if (hint == trailers.end() ||
      !absl::SimpleAtoi(absl::string_view(hint->second.data(), hint->second.size()), &millis)) {
    return absl::ZeroDuration();
  }
  return absl::Milliseconds(millis);
}

// One flooder: `calls` calls of `per_call` items from `begin`, each sent again after
// the hinted wait for as long as ckptd refuses it for a full queue.
absl::StatusOr<uint64_t> Flood(v1::Checkpoint::Stub* stub, const std::string& job_id,
                               uint64_t begin, int calls, int per_call, Latencies* latencies,
                               std::atomic<uint64_t>* refused) {
  v1::CompleteItemsRequest request;
  request.set_job_id(job_id);
  v1::CompleteItemsResponse response;
  uint64_t i = begin;
  for (int call = 0; call < calls; ++call) {
    request.clear_items();
    for (int k = 0; k < per_call; ++k, ++i) FillCompletion(i, 0, request.add_items());
    const absl::Time start = absl::Now();
    for (;;) {
      grpc::ClientContext context;
      response.Clear();
      const grpc::Status status = stub->CompleteItems(&context, request, &response);
      if (status.ok()) break;
      const absl::Duration wait = RetryAfter(context);
      if (status.error_code() != grpc::StatusCode::RESOURCE_EXHAUSTED ||
          wait <= absl::ZeroDuration()) {
        return CallFailed("CompleteItems", status);
      }
      ++*refused;
      absl::SleepFor(wait);
    }
    latencies->Add(absl::Now() - start);
  }
  return static_cast<uint64_t>(calls) * per_call;
}

// One-item PutState calls back to back until `done`.
absl::StatusOr<ClientsResult> SmallWrites(const std::string& address, const std::string& job_id,
                                          const std::atomic<bool>& done) {
  absl::StatusOr<StubPtr> stub = ConnectedStub(address);
  if (!stub.ok()) return stub.status();
  ClientsResult result;
  v1::PutStateRequest request;
  request.set_job_id(job_id);
  request.set_name("cursor");
  v1::PutStateResponse response;
  const absl::Time begin = absl::Now();
  while (!done) {
    request.set_value(absl::StrCat(result.items));
    grpc::ClientContext context;
    const absl::Time start = absl::Now();
    const grpc::Status status = (*stub)->PutState(&context, request, &response);
    if (!status.ok()) return CallFailed("PutState", status);
    result.latencies.Add(absl::Now() - start);
    ++result.items;
  }
  result.wall = absl::Now() - begin;
  return result;
}

}  // namespace

absl::StatusOr<FloodResult> FloodWithSmallWrites(const std::string& address,
                                                 const std::string& job_id, int flooders, int calls,
                                                 int per_call) {
  std::vector<StubPtr> stubs(flooders);
  std::atomic<bool> done{false};
  std::atomic<uint64_t> refused{0};
  absl::StatusOr<ClientsResult> small;
  std::thread small_writer([&] { small = SmallWrites(address, job_id, done); });
  absl::StatusOr<ClientsResult> flood = RunClients(
      flooders,
      [&](int t) -> absl::Status {
        absl::StatusOr<StubPtr> stub = ConnectedStub(address);
        if (!stub.ok()) return stub.status();
        stubs[t] = std::move(*stub);
        return absl::OkStatus();
      },
      [&](int t, Latencies* latencies) {
        return Flood(stubs[t].get(), job_id, static_cast<uint64_t>(t) * calls * per_call, calls,
                     per_call, latencies, &refused);
      });
  done = true;
  small_writer.join();
  if (!flood.ok()) return flood.status();
  if (!small.ok()) return small.status();
  return FloodResult{std::move(*flood), std::move(*small), refused.load()};
}

namespace {

// Every job of `seats` completed, with as many items as its seats' threads completed
// (`completed`, by seat), asked through one of its seats' stubs.
absl::Status ExpectJobsCompleted(const std::vector<WorkerSeat>& seats,
                                 const std::vector<StubPtr>& stubs,
                                 const std::vector<uint64_t>& completed) {
  std::map<std::string, std::pair<size_t, uint64_t>> by_job;  // job -> (a seat, completions)
  for (size_t t = 0; t < seats.size(); ++t) {
    auto it = by_job.try_emplace(seats[t].job_id, t, 0).first;
    it->second.second += completed[t];
  }
  for (const auto& [job, done] : by_job) {
    absl::Status all = ExpectAllCompleted(stubs[done.first].get(), job, done.second);
    if (!all.ok()) return all;
  }
  return absl::OkStatus();
}

// One worker thread's loop until nothing is left to lease; returns what it completed.
absl::StatusOr<uint64_t> WorkOneSeat(Stub* stub, const WorkerSeat& seat,
                                     const std::string& worker_id, int per_call, bool lease_next,
                                     std::atomic<uint64_t>* leased_alone, Latencies* latencies) {
  const std::string& job_id = seat.job_id;
  uint64_t completed = 0;
  std::optional<v1::LeaseItemsResponse> next;
  for (;;) {
    const absl::Time start = absl::Now();
    v1::LeaseItemsResponse leased;
    if (next.has_value()) {
      leased = std::move(*next);
    } else {
      absl::StatusOr<v1::LeaseItemsResponse> got = Lease(stub, job_id, worker_id, per_call);
      if (!got.ok()) return got.status();
      leased = std::move(*got);
      if (leased_alone != nullptr) ++*leased_alone;
    }
    // Nothing leased: the rest is held by other workers, who will finish it.
    const uint64_t count = LeaseCount(leased);
    if (count == 0) return completed;
    absl::Status done = CompleteBatch(stub, job_id, worker_id, leased, lease_next ? per_call : 0,
                                      seat.unique_paths, &next);
    if (!done.ok()) return done;
    latencies->Add(absl::Now() - start);
    completed += count;
  }
}

}  // namespace

absl::StatusOr<ClientsResult> WorkerLoop(const std::vector<WorkerSeat>& seats, int per_call,
                                         bool lease_next, std::atomic<uint64_t>* leased_alone) {
  const int threads = static_cast<int>(seats.size());
  std::vector<StubPtr> stubs(threads);
  std::vector<std::string> workers(threads);
  std::vector<uint64_t> completed(threads, 0);
  absl::StatusOr<ClientsResult> result = RunClients(
      threads,
      [&](int t) -> absl::Status {
        absl::StatusOr<StubPtr> stub = ConnectedStub(seats[t].address);
        if (!stub.ok()) return stub.status();
        stubs[t] = std::move(*stub);
        absl::StatusOr<std::string> worker = RegisterWorker(stubs[t].get(), seats[t].job_id, t);
        if (!worker.ok()) return worker.status();
        workers[t] = *worker;
        return absl::OkStatus();
      },
      [&](int t, Latencies* latencies) -> absl::StatusOr<uint64_t> {
        absl::StatusOr<uint64_t> done = WorkOneSeat(stubs[t].get(), seats[t], workers[t], per_call,
                                                    lease_next, leased_alone, latencies);
        if (done.ok()) completed[t] = *done;
        return done;
      });
  if (!result.ok()) return result;
  absl::Status all = ExpectJobsCompleted(seats, stubs, completed);
  if (!all.ok()) return all;
  return result;
}

absl::StatusOr<ClientsResult> WorkerLoop(const std::string& address, const std::string& job_id,
                                         int threads, int per_call, bool lease_next,
                                         std::atomic<uint64_t>* leased_alone) {
  return WorkerLoop(std::vector<WorkerSeat>(threads, WorkerSeat{address, job_id}), per_call,
                    lease_next, leased_alone);
}

absl::StatusOr<ReadsDuringLoop> WorkerLoopWithReaders(const std::string& address,
                                                      const std::string& job_id, int threads,
                                                      int per_call, bool lease_next) {
  absl::StatusOr<std::vector<StubPtr>> readers = Stubs(address, 2);
  if (!readers.ok()) return readers.status();
  ReadsDuringLoop out;
  std::atomic<bool> stop{false};
  absl::Status get_status, watch_status;
  const absl::Time start = absl::Now();
  std::thread getter([&] {
    Stub* stub = (*readers)[0].get();
    while (!stop.load(std::memory_order_relaxed)) {
      const absl::Time t0 = absl::Now();
      absl::StatusOr<v1::Job> job = GetJob(stub, job_id);
      out.get_job.latencies.Add(absl::Now() - t0);
      if (!job.ok()) {
        get_status = job.status();
        return;
      }
      ++out.get_job.items;
    }
  });
  std::thread watcher([&] {
    grpc::ClientContext context;
    v1::WatchJobRequest request;
    request.set_job_id(job_id);
    auto reader = (*readers)[1]->WatchJob(&context, request);
    v1::WatchJobResponse response;
    absl::Time last = absl::Now();
    while (reader->Read(&response)) {
      const absl::Time now = absl::Now();
      if (out.watch_job.items > 0) out.watch_job.latencies.Add(now - last);
      last = now;
      ++out.watch_job.items;
    }
    grpc::Status status = reader->Finish();
    if (!status.ok()) {
      watch_status = CallFailed("WatchJob", status);
    } else if (response.job().status() != v1::JOB_STATUS_COMPLETED) {
      watch_status = absl::InternalError("WatchJob's last snapshot is not COMPLETED");
    }
  });
  absl::StatusOr<ClientsResult> workers =
      WorkerLoop(address, job_id, threads, per_call, lease_next, nullptr);
  stop = true;
  getter.join();
  const absl::Time end = absl::Now();
  // The stream ends by itself after the snapshot that shows the job COMPLETED.
  watcher.join();
  if (!workers.ok()) return workers.status();
  if (!get_status.ok()) return get_status;
  if (!watch_status.ok()) return watch_status;
  out.workers = std::move(*workers);
  out.get_job.wall = end - start;
  out.watch_job.wall = end - start;
  return out;
}

absl::StatusOr<PairedLatency> GetJobLatency(const std::string& address, const std::string& job_a,
                                            const std::string& job_b, int calls) {
  absl::StatusOr<StubPtr> stub = ConnectedStub(address);
  if (!stub.ok()) return stub.status();
  PairedLatency out;
  for (int i = 0; i < calls; ++i) {
    for (auto [job, result] : {std::make_pair(&job_a, &out.a), std::make_pair(&job_b, &out.b)}) {
      const absl::Time start = absl::Now();
      absl::StatusOr<v1::Job> got = GetJob(stub->get(), *job);
      const absl::Duration took = absl::Now() - start;
      if (!got.ok()) return got.status();
      result->latencies.Add(took);
      result->wall += took;
      ++result->items;
    }
  }
  return out;
}

absl::StatusOr<PairedLatency> LeaseLatency(const std::string& address, const JobRef& job_a,
                                           const JobRef& job_b, int calls, int per_call) {
  absl::StatusOr<StubPtr> stub = ConnectedStub(address);
  if (!stub.ok()) return stub.status();
  Stub* s = stub->get();
  struct Side {
    const JobRef& job;
    ClientsResult* result;
    std::string worker;
    uint64_t leased_since_reset = 0;
  };
  PairedLatency out;
  Side sides[2] = {{job_a, &out.a}, {job_b, &out.b}};
  for (Side& side : sides) {
    absl::StatusOr<std::string> worker = RegisterWorker(s, side.job.id, 0);
    if (!worker.ok()) return worker.status();
    side.worker = *worker;
  }
  for (int i = 0; i < calls; ++i) {
    for (Side& side : sides) {
      v1::LeaseItemsRequest request;
      request.set_job_id(side.job.id);
      request.set_worker_id(side.worker);
      request.set_max_items(static_cast<uint32_t>(per_call));
      v1::LeaseItemsResponse leased;
      grpc::ClientContext context;
      const absl::Time start = absl::Now();
      grpc::Status status = s->LeaseItems(&context, request, &leased);
      const absl::Duration took = absl::Now() - start;
      if (!status.ok()) return CallFailed("LeaseItems", status);
      if (leased.leases_size() != per_call) {
        return absl::InternalError(absl::StrCat("LeaseItems on ", side.job.id, " leased ",
                                                leased.leases_size(), " of ", per_call));
      }
      side.result->latencies.Add(took);
      side.result->wall += took;
      side.result->items += 1;
      v1::CompleteItemsRequest done;
      done.set_job_id(side.job.id);
      done.set_worker_id(side.worker);
      for (const v1::Lease& l : leased.leases()) {
        FillCompletion(l.key().index(), l.lease_token(), done.add_items());
      }
      v1::CompleteItemsResponse response;
      grpc::ClientContext complete_context;
      status = s->CompleteItems(&complete_context, done, &response);
      if (!status.ok()) return CallFailed("CompleteItems", status);
      side.leased_since_reset += static_cast<uint64_t>(per_call);
      if (side.leased_since_reset + static_cast<uint64_t>(per_call) > side.job.pending) {
        // The next lease would come up short: start the job over (untimed).
        v1::ResetJobRequest reset;
        reset.set_job_id(side.job.id);
        v1::ResetJobResponse reset_response;
        grpc::ClientContext reset_context;
        status = s->ResetJob(&reset_context, reset, &reset_response);
        if (!status.ok()) return CallFailed("ResetJob", status);
        side.leased_since_reset = 0;
      }
    }
  }
  return out;
}

namespace {

// Times one read into `result`; an answer whose item is not COMPLETED is an error.
template <typename Response>
absl::Status TimedRead(const char* what, ClientsResult* result,
                       const std::function<grpc::Status(grpc::ClientContext*, Response*)>& call,
                       const std::function<bool(const Response&)>& completed, Response* out) {
  grpc::ClientContext context;
  const absl::Time start = absl::Now();
  grpc::Status status = call(&context, out);
  const absl::Duration took = absl::Now() - start;
  if (!status.ok()) return CallFailed(what, status);
  if (!completed(*out)) return absl::InternalError(absl::StrCat(what, ": an item not COMPLETED"));
  result->latencies.Add(took);
  result->wall += took;
  ++result->items;
  return absl::OkStatus();
}

bool AllCompleted(const v1::ListItemsResponse& page) {
  for (const v1::Item& item : page.items()) {
    if (item.state() != v1::ITEM_STATE_COMPLETED) return false;
  }
  return page.items_size() > 0;
}

}  // namespace

absl::StatusOr<ItemReads> ReadCompletedItems(const std::string& address, const std::string& job_id,
                                             uint64_t items, int calls, uint32_t page) {
  absl::StatusOr<StubPtr> stub = ConnectedStub(address);
  if (!stub.ok()) return stub.status();
  Stub* s = stub->get();
  std::mt19937_64 rng(42);
  ItemReads out;
  v1::ListItemsRequest by_key, newest;
  for (v1::ListItemsRequest* r : {&by_key, &newest}) {
    r->set_job_id(job_id);
    r->set_limit(page);
  }
  by_key.set_state(v1::ITEM_STATE_COMPLETED);
  newest.set_order(v1::ITEM_ORDER_COMPLETED_NEWEST_FIRST);
  for (int i = 0; i < calls; ++i) {
    v1::GetItemRequest get;
    get.set_job_id(job_id);
    get.mutable_key()->set_index(rng() % items);
    v1::GetItemResponse item;
    absl::Status status = TimedRead<v1::GetItemResponse>(
        "GetItem", &out.get_item,
        [&](grpc::ClientContext* c, v1::GetItemResponse* r) { return s->GetItem(c, get, r); },
        [](const v1::GetItemResponse& r) { return r.item().state() == v1::ITEM_STATE_COMPLETED; },
        &item);
    if (!status.ok()) return status;
    for (auto [request, result] :
         {std::make_pair(&by_key, &out.list_by_key), std::make_pair(&newest, &out.list_newest)}) {
      v1::ListItemsResponse listed;
      status = TimedRead<v1::ListItemsResponse>(
          "ListItems", result,
          [&, request = request](grpc::ClientContext* c, v1::ListItemsResponse* r) {
            return s->ListItems(c, *request, r);
          },
          AllCompleted, &listed);
      if (!status.ok()) return status;
      request->set_page_token(listed.next_page_token());  // "" at the end: from the start
    }
    v1::FindOutputRequest find;
    find.set_output_path(ResultFor(rng() % items).output_paths(0));
    v1::FindOutputResponse found;
    status = TimedRead<v1::FindOutputResponse>(
        "FindOutput", &out.find_output,
        [&](grpc::ClientContext* c, v1::FindOutputResponse* r) {
          return s->FindOutput(c, find, r);
        },
        [](const v1::FindOutputResponse& r) {
          return r.item().state() == v1::ITEM_STATE_COMPLETED;
        },
        &found);
    if (!status.ok()) return status;
  }
  return out;
}

}  // namespace bench
}  // namespace ckpt
