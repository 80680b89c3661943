#include "service/rpc/forwarder.h"

#include <algorithm>
#include <chrono>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace ckpt {
namespace {

using grpc::ByteBuffer;

// Metadata that belongs to one hop (HTTP/2 and gRPC's own) or to replicas, never copied
// from the caller to the owner.
bool IsHopMetadata(absl::string_view key) {
  return absl::StartsWith(key, ":") || absl::StartsWith(key, "grpc-") || key == "te" ||
         key == "content-type" || key == "user-agent" || key == kForwardedByKey ||
         key == kShardsKey;
}

absl::string_view View(const grpc::string_ref& ref) { return {ref.data(), ref.size()}; }

PeerAnswer AnswerOf(const grpc::Status& status, const grpc::ClientContext& context) {
  PeerAnswer answer;
  answer.status = status;
  // What gRPC says when no subchannel could connect and the call was never sent.
  answer.unreached =
      status.error_code() == grpc::StatusCode::UNAVAILABLE &&
      absl::StrContains(status.error_message(), "failed to connect to all addresses");
  for (const auto& [key, value] : context.GetServerTrailingMetadata()) {
    const absl::string_view k = View(key);
    if (k == kNotOwnerKey) {
      int shard = -1;
      if (absl::SimpleAtoi(View(value), &shard)) answer.not_owner = shard;
      continue;
    }
    if (IsHopMetadata(k)) continue;
    answer.trailers.emplace_back(std::string(k), std::string(View(value)));
  }
  return answer;
}

// A WatchJob relayed from the owner: a server stream to the caller fed by a client
// stream from the peer, one message in flight at a time (a slow caller slows the
// peer's stream, which skips snapshots by itself). Deletes itself once both ends are
// done.
class WatchRelay : public grpc::ServerWriteReactor<ByteBuffer> {
 public:
  // `ended` is told the peer's status when the stream ends, and returns the one to
  // finish the caller's stream with.
  WatchRelay(grpc::CallbackServerContext* caller, std::shared_ptr<grpc::ClientContext> context,
             std::shared_ptr<grpc::Channel> channel, const ByteBuffer& request,
             std::function<grpc::Status(const grpc::Status&)> ended)
      : caller_(caller),
        context_(std::move(context)),
        ended_(std::move(ended)),
        stub_(std::move(channel)),
        request_(request),
        upstream_(this) {
    stub_.PrepareBidiStreamingCall(context_.get(), "/ckpt.v1.Checkpoint/WatchJob",
                                   grpc::StubOptions(), &upstream_);
    upstream_.StartWriteLast(&request_, grpc::WriteOptions());
    upstream_.StartRead(&message_);
    upstream_.StartCall();
  }

  void OnWriteDone(bool ok) override {
    if (ok) {
      upstream_.StartRead(&message_);
    } else {
      context_->TryCancel();  // the caller went away
    }
  }
  void OnCancel() override { context_->TryCancel(); }
  void OnDone() override { Done(); }

 private:
  class Upstream : public grpc::ClientBidiReactor<ByteBuffer, ByteBuffer> {
   public:
    explicit Upstream(WatchRelay* relay) : relay_(relay) {}
    void OnReadDone(bool ok) override {
      if (ok) relay_->StartWrite(&relay_->message_);
    }
    void OnDone(const grpc::Status& peer_status) override {
      const grpc::Status status = relay_->ended_(peer_status);
      const PeerAnswer answer = AnswerOf(status, *relay_->context_);
      AddTrailers(relay_->caller_, answer);
      // A stream the owner refused as not its own ends UNAVAILABLE, as a moved one does:
      // the client opens it again and finds the new owner.
      relay_->Finish(answer.not_owner >= 0
                         ? grpc::Status(grpc::StatusCode::UNAVAILABLE, status.error_message())
                         : status);
      relay_->Done();
    }

   private:
    WatchRelay* const relay_;
  };

  void Done() {
    bool last;
    {
      absl::MutexLock lock(&mu_);
      last = ++done_ == 2;
    }
    if (last) delete this;
  }

