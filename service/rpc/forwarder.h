// Calls from one replica to another: a call for a shard this replica does not own is
// sent to the owner (its address from the lease table, via ShardSet) with the caller's
// metadata (credentials included) and deadline, and the owner's answer, trailing
// metadata included, is relayed as it is. One channel per peer, made on first use and
// kept (gRPC reconnects it by itself).
//
// Replicas mark what they send each other (metadata, docs/api.md "Replicas"):
//   ckpt-forwarded-by: ADDRESS  a forwarded call: never forwarded again; the receiver
//                               serves it from a local shard or refuses it as below;
//   ckpt-not-owner: SHARD       (trailing) the receiver does not own the shard: the
//                               sender's view is stale, nothing was applied; it looks
//                               again and retries;
//   ckpt-shards: 1,5,9          a ListJobs, FindOutput or DeleteJobs sent to one owner
//                               for the shards listed, answered from those shards only.
#ifndef CKPT_SERVICE_RPC_FORWARDER_H_
#define CKPT_SERVICE_RPC_FORWARDER_H_

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace ckpt {

inline constexpr char kForwardedByKey[] = "ckpt-forwarded-by";
inline constexpr char kNotOwnerKey[] = "ckpt-not-owner";
inline constexpr char kShardsKey[] = "ckpt-shards";

struct ForwarderOptions {
  // This replica's address as the others reach it (--advertise).
  std::string self;
  // How this replica connects to the others.
  std::shared_ptr<grpc::ChannelCredentials> credentials = grpc::InsecureChannelCredentials();
  size_t max_message_bytes = 16 << 20;
  // A forwarded call whose caller set no deadline (or a later one) gets this one, so a
  // peer that stopped answering cannot hold a call for ever.
  absl::Duration max_call_time = absl::Seconds(60);
};

// What a peer answered.
struct PeerAnswer {
  grpc::Status status;
  std::vector<std::pair<std::string, std::string>> trailers;  // relayed to the caller
  int not_owner = -1;                                         // the shard of ckpt-not-owner, or -1
  // gRPC failed the call before sending it: no connection to the peer could be made
  // (it died, or is not listening yet). Nothing reached the peer, so the call may be
  // routed again (once the lease table names an owner that answers).
  bool unreached = false;
};

// Whether `context` is a call another replica forwarded here.
bool IsForwarded(const grpc::CallbackServerContext& context);
// The value of `key` in the caller's metadata, or "".
std::string ClientMetadata(const grpc::CallbackServerContext& context, absl::string_view key);
// Adds the answer's trailers to `context`.
void AddTrailers(grpc::CallbackServerContext* context, const PeerAnswer& answer);

// Thread-safe.
class Forwarder {
 public:
  explicit Forwarder(ForwarderOptions options) : options_(std::move(options)) {}

  const std::string& self() const { return options_.self; }

  // Sends `request` as `method` ("/ckpt.v1.Checkpoint/GetJob") to `peer`, the owner of
  // `shards`, on behalf of `caller`, with `extra` metadata, and calls `done` with the
  // peer's answer once it comes (the response in `response`). `caller` must stay valid
  // until then.
  void Unary(const grpc::CallbackServerContext& caller, const std::string& method,
             const grpc::ByteBuffer& request, const std::string& peer,
             const std::vector<int>& shards,
             const std::vector<std::pair<std::string, std::string>>& extra,
             grpc::ByteBuffer* response, std::function<void(PeerAnswer)> done);

  // `shard` moved away from `peer` (its lease was taken, or ran out unrenewed): ends
  // every call in flight to `peer` for it now, rather than when the peer answers or its
  // connection's keepalive gives up (a frozen peer holds them for 15 s). Each ends
  // UNAVAILABLE: a unary call applied or not as one whose answer was lost (the peer may
  // have committed it before it stopped; after the move it can commit nothing more), a
  // relayed WatchJob as a moved shard's stream does. The client's retry reaches the new
  // owner.
  void Abandon(const std::string& peer, int shard);

  // A WatchJob stream relayed from `peer`, the owner of `shard`: its messages and its
  // end, as they come.
  grpc::ServerWriteReactor<grpc::ByteBuffer>* RelayWatch(grpc::CallbackServerContext* caller,
                                                         const grpc::ByteBuffer& request,
                                                         const std::string& peer, int shard);

  // The channel to `peer`, made on first use.
  std::shared_ptr<grpc::Channel> ChannelTo(const std::string& peer);

 private:
  // A client context for a call on behalf of `caller`: its metadata and deadline.
  std::unique_ptr<grpc::ClientContext> ContextFor(const grpc::CallbackServerContext& caller);

  // A call in flight to a peer, until its answer (or its stream's end) came. Shared:
  // Abandon may still cancel it as it ends.
  struct Outgoing {
    std::shared_ptr<grpc::ClientContext> context;
    std::string peer;
    std::vector<int> shards;
    std::atomic<bool> abandoned{false};
  };
  // Registers a call for Abandon; Untrack it when it ended, and give its status to
  // EndStatus (an abandoned call's CANCELLED becomes UNAVAILABLE).
  std::shared_ptr<Outgoing> Track(std::unique_ptr<grpc::ClientContext> context,
                                  const std::string& peer, std::vector<int> shards);
  void Untrack(const Outgoing* call);
  static grpc::Status EndStatus(const Outgoing& call, const grpc::Status& status);

  const ForwarderOptions options_;
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::shared_ptr<grpc::Channel>> channels_ ABSL_GUARDED_BY(mu_);
  absl::Mutex outgoing_mu_;
  absl::flat_hash_map<Outgoing*, std::shared_ptr<Outgoing>> outgoing_ ABSL_GUARDED_BY(outgoing_mu_);
};

}  // namespace ckpt

#endif  // CKPT_SERVICE_RPC_FORWARDER_H_
