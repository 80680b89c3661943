#include "service/store/pg_owner.h"

#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "service/common/log.h"
#include "service/common/status_macros.h"
#include "service/store/keys.h"
#include "service/store/pg_sql.h"

namespace ckpt {
namespace {

// How long a takeover waits for a write in flight to release the owner row.
constexpr char kTakeoverLockTimeout[] = "SET LOCAL lock_timeout = '5s'";
// How long it waits for a live owner's lock: an owner that just died is gone well
// within it (its connection closed with it); one that stays is alive.
constexpr char kProbeLockTimeout[] = "SET LOCAL lock_timeout = '2s'";
constexpr char kLockNotAvailable[] = "55P03";
// Retries of a renewal that failed, while the store is unreachable (the connector's
// backoff spaces out the connection attempts themselves).
constexpr absl::Duration kRetryUnreachable = absl::Milliseconds(200);

struct OwnerRow {
  std::string owner;
  std::string address;
  int64_t epoch = 0;
  bool live = false;           // the lease has not expired
  int64_t past_expiry_us = 0;  // now - expires (negative: time left)
};

absl::StatusOr<std::optional<OwnerRow>> ReadOwnerRow(PgConnection& c,
                                                     const pgsql::Statement& statement,
                                                     int32_t shard) {
  PgParams params;
  params.Int4(shard);
  CKPT_ASSIGN_OR_RETURN(PgResult result, c.Run(statement, params));
  if (PgRows(result.get()) == 0) return std::optional<OwnerRow>();
  OwnerRow row;
  row.owner = PgText(result.get(), 0, 0);
  row.address = PgText(result.get(), 0, 1);
  row.epoch = PgInt8(result.get(), 0, 2);
  row.live = PgBool(result.get(), 0, 3);
  row.past_expiry_us = PgInt8(result.get(), 0, 4);
  return std::optional<OwnerRow>(std::move(row));
}

absl::StatusOr<bool> TryLock(PgConnection& c, const pgsql::Statement& statement, int64_t key) {
  PgParams params;
  params.Int8(key);
  CKPT_ASSIGN_OR_RETURN(PgResult result, c.Run(statement, params));
  return PgBool(result.get(), 0, 0);
}

absl::Status InUse(const PgConnection& c, const OwnerClaim& claim, const OwnerRow& row) {
  return absl::FailedPreconditionError(
      absl::StrCat("store at ", c.target().display(), " is in use by another ckptd (", row.owner,
                   ", serving ", row.address, ", epoch ", row.epoch,
                   "): stop it or point --store at another database; a ckptd that exits or dies "
                   "releases the store at once, a frozen one when its lease runs out (in ",
                   absl::FormatDuration(absl::Microseconds(-row.past_expiry_us)), ")"));
}

// The owner row changed between the first look and the lock: decide again.
constexpr char kChanged[] = "the owner row changed while taking it over";

// Inside a transaction: refuses a live owner, else writes this claim with the next
// epoch and returns it. The live owner's lock is probed before the row is locked: the
// owner's renewal updates the row while holding that lock, so waiting for the lock
// while holding the row would deadlock with it.
absl::StatusOr<int64_t> TakeInTransaction(PgConnection& c, const OwnerClaim& claim) {
  CKPT_ASSIGN_OR_RETURN(const std::optional<OwnerRow> seen,
                        ReadOwnerRow(c, pgsql::kReadOwner, claim.shard));
  if (seen.has_value() && seen->live) {
    // The lease runs, but an owner that exited or died holds no lock any more.
    CKPT_RETURN_IF_ERROR(c.RunSql(kProbeLockTimeout, "take ownership"));
    PgParams key;
    key.Int8(OwnerLockKey(claim.owners_oid, claim.shard, seen->epoch));
    const absl::StatusOr<PgResult> probed = c.Run(pgsql::kProbeOwnerLock, key);
    if (!probed.ok() && SqlState(probed.status()) == kLockNotAvailable) {
      return InUse(c, claim, *seen);
    }
    CKPT_RETURN_IF_ERROR(probed.status());
  }
  CKPT_RETURN_IF_ERROR(c.RunSql(kTakeoverLockTimeout, "take ownership"));
  CKPT_ASSIGN_OR_RETURN(const std::optional<OwnerRow> row,
                        ReadOwnerRow(c, pgsql::kLockOwner, claim.shard));
  PgParams take;
  take.Int4(claim.shard).Bytes(claim.owner).Bytes(claim.address);
  take.Int8(absl::ToInt64Microseconds(claim.lease));
  if (!row.has_value()) {
    if (seen.has_value()) return absl::AbortedError(kChanged);
    CKPT_ASSIGN_OR_RETURN(PgResult inserted, c.Run(pgsql::kInsertOwner, take));
    return PgInt8(inserted.get(), 0, 0);
  }
  if (!seen.has_value() || row->epoch != seen->epoch || (row->live && !seen->live)) {
    return absl::AbortedError(kChanged);
  }
  CKPT_ASSIGN_OR_RETURN(PgResult taken, c.Run(pgsql::kTakeOver, take));
  LogLine(absl::StrCat("store at ", c.target().display(), ": took over from ", row->owner,
                       " (epoch ", row->epoch, "), whose ",
                       row->live ? "connection is gone" : "lease had expired"));
  return PgInt8(taken.get(), 0, 0);
}

}  // namespace

int64_t OwnerLockKey(int64_t owners_oid, int32_t shard, int64_t epoch) {
  return static_cast<int64_t>(
      keys::Fnv1a64(absl::StrCat("ckpt_owners/", owners_oid, "/", shard, "/", epoch)));
}

absl::StatusOr<std::unique_ptr<PgOwnership>> PgOwnership::Take(PgConnector* connector,
                                                               const OwnerClaim& claim) {
  CKPT_ASSIGN_OR_RETURN(std::unique_ptr<PgConnection> session, connector->Connect());
  absl::StatusOr<int64_t> epoch = absl::AbortedError(kChanged);
  // Another ckptd taking over at the same moment moves the row on: look again.
  for (int attempt = 0; attempt < 3 && absl::IsAborted(epoch.status()); ++attempt) {
    CKPT_RETURN_IF_ERROR(session->RunSql("BEGIN", "take ownership"));
    epoch = TakeInTransaction(*session, claim);
    if (!epoch.ok()) session->RunSql("ROLLBACK", "take ownership").IgnoreError();
  }
  if (absl::IsAborted(epoch.status())) {
    return absl::UnavailableError(absl::StrCat("store at ", session->target().display(),
                                               ": other ckptds keep taking it over; retry"));
  }
  if (!epoch.ok()) return epoch.status();
  CKPT_RETURN_IF_ERROR(session->RunSql("COMMIT", "take ownership"));
  CKPT_ASSIGN_OR_RETURN(const bool locked,
                        TryLock(*session, pgsql::kTakeOwnerLock,
                                OwnerLockKey(claim.owners_oid, claim.shard, *epoch)));
  return std::unique_ptr<PgOwnership>(
      new PgOwnership(connector, claim, *epoch, std::move(session), locked));
}

PgOwnership::PgOwnership(PgConnector* connector, OwnerClaim claim, int64_t epoch,
                         std::unique_ptr<PgConnection> session, bool locked)
    : connector_(connector),
      claim_(std::move(claim)),
      epoch_(epoch),
      session_(std::move(session)),
      locked_(locked),
      renewer_([this] { RenewLoop(); }) {}

PgOwnership::~PgOwnership() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  renewer_.join();
  session_.reset();
}

