#include "tests/testing/postgres_cluster.h"

#include <fcntl.h>
#include <postgresql/libpq-fe.h>
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "tests/testing/free_port.h"

namespace ckpt {
namespace testutil {
namespace {

// A bound for a hung postgres, never a pass/fail threshold.
constexpr absl::Duration kBound = absl::Seconds(120);
constexpr char kReady[] = "database system is ready to accept connections";

// Ourselves, unless root: then Debian's `postgres` user, else `nobody`.
void PickUser(int* uid, int* gid) {
  *uid = *gid = -1;
  if (::geteuid() != 0) return;
  for (const char* name : {"postgres", "nobody"}) {
    if (const passwd* pw = ::getpwnam(name); pw != nullptr) {
      *uid = static_cast<int>(pw->pw_uid);
      *gid = static_cast<int>(pw->pw_gid);
      return;
    }
  }
}

std::string RandomPassword() {
  char bytes[12] = {};
  std::ifstream("/dev/urandom", std::ios::binary).read(bytes, sizeof(bytes));
  return absl::BytesToHexString(absl::string_view(bytes, sizeof(bytes)));
}

// Runs `argv` to completion; INTERNAL with its output unless it exits 0.
absl::Status RunToExit(const std::vector<std::string>& argv, const ChildSetup& setup) {
  absl::StatusOr<ChildProcess> child = SpawnChild(argv, setup);
  if (!child.ok()) return child.status();
  ::close(child->stdin_fd);
  const int status = WaitFor(child->pid);
  child->stdout_.reset();  // joins its reader: the child is gone
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return absl::OkStatus();
  return absl::InternalError(
      absl::StrCat(argv[0], " failed (wait status ", status, "): ", child->stderr_->Text()));
}

absl::StatusOr<std::unique_ptr<PGconn, void (*)(PGconn*)>> Connect(const std::string& uri) {
  std::unique_ptr<PGconn, void (*)(PGconn*)> conn(PQconnectdb(uri.c_str()), &PQfinish);
  if (PQstatus(conn.get()) != CONNECTION_OK) {
    return absl::UnavailableError(absl::StrCat("connect: ", PQerrorMessage(conn.get())));
  }
  return conn;
}

}  // namespace

absl::StatusOr<std::unique_ptr<PostgresCluster>> PostgresCluster::Start(
    const PostgresClusterOptions& options) {
  int uid, gid;
  PickUser(&uid, &gid);
  std::string pattern = options.parent_dir + "/ckpt-pg.XXXXXX";
  if (::mkdtemp(pattern.data()) == nullptr) {
    return absl::InternalError(
        absl::StrCat("mkdtemp in ", options.parent_dir, ": ", std::strerror(errno)));
  }
  if (uid >= 0 && ::chown(pattern.c_str(), uid, gid) != 0) {
    return absl::InternalError(absl::StrCat("chown ", pattern, ": ", std::strerror(errno)));
  }
  std::unique_ptr<PostgresCluster> cluster(new PostgresCluster(options, pattern, uid, gid));
  cluster->password_ = RandomPassword();
  if (absl::Status s = cluster->InitDb(); !s.ok()) return s;
  absl::Status launched;
  for (int attempt = 0; attempt < 5; ++attempt) {  // another process may take the port
    absl::StatusOr<int> port = FreeLoopbackPort();
    if (!port.ok()) return port.status();
    cluster->port_ = *port;
    launched = cluster->Launch();
    if (launched.ok() || !absl::StrContains(launched.message(), "could not bind")) break;
  }
  if (!launched.ok()) return launched;
  return cluster;
}

absl::Status PostgresCluster::InitDb() {
  const std::string pwfile = dir_ + "/password";
  { std::ofstream(pwfile) << password_ << "\n"; }
  if (::chmod(pwfile.c_str(), 0600) != 0 ||
      (uid_ >= 0 && ::chown(pwfile.c_str(), uid_, gid_) != 0)) {
    return absl::InternalError(absl::StrCat("chown ", pwfile, ": ", std::strerror(errno)));
  }
  ChildSetup setup;
  setup.uid = uid_;
  setup.gid = gid_;
  absl::Status status =
      RunToExit({options_.bin_dir + "/initdb", "-D", dir_ + "/data", "-U", "ckpt",
                 "--pwfile=" + pwfile, "--auth-host=scram-sha-256", "--auth-local=trust",
                 "--no-sync", "-E", "UTF8", "--locale=C", "--no-instructions"},
                setup);
  ::unlink(pwfile.c_str());
  return status;
}

absl::Status PostgresCluster::Launch() {
  std::vector<std::string> argv = {options_.bin_dir + "/postgres",
                                   "-D",
                                   dir_ + "/data",
                                   "-p",
                                   absl::StrCat(port_),
                                   "-k",
                                   dir_,
                                   "-c",
                                   "listen_addresses=127.0.0.1",
                                   "-c",
                                   absl::StrCat("fsync=", options_.fsync ? "on" : "off"),
                                   "-c",
                                   "max_connections=200"};
  for (const std::string& setting : options_.settings) {
    argv.push_back("-c");
    argv.push_back(setting);
  }
  ChildSetup setup;
  setup.uid = uid_;
  setup.gid = gid_;
  absl::StatusOr<ChildProcess> child = SpawnChild(argv, setup);
  if (!child.ok()) return child.status();
  ::close(child->stdin_fd);
  postmaster_ = std::move(*child);
  absl::StatusOr<std::string> ready = postmaster_.stderr_->AwaitLine(kReady, kBound);
  if (!ready.ok()) {
    ::kill(postmaster_.pid, SIGKILL);
    WaitFor(postmaster_.pid);
    postmaster_.stderr_->AwaitEnd(kBound);
    postmaster_ = ChildProcess();
    return absl::InternalError(absl::StrCat("postgres did not start: ", ready.status().message()));
  }
  return absl::OkStatus();
}

PostgresCluster::~PostgresCluster() {
  if (running()) Stop().IgnoreError();
  AwaitOldBackends().IgnoreError();
  std::error_code ignored;
  std::filesystem::remove_all(dir_, ignored);
}

std::string PostgresCluster::Uri(const std::string& database, const std::string& query) const {
  return absl::StrCat("postgresql://ckpt:", password_, "@127.0.0.1:", port_, "/", database,
                      query.empty() ? "" : "?", query);
}

absl::Status PostgresCluster::Sql(const std::string& sql, const std::string& database) const {
  return Query(sql, database).status();
}

absl::StatusOr<std::string> PostgresCluster::Query(const std::string& sql,
                                                   const std::string& database) const {
  auto conn = Connect(Uri(database));
  if (!conn.ok()) return conn.status();
  std::unique_ptr<PGresult, void (*)(PGresult*)> result(PQexec(conn->get(), sql.c_str()), &PQclear);
  const ExecStatusType status = PQresultStatus(result.get());
  if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
    return absl::InternalError(absl::StrCat(sql, ": ", PQerrorMessage(conn->get())));
  }
  if (status == PGRES_COMMAND_OK || PQntuples(result.get()) == 0) return std::string();
  return std::string(PQgetvalue(result.get(), 0, 0));
}

void PostgresCluster::KillPostmaster() {
  if (!running()) return;
  ::kill(postmaster_.pid, SIGKILL);
  WaitFor(postmaster_.pid);
  postmaster_.pid = -1;  // its stderr stays open until the backends are gone
}

absl::Status PostgresCluster::Stop() {
  if (!running()) return absl::OkStatus();
  ::kill(postmaster_.pid, SIGINT);
  const int status = WaitFor(postmaster_.pid);
  postmaster_.pid = -1;
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return absl::InternalError(absl::StrCat("postgres stopped with wait status ", status));
  }
  return absl::OkStatus();
}

// The postmaster's children inherit its stderr: once it ends, every one has exited and
// the old shared memory is free for a new postmaster.
absl::Status PostgresCluster::AwaitOldBackends() const {
  if (postmaster_.stderr_ == nullptr || postmaster_.stderr_->AwaitEnd(kBound)) {
    return absl::OkStatus();
  }
  return absl::DeadlineExceededError("postgres backends still running after the postmaster");
}

absl::Status PostgresCluster::Restart() {
  if (running()) return absl::FailedPreconditionError("postgres is running");
  if (absl::Status s = AwaitOldBackends(); !s.ok()) return s;
  postmaster_ = ChildProcess();
  return Launch();
}

}  // namespace testutil
}  // namespace ckpt
