#include "tools/bench/peers.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"

namespace ckpt {
namespace bench {
namespace {

// physicsnemo-curator's table of completed indices (one row per index).
constexpr char kSchema[] =
    "CREATE TABLE IF NOT EXISTS pipeline_runs (run_id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " config_hash TEXT NOT NULL, config_json TEXT NOT NULL, started_at TEXT NOT NULL,"
    " UNIQUE(config_hash));"
    "CREATE TABLE IF NOT EXISTS completed_indices (idx INTEGER PRIMARY KEY,"
    " run_id INTEGER NOT NULL REFERENCES pipeline_runs(run_id), output_paths TEXT NOT NULL,"
    " completed_at TEXT NOT NULL, elapsed_ns INTEGER, error TEXT);"
    "INSERT OR IGNORE INTO pipeline_runs(config_hash, config_json, started_at)"
    " VALUES ('sha256:bench', '{}', '2025-12-14T20:43:00');";

constexpr char kInsert[] =
    "INSERT OR REPLACE INTO completed_indices(idx, run_id, output_paths, completed_at,"
    " elapsed_ns, error) VALUES (?1, 1, ?2, ?3, ?4, NULL)";

absl::Status SqliteError(sqlite3* db, const std::string& what) {
  return absl::InternalError(absl::StrCat("sqlite ", what, ": ", sqlite3_errmsg(db)));
}

// One connection with its prepared insert. Not thread-safe: one per thread.
class SqliteWriter {
 public:
  ~SqliteWriter() {
    if (insert_ != nullptr) sqlite3_finalize(insert_);
    if (db_ != nullptr) sqlite3_close(db_);
  }

  // Opens the database in WAL mode with synchronous=FULL; `prepare` also prepares the
  // insert (the schema must exist).
  absl::Status Open(const std::string& path, bool prepare) {
    if (sqlite3_open(path.c_str(), &db_) != SQLITE_OK) return SqliteError(db_, "open");
    // Writers wait for the single write lock instead of failing (set before anything
    // takes a lock). WAL mode is stored in the file: the first connection sets it.
    sqlite3_busy_timeout(db_, 600000);
    if (sqlite3_exec(db_, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;", nullptr, nullptr,
                     nullptr) != SQLITE_OK) {
      return SqliteError(db_, "pragmas");
    }
    if (prepare && sqlite3_prepare_v2(db_, kInsert, -1, &insert_, nullptr) != SQLITE_OK) {
      return SqliteError(db_, "prepare");
    }
    return absl::OkStatus();
  }

  absl::Status Exec(const char* sql) {
    return sqlite3_exec(db_, sql, nullptr, nullptr, nullptr) == SQLITE_OK ? absl::OkStatus()
                                                                          : SqliteError(db_, sql);
  }

  // Records [begin, end) in one transaction.
  absl::Status Commit(uint64_t begin, uint64_t end) {
    if (absl::Status s = Exec("BEGIN IMMEDIATE"); !s.ok()) return s;
    for (uint64_t i = begin; i < end; ++i) {
      const v1::ItemResult& result = ResultFor(i);
      const std::string paths = absl::StrCat("[\"", result.output_paths(0), "\"]");
      const std::string when =
          absl::FormatTime("%Y-%m-%dT%H:%M:%E6S", absl::Now(), absl::UTCTimeZone());
      const int64_t elapsed_ns = result.metrics().wall_time().seconds() * 1000000000 +
                                 result.metrics().wall_time().nanos();
      sqlite3_bind_int64(insert_, 1, static_cast<sqlite3_int64>(i));
      sqlite3_bind_text(insert_, 2, paths.data(), static_cast<int>(paths.size()), SQLITE_TRANSIENT);
      sqlite3_bind_text(insert_, 3, when.data(), static_cast<int>(when.size()), SQLITE_TRANSIENT);
      sqlite3_bind_int64(insert_, 4, elapsed_ns);
      const int rc = sqlite3_step(insert_);
      sqlite3_reset(insert_);
      if (rc != SQLITE_DONE) return SqliteError(db_, "insert");
    }
    return Exec("COMMIT");
  }

