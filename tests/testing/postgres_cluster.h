// A throwaway PostgreSQL cluster from Debian's PostgreSQL 15 binaries, for tests and the
// bench: initdb in a fresh directory, then postgres on a free loopback port, as an
// unprivileged user when run as root (PostgreSQL refuses to run as root, and Bazel
// runs tests as root here). Role `ckpt` (a superuser) with a random password, TCP on
// 127.0.0.1 only, the unix socket inside the directory. Stopped and removed when
// destroyed; if the process that started it dies, postgres is killed with it.
#ifndef CKPT_TESTS_TESTING_POSTGRES_CLUSTER_H_
#define CKPT_TESTS_TESTING_POSTGRES_CLUSTER_H_

#include <sys/types.h>

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "tests/testing/child_process.h"

namespace ckpt {
namespace testutil {

struct PostgresClusterOptions {
  // fsync=off is enough for tests: they kill processes, not the machine, and a killed
  // postgres loses nothing the kernel holds. The bench measures with fsync=on.
  bool fsync = false;
  std::string bin_dir = "/usr/lib/postgresql/15/bin";
  // Where the cluster's directory goes: one every user can enter ($TEST_TMPDIR is under
  // /root, which the unprivileged user cannot).
  std::string parent_dir = "/tmp";
  // Passed to postgres as -c NAME=VALUE, after ckpt's settings.
  std::vector<std::string> settings;
};

// Thread-compatible; the thread that calls Start must outlive the cluster (postgres
// is killed when it ends).
class PostgresCluster {
 public:
  static absl::StatusOr<std::unique_ptr<PostgresCluster>> Start(
      const PostgresClusterOptions& options = {});
  // Stops postgres (fast shutdown) if it runs and removes the directory.
  ~PostgresCluster();
  PostgresCluster(const PostgresCluster&) = delete;
  PostgresCluster& operator=(const PostgresCluster&) = delete;

  int port() const { return port_; }
  const std::string& password() const { return password_; }
  const std::string& dir() const { return dir_; }
  // postgresql://ckpt:PASSWORD@127.0.0.1:PORT/DATABASE, with `query` (e.g.
  // "options=-c%20search_path%3Dt1") appended after a '?'.
  std::string Uri(const std::string& database = "postgres", const std::string& query = "") const;
  // Runs `sql` (any number of statements) in `database` as ckpt.
  absl::Status Sql(const std::string& sql, const std::string& database = "postgres") const;
  // The first column of the first row `sql` returns, as text.
  absl::StatusOr<std::string> Query(const std::string& sql,
                                    const std::string& database = "postgres") const;

  // SIGKILLs the postmaster and reaps it: its backends notice and exit by themselves.
  void KillPostmaster();
  // Fast shutdown (SIGINT), waiting for it to finish.
  absl::Status Stop();
  // Starts postgres again on the same directory and port (crash recovery after a
  // kill), once the old backends are gone. REQUIRES: stopped or killed.
  absl::Status Restart();
  bool running() const { return postmaster_.pid > 0; }
  // The postmaster's pid (its backends are its children); -1 when not running.
  pid_t postmaster_pid() const { return postmaster_.pid; }

 private:
  PostgresCluster(PostgresClusterOptions options, std::string dir, int uid, int gid)
      : options_(std::move(options)), dir_(std::move(dir)), uid_(uid), gid_(gid) {}
  absl::Status InitDb();
  absl::Status Launch();
  absl::Status AwaitOldBackends() const;

  const PostgresClusterOptions options_;
  const std::string dir_;
  const int uid_;  // -1: run as ourselves
  const int gid_;
  std::string password_;
  int port_ = 0;
  ChildProcess postmaster_;
};

}  // namespace testutil
}  // namespace ckpt

#endif  // CKPT_TESTS_TESTING_POSTGRES_CLUSTER_H_
