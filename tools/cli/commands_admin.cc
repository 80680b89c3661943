// Commands of the store as a whole: backup, gc.
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "service/common/proto_time.h"
#include "service/common/status_macros.h"
#include "tools/cli/commands.h"
#include "tools/cli/format.h"

namespace ckpt {
namespace cli {
namespace {

// gc's request from its flags; a UsageError without a filter, or for RUNNING or PAUSED
// without --include-unfinished.
absl::StatusOr<v1::DeleteJobsRequest> GcRequest(const Context& ctx, const Args& args) {
  v1::DeleteJobsRequest request;
  CKPT_ASSIGN_OR_RETURN(const std::optional<absl::Time> before,
                        args.GetTime("finished-before", ctx.now));
  if (before.has_value()) *request.mutable_finished_before() = ToProtoTime(*before);
  CKPT_ASSIGN_OR_RETURN(const std::vector<v1::JobStatus> statuses, args.GetJobStatuses("status"));
  for (v1::JobStatus status : statuses) {
    if ((status == v1::JOB_STATUS_RUNNING || status == v1::JOB_STATUS_PAUSED) &&
        !args.Has("include-unfinished")) {
      return UsageError(absl::StrCat("--status ", absl::AsciiStrToLower(Name(status)),
                                     ": a pipeline may still be running such jobs; add "
                                     "--include-unfinished to delete them anyway"));
    }
    request.add_statuses(status);
  }
  request.set_include_unfinished(args.Has("include-unfinished"));
  CKPT_ASSIGN_OR_RETURN(const auto labels, args.GetLabels("label"));
  request.mutable_labels()->insert(labels.begin(), labels.end());
  request.set_job_id_prefix(args.Get("prefix"));
  if (!before.has_value() && statuses.empty() && labels.empty() && !args.Has("prefix")) {
    return UsageError(
        "gc needs a filter: --finished-before, --status, --label or --prefix "
        "(--finished-before 0s: every finished job)");
  }
  CKPT_ASSIGN_OR_RETURN(const uint64_t limit, args.GetInt("limit", 100, 1, 1000));
  request.set_limit(static_cast<uint32_t>(limit));
  request.set_dry_run(args.Has("dry-run"));
  return request;
}

}  // namespace

absl::Status Backup(const Context& ctx, const Args& args) {
  v1::BackupStoreRequest request;
  request.set_dir(args.positional[0]);
  CKPT_ASSIGN_OR_RETURN(v1::BackupStoreResponse response, ctx.client->BackupStore(request));
  if (ctx.json) {
    *ctx.out << ToJson(response) << "\n";
    return absl::OkStatus();
  }
  *ctx.out << absl::StrFormat(
      "backup in %s (on ckptd's machine): %d files, %.1f MiB\n"
      "restore: ckptd --data_dir=%s (on a copy of it, to keep the backup)\n",
      response.dir(), response.files(), static_cast<double>(response.bytes()) / (1 << 20),
      response.dir());
  return absl::OkStatus();
}

absl::Status Gc(const Context& ctx, const Args& args) {
  CKPT_ASSIGN_OR_RETURN(v1::DeleteJobsRequest request, GcRequest(ctx, args));
  const bool dry_run = request.dry_run();
  v1::DeleteJobsResponse all;  // every page's jobs, and the first page's count
  bool first = true;
  do {
    CKPT_ASSIGN_OR_RETURN(v1::DeleteJobsResponse page, ctx.client->DeleteJobs(request));
    if (first) all.set_matched(page.matched());
    first = false;
    for (v1::DeletedJob& job : *page.mutable_jobs()) {
      if (!ctx.json) {
        *ctx.out << absl::StrFormat("%s %s  %s  finished %s\n",
                                    dry_run ? "would delete" : "deleted", job.job_id(),
                                    Name(job.status()), FormatTime(job.finish_time(), ctx.now));
      }
      *all.add_jobs() = std::move(job);
    }
    request.set_page_token(page.next_page_token());
  } while (!request.page_token().empty());
  if (ctx.json) {
    *ctx.out << ToJson(all) << "\n";
    return absl::OkStatus();
  }
  *ctx.out << absl::StrFormat("%s %d of the %d jobs that matched%s\n",
                              dry_run ? "would delete" : "deleted", all.jobs_size(), all.matched(),
                              dry_run ? " (--dry-run: nothing deleted)" : "");
  return absl::OkStatus();
}

}  // namespace cli
}  // namespace ckpt
