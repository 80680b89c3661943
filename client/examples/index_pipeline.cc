// index_pipeline: N indices, K worker threads, one output file per index.
//
//   bazel run //client/examples:index_pipeline -- --out_dir=/tmp/squares --count=10000
//
// Kill it with kill -9 at any moment and start it again: it resumes where it was. Items
// completed in ckpt are never handed out again; an output file that was written but not
// yet recorded (killed in between) is found on disk and recorded, not recomputed.
// Outputs are written atomically (write, fsync, rename), so a file that exists is whole.
//
// Each computation appends its index to OUT_DIR/computed.log and prints "done <index>",
// so a test can check that nothing finished was computed twice.
//
// Flags: --server (default $CKPT_SERVER, else 127.0.0.1:7700), --tls_ca, --tls_cert,
// --tls_key and --token (default $CKPT_TLS_CA, ... $CKPT_TOKEN), --job (index-demo),
// --count (1000), --workers (4), --out_dir (required), --work_us (0: simulated work per
// item), --lease_timeout_s (60), --max_attempts (10).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "client/client.h"
#include "client/examples/example_flags.h"
#include "client/worker.h"

namespace {

using ckpt::examples::Flags;

bool Exists(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0;
}

// Writes `content` to `path` so that `path` either does not exist or is complete.
bool WriteAtomically(const std::string& path, const std::string& content) {
  const std::string tmp = absl::StrCat(path, ".tmp.", getpid(), ".", gettid());
  const int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) return false;
  const bool written =
      write(fd, content.data(), content.size()) == static_cast<ssize_t>(content.size()) &&
      fsync(fd) == 0;
  close(fd);
  return written && rename(tmp.c_str(), path.c_str()) == 0;
}

class IndexPipeline {
 public:
  IndexPipeline(std::string out_dir, uint64_t work_us)
      : out_dir_(std::move(out_dir)), work_us_(work_us) {
    log_fd_ = open((out_dir_ + "/computed.log").c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  }
  ~IndexPipeline() { close(log_fd_); }

  absl::Status Process(ckpt::WorkItem& item) {
    const uint64_t i = item.index();
    const std::string path = absl::StrCat(out_dir_, "/", i, ".out");
    if (!Exists(path)) {
      if (work_us_ > 0) absl::SleepFor(absl::Microseconds(work_us_));  // the "work"
      if (!WriteAtomically(path, absl::StrCat(i, " squared is ", i * i, "\n"))) {
        return absl::UnavailableError(absl::StrCat("cannot write ", path));
      }
      const std::string line = absl::StrCat(i, "\n");
      if (write(log_fd_, line.data(), line.size()) < 0) perror("computed.log");
      absl::MutexLock lock(&stdout_mu_);
      std::printf("done %llu\n", static_cast<unsigned long long>(i));
      std::fflush(stdout);
    }
    item.AddOutput(path);
    return absl::OkStatus();
  }

 private:
  const std::string out_dir_;
  const uint64_t work_us_;
  int log_fd_ = -1;
  absl::Mutex stdout_mu_;
};

int Main(const Flags& flags) {
  const std::string out_dir = flags.Get("out_dir", "");
  if (out_dir.empty()) {
    std::fprintf(stderr, "--out_dir is required\n");
    return 2;
  }
  mkdir(out_dir.c_str(), 0755);
  const std::string job_id = flags.Get("job", "index-demo");
  const uint64_t count = flags.GetInt("count", 1000);

  ckpt::ClientOptions client_options = ckpt::examples::ConnectionOptions(flags);
  auto client = ckpt::Client::Connect(client_options);
  if (!client.ok()) {
    std::fprintf(stderr, "%s\n", client.status().ToString().c_str());
    return 1;
  }

  ckpt::v1::CreateJobRequest create;
  create.set_job_id(job_id);
  create.set_display_name("index pipeline example");
  create.set_config(absl::StrCat(R"({"count": )", count, R"(, "out_dir": ")", out_dir, R"("})"));
  create.mutable_lease_timeout()->set_seconds(flags.GetInt("lease_timeout_s", 60));
  create.set_max_attempts(flags.GetInt("max_attempts", 10));
  auto created = (*client)->CreateJob(create);
  if (!created.ok()) {
    std::fprintf(stderr, "cannot create job %s: %s\n", job_id.c_str(),
                 created.status().ToString().c_str());
    return 1;
  }
  std::fprintf(stderr, "%s job %s\n", created->resumed() ? "resuming" : "created", job_id.c_str());

  ckpt::v1::AddItemsRequest add;  // a repeat on resume only counts duplicates
  add.set_job_id(job_id);
  add.add_ranges()->set_end(count);
  add.set_seal(true);
  if (auto added = (*client)->AddItems(add); !added.ok()) {
    std::fprintf(stderr, "cannot add items: %s\n", added.status().ToString().c_str());
    return 1;
  }

  IndexPipeline pipeline(out_dir, flags.GetInt("work_us", 0));
  std::vector<std::thread> threads;
  absl::Mutex mu;
  absl::Status first_error;
  for (uint64_t t = 0; t < flags.GetInt("workers", 4); ++t) {
    threads.emplace_back([&] {
      ckpt::WorkerOptions options;
      options.job_id = job_id;
      absl::Status status;
      auto worker = ckpt::Worker::Register(client->get(), options);
      status = worker.ok()
                   ? (*worker)->Run([&](ckpt::WorkItem& item) { return pipeline.Process(item); })
                   : worker.status();
      absl::MutexLock lock(&mu);
      if (!status.ok() && first_error.ok()) first_error = status;
    });
  }
  for (std::thread& t : threads) t.join();
  if (!first_error.ok()) {
    std::fprintf(stderr, "worker failed: %s\n", first_error.ToString().c_str());
    return 1;
  }

  ckpt::v1::GetJobRequest get;
  get.set_job_id(job_id);
  auto job = (*client)->GetJob(get);
  if (!job.ok()) {
    std::fprintf(stderr, "%s\n", job.status().ToString().c_str());
    return 1;
  }
  const ckpt::v1::Progress& progress = job->job().progress();
  std::fprintf(stderr, "job %s: %s, %llu of %llu completed, %llu failed\n", job_id.c_str(),
               ckpt::v1::JobStatus_Name(job->job().status()).c_str(),
               static_cast<unsigned long long>(progress.completed()),
               static_cast<unsigned long long>(progress.total()),
               static_cast<unsigned long long>(progress.failed()));
  return job->job().status() == ckpt::v1::JOB_STATUS_COMPLETED ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) { return Main(Flags(argc, argv)); }
