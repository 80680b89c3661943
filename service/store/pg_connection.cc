#include "service/store/pg_connection.h"

#include <poll.h>
#include <postgresql/libpq-fe.h>

#include <cstring>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/cord.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "service/common/status_macros.h"

namespace ckpt {
namespace {

constexpr uint32_t kInt2Oid = 21;
constexpr uint32_t kInt4Oid = 23;
constexpr uint32_t kInt8Oid = 20;
constexpr uint32_t kByteaOid = 17;
constexpr char kSqlStatePayload[] = "ckpt.sqlstate";

void AppendBigEndian32(std::string* out, uint32_t value) {
  for (int shift = 24; shift >= 0; shift -= 8) out->push_back(static_cast<char>(value >> shift));
}

std::string BigEndian(uint64_t value, int bytes) {
  std::string out;
  for (int shift = 8 * (bytes - 1); shift >= 0; shift -= 8) {
    out.push_back(static_cast<char>(value >> shift));
  }
  return out;
}

// libpq's messages end in newlines and may span lines: one line for logs.
std::string OneLine(absl::string_view message) {
  std::vector<absl::string_view> lines;
  for (absl::string_view line : absl::StrSplit(message, '\n')) {
    line = absl::StripAsciiWhitespace(line);
    if (!line.empty()) lines.push_back(line);
  }
  return lines.empty() ? "no detail from libpq" : absl::StrJoin(lines, "; ");
}

absl::StatusCode CodeForSqlState(absl::string_view state) {
  if (state == "53100" || state == "53200") return absl::StatusCode::kResourceExhausted;
  if (state == "XX001" || state == "XX002") return absl::StatusCode::kDataLoss;
  if (absl::StartsWith(state, "08") || absl::StartsWith(state, "57P") || state == "53300" ||
      state == "40001" || state == "40P01" || state == "25006" || state == "55P03" ||
      state == pgsql::kFencedState) {
    return absl::StatusCode::kUnavailable;
  }
  if (absl::StartsWith(state, "28") || state == "3D000" || state == "42501") {
    return absl::StatusCode::kFailedPrecondition;
  }
  return absl::StatusCode::kInternal;
}

// What a libpq option is set to in a parsed connection string ("" if unset).
std::string OptionValue(const PQconninfoOption* options, absl::string_view keyword) {
  for (const PQconninfoOption* o = options; o->keyword != nullptr; ++o) {
    if (keyword == o->keyword && o->val != nullptr) return o->val;
  }
  return "";
}

// "host1:5432,host2:5433" from libpq's comma-separated host and port lists.
std::string HostList(const std::string& hosts, const std::string& ports) {
  std::vector<std::string> host = absl::StrSplit(hosts, ',');
  std::vector<std::string> port = absl::StrSplit(ports, ',');
  std::vector<std::string> out;
  for (size_t i = 0; i < host.size(); ++i) {
    const std::string& p = port.size() == 1 ? port[0] : i < port.size() ? port[i] : "";
    out.push_back(p.empty() ? host[i] : absl::StrCat(host[i], ":", p));
  }
  return absl::StrJoin(out, ",");
}

}  // namespace

// ---------------------------------------------------------------- PgTarget

absl::StatusOr<PgTarget> PgTarget::Parse(absl::string_view conninfo) {
  const std::string text(conninfo);
  char* error = nullptr;
  PQconninfoOption* options = PQconninfoParse(text.c_str(), &error);
  if (options == nullptr) {
    if (error != nullptr) PQfreemem(error);  // may quote the string: never shown
    return absl::InvalidArgumentError(
        "--store is not a PostgreSQL connection string: give a URI "
        "(postgresql://user@host:5432/dbname?target_session_attrs=read-write) or key=value "
        "pairs (host=... dbname=...); the value is not repeated here because it may hold a "
        "password");
  }
  std::string hosts = OptionValue(options, "host");
  if (hosts.empty()) hosts = OptionValue(options, "hostaddr");
  const std::string user = OptionValue(options, "user");
  const std::string dbname = OptionValue(options, "dbname");
  std::string display = absl::StrCat("postgresql://", user.empty() ? "" : absl::StrCat(user, "@"),
                                     HostList(hosts, OptionValue(options, "port")), "/", dbname);
  PQconninfoFree(options);
  return PgTarget(text, std::move(display));
}

// ---------------------------------------------------------------- params and arrays

PgParams& PgParams::Int2(int16_t value) {
  return Owned(BigEndian(static_cast<uint16_t>(value), 2));
}
PgParams& PgParams::Int4(int32_t value) {
  return Owned(BigEndian(static_cast<uint32_t>(value), 4));
}
PgParams& PgParams::Int8(int64_t value) {
  return Owned(BigEndian(static_cast<uint64_t>(value), 8));
}

PgParams& PgParams::Bytes(absl::string_view value) {
  // A non-null pointer even for empty bytes: null would be SQL NULL.
  values_.push_back(value.data() != nullptr ? value.data() : "");
  lengths_.push_back(static_cast<int>(value.size()));
  formats_.push_back(1);
  return *this;
}

PgParams& PgParams::Owned(std::string value) {
  owned_.push_back(std::make_unique<std::string>(std::move(value)));
  return Bytes(*owned_.back());
}

PgArray::PgArray(uint32_t element_oid, size_t reserve) {
  bytes_.reserve(20 + reserve);
  AppendBigEndian32(&bytes_, 1);  // dimensions
  AppendBigEndian32(&bytes_, 0);  // no NULLs
  AppendBigEndian32(&bytes_, element_oid);
  AppendBigEndian32(&bytes_, 0);  // element count, set by Finish
  AppendBigEndian32(&bytes_, 1);  // lower bound
}

PgArray PgArray::Int2(size_t reserve) { return PgArray(kInt2Oid, reserve * 6); }

PgArray PgArray::Int8(size_t reserve) { return PgArray(kInt8Oid, reserve * 12); }

PgArray PgArray::Bytea(size_t reserve_elements, size_t reserve_bytes) {
  return PgArray(kByteaOid, reserve_elements * 4 + reserve_bytes);
}

PgArray PgArray::Int4(size_t reserve) { return PgArray(kInt4Oid, reserve * 8); }

void PgArray::AddInt4(int32_t value) {
  AppendBigEndian32(&bytes_, 4);
  bytes_.append(BigEndian(static_cast<uint32_t>(value), 4));
  ++count_;
}

void PgArray::AddInt2(int16_t value) {
  AppendBigEndian32(&bytes_, 2);
  bytes_.append(BigEndian(static_cast<uint16_t>(value), 2));
  ++count_;
}

void PgArray::AddInt8(int64_t value) {
  AppendBigEndian32(&bytes_, 8);
  bytes_.append(BigEndian(static_cast<uint64_t>(value), 8));
  ++count_;
}

void PgArray::AddBytes(absl::string_view value) {
  AppendBigEndian32(&bytes_, static_cast<uint32_t>(value.size()));
  bytes_.append(value.data(), value.size());
  ++count_;
}

std::string PgArray::Finish() && {
  const std::string count = BigEndian(count_, 4);
  bytes_.replace(12, 4, count);
  return std::move(bytes_);
}

// ---------------------------------------------------------------- results

void PgResultDeleter::operator()(PGresult* result) const { PQclear(result); }

int PgRows(const PGresult* result) { return PQntuples(result); }

absl::string_view PgBytes(const PGresult* result, int row, int column) {
  return absl::string_view(PQgetvalue(result, row, column),
                           static_cast<size_t>(PQgetlength(result, row, column)));
}

int64_t PgInt8(const PGresult* result, int row, int column) {
  const absl::string_view bytes = PgBytes(result, row, column);
  uint64_t value = 0;
  for (char c : bytes) value = (value << 8) | static_cast<uint8_t>(c);
  return static_cast<int64_t>(value);
}

bool PgBool(const PGresult* result, int row, int column) {
  const absl::string_view bytes = PgBytes(result, row, column);
  return bytes.size() == 1 && bytes[0] != 0 && bytes[0] != 'f';
}

std::string PgText(const PGresult* result, int row, int column) {
  return std::string(PgBytes(result, row, column));
}

int64_t PgAffectedRows(const PGresult* result) {
  return std::strtoll(PQcmdTuples(const_cast<PGresult*>(result)), nullptr, 10);
}

std::string SqlState(const absl::Status& status) {
  const auto state = status.GetPayload(kSqlStatePayload);
  return state.has_value() ? std::string(*state) : "";
}

// ---------------------------------------------------------------- PgConnection

absl::StatusOr<std::unique_ptr<PgConnection>> PgConnection::Connect(const PgTarget& target) {
  // Defaults first, the caller's string after them: what it says wins (libpq applies
  // the keywords in order). keepalives and tcp_user_timeout notice a server that
  // vanished from the network instead of waiting on it forever.
  const char* const keywords[] = {"connect_timeout",
                                  "keepalives",
                                  "keepalives_idle",
                                  "keepalives_interval",
                                  "keepalives_count",
                                  "tcp_user_timeout",
                                  "target_session_attrs",
                                  "application_name",
                                  "dbname",
                                  nullptr};
  const char* const values[] = {
      "10",   "1", "10", "5", "3", "30000", "read-write", "ckptd", target.conninfo().c_str(),
      nullptr};
  PGconn* conn = PQconnectdbParams(keywords, values, /*expand_dbname=*/1);
  if (conn == nullptr || PQstatus(conn) != CONNECTION_OK) {
    const std::string why = conn != nullptr ? OneLine(PQerrorMessage(conn)) : "out of memory";
    if (conn != nullptr) PQfinish(conn);
    return absl::UnavailableError(
        absl::StrCat("cannot connect to PostgreSQL at ", target.display(), ": ", why));
  }
  // Notices and an idle connection's last words ("terminating connection") would go
  // to stderr raw; failures reach callers as statuses instead.
  PQsetNoticeReceiver(
      conn, [](void*, const PGresult*) {}, nullptr);
  std::unique_ptr<PgConnection> connection(new PgConnection(target, conn));
  // Plans are made for each execution, with the table's size and the arrays' lengths
  // as they are then: a plan cached while the table was small (a sequential scan, a
  // hash join) would stay while the table grows, and cost O(table) per statement.
  CKPT_RETURN_IF_ERROR(connection->RunSql(
      "SET synchronous_commit = on; SET plan_cache_mode = force_custom_plan", "set up"));
  return connection;
}

PgConnection::~PgConnection() { PQfinish(conn_); }

bool PgConnection::ok() const {
  return PQstatus(conn_) == CONNECTION_OK && PQpipelineStatus(conn_) == PQ_PIPELINE_OFF;
}

bool PgConnection::Healthy() {
  if (!ok()) return false;
  pollfd fd{PQsocket(conn_), POLLIN, 0};
  if (::poll(&fd, 1, 0) > 0) {
    // Readable while idle: the server's goodbye (an error, then EOF) or a notice.
    if (PQconsumeInput(conn_) != 1) return false;
  }
  return ok();
}

absl::Status PgConnection::Error(const PGresult* result, absl::string_view what) const {
  const char* state = result != nullptr ? PQresultErrorField(result, PG_DIAG_SQLSTATE) : nullptr;
  const char* primary =
      result != nullptr ? PQresultErrorField(result, PG_DIAG_MESSAGE_PRIMARY) : nullptr;
  if (state == nullptr || PQstatus(conn_) != CONNECTION_OK) {
    // No SQLSTATE: libpq's own failure, i.e. the connection.
    return absl::UnavailableError(absl::StrCat("PostgreSQL at ", target_.display(), ": ", what,
                                               ": connection lost (",
                                               OneLine(PQerrorMessage(conn_)), ")"));
  }
  absl::Status status(
      CodeForSqlState(state),
      absl::StrCat("PostgreSQL at ", target_.display(), ": ", what, ": ",
                   primary != nullptr ? primary : "error", " (SQLSTATE ", state, ")"));
  status.SetPayload(kSqlStatePayload, absl::Cord(state));
  return status;
}

absl::Status PgConnection::PrepareAll() {
  if (PQenterPipelineMode(conn_) != 1) return Error(nullptr, "prepare statements");
  for (const pgsql::Statement* s : pgsql::kAllStatements) {
    if (PQsendPrepare(conn_, s->name, s->sql, 0, nullptr) != 1) {
      return Error(nullptr, "prepare statements");
    }
  }
  if (PQpipelineSync(conn_) != 1) return Error(nullptr, "prepare statements");
  std::vector<PgStep> steps;
  for (const pgsql::Statement* s : pgsql::kAllStatements) steps.push_back({s, PgParams()});
  return ReadPipeline(steps);
}

absl::Status PgConnection::Prepare(const pgsql::Statement& statement) {
  PgResult result(PQprepare(conn_, statement.name, statement.sql, 0, nullptr));
  if (result == nullptr || PQresultStatus(result.get()) != PGRES_COMMAND_OK) {
    return Error(result.get(), statement.what);
  }
  return absl::OkStatus();
}

absl::StatusOr<PgResult> PgConnection::Run(const pgsql::Statement& statement,
                                           const PgParams& params) {
  PgResult result(PQexecPrepared(conn_, statement.name, params.size(), params.values(),
                                 params.lengths(), params.formats(), /*resultFormat=*/1));
  const ExecStatusType status =
      result != nullptr ? PQresultStatus(result.get()) : PGRES_FATAL_ERROR;
  if (status != PGRES_TUPLES_OK && status != PGRES_COMMAND_OK) {
    return Error(result.get(), statement.what);
  }
  return result;
}

absl::StatusOr<PgResult> PgConnection::Exec(const char* sql, const PgParams& params,
                                            absl::string_view what) {
  PgResult result(PQexecParams(conn_, sql, params.size(), nullptr, params.values(),
                               params.lengths(), params.formats(), /*resultFormat=*/1));
  const ExecStatusType status =
      result != nullptr ? PQresultStatus(result.get()) : PGRES_FATAL_ERROR;
  if (status != PGRES_TUPLES_OK && status != PGRES_COMMAND_OK) return Error(result.get(), what);
  return result;
}

absl::Status PgConnection::RunSql(const char* sql, absl::string_view what) {
  return QuerySql(sql, what).status();
}

absl::StatusOr<PgResult> PgConnection::QuerySql(const char* sql, absl::string_view what) {
  PgResult result(PQexec(conn_, sql));
  const ExecStatusType status =
      result != nullptr ? PQresultStatus(result.get()) : PGRES_FATAL_ERROR;
  if (status != PGRES_TUPLES_OK && status != PGRES_COMMAND_OK) return Error(result.get(), what);
  return result;
}

absl::Status PgConnection::RunPipeline(std::vector<PgStep>& steps) {
  if (PQenterPipelineMode(conn_) != 1) return Error(nullptr, "write");
  for (const PgStep& step : steps) {
    const PgParams& p = step.params;
    if (PQsendQueryPrepared(conn_, step.statement->name, p.size(), p.values(), p.lengths(),
                            p.formats(), /*resultFormat=*/1) != 1) {
      // Nothing was committed (no sync was sent); the connection is unusable.
      return Error(nullptr, step.statement->what);
    }
  }
  if (PQpipelineSync(conn_) != 1) return Error(nullptr, "write");
  return ReadPipeline(steps);
}

// Reads each step's results, then the sync's. The first failure wins; the ones after
// it are PIPELINE_ABORTED (skipped by the server). Leaves pipeline mode when done.
absl::Status PgConnection::ReadPipeline(const std::vector<PgStep>& steps) {
  absl::Status first = absl::OkStatus();
  for (const PgStep& step : steps) {
    PgResult result(PQgetResult(conn_));
    if (result == nullptr) {
      return absl::UnavailableError(absl::StrCat("PostgreSQL at ", target_.display(), ": ",
                                                 step.statement->what, ": connection lost (",
                                                 OneLine(PQerrorMessage(conn_)), ")"));
    }
    const ExecStatusType status = PQresultStatus(result.get());
    if (status == PGRES_FATAL_ERROR && first.ok())
      first = Error(result.get(), step.statement->what);
    while (PgResult(PQgetResult(conn_)) != nullptr) {
    }
  }
  PgResult sync(PQgetResult(conn_));
  if (sync == nullptr || PQresultStatus(sync.get()) != PGRES_PIPELINE_SYNC) {
    if (!first.ok()) return first;
    return absl::UnavailableError(absl::StrCat(
        "PostgreSQL at ", target_.display(),
        ": connection lost while committing: the write may or may not have been applied (",
        OneLine(PQerrorMessage(conn_)), ")"));
  }
  PQexitPipelineMode(conn_);
  return first;
}

}  // namespace ckpt
