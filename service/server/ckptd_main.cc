// ckptd: the ckpt checkpoint service. Flags and signals live here only.
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <tuple>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "service/common/api_limits.h"
#include "service/common/clock.h"
#include "service/common/log.h"
#include "service/server/activity.h"
#include "service/server/server.h"
#include "service/store/postgres_store.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:7700",
          "host:port to serve on, or unix:PATH for a Unix domain socket (created 0600: only "
          "its owner can connect). Loopback by default. A network address (0.0.0.0:PORT) "
          "needs --tls_cert/--tls_key and/or --auth_file, or --insecure.");
ABSL_FLAG(std::string, tls_cert, "",
          "PEM certificate chain to serve TLS with (with --tls_key), on --listen and, as "
          "HTTPS only, on --http_listen. Re-read on SIGHUP.");
ABSL_FLAG(std::string, tls_key, "", "PEM private key of --tls_cert. Re-read on SIGHUP.");
ABSL_FLAG(std::string, tls_client_ca, "",
          "PEM CA certificates: require every client to present a certificate signed by one "
          "(mutual TLS), over gRPC and HTTPS. Re-read on SIGHUP.");
ABSL_FLAG(std::string, auth_file, "",
          "File of principals (name, role, SHA-256 of tokens, certificate names, job-id "
          "prefix); every call except health checks must then authenticate. Re-read on "
          "SIGHUP; a broken file keeps the previous one. See docs/api.md.");
ABSL_FLAG(bool, insecure, false,
          "Allow a network --listen or --http_listen address with neither TLS nor "
          "--auth_file: anyone who reaches it may read, change and delete every job.");
ABSL_FLAG(std::string, http_listen, "127.0.0.1:7701",
          "host:port of the HTTP listener: the dashboard at /, the JSON API at /api/v1/ and "
          "Prometheus metrics at /metrics; HTTPS only with --tls_cert. Empty turns HTTP off. "
          "A network address needs TLS and/or --auth_file, or --insecure.");
ABSL_FLAG(int64_t, metrics_max_jobs, 100,
          "ckpt_job_items (items by state per job) covers at most this many running or "
          "paused jobs, the newest first.");
ABSL_FLAG(std::string, data_dir, "./ckpt-data", "Directory of the RocksDB store.");
ABSL_FLAG(std::string, store, "",
          "A PostgreSQL store instead of --data_dir: a libpq URI "
          "(postgresql://user@host:5432/dbname, several hosts as host1,host2) or key=value "
          "string. target_session_attrs defaults to read-write. Put the password in "
          "~/.pgpass or PGPASSWORD rather than here (it is never printed, but the command line "
          "is visible to other local users).");
ABSL_FLAG(absl::Duration, store_lease, absl::Seconds(10),
          "PostgreSQL store: how long a frozen or cut-off ckptd keeps another from taking the "
          "store over (one that exits or dies releases it at once). Renewed every lease/5.");
ABSL_FLAG(std::string, advertise, "",
          "PostgreSQL store: HOST:PORT where the other replicas reach this ckptd (usually the "
          "--listen address). Makes this ckptd one of several replicas over the --store, "
          "each serving a fair share of its shards and forwarding the rest (docs/deploy.md). "
          "Empty: this ckptd owns the whole store alone.");
ABSL_FLAG(int, shards, 16,
          "With --advertise: how many shards a store initialised now is split into (1..256); "
          "fixed for the store's life, an existing store keeps its own.");
ABSL_FLAG(absl::Duration, idle_exit, absl::ZeroDuration(),
          "Exit by itself (code 0) once no call has been in flight for this long, e.g. 5m. "
          "For a ckptd started on demand (the Python SDK's local: mode); 0: never.");
ABSL_FLAG(int, notify_fd, -1,
          "An inherited file descriptor (a pipe) to write \"serving on ADDRESS\\n\" to once "
          "serving, then close: how a launcher waits for ckptd without polling. -1: none.");
ABSL_FLAG(bool, sync, true,
          "Sync the write-ahead log before acknowledging a write. --sync=false is faster; "
          "a crash of ckptd still loses nothing, but a power failure or kernel crash can "
          "lose the last acknowledged writes.");
