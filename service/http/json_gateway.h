// ckpt.v1.Checkpoint's reads and operator actions as JSON over HTTP, under /api/v1
// (docs/observability.md lists the routes), and a job's changes as server-sent events.
// Each route is its RPC: the same role check (service/auth), ValidateRequest, engine
// call and codes as over gRPC, with protobuf's JSON mapping for bodies and answers.
//
//   GET  /api/v1/jobs[?status=&labels.K=V&namePrefix=&limit=&pageToken=]   ListJobs
//   GET  /api/v1/jobs/{job}                                                GetJob
//   GET  /api/v1/jobs/{job}/items[?step=&state=&limit=&pageToken=&errorGroups=]  ListItems
//   GET  /api/v1/jobs/{job}/item?key.index=N | key.name=S [&step=]         GetItem
//   GET  /api/v1/jobs/{job}/workers[?includeExited=true]                   ListWorkers
//   GET  /api/v1/jobs/{job}/states[?includeValues=true]                    ListStates
//   GET  /api/v1/jobs/{job}/state?name=S                                   GetState
//   GET  /api/v1/outputs?outputPath=P                                      FindOutput
//   GET  /api/v1/jobs/{job}/events[?minInterval=1s]                        WatchJob (SSE)
//   POST /api/v1/jobs/{job}/pause   {"reason": "..."}                      PauseJob
//   POST /api/v1/jobs/{job}/resume                                         ResumeJob
//   POST /api/v1/jobs/{job}/stop    {"reason": "..."}                      StopJob
//   POST /api/v1/jobs/{job}/retry   {"errorMessage": "...", "step": ...}   ResetItems, FAILED
//   POST /api/v1/jobs/{job}/reset-items {"step": .., "keys": [..], ...}    ResetItems
//   GET  /api/v1/jobs/{job}/throughput     the job's completed count over the last hour
//   GET  /api/v1/whoami                    the caller's principal and what it may do
//
// A POST body is the RPC's request in JSON (job_id may be left out: the path names it).
// No route runs on the engine's writer: writes wait for their answer on the HTTP
// thread.
#ifndef CKPT_SERVICE_HTTP_JSON_GATEWAY_H_
#define CKPT_SERVICE_HTTP_JSON_GATEWAY_H_

#include <httplib.h>

#include <atomic>
#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "service/auth/authorizer.h"
#include "service/engine/engine.h"
#include "service/http/http_auth.h"
#include "service/http/throughput_history.h"
#include "service/rpc/validate.h"
#include "service/rpc/watch_hub.h"

namespace ckpt {

struct JsonGatewayOptions {
  // Event streams open at once; more are refused RESOURCE_EXHAUSTED (429). Each holds
  // one HTTP thread, so this stays below HttpServerOptions::threads.
  size_t max_event_streams = 8;
  // An idle event stream sends a comment this often, so a client that went away is
  // noticed and its thread freed.
  absl::Duration keep_alive = absl::Seconds(15);
};

// Thread-safe.
class JsonGateway {
 public:
  // `engine` and `hub` must outlive the gateway; `authorizer` and `history` too unless
  // null (authentication off; no throughput route).
  JsonGateway(Engine* engine, const Limits& limits, WatchHub* hub,
              const auth::Authorizer* authorizer, const ThroughputHistory* history,
              JsonGatewayOptions options = {});

  void Install(httplib::Server& server);

  // From now on API calls are answered UNAVAILABLE and event streams end (the server
  // is stopping); the hub's shutdown ends the streams that are open.
  void BeginShutdown() { stopping_ = true; }

  // Event streams open now.
  size_t open_event_streams() const { return open_streams_.load(); }

 private:
  using Handler = std::function<void(const httplib::Request&, httplib::Response&)>;

  // A read route: query parameters -> Request, then `method`.
  template <typename Request, typename Response, typename Method>
  Handler Read(absl::string_view rpc, Method method);
  // A POST route: JSON body -> Request, `preset` (may be null), then the write.
  template <typename Request, typename Response>
  Handler Action(absl::string_view rpc,
                 void (Engine::*method)(const Request&, Response*, Engine::Done),
                 std::function<void(Request*)> preset = nullptr);

  // Checks the caller may call `rpc` on the request's job; fills job_id from the path.
  absl::StatusOr<auth::PrincipalRef> Admit(const httplib::Request& http, absl::string_view rpc,
                                           google::protobuf::Message* request) const;
  // Runs a read or a queued write of the engine and waits for its answer.
  template <typename Request, typename Response>
  absl::Status Invoke(absl::Status (Engine::*method)(const Request&, Response*) const,
                      const Request& request, Response* response) const;
  template <typename Request, typename Response>
  absl::Status Invoke(void (Engine::*method)(const Request&, Response*, Engine::Done),
                      const Request& request, Response* response) const;
  // What a confined principal may not see of a listing's answer.
  static absl::Status Confine(const auth::Principal* principal,
                              google::protobuf::Message* response);

  void Events(const httplib::Request& http, httplib::Response& response);
  void WhoAmI(const httplib::Request& http, httplib::Response& response) const;
  void Throughput(const httplib::Request& http, httplib::Response& response) const;

  Engine* const engine_;
  const Limits limits_;
  WatchHub* const hub_;
  const HttpAuth auth_;
  const ThroughputHistory* const history_;
  const JsonGatewayOptions options_;
  std::atomic<bool> stopping_{false};
  std::atomic<size_t> open_streams_{0};
};

}  // namespace ckpt

#endif  // CKPT_SERVICE_HTTP_JSON_GATEWAY_H_
