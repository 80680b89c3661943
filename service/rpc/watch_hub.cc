#include "service/rpc/watch_hub.h"

#include <algorithm>
#include <optional>
#include <utility>

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

absl::Status ShuttingDown() { return absl::UnavailableError("ckptd is shutting down"); }

}  // namespace

// What every watch does: decide, on the hub thread, whether the job changed and the
// interval allows a snapshot, and end once. Subclasses deliver.
class WatchHub::Watcher {
 public:
  Watcher(const Engine* engine, const v1::WatchJobRequest& request)
      : engine_(engine),
        job_id_(request.job_id()),
        min_interval_(std::max(kFloor, FromProtoDuration(request.min_interval()))) {}
  virtual ~Watcher() = default;

  // Sends the job's snapshot if it changed and the interval allows.
  void Poll(absl::Time now) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    if (finished_ || BusyLocked() || now - last_sent_ < min_interval_) return;
    auto snapshot = engine_->Snapshot(job_id_);
    if (snapshot == nullptr) {
      return EndLocked(JobNotFound(job_id_));
    }
    if (sent_any_ && snapshot->version == last_version_) return;
    v1::Job job = engine_->JobFromSnapshot(*snapshot);
    last_version_ = snapshot->version;
    last_sent_ = now;
    sent_any_ = true;
    const bool final = Over(job.status());
    SendLocked(std::move(job), *snapshot, final);
  }

  void End(const absl::Status& status) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    EndLocked(status);
  }

 protected:
  void EndLocked(const absl::Status& status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finished_) return;
    finished_ = true;
    FinishLocked(status);
  }
  // True while the last snapshot is still being delivered.
  virtual bool BusyLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) = 0;
  // Delivers `job`, made from `snapshot`; `final`: the job is over, end the watch (OK)
  // after it.
  virtual void SendLocked(v1::Job job, const JobSnapshot& snapshot, bool final)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) = 0;
  // Ends the watch; called once.
  virtual void FinishLocked(const absl::Status& status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) = 0;

  absl::Mutex mu_;

 private:
  const Engine* const engine_;
  const std::string job_id_;
  const absl::Duration min_interval_;
  uint64_t last_version_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time last_sent_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  bool sent_any_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
};

// One WatchJob stream. Deleted by gRPC's OnDone, which first unlinks it from the hub.
// Its methods run on the hub thread (Poll, under the hub's mu_) or gRPC's threads.
class WatchHub::Stream : public Watcher, public grpc::ServerWriteReactor<grpc::ByteBuffer> {
 public:
  Stream(WatchHub* hub, const v1::WatchJobRequest& request)
      : Watcher(hub->engine_, request), hub_(hub) {}

  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&mu_);
    writing_ = false;
    if (!ok) return EndLocked(absl::CancelledError());
    if (final_) EndLocked(absl::OkStatus());
  }

  void OnCancel() override { End(absl::CancelledError()); }

  void OnDone() override {
    hub_->Remove(this);
    delete this;
  }

 private:
  bool BusyLocked() const override ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return writing_; }

  void SendLocked(v1::Job job, const JobSnapshot& /*snapshot*/, bool final) override
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    response_.Clear();
    *response_.mutable_job() = std::move(job);
    final_ = final;
    wire_.Clear();
    const absl::Status serialized = SerializeWireMessage(response_, &wire_);
    if (!serialized.ok()) return EndLocked(serialized);
    writing_ = true;
    StartWrite(&wire_);
  }

  void FinishLocked(const absl::Status& status) override ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    Finish(ToGrpcStatus(status));
  }

  WatchHub* const hub_;
  v1::WatchJobResponse response_ ABSL_GUARDED_BY(mu_);
  grpc::ByteBuffer wire_ ABSL_GUARDED_BY(mu_);  // response_, serialized
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool final_ ABSL_GUARDED_BY(mu_) = false;
};

// A subscription's mailbox: the newest snapshot not yet taken, then the end.
class WatchHub::Feed : public Watcher {
 public:
  using Watcher::Watcher;

