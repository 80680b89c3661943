// GET /api/v1/jobs/{job}/events: WatchJob as server-sent events (text/event-stream),
// fed by the WatchHub that serves WatchJob's gRPC streams. Each change is one event:
//   event: job
//   data: {"job": {...}, "recentCompletions": [...]}      (GET /api/v1/jobs/{job}'s shape)
// and the stream ends with
//   event: end
//   data: {"error": {"code": 200, "status": "OK", "message": ""}}
// after the snapshot that shows the job over (or NOT_FOUND once deleted, UNAVAILABLE at
// shutdown). A comment line every keep_alive frees the thread of a client that left.
#include <atomic>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "service/http/json_gateway.h"
#include "service/http/json_reply.h"
#include "service/http/query_params.h"

namespace ckpt {
namespace {

std::string JobEvent(WatchHub::Subscription::Event& event) {
  v1::GetJobResponse payload;
  *payload.mutable_job() = std::move(event.job);
  for (v1::RecentCompletion& recent : event.recent_completions) {
    *payload.add_recent_completions() = std::move(recent);
  }
  return absl::StrCat("event: job\ndata: ", ToJson(payload), "\n\n");
}

std::string EndEvent(const absl::Status& status) {
  return absl::StrCat("event: end\ndata: ", ErrorJson(status), "\n\n");
}

}  // namespace

void JsonGateway::Events(const httplib::Request& http, httplib::Response& reply) {
  v1::WatchJobRequest request;
  absl::Status status = FillFromQuery(http.params, &request);
  absl::StatusOr<auth::PrincipalRef> principal =
      status.ok() ? Admit(http, "WatchJob", &request) : status;
  if (status.ok()) status = principal.status();
  if (status.ok()) status = ValidateRequest(request, limits_);
  if (!status.ok()) return ReplyError(status, reply);
  // Each stream holds an HTTP thread for its lifetime: bound them.
  if (open_streams_.fetch_add(1) >= options_.max_event_streams) {
    open_streams_.fetch_sub(1);
    return ReplyError(absl::ResourceExhaustedError(absl::StrCat("too many event streams open (",
                                                                options_.max_event_streams,
                                                                "); close one, or retry later")),
                      reply);
  }
  std::shared_ptr<WatchHub::Subscription> subscription = hub_->Subscribe(request);
  // The stream stops counting once, before its end event is written (so a client that
  // saw the end may open the next) or when the connection goes.
  auto counted = std::make_shared<std::atomic<bool>>(true);
  auto release = [this, counted] {
    if (counted->exchange(false)) open_streams_.fetch_sub(1);
  };
  reply.set_header("Cache-Control", "no-cache");
  reply.set_chunked_content_provider(
      "text/event-stream",
      [this, subscription, release](size_t /*offset*/, httplib::DataSink& sink) {
        WatchHub::Subscription::Event event = subscription->Next(absl::Now() + options_.keep_alive);
        std::string chunk;
        switch (event.kind) {
          case WatchHub::Subscription::Kind::kJob:
            chunk = JobEvent(event);
            break;
          case WatchHub::Subscription::Kind::kTimeout:
            chunk = stopping_ ? EndEvent(absl::UnavailableError("ckptd is shutting down"))
                              : ": keep-alive\n\n";
            break;
          case WatchHub::Subscription::Kind::kEnd:
            chunk = EndEvent(event.status);
            break;
        }
        const bool end = chunk.rfind("event: end", 0) == 0;
        if (end) release();
        if (!sink.write(chunk.data(), chunk.size())) return false;  // the client left
        if (end) sink.done();
        return true;
      },
      [release](bool /*success*/) { release(); });
}

}  // namespace ckpt
