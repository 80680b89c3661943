#include "service/http/json_gateway.h"

#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "service/common/log.h"
#include "service/engine/errors.h"
#include "service/http/json_reply.h"
#include "service/http/query_params.h"

namespace ckpt {
namespace {

std::string JobRoute(absl::string_view tail) {
  return absl::StrCat(R"(/api/v1/jobs/([^/]+))", tail);
}

absl::Status ShuttingDown() {
  return absl::UnavailableError("ckptd is shutting down; retry against the new instance");
}

// The body of a POST as the request message; an empty body is an empty request.
absl::Status ParseBody(const httplib::Request& http, google::protobuf::Message* request) {
  if (http.body.empty()) return absl::OkStatus();
  const auto parsed = google::protobuf::util::JsonStringToMessage(http.body, request);
  if (parsed.ok()) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat("body: not a JSON ",
                                                 request->GetDescriptor()->full_name(), ": ",
                                                 std::string(parsed.message())));
}

// Sets the request's job_id from the route's path; a body or query naming another job
// is refused rather than silently overridden.
absl::Status SetJobFromPath(const httplib::Request& http, google::protobuf::Message* request) {
  if (http.matches.size() < 2) return absl::OkStatus();
  const std::string path_job = http.matches[1];
  const auto* field = request->GetDescriptor()->FindFieldByName("job_id");
  if (field == nullptr) return absl::OkStatus();
  const auto* reflection = request->GetReflection();
  const std::string given = reflection->GetString(*request, field);
  if (!given.empty() && given != path_job) {
    return absl::InvalidArgumentError(absl::StrCat("job_id: the request names job \"", given,
                                                   "\" but the path names \"", path_job, "\""));
  }
  reflection->SetString(request, field, path_job);
  return absl::OkStatus();
}

std::string JobIdOf(const google::protobuf::Message& request) {
  const auto* field = request.GetDescriptor()->FindFieldByName("job_id");
  return field == nullptr ? "" : request.GetReflection()->GetString(request, field);
}

}  // namespace

JsonGateway::JsonGateway(Engine* engine, const Limits& limits, WatchHub* hub,
                         const auth::Authorizer* authorizer, const ThroughputHistory* history,
                         JsonGatewayOptions options)
    : engine_(engine),
      limits_(limits),
      hub_(hub),
      auth_(authorizer),
      history_(history),
      options_(options) {}

void JsonGateway::Install(httplib::Server& server) {
  server.Get("/api/v1/jobs",
             Read<v1::ListJobsRequest, v1::ListJobsResponse>("ListJobs", &Engine::ListJobs));
  server.Get(JobRoute(""), Read<v1::GetJobRequest, v1::GetJobResponse>("GetJob", &Engine::GetJob));
  server.Get(JobRoute("/items"),
             Read<v1::ListItemsRequest, v1::ListItemsResponse>("ListItems", &Engine::ListItems));
  server.Get(JobRoute("/item"),
             Read<v1::GetItemRequest, v1::GetItemResponse>("GetItem", &Engine::GetItem));
  server.Get(JobRoute("/workers"), Read<v1::ListWorkersRequest, v1::ListWorkersResponse>(
                                       "ListWorkers", &Engine::ListWorkers));
  server.Get(JobRoute("/states"), Read<v1::ListStatesRequest, v1::ListStatesResponse>(
                                      "ListStates", &Engine::ListStates));
  server.Get(JobRoute("/state"),
             Read<v1::GetStateRequest, v1::GetStateResponse>("GetState", &Engine::GetState));
  server.Get("/api/v1/outputs", Read<v1::FindOutputRequest, v1::FindOutputResponse>(
                                    "FindOutput", &Engine::FindOutput));
  server.Get(JobRoute("/events"),
             [this](const httplib::Request& http, httplib::Response& r) { Events(http, r); });
  server.Post(JobRoute("/pause"), Action("PauseJob", &Engine::PauseJob));
  server.Post(JobRoute("/resume"), Action("ResumeJob", &Engine::ResumeJob));
  server.Post(JobRoute("/stop"), Action("StopJob", &Engine::StopJob));
  server.Post(JobRoute("/reset-items"), Action("ResetItems", &Engine::ResetItems));
  server.Post(JobRoute("/retry"),
              Action<v1::ResetItemsRequest, v1::ResetItemsResponse>(
                  "ResetItems", &Engine::ResetItems, [](v1::ResetItemsRequest* request) {
                    if (request->state() == v1::ITEM_STATE_UNSPECIFIED) {
                      request->set_state(v1::ITEM_STATE_FAILED);
                    }
                  }));
  if (history_ != nullptr) {
    server.Get(JobRoute("/throughput"),
               [this](const httplib::Request& http, httplib::Response& r) { Throughput(http, r); });
  }
  server.Get("/api/v1/whoami",
             [this](const httplib::Request& http, httplib::Response& r) { WhoAmI(http, r); });
  // Anything else under /api/ is a JSON 404, not the dashboard's page.
  auto unknown = [](const httplib::Request& http, httplib::Response& r) {
    ReplyError(absl::NotFoundError(absl::StrCat("no API route ", http.method, " ", http.path,
                                                "; see docs/observability.md")),
               r);
  };
  server.Get(R"(/api/.*)", unknown);
  server.Post(R"(/api/.*)", unknown);
}

