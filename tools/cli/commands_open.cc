// ckpt open [JOB]: the dashboard's address (service/http/dashboard), opened in a browser
// where there is one.
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/struct.pb.h"
#include "service/common/status_macros.h"
#include "tools/cli/commands.h"
#include "tools/cli/format.h"

namespace ckpt {
namespace cli {
namespace {

// ckptd's default --http_listen port, for a dashboard on the same host as --server.
constexpr char kDefaultHttpPort[] = "7701";

// The dashboard's base URL ("http://host:port/"): --http, else $CKPT_HTTP, else the host
// of ckptd's gRPC address (loopback for a unix socket) on the default HTTP port. Without
// a scheme it is https when the CLI talks TLS to ckptd, whose HTTP listener then serves
// HTTPS only.
std::string DashboardBase(const Context& ctx, const Args& args) {
  std::string base = args.Has("http") ? args.Get("http") : ctx.http_env;
  if (base.empty()) {
    std::string host = ctx.client->target();
    if (absl::StartsWith(host, "unix:")) {
      host = "127.0.0.1";
    } else if (absl::StartsWith(host, "[")) {
      host = host.substr(0, host.find(']') + 1);  // [::1]:7700
    } else if (const size_t colon = host.rfind(':'); colon != std::string::npos) {
      host = host.substr(0, colon);
    }
    base = absl::StrCat(host, ":", kDefaultHttpPort);
  }
  if (!absl::StartsWith(base, "http://") && !absl::StartsWith(base, "https://")) {
    base = absl::StrCat(ctx.client->uses_tls() ? "https://" : "http://", base);
  }
  if (!absl::EndsWith(base, "/")) base += "/";
  return base;
}

}  // namespace

absl::Status Open(const Context& ctx, const Args& args) {
  std::string url = DashboardBase(ctx, args);
  if (!args.positional.empty()) {
    // The job must exist: a link to a page that says "not found" helps nobody.
    v1::GetJobRequest get;
    get.set_job_id(args.positional[0]);
    CKPT_RETURN_IF_ERROR(ctx.client->GetJob(get).status());
    absl::StrAppend(&url, "#/jobs/", args.positional[0]);
  }
  const bool opened = ctx.open_url != nullptr && ctx.open_url(url);
  if (ctx.json) {
    google::protobuf::Struct answer;
    (*answer.mutable_fields())["url"].set_string_value(url);
    (*answer.mutable_fields())["opened"].set_bool_value(opened);
    *ctx.out << ToJson(answer) << "\n";
  } else {
    *ctx.out << url << (opened ? " (opened in a browser)" : "") << "\n";
  }
  return absl::OkStatus();
}

}  // namespace cli
}  // namespace ckpt