 private:
  sqlite3* db_ = nullptr;
  sqlite3_stmt* insert_ = nullptr;
};

// Thread t's share of `items`: [begin, end).
std::pair<uint64_t, uint64_t> Share(uint64_t items, int threads, int t) {
  const uint64_t per = items / threads;
  const uint64_t begin = per * t;
  return {begin, t == threads - 1 ? items : begin + per};
}

absl::Status WriteFileSynced(const std::string& path, const std::string& data) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return absl::InternalError(absl::StrCat("open ", path, ": ", std::strerror(errno)));
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      ::close(fd);
      return absl::InternalError(absl::StrCat("write ", path, ": ", std::strerror(errno)));
    }
    done += static_cast<size_t>(n);
  }
  const bool synced = ::fsync(fd) == 0;
  ::close(fd);
  if (!synced) return absl::InternalError(absl::StrCat("fsync ", path, ": ", std::strerror(errno)));
  return absl::OkStatus();
}

// The whole checkpoint: every completed index with its result, as a seed keeps it.
class JsonCheckpoint {
 public:
  explicit JsonCheckpoint(std::string dir)
      : path_(dir + "/checkpoint.json"), temp_(dir + "/checkpoint.json.tmp") {}

  absl::Status Complete(uint64_t index) {
    const v1::ItemResult& result = ResultFor(index);
    std::string entry = absl::StrCat("{\"output_paths\":[\"", result.output_paths(0),
                                     "\"],\"payload\":\"", result.payload(),
                                     "\",\"wall_time_s\":", result.metrics().wall_time().seconds(),
                                     ".", result.metrics().wall_time().nanos(), "}");
    absl::MutexLock lock(&mu_);
    completed_[index] = std::move(entry);
    std::string text = "{\"config_hash\":\"sha256:bench\",\"completed\":{";
    bool first = true;
    for (const auto& [i, e] : completed_) {
      absl::StrAppend(&text, first ? "" : ",", "\"", i, "\":", e);
      first = false;
    }
    text += "}}";
    if (absl::Status s = WriteFileSynced(temp_, text); !s.ok()) return s;
    if (::rename(temp_.c_str(), path_.c_str()) != 0) {
      return absl::InternalError(absl::StrCat("rename: ", std::strerror(errno)));
    }
    return absl::OkStatus();
  }

 private:
  const std::string path_;
  const std::string temp_;
  absl::Mutex mu_;
  std::map<uint64_t, std::string> completed_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

absl::StatusOr<ClientsResult> RunSqlitePeer(const PeerOptions& options) {
  const std::string path = options.dir + "/checkpoint.db";
  {
    SqliteWriter setup;
    if (absl::Status s = setup.Open(path, /*prepare=*/false); !s.ok()) return s;
    if (absl::Status s = setup.Exec(kSchema); !s.ok()) return s;
  }
  std::vector<std::unique_ptr<SqliteWriter>> writers(options.threads);
  const uint64_t per_txn = static_cast<uint64_t>(std::max(1, options.per_txn));
  return RunClients(
      options.threads,
      [&](int t) {
        writers[t] = std::make_unique<SqliteWriter>();
        return writers[t]->Open(path, /*prepare=*/true);
      },
      [&](int t, Latencies* latencies) -> absl::StatusOr<uint64_t> {
        const auto [begin, end] = Share(options.items, options.threads, t);
        for (uint64_t i = begin; i < end; i += per_txn) {
          const absl::Time start = absl::Now();
          if (absl::Status s = writers[t]->Commit(i, std::min(end, i + per_txn)); !s.ok()) {
            return s;
          }
          latencies->Add(absl::Now() - start);
        }
        return end - begin;
      });
}

absl::StatusOr<ClientsResult> RunJsonPeer(const PeerOptions& options) {
  JsonCheckpoint checkpoint(options.dir);
  return RunClients(
      options.threads, [](int) { return absl::OkStatus(); },
      [&](int t, Latencies* latencies) -> absl::StatusOr<uint64_t> {
        const auto [begin, end] = Share(options.items, options.threads, t);
        for (uint64_t i = begin; i < end; ++i) {
          const absl::Time start = absl::Now();
          if (absl::Status s = checkpoint.Complete(i); !s.ok()) return s;
          latencies->Add(absl::Now() - start);
        }
        return end - begin;
      });
}

}  // namespace bench
}  // namespace ckpt