template <typename Request, typename Response, typename Method>
JsonGateway::Handler JsonGateway::Read(absl::string_view rpc_name, Method method) {
  const std::string rpc(rpc_name);
  return [this, rpc, method](const httplib::Request& http, httplib::Response& reply) {
    Request request;
    Response response;
    absl::Status status = FillFromQuery(http.params, &request);
    absl::StatusOr<auth::PrincipalRef> principal =
        status.ok() ? Admit(http, rpc, &request) : status;
    if (status.ok()) status = principal.status();
    if (status.ok()) status = ValidateRequest(request, limits_);
    if (status.ok()) status = Invoke(method, request, &response);
    if (status.ok()) status = Confine(principal->get(), &response);
    ReplyJson(status, response, reply);
  };
}

template <typename Request, typename Response>
JsonGateway::Handler JsonGateway::Action(absl::string_view rpc_name,
                                         void (Engine::*method)(const Request&, Response*,
                                                                Engine::Done),
                                         std::function<void(Request*)> preset) {
  const std::string rpc(rpc_name);
  return [this, rpc, method, preset](const httplib::Request& http, httplib::Response& reply) {
    Request request;
    Response response;
    absl::Status status = ParseBody(http, &request);
    if (status.ok() && preset) preset(&request);
    absl::StatusOr<auth::PrincipalRef> principal =
        status.ok() ? Admit(http, rpc, &request) : status;
    if (status.ok()) status = principal.status();
    if (status.ok()) status = ValidateRequest(request, limits_);
    if (status.ok() && *principal != nullptr) {  // every action is an admin's
      LogLine(absl::StrCat("admin action over HTTP: ", (*principal)->name, " ", rpc, " job \"",
                           request.job_id(), "\""));
    }
    if (status.ok()) status = Invoke(method, request, &response);
    ReplyJson(status, response, reply);
  };
}

absl::StatusOr<auth::PrincipalRef> JsonGateway::Admit(const httplib::Request& http,
                                                      absl::string_view rpc,
                                                      google::protobuf::Message* request) const {
  if (stopping_) return ShuttingDown();
  if (absl::Status path = SetJobFromPath(http, request); !path.ok()) return path;
  return auth_.Check(http, rpc, JobIdOf(*request));
}

template <typename Request, typename Response>
absl::Status JsonGateway::Invoke(absl::Status (Engine::*method)(const Request&, Response*) const,
                                 const Request& request, Response* response) const {
  return (engine_->*method)(request, response);
}