  grpc::CallbackServerContext* const caller_;
  const std::shared_ptr<grpc::ClientContext> context_;
  const std::function<grpc::Status(const grpc::Status&)> ended_;
  grpc::GenericStub stub_;
  ByteBuffer request_;
  ByteBuffer message_;
  Upstream upstream_;
  absl::Mutex mu_;
  int done_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace

bool IsForwarded(const grpc::CallbackServerContext& context) {
  return context.client_metadata().count(kForwardedByKey) > 0;
}

std::string ClientMetadata(const grpc::CallbackServerContext& context, absl::string_view key) {
  auto it = context.client_metadata().find(grpc::string_ref(key.data(), key.size()));
  return it == context.client_metadata().end() ? "" : std::string(View(it->second));
}

void AddTrailers(grpc::CallbackServerContext* context, const PeerAnswer& answer) {
  for (const auto& [key, value] : answer.trailers) context->AddTrailingMetadata(key, value);
}

std::unique_ptr<grpc::ClientContext> Forwarder::ContextFor(
    const grpc::CallbackServerContext& caller) {
  auto context = std::make_unique<grpc::ClientContext>();
  for (const auto& [key, value] : caller.client_metadata()) {
    if (IsHopMetadata(View(key))) continue;
    context->AddMetadata(std::string(View(key)), std::string(View(value)));
  }
  context->AddMetadata(kForwardedByKey, options_.self);
  const auto bound =
      std::chrono::system_clock::now() + absl::ToChronoSeconds(options_.max_call_time);
  context->set_deadline(std::min(caller.deadline(), bound));
  return context;
}

std::shared_ptr<grpc::Channel> Forwarder::ChannelTo(const std::string& peer) {
  absl::MutexLock lock(&mu_);
  std::shared_ptr<grpc::Channel>& channel = channels_[peer];
  if (channel == nullptr) {
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(static_cast<int>(options_.max_message_bytes));
    args.SetMaxSendMessageSize(static_cast<int>(options_.max_message_bytes));
    // A peer that died without closing its connections is noticed within seconds.
    args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 10000);
    args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 5000);
    args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 0);
    // Reconnect soon after a peer restarts: it comes back on the same address.
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
    channel = grpc::CreateCustomChannel(peer, options_.credentials, args);
  }
  return channel;
}

std::shared_ptr<Forwarder::Outgoing> Forwarder::Track(std::unique_ptr<grpc::ClientContext> context,
                                                      const std::string& peer,
                                                      std::vector<int> shards) {
  auto call = std::make_shared<Outgoing>();
  call->context = std::move(context);
  call->peer = peer;
  call->shards = std::move(shards);
  absl::MutexLock lock(&outgoing_mu_);
  outgoing_[call.get()] = call;
  return call;
}

void Forwarder::Untrack(const Outgoing* call) {
  absl::MutexLock lock(&outgoing_mu_);
  outgoing_.erase(const_cast<Outgoing*>(call));
}

grpc::Status Forwarder::EndStatus(const Outgoing& call, const grpc::Status& status) {
  if (!call.abandoned.load() || status.error_code() != grpc::StatusCode::CANCELLED) return status;
  return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                      absl::StrCat("the replica at ", call.peer,
                                   " stopped answering and the job's shard moved to another "
                                   "replica; this call may or may not have been applied; retry: "
                                   "it goes to the new owner"));
}

void Forwarder::Unary(const grpc::CallbackServerContext& caller, const std::string& method,
                      const ByteBuffer& request, const std::string& peer,
                      const std::vector<int>& shards,
                      const std::vector<std::pair<std::string, std::string>>& extra,
                      ByteBuffer* response, std::function<void(PeerAnswer)> done) {
  std::unique_ptr<grpc::ClientContext> context = ContextFor(caller);
  for (const auto& [key, value] : extra) context->AddMetadata(key, value);
  std::shared_ptr<Outgoing> call = Track(std::move(context), peer, shards);
  auto* stub = new grpc::GenericStub(ChannelTo(peer));
  stub->UnaryCall(call->context.get(), method, grpc::StubOptions(), &request, response,
                  [this, call, stub, done = std::move(done)](const grpc::Status& status) {
                    Untrack(call.get());
                    delete stub;
                    done(AnswerOf(EndStatus(*call, status), *call->context));
                  });
}

void Forwarder::Abandon(const std::string& peer, int shard) {
  std::vector<std::shared_ptr<Outgoing>> abandoned;
  {
    absl::MutexLock lock(&outgoing_mu_);
    for (const auto& [key, call] : outgoing_) {
      if (call->peer == peer &&
          std::find(call->shards.begin(), call->shards.end(), shard) != call->shards.end()) {
        call->abandoned.store(true);
        abandoned.push_back(call);
      }
    }
  }
  // Outside the lock: a cancelled call may be answered on this thread.
  for (const auto& call : abandoned) call->context->TryCancel();
}

grpc::ServerWriteReactor<ByteBuffer>* Forwarder::RelayWatch(grpc::CallbackServerContext* caller,
                                                            const ByteBuffer& request,
                                                            const std::string& peer, int shard) {
  std::shared_ptr<Outgoing> call = Track(ContextFor(*caller), peer, {shard});
  return new WatchRelay(caller, call->context, ChannelTo(peer), request,
                        [this, call](const grpc::Status& status) {
                          Untrack(call.get());
                          return EndStatus(*call, status);
                        });
}

}  // namespace ckpt
