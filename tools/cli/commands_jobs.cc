// Job commands: jobs, status, watch, pause, resume, stop, reset, delete.
#include <algorithm>
#include <ostream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "service/common/proto_time.h"
#include "service/common/status_macros.h"
#include "tools/cli/commands.h"
#include "tools/cli/format.h"

namespace ckpt {
namespace cli {
namespace {

// Error groups shown by `status`.
constexpr uint32_t kErrorGroups = 10;

// --NAME as a fraction in [0, 1]; 0 when not given.
absl::StatusOr<double> ParseFraction(const Args& args, absl::string_view name) {
  if (!args.Has(name)) return 0.0;
  const std::string text = args.Get(name);
  double value = 0;
  if (!absl::SimpleAtod(text, &value) || !(value >= 0 && value <= 1)) {
    return UsageError(
        absl::StrCat("--", name, " must be a fraction from 0 to 1, not \"", text, "\""));
  }
  return value;
}

std::string Counts(const v1::Progress& p) {
  return absl::StrCat(p.completed() + p.failed(), "/", p.total());
}

void PrintJobLine(const Context& ctx, const v1::Job& job, absl::string_view verb) {
  if (ctx.json) {
    *ctx.out << ToJson(job) << "\n";
    return;
  }
  *ctx.out << "job " << job.job_id() << " " << verb << ": "
           << Paint(Name(job.status()), ColorOf(job.status()), ctx.terminal) << "\n";
}

void PrintProgress(const Context& ctx, const v1::Job& job) {
  std::ostream& out = *ctx.out;
  const v1::Progress& p = job.progress();
  out << absl::StrFormat("%-11s%s\n", "Job", Paint(job.job_id(), Color::kBold, ctx.terminal));
  if (!job.display_name().empty()) out << absl::StrFormat("%-11s%s\n", "Name", job.display_name());
  std::string status = Paint(Name(job.status()), ColorOf(job.status()), ctx.terminal);
  if (!job.status_reason().empty()) absl::StrAppend(&status, " (", job.status_reason(), ")");
  if (job.sealed()) absl::StrAppend(&status, ", sealed");
  out << absl::StrFormat("%-11s%s\n", "Status", status);
  out << absl::StrFormat("%-11s%s\n", "Stage", job.stage().empty() ? "-" : job.stage());
  out << absl::StrFormat("%-11s%s  %d completed, %d failed of %d\n", "Progress",
                         ProgressBar(p.percent(), 30), p.completed(), p.failed(), p.total());
  out << absl::StrFormat("%-11s%d (%d pending, %d leased)\n", "Remaining", p.remaining(),
                         p.pending(), p.leased());
  out << absl::StrFormat("%-11s%s, ETA %s, elapsed %s\n", "Rate", FormatRate(p.recent_rate()),
                         FormatDuration(p.eta()), FormatDuration(p.elapsed()));
  out << absl::StrFormat("%-11savg %s, p50 %s, p95 %s\n", "Item time",
                         FormatDuration(p.item_time_avg()), FormatDuration(p.item_time_p50()),
                         FormatDuration(p.item_time_p95()));
  out << absl::StrFormat("%-11s%s\n", "Created", FormatTime(job.create_time(), ctx.now));
  out << absl::StrFormat("%-11s%s\n", "Updated", FormatTime(job.update_time(), ctx.now));
  if (job.has_finish_time()) {
    out << absl::StrFormat("%-11s%s\n", "Finished", FormatTime(job.finish_time(), ctx.now));
  }
  if (job.has_retention()) {
    const absl::Duration kept = FromProtoDuration(job.retention());
    std::string retention = absl::StrCat(HumanDuration(kept), " after it finishes");
    if (job.has_finish_time()) {
      absl::StrAppend(
          &retention, ": deleted from ",
          absl::FormatTime("%Y-%m-%d %H:%M:%SZ", FromProtoTime(job.finish_time()) + kept,
                           absl::UTCTimeZone()));
    }
    out << absl::StrFormat("%-11s%s\n", "Retention", retention);
  }
}

void PrintSteps(const Context& ctx, const v1::Job& job) {
  Table steps({"STEP", "TOTAL", "COMPLETED", "FAILED", "PENDING", "LEASED", "PERCENT", "RATE"});
  for (const v1::StepProgress& step : job.step_progress()) {
    const v1::Progress& p = step.progress();
    steps.AddRow({step.step(), absl::StrCat(p.total()), absl::StrCat(p.completed()),
                  absl::StrCat(p.failed()), absl::StrCat(p.pending()), absl::StrCat(p.leased()),
                  absl::StrFormat("%.1f%%", p.percent()), FormatRate(p.recent_rate())});
  }
  *ctx.out << "\nSteps\n";
  steps.Print(*ctx.out);
}

}  // namespace

absl::Status Jobs(const Context& ctx, const Args& args) {
  v1::ListJobsRequest request;
  CKPT_ASSIGN_OR_RETURN(const std::vector<v1::JobStatus> statuses, args.GetJobStatuses("status"));
  if (!statuses.empty()) request.set_status(statuses.back());  // the last wins
  CKPT_ASSIGN_OR_RETURN(const auto labels, args.GetLabels("label"));
  request.mutable_labels()->insert(labels.begin(), labels.end());
  request.set_name_prefix(args.Get("prefix"));
  CKPT_ASSIGN_OR_RETURN(const uint64_t limit, args.GetInt("limit", 50, 1, 1000));
  request.set_limit(static_cast<uint32_t>(limit));
  CKPT_ASSIGN_OR_RETURN(v1::ListJobsResponse listed, ctx.client->ListJobs(request));
  if (ctx.json) {
    *ctx.out << ToJson(listed) << "\n";
    return absl::OkStatus();
  }
  if (listed.jobs().empty()) {
    *ctx.out << "no jobs\n";
    return absl::OkStatus();
  }
  Table table({"JOB", "STATUS", "DONE", "PERCENT", "FAILED", "RATE", "ETA", "CREATED", "STAGE"});
  for (const v1::Job& job : listed.jobs()) {
    const v1::Progress& p = job.progress();
    table.AddRow({job.job_id(), Paint(Name(job.status()), ColorOf(job.status()), ctx.terminal),
                  Counts(p), absl::StrFormat("%.1f%%", p.percent()), absl::StrCat(p.failed()),
                  FormatRate(p.recent_rate()), FormatDuration(p.eta()),
                  FormatTime(job.create_time(), ctx.now), job.stage().empty() ? "-" : job.stage()});
  }
  table.Print(*ctx.out);
  if (!listed.next_page_token().empty()) {
    *ctx.out << "(more: raise --limit or narrow with --status/--label/--prefix)\n";
  }
  return absl::OkStatus();
}

absl::Status Status(const Context& ctx, const Args& args) {
  const std::string& job_id = args.positional[0];
  v1::GetJobRequest get;
  get.set_job_id(job_id);
  CKPT_ASSIGN_OR_RETURN(v1::GetJobResponse got, ctx.client->GetJob(get));
  const v1::Job& job = got.job();

  v1::ListItemsRequest failed;
  failed.set_job_id(job_id);
  failed.set_state(v1::ITEM_STATE_FAILED);
  failed.set_limit(1);
  failed.set_keys_only(true);
  failed.set_error_groups(kErrorGroups);
  CKPT_ASSIGN_OR_RETURN(v1::ListItemsResponse groups, ctx.client->ListItems(failed));

  v1::ListWorkersRequest workers_request;
  workers_request.set_job_id(job_id);
  CKPT_ASSIGN_OR_RETURN(v1::ListWorkersResponse workers, ctx.client->ListWorkers(workers_request));

  if (ctx.json) {
    *ctx.out << "{\"job\":" << ToJson(job) << ",\"error_groups\":[";
    for (int i = 0; i < groups.error_groups_size(); ++i) {
      *ctx.out << (i > 0 ? "," : "") << ToJson(groups.error_groups(i));
    }
    *ctx.out << "],\"workers\":[";
    for (int i = 0; i < workers.workers_size(); ++i) {
      *ctx.out << (i > 0 ? "," : "") << ToJson(workers.workers(i));
    }
    *ctx.out << "],\"recent_completions\":[";
    for (int i = 0; i < got.recent_completions_size(); ++i) {
      *ctx.out << (i > 0 ? "," : "") << ToJson(got.recent_completions(i));
    }
    *ctx.out << "]}\n";
    return absl::OkStatus();
  }

  PrintProgress(ctx, job);
  PrintSteps(ctx, job);
  if (!got.recent_completions().empty()) {
    Table table({"ITEM", "STEP", "COMPLETED", "WORKER"});
    for (const v1::RecentCompletion& recent : got.recent_completions()) {
      table.AddRow({KeyText(recent.key()), recent.step(), FormatTime(recent.time(), ctx.now),
                    recent.worker_id().empty() ? "-" : recent.worker_id()});
    }
    *ctx.out << "\nRecently completed\n";
    table.Print(*ctx.out);
  }
  if (!groups.error_groups().empty()) {
    Table table({"COUNT", "ERROR"});
    for (const v1::ErrorGroup& group : groups.error_groups()) {
      table.AddRow({absl::StrCat(group.count()), group.message()});
    }
    *ctx.out << "\nFailed items by error (retry them: ckpt retry " << job_id << ")\n";
    table.Print(*ctx.out);
  }
  *ctx.out << "\nWorkers\n";
  if (workers.workers().empty()) {
    *ctx.out << "none\n";
  } else {
    Table table({"WORKER", "STATE", "HOST", "PID", "LAST HEARTBEAT", "ITEMS", "DONE", "FAILED"});
    for (const v1::Worker& w : workers.workers()) {
      table.AddRow({w.worker_id(), Name(w.state()), w.hostname(), absl::StrCat(w.pid()),
                    FormatTime(w.last_heartbeat(), ctx.now), absl::StrCat(w.current_items_size()),
                    absl::StrCat(w.completed()), absl::StrCat(w.failed())});
    }
    table.Print(*ctx.out);
  }
  return absl::OkStatus();
}

absl::Status Watch(const Context& ctx, const Args& args) {
  v1::WatchJobRequest request;
  request.set_job_id(args.positional[0]);
  CKPT_ASSIGN_OR_RETURN(const uint64_t interval_ms, args.GetInt("interval", 500, 100, 3'600'000));
  request.mutable_min_interval()->set_seconds(interval_ms / 1000);
  request.mutable_min_interval()->set_nanos(static_cast<int32_t>(interval_ms % 1000) * 1'000'000);
  v1::Job last;
  const absl::Status status = ctx.client->WatchJob(request, [&](const v1::Job& job) {
    last = job;
    const v1::Progress& p = job.progress();
    if (ctx.json) {
      *ctx.out << ToJson(job) << "\n";
    } else {
      const std::string line = absl::StrFormat(
          "%s %s  %s  %s  ETA %s", Paint(Name(job.status()), ColorOf(job.status()), ctx.terminal),
          ProgressBar(p.percent(), 30), Counts(p), FormatRate(p.recent_rate()),
          FormatDuration(p.eta()));
      // On a terminal one line redrawn in place; elsewhere a line per snapshot.
      *ctx.out << (ctx.terminal ? "\r\x1b[2K" : "") << line << (ctx.terminal ? "" : "\n");
    }
    ctx.out->flush();
    return !ctx.on_watch_snapshot || ctx.on_watch_snapshot(job);
  });
  if (ctx.terminal && !ctx.json) *ctx.out << "\n";
  CKPT_RETURN_IF_ERROR(status);
  if (!ctx.json && last.has_finish_time()) {
    *ctx.out << "job " << last.job_id() << " " << Name(last.status())
             << (last.status_reason().empty() ? "" : absl::StrCat(": ", last.status_reason()))
             << "\n";
  }
  return absl::OkStatus();
}

absl::Status Pause(const Context& ctx, const Args& args) {
  v1::PauseJobRequest request;
  request.set_job_id(args.positional[0]);
  request.set_reason(args.Get("reason", "paused with ckpt pause"));
  CKPT_ASSIGN_OR_RETURN(v1::PauseJobResponse response, ctx.client->PauseJob(request));
  PrintJobLine(ctx, response.job(), "paused");
  return absl::OkStatus();
}

absl::Status Resume(const Context& ctx, const Args& args) {
  const std::string& job_id = args.positional[0];
  if (args.Has("max-failed-items") || args.Has("max-failed-fraction")) {
    v1::UpdateJobRequest update;
    update.set_job_id(job_id);
    CKPT_ASSIGN_OR_RETURN(const uint64_t items, args.GetInt("max-failed-items", 0, 0, UINT64_MAX));
    CKPT_ASSIGN_OR_RETURN(const double fraction, ParseFraction(args, "max-failed-fraction"));
    update.mutable_failure_budget()->set_max_failed_items(items);
    update.mutable_failure_budget()->set_max_failed_fraction(fraction);
    CKPT_RETURN_IF_ERROR(ctx.client->UpdateJob(update).status());
  }
  v1::ResumeJobRequest request;
  request.set_job_id(job_id);
  CKPT_ASSIGN_OR_RETURN(v1::ResumeJobResponse response, ctx.client->ResumeJob(request));
  PrintJobLine(ctx, response.job(), "resumed");
  return absl::OkStatus();
}

absl::Status Stop(const Context& ctx, const Args& args) {
  v1::StopJobRequest request;
  request.set_job_id(args.positional[0]);
  request.set_reason(args.Get("reason", "stopped with ckpt stop"));
  CKPT_ASSIGN_OR_RETURN(v1::StopJobResponse response, ctx.client->StopJob(request));
  PrintJobLine(ctx, response.job(), "stopped");
  return absl::OkStatus();
}

absl::Status Reset(const Context& ctx, const Args& args) {
  v1::ResetJobRequest request;
  request.set_job_id(args.positional[0]);
  request.set_remove_items(args.Has("remove-items"));
  CKPT_ASSIGN_OR_RETURN(v1::ResetJobResponse response, ctx.client->ResetJob(request));
  PrintJobLine(ctx, response.job(), request.remove_items() ? "reset, items removed" : "reset");
  return absl::OkStatus();
}

absl::Status Delete(const Context& ctx, const Args& args) {
  v1::DeleteJobRequest request;
  request.set_job_id(args.positional[0]);
  CKPT_RETURN_IF_ERROR(ctx.client->DeleteJob(request).status());
  if (ctx.json) {
    *ctx.out << "{\"job_id\":\"" << request.job_id() << "\",\"deleted\":true}\n";
  } else {
    *ctx.out << "job " << request.job_id() << " deleted\n";
  }
  return absl::OkStatus();
}

}  // namespace cli
}  // namespace ckpt
