#include "tools/bench/postgres_systems.h"

#include <grpcpp/grpcpp.h>
#include <pthread.h>
#include <signal.h>

#include <cstdio>
#include <deque>
#include <memory>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "ckpt/v1/checkpoint.grpc.pb.h"
#include "service/store/pg_connection.h"
#include "tools/bench/serve_child.h"

namespace ckpt {
namespace bench {
namespace {

// ---------------------------------------------------------------- the ceiling

constexpr char kBareTable[] =
    "CREATE TABLE IF NOT EXISTS bare_items (key bytea PRIMARY KEY, value bytea NOT NULL)";
constexpr pgsql::Statement kBareUpsert = {
    "bare_upsert",
    "INSERT INTO bare_items (key, value) SELECT * FROM unnest($1::bytea[], $2::bytea[])"
    " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
    "write items"};

// Builds each request's arrays on the gRPC thread and hands them to a pool of writer
// threads, each with its own connection, as the WriteBatch ceiling does for RocksDB.
// Thread-safe.
class PostgresCeilingService final : public v1::Checkpoint::CallbackService {
 public:
  explicit PostgresCeilingService(std::vector<std::unique_ptr<PgConnection>> connections)
      : connections_(std::move(connections)) {
    for (auto& c : connections_) writers_.emplace_back([this, c = c.get()] { WriterLoop(c); });
  }

  ~PostgresCeilingService() override {
    {
      absl::MutexLock lock(&mu_);
      stopping_ = true;
    }
    for (std::thread& t : writers_) t.join();
  }

  grpc::ServerUnaryReactor* CompleteItems(grpc::CallbackServerContext* context,
                                          const v1::CompleteItemsRequest* request,
                                          v1::CompleteItemsResponse* response) override {
    // job \0 step \0 BE64(index)
    std::string key = absl::StrCat(request->job_id(), std::string(1, '\0'), request->step(),
                                   std::string(1, '\0'));
    const size_t prefix = key.size();
    const int rows = request->items_size();
    PgArray keys = PgArray::Bytea(rows, rows * (prefix + 8));
    PgArray values = PgArray::Bytea(rows, rows * 128);
    std::string value;
    for (const v1::Completion& item : request->items()) {
      key.resize(prefix);
      const uint64_t index = item.key().index();
      for (int shift = 56; shift >= 0; shift -= 8) key.push_back(static_cast<char>(index >> shift));
      item.SerializeToString(&value);
      keys.AddBytes(key);
      values.AddBytes(value);
    }
    Write write{PgParams(), request, response, context->DefaultReactor()};
    write.params.Owned(std::move(keys).Finish()).Owned(std::move(values).Finish());
    grpc::ServerUnaryReactor* reactor = write.reactor;
    absl::MutexLock lock(&mu_);
    queue_.push_back(std::move(write));
    return reactor;
  }

 private:
  struct Write {
    PgParams params;
    const v1::CompleteItemsRequest* request;
    v1::CompleteItemsResponse* response;
    grpc::ServerUnaryReactor* reactor;
  };

  void WriterLoop(PgConnection* connection) {
    for (;;) {
      Write write;
      {
        absl::MutexLock lock(&mu_);
        auto ready = [this]()
                         ABSL_SHARED_LOCKS_REQUIRED(mu_) { return !queue_.empty() || stopping_; };
        mu_.Await(absl::Condition(&ready));
        if (queue_.empty()) return;
        write = std::move(queue_.front());
        queue_.pop_front();
      }
      const absl::StatusOr<PgResult> written = connection->Run(kBareUpsert, write.params);
      if (written.ok()) {
        for (int i = 0; i < write.request->items_size(); ++i) {
          write.response->add_outcomes(v1::COMPLETION_OUTCOME_COMPLETED);
        }
        write.reactor->Finish(grpc::Status::OK);
      } else {
        write.reactor->Finish(
            grpc::Status(grpc::StatusCode::INTERNAL, std::string(written.status().message())));
      }
    }
  }

