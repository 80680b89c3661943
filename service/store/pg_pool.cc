#include "service/store/pg_pool.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"

namespace ckpt {
namespace {

constexpr std::chrono::milliseconds kFirstBackoff(100);
constexpr std::chrono::milliseconds kMaxBackoff(1000);

}  // namespace

absl::StatusOr<std::unique_ptr<PgConnection>> PgConnector::Connect() {
  {
    absl::MutexLock lock(&mu_);
    if (!last_failure_.ok() && std::chrono::steady_clock::now() < retry_at_) return last_failure_;
  }
  absl::StatusOr<std::unique_ptr<PgConnection>> connection = PgConnection::Connect(target_);
  if (connection.ok()) {
    absl::Status prepared = (*connection)->PrepareAll();
    if (!prepared.ok()) connection = prepared;
  }
  absl::MutexLock lock(&mu_);
  if (connection.ok()) {
    last_failure_ = absl::OkStatus();
    backoff_ = std::chrono::milliseconds(0);
  } else {
    last_failure_ = connection.status();
    backoff_ = std::min(kMaxBackoff, std::max(kFirstBackoff, backoff_ * 2));
    retry_at_ = std::chrono::steady_clock::now() + backoff_;
  }
  return connection;
}

PgPool::Lease::~Lease() {
  if (connection_ != nullptr) pool_->Return(std::move(connection_));
}

absl::StatusOr<PgPool::Lease> PgPool::Acquire(absl::Duration wait) {
  {
    absl::MutexLock lock(&mu_);
    auto available = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
      return !idle_.empty() || open_ < size_;
    };
    if (!mu_.AwaitWithTimeout(absl::Condition(&available), wait)) {
      return absl::UnavailableError(absl::StrCat(
          "all ", size_, " connections to PostgreSQL at ", connector_->target().display(),
          " stayed busy for ", absl::FormatDuration(wait), "; retry"));
    }
    while (!idle_.empty()) {
      std::unique_ptr<PgConnection> connection = std::move(idle_.back());
      idle_.pop_back();
      if (connection->Healthy()) return Lease(this, std::move(connection));
      --open_;  // closed by the server while idle: replaced below
    }
    ++open_;
  }
  absl::StatusOr<std::unique_ptr<PgConnection>> connection = connector_->Connect();
  if (!connection.ok()) {
    absl::MutexLock lock(&mu_);
    --open_;
    return connection.status();
  }
  return Lease(this, std::move(*connection));
}

void PgPool::Return(std::unique_ptr<PgConnection> connection) {
  const bool keep = connection->ok();
  if (!keep) connection.reset();  // outside the lock: PQfinish may write to the socket
  absl::MutexLock lock(&mu_);
  if (keep) {
    idle_.push_back(std::move(connection));
  } else {
    --open_;
  }
}

}  // namespace ckpt
