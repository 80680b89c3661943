#include "service/rpc/watch_hub.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "service/common/grpc_status.h"
#include "service/common/proto_time.h"
#include "service/engine/errors.h"
#include "service/engine/job_state_machine.h"
#include "service/rpc/wire_message.h"

namespace ckpt {
namespace {

constexpr absl::Duration kFloor = absl::Milliseconds(100);

bool Over(v1::JobStatus status) { return IsFinished(status) || status == v1::JOB_STATUS_STOPPED; }

}  // namespace

// One WatchJob stream. Deleted by gRPC's OnDone, which first unlinks it from the hub.
// Its methods run on the hub thread (Poll, under the hub's mu_) or gRPC's threads.
class WatchHub::Stream : public grpc::ServerWriteReactor<grpc::ByteBuffer> {
 public:
  Stream(WatchHub* hub, const v1::WatchJobRequest& request)
      : hub_(hub),
        job_id_(request.job_id()),
        min_interval_(std::max(kFloor, FromProtoDuration(request.min_interval()))) {}

  // Sends the job's snapshot if it changed and the interval allows.
  void Poll(absl::Time now) {
    absl::MutexLock lock(&mu_);
    if (writing_ || finished_ || now - last_sent_ < min_interval_) return;
    auto snapshot = hub_->engine_->Snapshot(job_id_);
    if (snapshot == nullptr) {
      return FinishLocked(ToGrpcStatus(JobNotFound(job_id_)));
    }
    if (sent_any_ && snapshot->version == last_version_) return;
    response_.Clear();
    *response_.mutable_job() = hub_->engine_->JobFromSnapshot(*snapshot);
    last_version_ = snapshot->version;
    last_sent_ = now;
    sent_any_ = true;
    final_ = Over(response_.job().status());
    wire_.Clear();
    const absl::Status serialized = SerializeWireMessage(response_, &wire_);
    if (!serialized.ok()) return FinishLocked(ToGrpcStatus(serialized));
    writing_ = true;
    StartWrite(&wire_);
  }

  void End(const grpc::Status& status) {
    absl::MutexLock lock(&mu_);
    FinishLocked(status);
  }

  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&mu_);
    writing_ = false;
    if (!ok) return FinishLocked(grpc::Status::CANCELLED);
    if (final_) FinishLocked(grpc::Status::OK);
  }

  void OnCancel() override { End(grpc::Status::CANCELLED); }

  void OnDone() override {
    hub_->Remove(this);
    delete this;
  }

 private:
  void FinishLocked(const grpc::Status& status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finished_) return;
    finished_ = true;
    Finish(status);
  }

  WatchHub* const hub_;
  const std::string job_id_;
  const absl::Duration min_interval_;
  absl::Mutex mu_;
  v1::WatchJobResponse response_ ABSL_GUARDED_BY(mu_);
  grpc::ByteBuffer wire_ ABSL_GUARDED_BY(mu_);  // response_, serialized
  uint64_t last_version_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time last_sent_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  bool sent_any_ ABSL_GUARDED_BY(mu_) = false;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool final_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
};

WatchHub::WatchHub(const Engine* engine) : engine_(engine), thread_([this] { Loop(); }) {}

WatchHub::~WatchHub() {
  Shutdown();
  thread_.join();
}

void WatchHub::Shutdown() {
  absl::MutexLock lock(&mu_);
  stopping_ = true;
  for (Stream* stream : streams_) {
    stream->End(grpc::Status(grpc::StatusCode::UNAVAILABLE, "ckptd is shutting down"));
  }
}

grpc::ServerWriteReactor<grpc::ByteBuffer>* WatchHub::Watch(const v1::WatchJobRequest& request) {
  auto* stream = new Stream(this, request);
  absl::MutexLock lock(&mu_);
  if (stopping_) {
    stream->End(grpc::Status(grpc::StatusCode::UNAVAILABLE, "ckptd is shutting down"));
    return stream;
  }
  streams_.insert(stream);
  stream->Poll(absl::Now());
  return stream;
}

void WatchHub::Remove(Stream* stream) {
  absl::MutexLock lock(&mu_);
  streams_.erase(stream);
}

void WatchHub::Loop() {
  uint64_t seen = 0;
  for (;;) {
    // Wake on any publish, and at least every floor interval so a change that arrived
    // inside a stream's min_interval is still sent.
    seen = engine_->AwaitPublish(seen, absl::Now() + kFloor);
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    const absl::Time now = absl::Now();
    for (Stream* stream : streams_) stream->Poll(now);
  }
}

}  // namespace ckpt
