#include "service/store/pg_leases.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "service/common/status_macros.h"
#include "service/store/keys.h"
#include "service/store/pg_sql.h"

namespace ckpt {
namespace {

// A take waits this long for a write in flight to let go of the owner row (its
// transaction holds it FOR SHARE) before failing UNAVAILABLE.
constexpr char kSessionSettings[] = "SET lock_timeout = '5s'";

int64_t Micros(absl::Duration d) { return absl::ToInt64Microseconds(d); }

}  // namespace

int64_t MemberLockKey(const std::string& member_id) {
  return static_cast<int64_t>(keys::Fnv1a64(absl::StrCat("ckpt_members/", member_id)));
}

PgShardLeases::PgShardLeases(PgConnector* connector, MemberClaim claim, int shards)
    : connector_(connector),
      claim_(std::move(claim)),
      shards_(shards),
      lock_key_(MemberLockKey(claim_.id)) {}

PgShardLeases::~PgShardLeases() = default;

template <typename T>
T PgShardLeases::Checked(T result) {
  if (!result.ok() && session_ != nullptr && !session_->ok()) session_.reset();
  return result;
}

absl::Status PgShardLeases::Join(PgConnection& c) {
  CKPT_RETURN_IF_ERROR(c.RunSql(kSessionSettings, "set up the lease session"));
  for (const pgsql::Statement* statement : pgsql::kLeaseStatements) {
    CKPT_RETURN_IF_ERROR(c.Prepare(*statement));
  }
  PgParams key;
  key.Int8(lock_key_);
  CKPT_ASSIGN_OR_RETURN(PgResult locked, c.Run(pgsql::kTakeOwnerLock, key));
  if (!PgBool(locked.get(), 0, 0)) {
    return absl::FailedPreconditionError(absl::StrCat("another session holds the lock of member ",
                                                      claim_.id, ": is it running twice?"));
  }
  CKPT_RETURN_IF_ERROR(c.RunSql(pgsql::kDropOldMembers, "remove old members"));
  PgParams join;
  join.Bytes(claim_.id).Bytes(claim_.address).Int8(lock_key_).Int8(Micros(claim_.lease));
  return c.Run(pgsql::kJoin, join).status();
}

absl::StatusOr<PgConnection*> PgShardLeases::Session() {
  if (session_ != nullptr && !session_->Healthy()) session_.reset();
  if (session_ == nullptr) {
    CKPT_ASSIGN_OR_RETURN(std::unique_ptr<PgConnection> c, connector_->Connect());
    CKPT_RETURN_IF_ERROR(Join(*c));
    session_ = std::move(c);
  }
  return session_.get();
}

absl::StatusOr<ClusterView> PgShardLeases::Read() {
  CKPT_ASSIGN_OR_RETURN(PgConnection * c, Session());
  PgParams renew;
  renew.Bytes(claim_.id).Int8(Micros(claim_.lease));
  absl::StatusOr<PgResult> renewed = Checked(c->Run(pgsql::kRenewMember, renew));
  CKPT_RETURN_IF_ERROR(renewed.status());
  if (PgAffectedRows(renewed->get()) == 0) {  // removed meanwhile: join again
    session_.reset();
    CKPT_ASSIGN_OR_RETURN(c, Session());
  }
  ClusterView view;
  CKPT_ASSIGN_OR_RETURN(PgResult members, Checked(c->Run(pgsql::kReadMembers, PgParams())));
  for (int row = 0; row < PgRows(members.get()); ++row) {
    view.members.push_back({PgText(members.get(), row, 0), PgText(members.get(), row, 1),
                            PgBool(members.get(), row, 2), PgBool(members.get(), row, 3)});
  }
  for (int shard = 0; shard < shards_; ++shard) view.shards.push_back({shard, "", "", 0, false});
  CKPT_ASSIGN_OR_RETURN(PgResult leases, Checked(c->Run(pgsql::kReadLeases, PgParams())));
  for (int row = 0; row < PgRows(leases.get()); ++row) {
    const int shard = static_cast<int>(PgInt8(leases.get(), row, 0));
    if (shard < 0 || shard >= shards_) continue;  // not a shard of this store
    view.shards[shard] = {shard, PgText(leases.get(), row, 1), PgText(leases.get(), row, 2),
                          PgInt8(leases.get(), row, 3), PgBool(leases.get(), row, 4)};
  }
  return view;
}

absl::StatusOr<int64_t> PgShardLeases::Take(int shard, int64_t seen_epoch, bool owner_gone) {
  CKPT_ASSIGN_OR_RETURN(PgConnection * c, Session());
  PgParams take;
  take.Int4(shard).Bytes(claim_.id).Bytes(claim_.address).Int8(Micros(claim_.lease));
  take.Int8(seen_epoch).Owned(std::string(1, owner_gone ? '\1' : '\0'));
  CKPT_ASSIGN_OR_RETURN(PgResult taken, Checked(c->Run(pgsql::kTakeShard, take)));
  if (PgRows(taken.get()) == 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("shard ", shard, " was taken or renewed by its owner first"));
  }
  return PgInt8(taken.get(), 0, 0);
}

absl::StatusOr<std::vector<int>> PgShardLeases::Renew(
    const std::vector<std::pair<int, int64_t>>& owned) {
  std::vector<int> still;
  if (owned.empty()) return still;
  CKPT_ASSIGN_OR_RETURN(PgConnection * c, Session());
  PgArray shards = PgArray::Int4(owned.size());
  PgArray epochs = PgArray::Int8(owned.size());
  for (const auto& [shard, epoch] : owned) {
    shards.AddInt4(shard);
    epochs.AddInt8(epoch);
  }
  PgParams renew;
  renew.Bytes(claim_.id).Owned(std::move(shards).Finish()).Owned(std::move(epochs).Finish());
  renew.Int8(Micros(claim_.lease));
  CKPT_ASSIGN_OR_RETURN(PgResult renewed, Checked(c->Run(pgsql::kRenewShards, renew)));
  for (int row = 0; row < PgRows(renewed.get()); ++row) {
    still.push_back(static_cast<int>(PgInt8(renewed.get(), row, 0)));
  }
  return still;
}

absl::Status PgShardLeases::Release(int shard, int64_t epoch) {
  CKPT_ASSIGN_OR_RETURN(PgConnection * c, Session());
  PgParams release;
  release.Int4(shard).Int8(epoch).Bytes(claim_.id);
  return Checked(c->Run(pgsql::kReleaseShard, release)).status();
}

absl::Status PgShardLeases::Leave() {
  CKPT_ASSIGN_OR_RETURN(PgConnection * c, Session());
  PgParams leave;
  leave.Bytes(claim_.id);
  return Checked(c->Run(pgsql::kLeave, leave)).status();
}

}  // namespace ckpt