ABSL_FLAG(bool, accept_wal_loss, false,
          "Start on a store whose write-ahead log is damaged (beyond a torn tail, which is "
          "always dropped) or lacks its newest file, keeping what comes before the damage "
          "and dropping acknowledged writes after it; ckptd logs how much it dropped. "
          "Without it such a store is refused and left as it is.");
ABSL_FLAG(absl::Duration, shutdown_grace, absl::Seconds(10),
          "On SIGINT/SIGTERM, how long calls in flight may take to finish.");
ABSL_FLAG(int64_t, max_message_bytes, 16 << 20, "Largest request or response, bytes.");
ABSL_FLAG(int64_t, max_key_bytes, 1024, "Longest item name or output path, bytes.");
ABSL_FLAG(int64_t, max_payload_bytes, 64 << 10, "Largest item result payload, bytes.");
ABSL_FLAG(int64_t, max_cursor_bytes, 64 << 10, "Largest per-item cursor, bytes.");
ABSL_FLAG(int64_t, max_state_bytes, 4 << 20, "Largest state blob, bytes.");
ABSL_FLAG(int64_t, max_batch, 8192, "Most entries in one batch request.");
ABSL_FLAG(int64_t, max_log_message_bytes, 8 << 10, "Longest log entry message, bytes.");
ABSL_FLAG(int64_t, max_log_entries_per_item, 1000,
          "Log entries kept per item; past it (or --max_log_bytes_per_item) the item's oldest "
          "are dropped and counted.");
ABSL_FLAG(int64_t, max_log_bytes_per_item, 256 << 10, "Log bytes kept per item.");
ABSL_FLAG(int64_t, max_log_entries_per_job, 100000,
          "Log entries kept per job; past it (or --max_log_bytes_per_job) the job's oldest are "
          "dropped and counted.");
ABSL_FLAG(int64_t, max_log_bytes_per_job, 64 << 20, "Log bytes kept per job.");
ABSL_FLAG(int64_t, max_queued_writes, 4096,
          "Most writes waiting for the writer; past it (or --max_queued_write_bytes) a write "
          "is refused RESOURCE_EXHAUSTED with a retry hint, not applied.");
ABSL_FLAG(int64_t, max_queued_write_bytes, 32 << 20,
          "Most request bytes waiting for the writer (a single larger write still runs).");
ABSL_FLAG(absl::Duration, default_retention, absl::ZeroDuration(),
          "How long a job created without a retention is kept after it finishes (COMPLETED, "
          "FAILED or STOPPED), then deleted, e.g. 720h for 30 days; 0: kept until deleted. "
          "1s..87600h (3650 days). Jobs created before keep theirs (ckpt gc deletes old ones).");
ABSL_FLAG(absl::Duration, retention_sweep_interval, absl::Minutes(1),
          "How often ckptd deletes the finished jobs whose retention has run out, a few per "
          "write group until none is left. 1s..24h, or inf: never (DeleteJobs still deletes), "
          "e.g. to look at a restored backup whose jobs' retention ran out since.");

namespace {

// Tells the launcher waiting on --notify_fd that ckptd serves, then closes the fd.
void NotifyServing(int fd, const std::string& address) {
  if (fd < 0) return;
  const std::string line = absl::StrCat("serving on ", address, "\n");
  if (::write(fd, line.data(), line.size()) != static_cast<ssize_t>(line.size())) {
    ckpt::LogLine(absl::StrCat("--notify_fd=", fd, ": could not write (the launcher is gone?)"));
  }
  ::close(fd);
}

// What SIGHUP does (Server::Reload, which logs what it reloaded or kept), until ckptd
// begins to stop. Thread-safe.
class Reloader {
 public:
  explicit Reloader(ckpt::Server* server) : server_(server) {}
  void Reload() {
    absl::MutexLock lock(&mu_);
    if (server_ != nullptr) server_->Reload().IgnoreError();
  }
  // Waits for a reload in progress; later SIGHUPs do nothing.
  void Stop() {
    absl::MutexLock lock(&mu_);
    server_ = nullptr;
  }

