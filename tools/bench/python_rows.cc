#include "tools/bench/python_rows.h"

#include <memory>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace ckpt {
namespace bench {
namespace {

struct Mode {
  const char* mode;  // python_sdk_peer.py --mode
  const char* workload;
  const char* system;
  bool per_item;     // record_items, else items
  const char* note;  // followed by ", N processes"
};

constexpr Mode kModes[] = {
    {"worker", kWorkerLoopWorkload, kPythonWorker, false, "ckpt.Worker() at its defaults"},
    {"aio_worker", kWorkerLoopWorkload, kPythonWorkerAio, false,
     "ckpt.aio.Worker() at its defaults"},
    {"track", kTrackWorkload, "python_sdk_track", false,
     "ckpt.track(): record mode, 64 completions per call"},
    {"aio_track", kTrackWorkload, "python_sdk_track_aio", false, "ckpt.aio.track()"},
    {"record", kRecordModeWorkload, kPythonRecord, true, "job.mark_completed() per item"},
    {"aio_record", kRecordModeWorkload, kPythonRecordAio, true,
     "await job.mark_completed() per item"},
};

absl::StatusOr<Measurement> RunMode(const PythonSdkOptions& o, ChildServer* server,
                                    const Mode& mode) {
  const uint64_t items = mode.per_item ? o.record_items : o.items;
  server->ResetPeakRss();
  const double server_cpu = server->CpuSeconds();
  absl::StatusOr<ChildRun> run =
      RunChild({"/usr/bin/env", "PYTHONPATH=" + o.pythonpath, o.python, o.script,
                "--address=" + server->address(), absl::StrCat("--threads=", o.threads),
                absl::StrCat("--items=", items), absl::StrCat("--mode=", mode.mode)});
  if (!run.ok()) return run.status();
  Measurement m;
  m.workload = mode.workload;
  m.system = mode.system;
  m.threads = o.threads;
  if (absl::Status s = ParsePeerResult(*run, &m); !s.ok()) return s;
  m.client_cpu_seconds = m.cpu_seconds;
  m.cpu_seconds = server->CpuSeconds() - server_cpu;
  m.peak_rss_mib = server->PeakRssMib();
  m.note = absl::StrCat(mode.note, ", ", o.threads, " processes; cli cpu: start-up included");
  return m;
}

}  // namespace

absl::Status ParsePeerResult(const ChildRun& run, Measurement* m) {
  std::vector<std::string> f = absl::StrSplit(run.out, absl::ByAnyChar(" \n"), absl::SkipEmpty());
  if (run.exit_code != 0 || f.size() < 6 || f[0] != "RESULT" ||
      !absl::SimpleAtoi(f[1], &m->items) || !absl::SimpleAtod(f[2], &m->seconds) ||
      !absl::SimpleAtod(f[3], &m->p50_us) || !absl::SimpleAtod(f[4], &m->p99_us) ||
      !absl::SimpleAtod(f[5], &m->max_us)) {
    return absl::InternalError(
        absl::StrCat("peer ", m->system, " failed (exit ", run.exit_code, "): ", run.err, run.out));
  }
  m->items_per_s = m->seconds > 0 ? m->items / m->seconds : 0;
  m->cpu_seconds = run.cpu_seconds;
  m->peak_rss_mib = run.peak_rss_mib;
  return absl::OkStatus();
}

absl::StatusOr<std::vector<Measurement>> RunPythonSdkRows(const PythonSdkOptions& options) {
  absl::StatusOr<std::unique_ptr<ChildServer>> ckptd =
      ChildServer::Start({options.ckptd, "--listen=127.0.0.1:0",
                          "--http_listen=", "--data_dir=" + options.data_dir, "--sync=true"},
                         absl::Seconds(60));
  if (!ckptd.ok()) return ckptd.status();
  std::vector<Measurement> rows;
  for (const Mode& mode : kModes) {
    absl::StatusOr<Measurement> m = RunMode(options, ckptd->get(), mode);
    if (!m.ok()) return m.status();
    rows.push_back(*std::move(m));
  }
  if (absl::Status s = (*ckptd)->Stop(); !s.ok()) return s;
  return rows;
}

}  // namespace bench
}  // namespace ckpt