  Subscription::Event Next(absl::Time deadline) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return job_.has_value() || end_.has_value();
    };
    mu_.AwaitWithDeadline(absl::Condition(&ready), deadline);
    Subscription::Event event;
    if (job_.has_value()) {
      event.kind = Subscription::Kind::kJob;
      event.job = std::move(*job_);
      event.recent_completions = std::move(recent_completions_);
      job_.reset();
    } else if (end_.has_value()) {
      event.kind = Subscription::Kind::kEnd;
      event.status = *end_;
    }
    return event;
  }

 private:
  bool BusyLocked() const override { return false; }  // a newer snapshot replaces it

  void SendLocked(v1::Job job, const JobSnapshot& snapshot, bool final) override
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    job_ = std::move(job);
    recent_completions_ = snapshot.recent_completions;
    if (final) EndLocked(absl::OkStatus());
  }

  void FinishLocked(const absl::Status& status) override ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    end_ = status;
  }

  std::optional<v1::Job> job_ ABSL_GUARDED_BY(mu_);
  std::vector<v1::RecentCompletion> recent_completions_ ABSL_GUARDED_BY(mu_);
  std::optional<absl::Status> end_ ABSL_GUARDED_BY(mu_);
};

WatchHub::Subscription::Subscription(WatchHub* hub, std::unique_ptr<Feed> feed)
    : hub_(hub), feed_(std::move(feed)) {}

WatchHub::Subscription::~Subscription() { hub_->Remove(feed_.get()); }

WatchHub::Subscription::Event WatchHub::Subscription::Next(absl::Time deadline) {
  return feed_->Next(deadline);
}

WatchHub::WatchHub(const Engine* engine) : engine_(engine) {
  absl::MutexLock lock(&join_mu_);
  thread_ = std::thread([this] { Loop(); });
}

WatchHub::~WatchHub() { Stop(ShuttingDown()); }

void WatchHub::Shutdown() {
  absl::MutexLock lock(&mu_);
  if (!stopping_) why_ = ShuttingDown();
  stopping_ = true;
  for (Watcher* watcher : watchers_) watcher->End(why_);
}

void WatchHub::Stop(const absl::Status& why) {
  {
    absl::MutexLock lock(&mu_);
    if (!stopping_) why_ = why;
    stopping_ = true;
    for (Watcher* watcher : watchers_) watcher->End(why_);
  }
  absl::MutexLock lock(&join_mu_);
  if (thread_.joinable()) thread_.join();
}

grpc::ServerWriteReactor<grpc::ByteBuffer>* WatchHub::Watch(const v1::WatchJobRequest& request) {
  auto* stream = new Stream(this, request);
  Add(stream);
  return stream;
}

std::unique_ptr<WatchHub::Subscription> WatchHub::Subscribe(const v1::WatchJobRequest& request) {
  auto feed = std::make_unique<Feed>(engine_, request);
  Add(feed.get());
  return std::unique_ptr<Subscription>(new Subscription(this, std::move(feed)));
}

void WatchHub::Add(Watcher* watcher) {
  absl::MutexLock lock(&mu_);
  // Linked even when ending at once: its OnDone unlinks it, and AwaitNoWatchers waits for that.
  watchers_.insert(watcher);
  if (stopping_) return watcher->End(why_);
  watcher->Poll(absl::Now());
}

void WatchHub::Remove(Watcher* watcher) {
  absl::MutexLock lock(&mu_);
  watchers_.erase(watcher);
}

bool WatchHub::AwaitNoWatchers(absl::Time deadline) {
  absl::MutexLock lock(&mu_);
  auto none = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return watchers_.empty(); };
  return mu_.AwaitWithDeadline(absl::Condition(&none), deadline);
}

void WatchHub::Loop() {
  uint64_t seen = 0;
  for (;;) {
    // Wake on any publish, and at least every floor interval so a change that arrived
    // inside a watch's min_interval is still sent.
    seen = engine_->AwaitPublish(seen, absl::Now() + kFloor);
    absl::MutexLock lock(&mu_);
    if (stopping_) return;
    const absl::Time now = absl::Now();
    for (Watcher* watcher : watchers_) watcher->Poll(now);
  }
}

}  // namespace ckpt
