#include "tools/bench/ceiling_servers.h"

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
#include "ckpt/v1/checkpoint.grpc.pb.h"
#include "rocksdb/db.h"
#include "rocksdb/write_batch.h"
#include "tools/bench/serve_child.h"

namespace ckpt {
namespace bench {
namespace {

void SayOk(const v1::CompleteItemsRequest& request, v1::CompleteItemsResponse* response) {
  for (int i = 0; i < request.items_size(); ++i) {
    response->add_outcomes(v1::COMPLETION_OUTCOME_COMPLETED);
  }
}

class EchoService final : public v1::Checkpoint::CallbackService {
  grpc::ServerUnaryReactor* CompleteItems(grpc::CallbackServerContext* context,
                                          const v1::CompleteItemsRequest* request,
                                          v1::CompleteItemsResponse* response) override {
    SayOk(*request, response);
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }
};

// Builds each request's WriteBatch on the gRPC thread and hands it to a pool of
// writer threads, so that up to kWriters writes reach RocksDB at once and its group
// commit can share their syncs (a blocking write on gRPC's few callback threads would
// serialise them). Thread-safe.
class WriteBatchService final : public v1::Checkpoint::CallbackService {
 public:
  static constexpr int kWriters = 16;

  WriteBatchService(rocksdb::DB* db, bool sync) : db_(db) {
    options_.sync = sync;
    for (int i = 0; i < kWriters; ++i) writers_.emplace_back([this] { WriterLoop(); });
  }

  ~WriteBatchService() override {
    {
      absl::MutexLock lock(&mu_);
      stopping_ = true;
    }
    for (std::thread& t : writers_) t.join();
  }

  grpc::ServerUnaryReactor* CompleteItems(grpc::CallbackServerContext* context,
                                          const v1::CompleteItemsRequest* request,
                                          v1::CompleteItemsResponse* response) override {
    Write write{std::make_unique<rocksdb::WriteBatch>(), request, response,
                context->DefaultReactor()};
    std::string key = absl::StrCat(request->job_id(), std::string(1, '\0'), request->step(),
                                   std::string(1, '\0'));
    const size_t prefix = key.size();
    std::string value;
    for (const v1::Completion& item : request->items()) {
      key.resize(prefix);
      const uint64_t index = item.key().index();
      for (int shift = 56; shift >= 0; shift -= 8) key.push_back(static_cast<char>(index >> shift));
      item.SerializeToString(&value);
      write.batch->Put(key, value);
    }
    grpc::ServerUnaryReactor* reactor = write.reactor;
    absl::MutexLock lock(&mu_);
    queue_.push_back(std::move(write));
    return reactor;
  }

 private:
  struct Write {
    std::unique_ptr<rocksdb::WriteBatch> batch;
    const v1::CompleteItemsRequest* request;
    v1::CompleteItemsResponse* response;
    grpc::ServerUnaryReactor* reactor;
  };

  void WriterLoop() {
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
      const rocksdb::Status s = db_->Write(options_, write.batch.get());
      if (s.ok()) {
        SayOk(*write.request, write.response);
        write.reactor->Finish(grpc::Status::OK);
      } else {
        write.reactor->Finish(grpc::Status(grpc::StatusCode::INTERNAL, s.ToString()));
      }
    }
  }

  rocksdb::DB* const db_;
  rocksdb::WriteOptions options_;
  absl::Mutex mu_;
  std::deque<Write> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> writers_;
};

}  // namespace

int ServeCeiling(CeilingKind kind, const std::string& data_dir, bool sync) {
  const sigset_t signals = BlockStopSignals();

  std::unique_ptr<rocksdb::DB> db;
  std::unique_ptr<v1::Checkpoint::CallbackService> service;
  if (kind == CeilingKind::kWriteBatch) {
    rocksdb::Options options;
    options.create_if_missing = true;
    options.IncreaseParallelism(2);  // as ckptd's store
    rocksdb::DB* raw = nullptr;
    const rocksdb::Status s = rocksdb::DB::Open(options, data_dir, &raw);
    if (!s.ok()) {
      std::fprintf(stderr, "ckpt_bench: cannot open %s: %s\n", data_dir.c_str(),
                   s.ToString().c_str());
      return 1;
    }
    db.reset(raw);
    service = std::make_unique<WriteBatchService>(db.get(), sync);
  } else {
    service = std::make_unique<EchoService>();
  }

  const int exit_code = ServeUntilSignalled(service.get(), signals);
  service.reset();
  if (db != nullptr) db->Close().PermitUncheckedError();
  return exit_code;
}

}  // namespace bench
}  // namespace ckpt