template <typename Request, typename Response>
absl::Status JsonGateway::Invoke(void (Engine::*method)(const Request&, Response*, Engine::Done),
                                 const Request& request, Response* response) const {
  absl::Notification answered;
  absl::Status status;
  // The writer runs the callback: it only hands the status over.
  (engine_->*method)(request, response, [&](absl::Status s) {
    status = std::move(s);
    answered.Notify();
  });
  answered.WaitForNotification();
  return status;
}

absl::Status JsonGateway::Confine(const auth::Principal* principal,
                                  google::protobuf::Message* response) {
  if (principal == nullptr || !principal->confined()) return absl::OkStatus();
  if (auto* list = dynamic_cast<v1::ListJobsResponse*>(response)) {
    auto* jobs = list->mutable_jobs();
    for (int i = jobs->size() - 1; i >= 0; --i) {
      if (!HttpAuth::Sees(principal, jobs->Get(i).job_id())) jobs->DeleteSubrange(i, 1);
    }
  } else if (auto* found = dynamic_cast<v1::FindOutputResponse*>(response)) {
    // Another team's job: the same answer as no such output.
    if (!HttpAuth::Sees(principal, found->job_id())) {
      return absl::NotFoundError("no completed item recorded this output");
    }
  }
  return absl::OkStatus();
}

void JsonGateway::WhoAmI(const httplib::Request& http, httplib::Response& reply) const {
  absl::StatusOr<auth::PrincipalRef> principal = auth_.Authenticate(http);
  if (!principal.ok()) return ReplyError(principal.status(), reply);
  google::protobuf::Struct body;
  auto& fields = *body.mutable_fields();
  const auth::Principal* who = principal->get();
  fields["authentication"].set_bool_value(auth_.enabled());
  fields["principal"].set_string_value(who == nullptr ? "" : who->name);
  fields["role"].set_string_value(
      std::string(auth::RoleName(who == nullptr ? auth::Role::kAdmin : who->role)));
  fields["jobPrefix"].set_string_value(who == nullptr ? "" : who->job_prefix);
  // The RPCs its role allows (on its own jobs, for a confined principal).
  auto* allowed = fields["allowed"].mutable_list_value();
  for (const auth::RpcRule& rule : auth::RpcRules()) {
    if (who == nullptr || auth::RoleAtLeast(who->role, rule.role)) {
      allowed->add_values()->set_string_value(std::string(rule.rpc));
    }
  }
  std::string json;
  (void)google::protobuf::util::MessageToJsonString(body, &json);
  reply.set_content(json, "application/json; charset=utf-8");
}

void JsonGateway::Throughput(const httplib::Request& http, httplib::Response& reply) const {
  v1::GetJobRequest request;  // the route reads what GetJob reads
  absl::Status status = Admit(http, "GetJob", &request).status();
  if (status.ok()) status = ValidateRequest(request, limits_);
  if (status.ok() && engine_->Snapshot(request.job_id()) == nullptr) {
    status = JobNotFound(request.job_id());
  }
  if (!status.ok()) return ReplyError(status, reply);
  google::protobuf::Struct body;
  auto& fields = *body.mutable_fields();
  fields["intervalSeconds"].set_number_value(absl::ToDoubleSeconds(history_->interval()));
  auto* samples = fields["samples"].mutable_list_value();
  for (const ThroughputHistory::Sample& sample : history_->Of(request.job_id())) {
    auto& entry = *samples->add_values()->mutable_struct_value()->mutable_fields();
    entry["time"].set_string_value(
        absl::FormatTime("%Y-%m-%dT%H:%M:%E*SZ", sample.time, absl::UTCTimeZone()));
    entry["completed"].set_string_value(absl::StrCat(sample.completed));
  }
  std::string json;
  (void)google::protobuf::util::MessageToJsonString(body, &json);
  reply.set_content(json, "application/json; charset=utf-8");
}

}  // namespace ckpt
