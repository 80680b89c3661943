// Connections to PostgreSQL for the store: a connector that spaces out attempts while
// the server is away, and a bounded pool of prepared connections for reads. Internal to
// service/store.
#ifndef CKPT_SERVICE_STORE_PG_POOL_H_
#define CKPT_SERVICE_STORE_PG_POOL_H_

#include <chrono>
#include <cstddef>
#include <memory>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "service/store/pg_connection.h"

namespace ckpt {

// Opens prepared connections. After a failed attempt, every Connect() within the
// backoff (100 ms, doubling per failure up to 1 s) fails at once with that attempt's
// error, so callers never wait on a server that is known to be down and the server is
// not hammered; the first success resets it. Thread-safe.
class PgConnector {
 public:
  explicit PgConnector(PgTarget target) : target_(std::move(target)) {}

  // A new connection with every statement of pg_sql.h prepared. UNAVAILABLE while the
  // server cannot be reached (see PgConnection::Connect).
  absl::StatusOr<std::unique_ptr<PgConnection>> Connect();
  const PgTarget& target() const { return target_; }

 private:
  using SteadyTime = std::chrono::steady_clock::time_point;

  const PgTarget target_;
  absl::Mutex mu_;
  absl::Status last_failure_ ABSL_GUARDED_BY(mu_);
  SteadyTime retry_at_ ABSL_GUARDED_BY(mu_);
  std::chrono::milliseconds backoff_ ABSL_GUARDED_BY(mu_){0};
};

// At most `size` connections, lent one at a time. A connection found broken on return
// is dropped; one the server closed while idle is replaced before it is lent.
// Thread-safe.
class PgPool {
 public:
  // Lends a connection; gives it back when destroyed.
  class Lease {
   public:
    Lease(PgPool* pool, std::unique_ptr<PgConnection> connection)
        : pool_(pool), connection_(std::move(connection)) {}
    Lease(Lease&& other) = default;
    Lease& operator=(Lease&& other) = delete;
    ~Lease();
    PgConnection& operator*() const { return *connection_; }
    PgConnection* operator->() const { return connection_.get(); }

   private:
    PgPool* pool_;
    std::unique_ptr<PgConnection> connection_;
  };

  PgPool(PgConnector* connector, size_t size) : connector_(connector), size_(size) {}

  // An idle connection, or a new one while fewer than `size` exist; otherwise waits
  // for one (UNAVAILABLE after `wait`: every connection is busy). UNAVAILABLE from
  // the connector while the server is away.
  absl::StatusOr<Lease> Acquire(absl::Duration wait = absl::Seconds(30));

 private:
  void Return(std::unique_ptr<PgConnection> connection);

  PgConnector* const connector_;
  const size_t size_;
  absl::Mutex mu_;
  std::vector<std::unique_ptr<PgConnection>> idle_ ABSL_GUARDED_BY(mu_);
  size_t open_ ABSL_GUARDED_BY(mu_) = 0;  // idle + lent + being opened
};

}  // namespace ckpt

#endif  // CKPT_SERVICE_STORE_PG_POOL_H_
