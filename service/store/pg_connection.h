// libpq, wrapped for the PostgreSQL store: where to connect (with the password kept out
// of every message), binary parameters and arrays, and one connection that runs
// prepared statements, alone or pipelined as one transaction. libpq's failures become
// absl codes here, once:
//   UNAVAILABLE         connection lost or refused, server shutting down or starting,
//                       too many connections, a read-only server (a standby), a
//                       serialization failure or deadlock, a lock timeout;
//   RESOURCE_EXHAUSTED  disk full (53100), out of memory (53200);
//   DATA_LOSS           data corrupted (XX001, XX002);
//   FAILED_PRECONDITION authentication or permission refused, no such database;
//   INTERNAL            anything else.
// Each carries the SQLSTATE as a payload (SqlState()). Internal to service/store.
#ifndef CKPT_SERVICE_STORE_PG_CONNECTION_H_
#define CKPT_SERVICE_STORE_PG_CONNECTION_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "service/store/pg_sql.h"

typedef struct pg_conn PGconn;
typedef struct pg_result PGresult;

namespace ckpt {

// A libpq connection string or postgresql:// URI, and its redacted form. Copyable.
class PgTarget {
 public:
  // INVALID_ARGUMENT if libpq cannot parse `conninfo`; the message never repeats it.
  static absl::StatusOr<PgTarget> Parse(absl::string_view conninfo);

  // As given: may hold a password. Only for libpq.
  const std::string& conninfo() const { return conninfo_; }
  // "postgresql://user@host:port/dbname": what every message and log line names.
  const std::string& display() const { return display_; }

 private:
  PgTarget(std::string conninfo, std::string display)
      : conninfo_(std::move(conninfo)), display_(std::move(display)) {}
  std::string conninfo_;
  std::string display_;
};

// Parameters in binary format. Bytes() keeps a view: the bytes must outlive the call.
// Movable (the owned bytes stay where they are), not copyable.
class PgParams {
 public:
  PgParams() = default;
  PgParams(PgParams&&) noexcept = default;
  PgParams& operator=(PgParams&&) noexcept = default;

  PgParams& Int2(int16_t value);
  PgParams& Int4(int32_t value);
  PgParams& Int8(int64_t value);
  PgParams& Bytes(absl::string_view value);
  // Takes the bytes (an array built by PgArray, a converted integer).
  PgParams& Owned(std::string value);

  int size() const { return static_cast<int>(values_.size()); }
  const char* const* values() const { return values_.data(); }
  const int* lengths() const { return lengths_.data(); }
  const int* formats() const { return formats_.data(); }

 private:
  std::vector<std::unique_ptr<std::string>> owned_;  // stable addresses
  std::vector<const char*> values_;
  std::vector<int> lengths_;
  std::vector<int> formats_;
};

// A one-dimensional array parameter in PostgreSQL's binary array format.
class PgArray {
 public:
  static PgArray Int2(size_t reserve);
  static PgArray Int4(size_t reserve);
  static PgArray Int8(size_t reserve);
  static PgArray Bytea(size_t reserve_elements, size_t reserve_bytes);
  void AddInt2(int16_t value);
  void AddInt4(int32_t value);
  void AddInt8(int64_t value);
  void AddBytes(absl::string_view value);
  // The array's bytes; the builder is spent.
  std::string Finish() &&;

 private:
  PgArray(uint32_t element_oid, size_t reserve);
  std::string bytes_;
  uint32_t count_ = 0;
};

struct PgResultDeleter {
  void operator()(PGresult* result) const;
};
// A result; rows are read with the helpers below (binary format).
using PgResult = std::unique_ptr<PGresult, PgResultDeleter>;
int PgRows(const PGresult* result);
absl::string_view PgBytes(const PGresult* result, int row, int column);
int64_t PgInt8(const PGresult* result, int row, int column);
bool PgBool(const PGresult* result, int row, int column);
std::string PgText(const PGresult* result, int row, int column);  // for text columns
int64_t PgAffectedRows(const PGresult* result);

// The SQLSTATE a status from this file carries, or "" (e.g. a connection failure).
std::string SqlState(const absl::Status& status);

// One prepared statement and its parameters, a step of RunPipeline.
struct PgStep {
  const pgsql::Statement* statement;
  PgParams params;
};

// One connection. Thread-compatible: one user at a time (the pool hands it out).
class PgConnection {
 public:
  // Connects with ckpt's defaults under what `target` says (connect_timeout=10,
  // keepalives, tcp_user_timeout, target_session_attrs=read-write, application_name)
  // and sets synchronous_commit=on: a commit returns once durable (and replicated,
  // when the server has synchronous standbys).
  static absl::StatusOr<std::unique_ptr<PgConnection>> Connect(const PgTarget& target);
  ~PgConnection();
  PgConnection(const PgConnection&) = delete;
  PgConnection& operator=(const PgConnection&) = delete;

  // Prepares every statement of pg_sql.h (one round trip). REQUIRES: the tables exist.
  absl::Status PrepareAll();
  // Prepares one statement (of another table set: the bench's, the shard leases').
  absl::Status Prepare(const pgsql::Statement& statement);
  // Runs a prepared statement; binary results.
  absl::StatusOr<PgResult> Run(const pgsql::Statement& statement, const PgParams& params);
  // Runs `sql` once (not prepared) with `params`; binary results. For set-up.
  absl::StatusOr<PgResult> Exec(const char* sql, const PgParams& params, absl::string_view what);
  // Runs `sql` (text, no parameters, possibly several statements); `what` names it.
  absl::Status RunSql(const char* sql, absl::string_view what);
  // The same, returning the last statement's result (text format).
  absl::StatusOr<PgResult> QuerySql(const char* sql, absl::string_view what);
  // Sends every step, then one sync, in one round trip: the steps run as ONE implicit
  // transaction, committed at the sync (rolled back entirely if any step fails). Returns
  // the first failure. A connection lost before the sync's answer is UNAVAILABLE with
  // an unknown outcome: the transaction may or may not have committed.
  absl::Status RunPipeline(std::vector<PgStep>& steps);

  // False once libpq reports the connection broken: drop it and connect again.
  bool ok() const;
  // ok(), and the server has not closed the connection since it was last used (a
  // restarted server closes every connection: an idle one finds out only here).
  bool Healthy();
  const PgTarget& target() const { return target_; }

 private:
  PgConnection(PgTarget target, PGconn* conn) : target_(std::move(target)), conn_(conn) {}
  absl::Status Error(const PGresult* result, absl::string_view what) const;
  absl::Status ReadPipeline(const std::vector<PgStep>& steps);

  const PgTarget target_;
  PGconn* const conn_;
};

}  // namespace ckpt

#endif  // CKPT_SERVICE_STORE_PG_CONNECTION_H_