 private:
  absl::Mutex mu_;
  ckpt::Server* server_ ABSL_GUARDED_BY(mu_);
};

// Waits for SIGINT or SIGTERM (blocked in `signals`), reloading on each SIGHUP; returns
// the signal.
int AwaitStopSignal(const sigset_t& signals, Reloader* reloader) {
  int signal_number = 0;
  while (sigwait(&signals, &signal_number) == 0 && signal_number == SIGHUP) reloader->Reload();
  return signal_number;
}

// Blocks until SIGINT or SIGTERM (blocked in `signals`), or, with an activity tracker,
// until no call has been in flight for `idle_exit`. Returns why, for the log.
std::string WaitForStop(const sigset_t& signals, ckpt::ActivityTracker* activity,
                        absl::Duration idle_exit, Reloader* reloader) {
  auto signal_name = [](int number) { return number == SIGINT ? "SIGINT" : "SIGTERM"; };
  if (activity == nullptr) return signal_name(AwaitStopSignal(signals, reloader));
  // A signal thread cancels the idle wait. It is detached: after an idle exit it stays
  // blocked in sigwait until the process ends.
  auto received = std::make_shared<std::atomic<int>>(0);
  std::thread([signals, activity, received, reloader] {
    received->store(AwaitStopSignal(signals, reloader));
    activity->Cancel();
  }).detach();
  if (activity->WaitUntilIdleFor(idle_exit)) {
    return absl::StrCat("idle for ", absl::FormatDuration(idle_exit), " (--idle_exit)");
  }
  return signal_name(received->load());
}

// Checks --idle_exit and --notify_fd; returns the tracker --idle_exit needs (or null),
// or an error to exit with.
absl::StatusOr<std::unique_ptr<ckpt::ActivityTracker>> LifetimeFlags() {
  const absl::Duration idle_exit = absl::GetFlag(FLAGS_idle_exit);
  const int notify_fd = absl::GetFlag(FLAGS_notify_fd);
  if (idle_exit < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("--idle_exit must not be negative");
  }
  if (notify_fd != -1 && (notify_fd < 0 || ::fcntl(notify_fd, F_GETFD) == -1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--notify_fd=", notify_fd, " is not an open file descriptor"));
  }
  if (idle_exit == absl::ZeroDuration()) return nullptr;
  return std::make_unique<ckpt::ActivityTracker>(ckpt::Clock::Real());
}

// Checks --default_retention and --retention_sweep_interval.
absl::StatusOr<ckpt::RetentionOptions> RetentionFlags() {
  ckpt::RetentionOptions retention;
  retention.default_retention = absl::GetFlag(FLAGS_default_retention);
  retention.sweep_interval = absl::GetFlag(FLAGS_retention_sweep_interval);
  const absl::Duration kept = retention.default_retention;
  if (kept != absl::ZeroDuration() &&
      (kept < absl::Seconds(1) || kept > absl::Hours(24 * ckpt::kMaxRetentionDays))) {
    return absl::InvalidArgumentError(
        absl::StrCat("--default_retention must be 0 (none) or 1s..", 24 * ckpt::kMaxRetentionDays,
                     "h (", ckpt::kMaxRetentionDays, " days), got ", absl::FormatDuration(kept)));
  }
  const absl::Duration sweep = retention.sweep_interval;
  if (sweep != absl::InfiniteDuration() && (sweep < absl::Seconds(1) || sweep > absl::Hours(24))) {
    return absl::InvalidArgumentError(
        absl::StrCat("--retention_sweep_interval must be in 1s..24h, or inf (never), got ",
                     absl::FormatDuration(retention.sweep_interval)));
  }
  return retention;
}

// Every connection costs a file descriptor: run with as many as the hard limit allows.
// Returns what was done, for the "serving on" line.
std::string RaiseOpenFilesLimit() {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) return "open files limit unknown";
  const rlim_t before = limit.rlim_cur;
  if (limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &limit) != 0) limit.rlim_cur = before;
  }
  return limit.rlim_cur == before ? absl::StrCat("open files limit ", before)
                                  : absl::StrCat("open files limit raised from ", before, " to ",
                                                 limit.rlim_cur, " (the hard limit)");
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "ckptd: the ckpt checkpoint service.\n  ckptd [--listen=127.0.0.1:7700] "
      "[--data_dir=./ckpt-data | --store=postgresql://... [--advertise=HOST:PORT]] "
      "[--sync=true] "
      "[--tls_cert=F --tls_key=F [--tls_client_ca=F]] [--auth_file=F]\n  SIGHUP re-reads the "
      "TLS files and the auth file.");
  absl::ParseCommandLine(argc, argv);

  // Signals are taken synchronously by this thread; every other thread inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  // A client that hangs up mid-answer is an error on its connection (EPIPE), never the
  // end of ckptd: OpenSSL writes HTTPS answers with write(2), which raises SIGPIPE.
  ::signal(SIGPIPE, SIG_IGN);

  for (const auto& [name, value, max] :
       {std::make_tuple("max_message_bytes", absl::GetFlag(FLAGS_max_message_bytes),
                        int64_t{INT32_MAX}),
        std::make_tuple("max_key_bytes", absl::GetFlag(FLAGS_max_key_bytes), int64_t{1} << 20),
        std::make_tuple("max_payload_bytes", absl::GetFlag(FLAGS_max_payload_bytes),
                        int64_t{INT32_MAX}),
        std::make_tuple("max_cursor_bytes", absl::GetFlag(FLAGS_max_cursor_bytes),
                        int64_t{INT32_MAX}),
        std::make_tuple("max_state_bytes", absl::GetFlag(FLAGS_max_state_bytes),
                        int64_t{INT32_MAX}),
        std::make_tuple("max_batch", absl::GetFlag(FLAGS_max_batch), int64_t{1} << 20),
        std::make_tuple("max_log_message_bytes", absl::GetFlag(FLAGS_max_log_message_bytes),
                        int64_t{1} << 20),
        std::make_tuple("max_log_entries_per_item", absl::GetFlag(FLAGS_max_log_entries_per_item),
                        int64_t{1} << 30),
        std::make_tuple("max_log_bytes_per_item", absl::GetFlag(FLAGS_max_log_bytes_per_item),
                        int64_t{1} << 40),
        std::make_tuple("max_log_entries_per_job", absl::GetFlag(FLAGS_max_log_entries_per_job),
                        int64_t{1} << 40),
        std::make_tuple("max_log_bytes_per_job", absl::GetFlag(FLAGS_max_log_bytes_per_job),
                        int64_t{1} << 50),
        std::make_tuple("metrics_max_jobs", absl::GetFlag(FLAGS_metrics_max_jobs),
                        int64_t{100000})}) {
    if (value < 1 || value > max) {
      ckpt::LogLine(absl::StrCat("cannot start: --", name, "=", value, " must be in 1..", max));
      return 2;
    }
  }

  const std::string store_flag = absl::GetFlag(FLAGS_store);
  if (!store_flag.empty()) {
    const char* conflict = absl::GetFlag(FLAGS_data_dir) != "./ckpt-data" ? "--data_dir"
                           : !absl::GetFlag(FLAGS_sync)                   ? "--sync=false"
                                                                          : nullptr;
    if (conflict != nullptr) {
      ckpt::LogLine(absl::StrCat("cannot start: ", conflict,
                                 " is for the RocksDB store, and --store picks PostgreSQL "
                                 "(whose commits are always durable); give one or the other"));
      return 2;
    }
    const absl::Duration lease = absl::GetFlag(FLAGS_store_lease);
    if (lease < absl::Seconds(1) || lease > absl::Hours(1)) {
      ckpt::LogLine("cannot start: --store_lease must be in 1s..1h");
      return 2;
    }
  }

  // Everything ckptd creates (the store's files, its LOG) is readable by its owner
  // only: it holds every job's config, params, results and states.
  ::umask(077);
  const std::string open_files = RaiseOpenFilesLimit();

  ckpt::ServerOptions options;
  options.listen_address = absl::GetFlag(FLAGS_listen);
  options.http_listen_address = absl::GetFlag(FLAGS_http_listen);
  options.metrics_max_jobs = static_cast<size_t>(absl::GetFlag(FLAGS_metrics_max_jobs));
  options.store.path = absl::GetFlag(FLAGS_data_dir);
  options.store.sync = absl::GetFlag(FLAGS_sync);
  options.store.accept_wal_loss = absl::GetFlag(FLAGS_accept_wal_loss);
  options.postgres.conninfo = store_flag;
  options.postgres.lease = absl::GetFlag(FLAGS_store_lease);
  options.advertise = absl::GetFlag(FLAGS_advertise);
  options.shards = absl::GetFlag(FLAGS_shards);
  options.max_message_bytes = static_cast<size_t>(absl::GetFlag(FLAGS_max_message_bytes));
  options.limits.max_key_bytes = static_cast<size_t>(absl::GetFlag(FLAGS_max_key_bytes));
  options.limits.max_payload_bytes = static_cast<size_t>(absl::GetFlag(FLAGS_max_payload_bytes));
  options.limits.max_cursor_bytes = static_cast<size_t>(absl::GetFlag(FLAGS_max_cursor_bytes));
  options.limits.max_state_bytes = static_cast<size_t>(absl::GetFlag(FLAGS_max_state_bytes));
  options.limits.max_batch = static_cast<size_t>(absl::GetFlag(FLAGS_max_batch));
  options.limits.max_log_message_bytes =
      static_cast<size_t>(absl::GetFlag(FLAGS_max_log_message_bytes));
  options.log_limits.max_entries_per_item =
      static_cast<uint64_t>(absl::GetFlag(FLAGS_max_log_entries_per_item));
  options.log_limits.max_bytes_per_item =
      static_cast<uint64_t>(absl::GetFlag(FLAGS_max_log_bytes_per_item));
  options.log_limits.max_entries_per_job =
      static_cast<uint64_t>(absl::GetFlag(FLAGS_max_log_entries_per_job));
  options.log_limits.max_bytes_per_job =
      static_cast<uint64_t>(absl::GetFlag(FLAGS_max_log_bytes_per_job));
  options.write_queue.max_ops = static_cast<size_t>(absl::GetFlag(FLAGS_max_queued_writes));
  options.write_queue.max_bytes = static_cast<size_t>(absl::GetFlag(FLAGS_max_queued_write_bytes));
  options.tls.cert = absl::GetFlag(FLAGS_tls_cert);
  options.tls.key = absl::GetFlag(FLAGS_tls_key);
  options.tls.client_ca = absl::GetFlag(FLAGS_tls_client_ca);
  options.auth_file = absl::GetFlag(FLAGS_auth_file);
  options.insecure = absl::GetFlag(FLAGS_insecure);

  absl::StatusOr<std::unique_ptr<ckpt::ActivityTracker>> activity = LifetimeFlags();
  if (!activity.ok()) {
    ckpt::LogLine(absl::StrCat("cannot start: ", activity.status().message()));
    return 2;
  }
  options.activity = activity->get();
  absl::StatusOr<ckpt::RetentionOptions> retention = RetentionFlags();
  if (!retention.ok()) {
    ckpt::LogLine(absl::StrCat("cannot start: ", retention.status().message()));
    return 2;
  }
  options.retention = *retention;

  absl::StatusOr<std::unique_ptr<ckpt::Server>> server = ckpt::Server::Start(options);
  if (!server.ok()) {
    ckpt::LogLine(absl::StrCat("cannot start: ", server.status().message()));
    return 1;
  }
  const std::string data =
      store_flag.empty()
          ? absl::StrCat("data in ", options.store.path,
                         options.store.sync ? "" : " (--sync=false: writes not synced)")
          : absl::StrCat("data in ", ckpt::PostgresDisplayName(store_flag).value_or("PostgreSQL"));
  ckpt::LogLine(absl::StrCat("serving on ", (*server)->address(), ", ", data, "; ", open_files));
  if (!(*server)->http_address().empty()) {
    ckpt::LogLine(absl::StrCat("dashboard on ", (*server)->http_url(), ", metrics on /metrics"));
  }

  NotifyServing(absl::GetFlag(FLAGS_notify_fd), (*server)->address());

  Reloader reloader(server->get());
  const std::string reason =
      WaitForStop(signals, activity->get(), absl::GetFlag(FLAGS_idle_exit), &reloader);
  reloader.Stop();
  (*server)->Shutdown(absl::GetFlag(FLAGS_shutdown_grace));
  ckpt::LogLine(absl::StrCat("stopped on ", reason, "; store closed"));
  return 0;
}