absl::Status PgOwnership::Owned() const {
  absl::MutexLock lock(&mu_);
  return deposed_;
}

void PgOwnership::RenewLoop() {
  for (;;) {
    {
      absl::MutexLock lock(&mu_);
      const absl::Duration wait = available_ ? claim_.lease / 5 : kRetryUnreachable;
      auto woken = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return wake_ || stop_; };
      mu_.AwaitWithTimeout(absl::Condition(&woken), wait);
      if (stop_ || !deposed_.ok()) return;
      wake_ = false;
    }
    const absl::Status renewed = Renew();
    if (absl::IsFailedPrecondition(renewed)) return;  // deposed: SetDeposed said so
    SetAvailable(renewed.ok());
  }
}

// Extends the lease if the epoch is still ours, reconnecting first if needed, and takes
// the session lock if this connection does not hold it yet.
absl::Status PgOwnership::Renew() {
  if (session_ != nullptr && !session_->Healthy()) session_.reset();
  if (session_ == nullptr) {
    CKPT_ASSIGN_OR_RETURN(session_, connector_->Connect());
    locked_ = false;
  }
  PgParams params;
  params.Int4(claim_.shard).Int8(epoch_).Int8(absl::ToInt64Microseconds(claim_.lease));
  absl::StatusOr<PgResult> renewed = session_->Run(pgsql::kRenew, params);
  if (!renewed.ok()) return renewed.status();
  if (PgAffectedRows(renewed->get()) == 0) {
    SetDeposed(DeposedStatus(*session_));
    session_.reset();  // frees the lock at once
    return absl::FailedPreconditionError("deposed");
  }
  if (!locked_) {
    const int64_t key = OwnerLockKey(claim_.owners_oid, claim_.shard, epoch_);
    CKPT_ASSIGN_OR_RETURN(locked_, TryLock(*session_, pgsql::kTakeOwnerLock, key));
  }
  return absl::OkStatus();
}

