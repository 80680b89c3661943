// The leases of one LeaseItems answer (or of CompleteItems' lease_next), written as
// they are granted: a Lease each, or, when the caller asked for them packed, each
// stretch of consecutive indices with consecutive tokens, one attempt, one expire time
// and no cursor as one LeaseRun (checkpoint.proto). A worker loop's batch of 100 fresh
// indices is then one run on the wire instead of 100 Lease messages with a key, a step
// and a timestamp each.
//
// Not thread-safe: used by the engine's writer while it answers one call.
#ifndef CKPT_SERVICE_ENGINE_LEASE_ANSWER_H_
#define CKPT_SERVICE_ENGINE_LEASE_ANSWER_H_

#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "ckpt/v1/checkpoint.pb.h"

namespace ckpt {

class LeaseAnswer {
 public:
  // `out` must outlive the answer; leases are appended to it. `token_step`: how far
  // apart the tokens of consecutive grants are (the engine's id stride, >= 1).
  LeaseAnswer(std::string step, bool packed, uint64_t token_step, v1::LeaseItemsResponse* out)
      : step_(std::move(step)), packed_(packed), token_step_(token_step), out_(out) {}
  LeaseAnswer(const LeaseAnswer&) = delete;
  LeaseAnswer& operator=(const LeaseAnswer&) = delete;
  // Writes the stretch still open.
  ~LeaseAnswer() { Close(); }

  // One granted lease: `key` is an encoded item key (service/store/keys.h), `attempt`
  // is 1 for a first try.
  void Add(absl::string_view key, uint64_t token, uint32_t attempt, absl::string_view cursor,
           absl::Time expire);

 private:
  // Writes the open stretch: a run, or a Lease if it has one lease.
  void Close();
  void AddLease(const v1::ItemKey& key, uint64_t token, uint32_t attempt, absl::string_view cursor,
                absl::Time expire);

  const std::string step_;
  const bool packed_;
  const uint64_t token_step_;
  v1::LeaseItemsResponse* const out_;
  // The open stretch (packed only): `count_` leases from first_index_ / first_token_.
  uint64_t first_index_ = 0;
  uint64_t first_token_ = 0;
  uint32_t count_ = 0;
  uint32_t attempt_ = 0;
  absl::Time expire_;
};

}  // namespace ckpt

#endif  // CKPT_SERVICE_ENGINE_LEASE_ANSWER_H_
