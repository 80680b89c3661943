#include "tools/bench/replica_set.h"

#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "service/store/pg_connection.h"
#include "tests/testing/free_port.h"

namespace ckpt {
namespace bench {
namespace {

// Bounds for a broken cluster, never a measurement.
constexpr absl::Duration kStartBound = absl::Seconds(60);
constexpr absl::Duration kSettleBound = absl::Seconds(120);
constexpr absl::Duration kPoll = absl::Milliseconds(100);
constexpr int kPortAttempts = 3;  // another process may take a free port first

bool ValidSchema(const std::string& schema) {
  if (schema.empty() || schema.size() > 40 || absl::ascii_isdigit(schema[0])) return false;
  for (char c : schema) {
    if (!absl::ascii_islower(c) && !absl::ascii_isdigit(c) && c != '_') return false;
  }
  return true;
}

// The database URI with `schema` as the connections' search_path, where the store
// creates its tables.
std::string WithSearchPath(const std::string& uri, const std::string& schema) {
  return absl::StrCat(uri, absl::StrContains(uri, "?") ? "&" : "?", "options=-c%20search_path%3D",
                      schema);
}

// Starts one ckptd on a free port; a replica advertises it.
absl::StatusOr<std::unique_ptr<ChildServer>> StartOne(const ReplicaSetOptions& options,
                                                      const std::string& store_uri) {
  absl::Status last;
  for (int attempt = 0; attempt < kPortAttempts; ++attempt) {
    absl::StatusOr<int> port = testutil::FreeLoopbackPort();
    if (!port.ok()) return port.status();
    const std::string address = absl::StrCat("127.0.0.1:", *port);
    std::vector<std::string> argv = {options.ckptd, "--listen=" + address,
                                     "--http_listen=", "--store=" + store_uri};
    if (options.replicas > 0) {
      argv.push_back("--advertise=" + address);
      argv.push_back(absl::StrCat("--shards=", options.shards));
    }
    absl::StatusOr<std::unique_ptr<ChildServer>> server = ChildServer::Start(argv, kStartBound);
    if (server.ok() || !absl::StrContains(server.status().message(), "in use")) return server;
    last = server.status();
  }
  return last;
}

}  // namespace

absl::StatusOr<std::unique_ptr<ReplicaSet>> ReplicaSet::Start(const ReplicaSetOptions& options) {
  if (!ValidSchema(options.schema) || options.replicas < 0 || options.shards < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("a replica set needs a schema name of [a-z0-9_] (got \"", options.schema,
                     "\"), replicas >= 0 and shards >= 1"));
  }
  absl::StatusOr<PgTarget> target = PgTarget::Parse(options.database_uri);
  if (!target.ok()) return target.status();
  absl::StatusOr<std::unique_ptr<PgConnection>> admin = PgConnection::Connect(*target);
  if (!admin.ok()) return admin.status();
  const std::string create = absl::StrCat("CREATE SCHEMA ", options.schema);
  if (absl::Status s = (*admin)->RunSql(create.c_str(), "create the schema"); !s.ok()) return s;
  std::unique_ptr<ReplicaSet> set(new ReplicaSet(options, std::move(*admin)));
  if (absl::Status s = set->StartServers(); !s.ok()) return s;
  if (absl::Status s = set->AwaitFairShares(); !s.ok()) return s;
  return set;
}

ReplicaSet::ReplicaSet(ReplicaSetOptions options, std::unique_ptr<PgConnection> admin)
    : options_(std::move(options)),
      admin_(std::move(admin)),
      store_uri_(WithSearchPath(options_.database_uri, options_.schema)) {}

ReplicaSet::~ReplicaSet() {
  Stop().IgnoreError();
  const std::string drop = absl::StrCat("DROP SCHEMA IF EXISTS ", options_.schema, " CASCADE");
  admin_->RunSql(drop.c_str(), "drop the schema").IgnoreError();
}

// All at once, so that the replicas are members before the first takes every shard.
absl::Status ReplicaSet::StartServers() {
  const int count = std::max(1, options_.replicas);
  std::vector<absl::StatusOr<std::unique_ptr<ChildServer>>> started;
  for (int i = 0; i < count; ++i) started.push_back(absl::UnknownError("not started"));
  std::vector<std::thread> starters;
  for (int i = 0; i < count; ++i) {
    starters.emplace_back([&, i] { started[i] = StartOne(options_, store_uri_); });
  }
  for (std::thread& t : starters) t.join();
  absl::Status status;
  for (auto& server : started) {
    if (server.ok()) {
      servers_.push_back(std::move(*server));
    } else if (status.ok()) {
      status = server.status();
    }
  }
  return status;
}

absl::Status ReplicaSet::AwaitFairShares() const {
  if (options_.replicas == 0) return absl::OkStatus();
  const int n = options_.replicas, s = options_.shards;
  const absl::Time give_up = absl::Now() + kSettleBound;
  for (;;) {
    absl::StatusOr<std::map<int, std::string>> owners = Owners();
    if (!owners.ok()) return owners.status();
    std::map<std::string, int> held;
    for (const auto& [shard, address] : *owners) ++held[address];
    bool fair = static_cast<int>(owners->size()) == s && static_cast<int>(held.size()) == n;
    for (const auto& server : servers_) {
      const int mine = held.count(server->address()) ? held[server->address()] : 0;
      fair = fair && mine >= s / n && mine <= (s + n - 1) / n;
    }
    if (fair) return absl::OkStatus();
    if (absl::Now() > give_up) {
      return absl::DeadlineExceededError(absl::StrCat(
          n, " replicas did not split ", s, " shards fairly within ",
          absl::FormatDuration(kSettleBound), "; the first one said: ", servers_[0]->Stderr()));
    }
    absl::SleepFor(kPoll);
  }
}

absl::StatusOr<std::map<int, std::string>> ReplicaSet::Owners() const {
  std::map<int, std::string> owners;
  if (options_.replicas == 0) {
    for (int shard = 0; shard < options_.shards; ++shard) owners[shard] = servers_[0]->address();
    return owners;
  }
  const std::string sql = absl::StrCat("SELECT shard, address FROM ", options_.schema,
                                       ".ckpt_owners WHERE expires > now()");
  absl::StatusOr<PgResult> rows = admin_->QuerySql(sql.c_str(), "read the shard owners");
  if (!rows.ok()) {
    // The replicas create the table: until the first has, no shard has an owner.
    if (SqlState(rows.status()) == "42P01") return owners;
    return rows.status();
  }
  for (int row = 0; row < PgRows(rows->get()); ++row) {
    int shard = 0;
    if (!absl::SimpleAtoi(PgText(rows->get(), row, 0), &shard)) {
      return absl::InternalError("ckpt_owners has a shard that is not a number");
    }
    owners[shard] = PgText(rows->get(), row, 1);
  }
  return owners;
}

absl::StatusOr<ReplicaSet::DatabaseProgress> ReplicaSet::Progress() const {
  absl::StatusOr<PgResult> row = admin_->QuerySql(
      "SELECT txid_current(), pg_current_wal_lsn() - '0/0'::pg_lsn", "read the progress");
  if (!row.ok()) return row.status();
  DatabaseProgress progress;
  double wal = 0;  // numeric
  if (PgRows(row->get()) != 1 || !absl::SimpleAtoi(PgText(row->get(), 0, 0), &progress.xid) ||
      !absl::SimpleAtod(PgText(row->get(), 0, 1), &wal)) {
    return absl::InternalError("txid_current() and pg_current_wal_lsn() are not numbers");
  }
  progress.wal_bytes = static_cast<int64_t>(wal);
  return progress;
}

absl::Status ReplicaSet::Stop() {
  absl::Status first;
  while (!servers_.empty()) {
    absl::Status s = servers_.back()->Stop();
    if (!s.ok() && first.ok()) first = s;
    servers_.pop_back();
  }
  return first;
}

}  // namespace bench
}  // namespace ckpt