absl::Status PgOwnership::DeposedStatus(PgConnection& c) {
  absl::StatusOr<std::optional<OwnerRow>> row = ReadOwnerRow(c, pgsql::kReadOwner, claim_.shard);
  const std::string who =
      row.ok() && row->has_value()
          ? absl::StrCat((*row)->owner, ", serving ", (*row)->address, ", epoch ", (*row)->epoch)
          : "unknown";
  return absl::UnavailableError(absl::StrCat(
      "this ckptd no longer owns the store at ", c.target().display(), " (its epoch ", epoch_,
      " was taken over by another ckptd: ", who,
      "); it refuses writes: use that ckptd, and restart this one to take the store back"));
}

void PgOwnership::Deposed() {
  absl::StatusOr<std::unique_ptr<PgConnection>> c = connector_->Connect();
  SetDeposed(c.ok() ? DeposedStatus(**c)
                    : absl::UnavailableError(absl::StrCat(
                          "this ckptd no longer owns the store at ", connector_->target().display(),
                          " (another ckptd took it over); it refuses writes")));
}

void PgOwnership::SetDeposed(absl::Status why) {
  {
    absl::MutexLock lock(&mu_);
    if (!deposed_.ok()) return;
    deposed_ = why;
    wake_ = true;
  }
  LogLine(why.message());
  SetAvailable(false);
}

void PgOwnership::Unreachable() {
  SetAvailable(false);
  absl::MutexLock lock(&mu_);
  wake_ = true;
}

void PgOwnership::SetAvailable(bool available) {
  absl::MutexLock listener_lock(&listener_mu_);
  bool deposed;
  {
    absl::MutexLock lock(&mu_);
    deposed = !deposed_.ok();
    available = available && !deposed;
    if (available_ == available) return;
    available_ = available;
  }
  if (!deposed) {
    LogLine(absl::StrCat("store at ", connector_->target().display(),
                         available ? ": reachable again" : ": unreachable; retrying"));
  }
  if (listener_) listener_(available);
}

void PgOwnership::SetListener(std::function<void(bool)> listener) {
  absl::MutexLock listener_lock(&listener_mu_);
  listener_ = std::move(listener);
  bool available;
  {
    absl::MutexLock lock(&mu_);
    available = available_;
  }
  if (listener_) listener_(available);
}

}  // namespace ckpt