  std::vector<std::unique_ptr<PgConnection>> connections_;
  absl::Mutex mu_;
  std::deque<Write> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> writers_;
};

absl::StatusOr<std::vector<std::unique_ptr<PgConnection>>> ConnectCeiling(const std::string& uri,
                                                                          int count) {
  absl::StatusOr<PgTarget> target = PgTarget::Parse(uri);
  if (!target.ok()) return target.status();
  std::vector<std::unique_ptr<PgConnection>> connections;
  for (int i = 0; i < count; ++i) {
    absl::StatusOr<std::unique_ptr<PgConnection>> c = PgConnection::Connect(*target);
    if (!c.ok()) return c.status();
    if (i == 0) {
      if (absl::Status s = (*c)->RunSql(kBareTable, "create the table"); !s.ok()) return s;
    }
    if (absl::Status s = (*c)->Prepare(kBareUpsert); !s.ok()) return s;
    connections.push_back(std::move(*c));
  }
  return connections;
}

// ---------------------------------------------------------------- the SKIP LOCKED queue

constexpr char kQueueSchema[] =
    "CREATE TABLE queue_items (id bigint PRIMARY KEY, state smallint NOT NULL DEFAULT 0,"
    " worker integer, result bytea, leased_at timestamptz, completed_at timestamptz);"
    "CREATE INDEX queue_items_pending ON queue_items (id) WHERE state = 0";
constexpr pgsql::Statement kQueueLease = {
    "queue_lease",
    "UPDATE queue_items SET state = 1, worker = $1, leased_at = now() WHERE id IN"
    " (SELECT id FROM queue_items WHERE state = 0 ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED)"
    " RETURNING id",
    "lease"};
constexpr pgsql::Statement kQueueComplete = {
    "queue_complete",
    "UPDATE queue_items q SET state = 2, result = r.result, completed_at = now()"
    " FROM unnest($1::bigint[], $2::bytea[]) AS r(id, result)"
    " WHERE q.id = r.id AND q.state = 1 AND q.worker = $3",
    "complete"};

absl::Status FillQueue(const PgTarget& target, uint64_t items) {
  absl::StatusOr<std::unique_ptr<PgConnection>> c = PgConnection::Connect(target);
  if (!c.ok()) return c.status();
  if (absl::Status s = (*c)->RunSql(kQueueSchema, "create the queue"); !s.ok()) return s;
  const std::string fill = absl::StrCat("INSERT INTO queue_items (id) SELECT generate_series(0, ",
                                        items - 1, "); ANALYZE queue_items");
  return (*c)->RunSql(fill.c_str(), "fill the queue");
}

// One client: lease `batch`, complete them with results, until nothing is pending.
absl::StatusOr<uint64_t> DrainQueue(PgConnection& c, int worker, int batch, Latencies* latencies) {
  uint64_t done = 0;
  for (;;) {
    const absl::Time start = absl::Now();
    PgParams lease;
    lease.Int4(worker).Int8(batch);
    absl::StatusOr<PgResult> leased = c.Run(kQueueLease, lease);
    if (!leased.ok()) return leased.status();
    const int rows = PgRows(leased->get());
    if (rows == 0) return done;
    PgArray ids = PgArray::Int8(rows);
    PgArray results = PgArray::Bytea(rows, rows * 128);
    for (int i = 0; i < rows; ++i) {
      const int64_t id = PgInt8(leased->get(), i, 0);
      ids.AddInt8(id);
      results.AddBytes(ResultFor(static_cast<uint64_t>(id)).SerializeAsString());
    }
    PgParams complete;
    complete.Owned(std::move(ids).Finish()).Owned(std::move(results).Finish()).Int4(worker);
    absl::StatusOr<PgResult> completed = c.Run(kQueueComplete, complete);
    if (!completed.ok()) return completed.status();
    if (PgAffectedRows(completed->get()) != rows) {
      return absl::InternalError("the queue completed fewer items than it leased");
    }
    done += static_cast<uint64_t>(rows);
    latencies->Add(absl::Now() - start);
  }
}

}  // namespace

int ServePostgresCeiling(const std::string& uri) {
  const sigset_t signals = BlockStopSignals();

  constexpr int kWriters = 16;
  absl::StatusOr<std::vector<std::unique_ptr<PgConnection>>> connections =
      ConnectCeiling(uri, kWriters);
  if (!connections.ok()) {
    std::fprintf(stderr, "ckpt_bench: %s\n", std::string(connections.status().message()).c_str());
    return 1;
  }
  auto service = std::make_unique<PostgresCeilingService>(std::move(*connections));
  return ServeUntilSignalled(service.get(), signals);
}

absl::StatusOr<ClientsResult> RunSkipLockedQueue(const std::string& uri, int threads,
                                                 uint64_t items, int batch) {
  absl::StatusOr<PgTarget> target = PgTarget::Parse(uri);
  if (!target.ok()) return target.status();
  if (absl::Status s = FillQueue(*target, items); !s.ok()) return s;
  std::vector<std::unique_ptr<PgConnection>> connections(threads);
  return RunClients(
      threads,
      [&](int t) -> absl::Status {
        absl::StatusOr<std::unique_ptr<PgConnection>> c = PgConnection::Connect(*target);
        if (!c.ok()) return c.status();
        connections[t] = std::move(*c);
        if (absl::Status s = connections[t]->Prepare(kQueueLease); !s.ok()) return s;
        return connections[t]->Prepare(kQueueComplete);
      },
      [&](int t, Latencies* latencies) {
        return DrainQueue(*connections[t], t + 1, batch, latencies);
      });
}

}  // namespace bench
}  // namespace ckpt
