#include "service/engine/lease_answer.h"

#include "service/common/proto_time.h"
#include "service/store/keys.h"

namespace ckpt {

void LeaseAnswer::Add(absl::string_view key, uint64_t token, uint32_t attempt,
                      absl::string_view cursor, absl::Time expire) {
  const bool packable = packed_ && cursor.empty() && keys::IsIndexKey(key);
  if (packable && count_ > 0) {
    const uint64_t index = keys::IndexOf(key);
    if (index == first_index_ + count_ && token == first_token_ + count_ * token_step_ &&
        attempt == attempt_ && expire == expire_) {
      ++count_;
      return;
    }
  }
  Close();
  if (packable) {
    first_index_ = keys::IndexOf(key);
    first_token_ = token;
    count_ = 1;
    attempt_ = attempt;
    expire_ = expire;
    return;
  }
  AddLease(*keys::DecodeItemKey(key), token, attempt, cursor, expire);
}

void LeaseAnswer::Close() {
  if (count_ == 1) {
    v1::ItemKey key;
    key.set_index(first_index_);
    AddLease(key, first_token_, attempt_, "", expire_);
  } else if (count_ > 1) {
    v1::LeaseRun* run = out_->add_lease_runs();
    run->set_step(step_);
    run->set_first_index(first_index_);
    run->set_count(count_);
    run->set_first_lease_token(first_token_);
    if (token_step_ != 1) run->set_token_step(token_step_);
    run->set_attempt(attempt_);
    *run->mutable_expire_time() = ToProtoTime(expire_);
  }
  count_ = 0;
}

void LeaseAnswer::AddLease(const v1::ItemKey& key, uint64_t token, uint32_t attempt,
                           absl::string_view cursor, absl::Time expire) {
  v1::Lease* lease = out_->add_leases();
  *lease->mutable_key() = key;
  lease->set_step(step_);
  lease->set_lease_token(token);
  lease->set_attempt(attempt);
  lease->set_cursor(std::string(cursor));
  *lease->mutable_expire_time() = ToProtoTime(expire);
}

}  // namespace ckpt
