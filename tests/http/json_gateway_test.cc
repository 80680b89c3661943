// The JSON gateway over a real engine and a real HTTP listener: reads answer what the
// engine answers, in protobuf's JSON mapping; actions change the job as their RPCs do;
// bad input is a 4xx naming the problem and changes nothing; events stream each change;
// and principals may do over HTTP exactly what their role allows.
#include "service/http/json_gateway.h"

#include <httplib.h>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "service/auth/authorizer.h"
#include "service/common/sha256.h"
#include "service/http/http_server.h"
#include "service/rpc/watch_hub.h"
#include "tests/testing/engine_harness.h"
#include "tests/testing/event_reader.h"
#include "tests/testing/http_client.h"
#include "tests/testing/status_matchers.h"

namespace ckpt {
namespace {

using ::ckpt::testutil::EventReader;
using ::ckpt::testutil::HttpAnswer;
using ::ckpt::testutil::Parse;
using ::testing::HasSubstr;
using ::testing::Not;

template <typename Message>
Message FromJson(const std::string& json) {
  Message message;
  const auto status = google::protobuf::util::JsonStringToMessage(json, &message);
  EXPECT_TRUE(status.ok()) << json;
  return message;
}

// {"error": {...}} of an error answer.
google::protobuf::Struct ErrorOf(const HttpAnswer& answer) {
  auto body = FromJson<google::protobuf::Struct>(answer.body);
  return body.fields().at("error").struct_value();
}

class JsonGatewayTest : public ::testing::Test {
 protected:
  void Start(const std::string& auth_file = "", JsonGatewayOptions options = {}) {
    hub_ = std::make_unique<WatchHub>(&h_.engine());
    if (!auth_file.empty()) {
      auto table = auth::PrincipalTable::Parse(auth_file, "test auth file");
      ASSERT_TRUE(table.ok()) << table.status();
      authorizer_ = auth::Authorizer::ForTable(*table);
    }
    ThroughputHistoryOptions sampling;
    sampling.interval = absl::ZeroDuration();  // sampled by hand: history_.SampleOnce
    history_ = std::make_unique<ThroughputHistory>(&h_.engine(), sampling);
    gateway_ = std::make_unique<JsonGateway>(&h_.engine(), Limits(), hub_.get(), authorizer_.get(),
                                             history_.get(), options);
    HttpServerOptions http;
    http.listen_address = "127.0.0.1:0";
    auto server = HttpServer::Start(http, [&](httplib::Server& s) { gateway_->Install(s); });
    CKPT_ASSERT_OK(server);
    http_ = std::move(*server);
  }
  void TearDown() override {
    if (http_ == nullptr) return;
    gateway_->BeginShutdown();
    hub_->Shutdown();
    http_->Shutdown();
  }

  std::string address() const { return http_->address(); }
  HttpAnswer Get(const std::string& path, const testutil::HttpHeaders& headers = {}) {
    auto answer = testutil::HttpGet(address(), path, headers);
    EXPECT_TRUE(answer.ok()) << answer.status();
    return answer.ok() ? *answer : HttpAnswer();
  }
  HttpAnswer Post(const std::string& path, const std::string& body = "",
                  const testutil::HttpHeaders& headers = {}) {
    auto answer = testutil::HttpPost(address(), path, body, headers);
    EXPECT_TRUE(answer.ok()) << answer.status();
    return answer.ok() ? *answer : HttpAnswer();
  }

  // Job `id` with items 0..9: 0-2 completed, 3-5 failed "timeout", 6-7 failed "oops".
  void MakeJob(const std::string& id) {
    CKPT_ASSERT_OK(h_.Call(&Engine::CreateJob,
                           Parse<v1::CreateJobRequest>(absl::StrCat(
                               "job_id: '", id, "' labels { key: 'team' ", "value: 'search' }"))));
    CKPT_ASSERT_OK(
        h_.Call(&Engine::AddItems, Parse<v1::AddItemsRequest>(absl::StrCat(
                                       "job_id: '", id, "' ranges { begin: 0 end: 10 }"))));
    v1::CompleteItemsRequest complete;
    complete.set_job_id(id);
    for (int i = 0; i < 3; ++i) complete.add_items()->mutable_key()->set_index(i);
    CKPT_ASSERT_OK(h_.Call(&Engine::CompleteItems, complete));
    v1::FailItemsRequest fail;
    fail.set_job_id(id);
    for (int i = 3; i < 8; ++i) {
      v1::Failure* f = fail.add_items();
      f->mutable_key()->set_index(i);
      f->mutable_error()->set_message(i < 6 ? "timeout" : "oops");
    }
    CKPT_ASSERT_OK(h_.Call(&Engine::FailItems, fail));
  }

  v1::Job EngineJob(const std::string& id) {
    v1::GetJobRequest get;
    get.set_job_id(id);
    auto job = h_.Read(&Engine::GetJob, get);
    EXPECT_TRUE(job.ok()) << job.status();
    return job.ok() ? job->job() : v1::Job();
  }

  std::vector<uint64_t> FailedIndices(const std::string& id) {
    v1::ListItemsRequest list;
    list.set_job_id(id);
    list.set_state(v1::ITEM_STATE_FAILED);
    auto items = h_.Read(&Engine::ListItems, list);
    std::vector<uint64_t> out;
    if (items.ok()) {
      for (const v1::Item& item : items->items()) out.push_back(item.key().index());
    }
    return out;
  }

  testutil::EngineHarness h_;
  std::unique_ptr<WatchHub> hub_;
  std::unique_ptr<auth::Authorizer> authorizer_;
  std::unique_ptr<ThroughputHistory> history_;
  std::unique_ptr<JsonGateway> gateway_;
  std::unique_ptr<HttpServer> http_;
};

TEST_F(JsonGatewayTest, ReadsAnswerWhatTheEngineAnswers) {
  Start();
  MakeJob("crawl");
  HttpAnswer job = Get("/api/v1/jobs/crawl");
  ASSERT_EQ(job.status, 200) << job.body;
  EXPECT_THAT(job.Header("Content-Type"), HasSubstr("application/json"));
  // Field names as grpcurl shows them, every field printed.
  EXPECT_THAT(job.body, HasSubstr("\"jobId\":\"crawl\""));
  EXPECT_THAT(job.body, HasSubstr("\"recentCompletions\":["));
  EXPECT_THAT(job.body, HasSubstr("\"status\":\"JOB_STATUS_RUNNING\""));
  v1::GetJobRequest get;
  get.set_job_id("crawl");
  auto direct = h_.Read(&Engine::GetJob, get);
  CKPT_ASSERT_OK(direct);
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(
      FromJson<v1::GetJobResponse>(job.body), *direct));

  auto jobs = FromJson<v1::ListJobsResponse>(
      Get("/api/v1/jobs?labels.team=search&status=JOB_STATUS_RUNNING").body);
  ASSERT_EQ(jobs.jobs_size(), 1);
  EXPECT_EQ(jobs.jobs(0).job_id(), "crawl");
  EXPECT_EQ(FromJson<v1::ListJobsResponse>(Get("/api/v1/jobs?labels.team=ads").body).jobs_size(),
            0);

  auto failed = FromJson<v1::ListItemsResponse>(
      Get("/api/v1/jobs/crawl/items?state=ITEM_STATE_FAILED&errorGroups=5").body);
  EXPECT_EQ(failed.items_size(), 5);
  ASSERT_EQ(failed.error_groups_size(), 2);
  EXPECT_EQ(failed.error_groups(0).message(), "timeout");
  EXPECT_EQ(failed.error_groups(0).count(), 3u);

  auto item = FromJson<v1::GetItemResponse>(Get("/api/v1/jobs/crawl/item?key.index=6").body);
  EXPECT_EQ(item.item().state(), v1::ITEM_STATE_FAILED);
  EXPECT_EQ(item.item().last_error().message(), "oops");
  EXPECT_EQ(
      FromJson<v1::ListWorkersResponse>(Get("/api/v1/jobs/crawl/workers").body).workers_size(), 0);
  EXPECT_EQ(Get("/api/v1/jobs/crawl/states").status, 200);
}

TEST_F(JsonGatewayTest, BadInputIsAClientErrorNamingTheProblemAndChangesNothing) {
  Start();
  MakeJob("crawl");
  HttpAnswer bogus = Get("/api/v1/jobs/crawl/items?bogus=1");
  EXPECT_EQ(bogus.status, 400);
  EXPECT_EQ(ErrorOf(bogus).fields().at("status").string_value(), "INVALID_ARGUMENT");
  EXPECT_THAT(ErrorOf(bogus).fields().at("message").string_value(), HasSubstr("bogus"));
  HttpAnswer bad_id = Get("/api/v1/jobs/bad%20id");
  EXPECT_EQ(bad_id.status, 400);
  EXPECT_THAT(ErrorOf(bad_id).fields().at("message").string_value(), HasSubstr("job_id"));
  HttpAnswer missing = Get("/api/v1/jobs/nope");
  EXPECT_EQ(missing.status, 404);
  EXPECT_EQ(ErrorOf(missing).fields().at("code").number_value(), 404);
  EXPECT_EQ(ErrorOf(missing).fields().at("status").string_value(), "NOT_FOUND");
  EXPECT_EQ(Get("/api/v1/nothing-here").status, 404);

  HttpAnswer not_json = Post("/api/v1/jobs/crawl/pause", "{not json");
  EXPECT_EQ(not_json.status, 400);
  EXPECT_THAT(ErrorOf(not_json).fields().at("message").string_value(),
              HasSubstr("ckpt.v1.PauseJobRequest"));
  HttpAnswer other_job = Post("/api/v1/jobs/crawl/pause", R"({"jobId": "other"})");
  EXPECT_EQ(other_job.status, 400);
  EXPECT_THAT(ErrorOf(other_job).fields().at("message").string_value(), HasSubstr("other"));
  HttpAnswer long_reason = Post("/api/v1/jobs/crawl/pause",
                                absl::StrCat(R"({"reason": ")", std::string(2000, 'x'), "\"}"));
  EXPECT_EQ(long_reason.status, 400);
  EXPECT_THAT(ErrorOf(long_reason).fields().at("message").string_value(), HasSubstr("reason"));
  EXPECT_EQ(EngineJob("crawl").status(), v1::JOB_STATUS_RUNNING);
  HttpAnswer resume_running_twice = Post("/api/v1/jobs/nope/resume");
  EXPECT_EQ(resume_running_twice.status, 404);
}

TEST_F(JsonGatewayTest, ActionsChangeTheJobAsTheirRpcsDo) {
  Start();
  MakeJob("crawl");
  HttpAnswer paused = Post("/api/v1/jobs/crawl/pause", R"({"reason": "maintenance"})");
  ASSERT_EQ(paused.status, 200) << paused.body;
  EXPECT_EQ(FromJson<v1::PauseJobResponse>(paused.body).job().status(), v1::JOB_STATUS_PAUSED);
  EXPECT_EQ(EngineJob("crawl").status(), v1::JOB_STATUS_PAUSED);
  EXPECT_EQ(EngineJob("crawl").status_reason(), "maintenance");
  EXPECT_EQ(Post("/api/v1/jobs/crawl/resume").status, 200);
  EXPECT_EQ(EngineJob("crawl").status(), v1::JOB_STATUS_RUNNING);
  EXPECT_EQ(Post("/api/v1/jobs/crawl/stop").status, 200);
  EXPECT_EQ(EngineJob("crawl").status(), v1::JOB_STATUS_STOPPED);
  HttpAnswer again = Post("/api/v1/jobs/crawl/resume");
  EXPECT_EQ(again.status, 400);  // FAILED_PRECONDITION: STOPPED is for good
  EXPECT_EQ(ErrorOf(again).fields().at("status").string_value(), "FAILED_PRECONDITION");
}

TEST_F(JsonGatewayTest, RetryResetsExactlyOneErrorGroupAndResetItemsOneItem) {
  Start();
  MakeJob("crawl");
  HttpAnswer dry =
      Post("/api/v1/jobs/crawl/retry", R"({"errorMessage": "timeout", "dryRun": true})");
  ASSERT_EQ(dry.status, 200) << dry.body;
  EXPECT_EQ(FromJson<v1::ResetItemsResponse>(dry.body).matched(), 3u);
  EXPECT_EQ(FailedIndices("crawl"), (std::vector<uint64_t>{3, 4, 5, 6, 7}));
  HttpAnswer retried = Post("/api/v1/jobs/crawl/retry", R"({"errorMessage": "timeout"})");
  EXPECT_EQ(FromJson<v1::ResetItemsResponse>(retried.body).matched(), 3u);
  EXPECT_EQ(FailedIndices("crawl"), (std::vector<uint64_t>{6, 7}));

  HttpAnswer one =
      Post("/api/v1/jobs/crawl/reset-items", R"({"step": "main", "keys": [{"index": "1"}]})");
  ASSERT_EQ(one.status, 200) << one.body;
  EXPECT_EQ(FromJson<v1::ResetItemsResponse>(one.body).matched(), 1u);
  EXPECT_EQ(EngineJob("crawl").progress().completed(), 2u);
  // Everything else that is failed: the rest of the retry route.
  EXPECT_EQ(FromJson<v1::ResetItemsResponse>(Post("/api/v1/jobs/crawl/retry").body).matched(), 2u);
  EXPECT_EQ(FailedIndices("crawl"), std::vector<uint64_t>{});
}

TEST_F(JsonGatewayTest, EventsStreamEachChangeThenEnd) {
  Start();
  MakeJob("crawl");
  EventReader events(address(), "/api/v1/jobs/crawl/events");
  auto first = events.NextJobWhere([](const v1::GetJobResponse&) { return true; });
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->job().progress().completed(), 3u);

  v1::CompleteItemsRequest complete;
  complete.set_job_id("crawl");
  complete.add_items()->mutable_key()->set_index(8);
  CKPT_ASSERT_OK(h_.Call(&Engine::CompleteItems, complete));
  auto after = events.NextJobWhere(
      [](const v1::GetJobResponse& r) { return r.job().progress().completed() == 4; });
  ASSERT_TRUE(after.has_value());
  ASSERT_GT(after->recent_completions_size(), 0);
  EXPECT_EQ(after->recent_completions(0).key().index(), 8u);

  CKPT_ASSERT_OK(h_.Call(&Engine::StopJob, Parse<v1::StopJobRequest>("job_id: 'crawl'")));
  auto stopped = events.NextJobWhere(
      [](const v1::GetJobResponse& r) { return r.job().status() == v1::JOB_STATUS_STOPPED; });
  ASSERT_TRUE(stopped.has_value());
  std::optional<EventReader::Event> end = events.Next();
  ASSERT_TRUE(end.has_value());
  EXPECT_EQ(end->name, "end");
  EXPECT_THAT(end->data, HasSubstr("\"status\":\"OK\""));
  // Counted out before its end was sent.
  EXPECT_EQ(gateway_->open_event_streams(), 0u);
  EXPECT_EQ(events.AwaitEnd(), 200);
}

TEST_F(JsonGatewayTest, EventStreamsAreBoundedAndAMissingJobEndsNotFound) {
  JsonGatewayOptions options;
  options.max_event_streams = 1;
  Start("", options);
  MakeJob("crawl");
  EventReader open(address(), "/api/v1/jobs/crawl/events");
  ASSERT_TRUE(open.NextJobWhere([](const v1::GetJobResponse&) { return true; }).has_value());
  HttpAnswer refused = Get("/api/v1/jobs/crawl/events");
  EXPECT_EQ(refused.status, 429);
  EXPECT_THAT(ErrorOf(refused).fields().at("message").string_value(),
              HasSubstr("too many event streams"));

  CKPT_ASSERT_OK(h_.Call(&Engine::DeleteJob, Parse<v1::DeleteJobRequest>("job_id: 'crawl'")));
  std::optional<EventReader::Event> end = open.Next();
  ASSERT_TRUE(end.has_value());
  EXPECT_EQ(end->name, "end");
  EXPECT_THAT(end->data, HasSubstr("NOT_FOUND"));
  EXPECT_EQ(open.AwaitEnd(), 200);
  // The ended stream no longer counts: another may open.
  EventReader next(address(), "/api/v1/jobs/crawl/events");
  end = next.Next();
  ASSERT_TRUE(end.has_value());
  EXPECT_EQ(end->name, "end");  // NOT_FOUND at once, not refused 429
  EXPECT_THAT(end->data, HasSubstr("NOT_FOUND"));
}

TEST_F(JsonGatewayTest, ThroughputIsTheSampledHistoryOfTheCompletedCount) {
  Start();
  MakeJob("crawl");
  EXPECT_EQ(FromJson<google::protobuf::Struct>(Get("/api/v1/jobs/crawl/throughput").body)
                .fields()
                .at("samples")
                .list_value()
                .values_size(),
            0);
  history_->SampleOnce(absl::FromUnixSeconds(1'700'000'000));
  v1::CompleteItemsRequest complete;
  complete.set_job_id("crawl");
  complete.add_items()->mutable_key()->set_index(8);
  CKPT_ASSERT_OK(h_.Call(&Engine::CompleteItems, complete));
  history_->SampleOnce(absl::FromUnixSeconds(1'700'000'005));
  auto body = FromJson<google::protobuf::Struct>(Get("/api/v1/jobs/crawl/throughput").body);
  const auto& samples = body.fields().at("samples").list_value();
  ASSERT_EQ(samples.values_size(), 2);
  EXPECT_EQ(samples.values(0).struct_value().fields().at("time").string_value(),
            "2023-11-14T22:13:20Z");
  EXPECT_EQ(samples.values(0).struct_value().fields().at("completed").string_value(), "3");
  EXPECT_EQ(samples.values(1).struct_value().fields().at("completed").string_value(), "4");
  EXPECT_EQ(Get("/api/v1/jobs/nope/throughput").status, 404);
  // A job that is no longer live is not sampled; a deleted one loses its history.
  CKPT_ASSERT_OK(h_.Call(&Engine::StopJob, Parse<v1::StopJobRequest>("job_id: 'crawl'")));
  history_->SampleOnce(absl::FromUnixSeconds(1'700'000'010));
  EXPECT_EQ(history_->Of("crawl").size(), 2u);
  CKPT_ASSERT_OK(h_.Call(&Engine::DeleteJob, Parse<v1::DeleteJobRequest>("job_id: 'crawl'")));
  history_->SampleOnce(absl::FromUnixSeconds(1'700'000'015));
  EXPECT_EQ(history_->Of("crawl").size(), 0u);
}

class JsonGatewayAuthTest : public JsonGatewayTest {
 protected:
  void SetUp() override {
    Start(absl::StrCat("ops admin token_sha256=", Sha256Hex("admin-token"), "\n",
                       "viewer reader token_sha256=", Sha256Hex("reader-token"), "\n",
                       "team-a reader token_sha256=", Sha256Hex("team-a-token"),
                       " job_prefix=team-a-\n"));
    MakeJob("crawl");
    MakeJob("team-a-crawl");
  }
  static testutil::HttpHeaders Bearer(const std::string& token) {
    return {{"Authorization", absl::StrCat("Bearer ", token)}};
  }
};

TEST_F(JsonGatewayAuthTest, NoOrUnknownTokenIsUnauthenticated) {
  HttpAnswer none = Get("/api/v1/jobs/crawl");
  EXPECT_EQ(none.status, 401);
  EXPECT_EQ(none.Header("WWW-Authenticate"), "Bearer");
  EXPECT_EQ(ErrorOf(none).fields().at("status").string_value(), "UNAUTHENTICATED");
  HttpAnswer wrong = Get("/api/v1/jobs/crawl", Bearer("guess"));
  EXPECT_EQ(wrong.status, 401);
  EXPECT_THAT(wrong.body, Not(HasSubstr("guess")));  // never echo a token
  EXPECT_EQ(Post("/api/v1/jobs/crawl/pause", "", Bearer("guess")).status, 401);
  EXPECT_EQ(Get("/api/v1/whoami").status, 401);
  EXPECT_EQ(EngineJob("crawl").status(), v1::JOB_STATUS_RUNNING);
}

TEST_F(JsonGatewayAuthTest, AReaderReadsButItsActionsAreForbiddenAndChangeNothing) {
  EXPECT_EQ(Get("/api/v1/jobs/crawl", Bearer("reader-token")).status, 200);
  HttpAnswer pause = Post("/api/v1/jobs/crawl/pause", "", Bearer("reader-token"));
  EXPECT_EQ(pause.status, 403);
  EXPECT_EQ(ErrorOf(pause).fields().at("status").string_value(), "PERMISSION_DENIED");
  EXPECT_THAT(ErrorOf(pause).fields().at("message").string_value(), HasSubstr("PauseJob"));
  HttpAnswer retry = Post("/api/v1/jobs/crawl/retry", "", Bearer("reader-token"));
  EXPECT_EQ(retry.status, 403);
  EXPECT_EQ(EngineJob("crawl").status(), v1::JOB_STATUS_RUNNING);
  EXPECT_EQ(FailedIndices("crawl").size(), 5u);

  auto whoami =
      FromJson<google::protobuf::Struct>(Get("/api/v1/whoami", Bearer("reader-token")).body);
  EXPECT_EQ(whoami.fields().at("role").string_value(), "reader");
  EXPECT_EQ(whoami.fields().at("principal").string_value(), "viewer");
  std::string allowed;
  for (const auto& value : whoami.fields().at("allowed").list_value().values()) {
    allowed += value.string_value() + " ";
  }
  EXPECT_THAT(allowed, HasSubstr("GetJob "));
  EXPECT_THAT(allowed, Not(HasSubstr("PauseJob")));

  EXPECT_EQ(Post("/api/v1/jobs/crawl/pause", "", Bearer("admin-token")).status, 200);
  EXPECT_EQ(EngineJob("crawl").status(), v1::JOB_STATUS_PAUSED);
}

TEST_F(JsonGatewayAuthTest, AConfinedPrincipalSeesOnlyItsJobs) {
  auto jobs = FromJson<v1::ListJobsResponse>(Get("/api/v1/jobs", Bearer("team-a-token")).body);
  ASSERT_EQ(jobs.jobs_size(), 1);
  EXPECT_EQ(jobs.jobs(0).job_id(), "team-a-crawl");
  EXPECT_EQ(Get("/api/v1/jobs/team-a-crawl", Bearer("team-a-token")).status, 200);
  HttpAnswer other = Get("/api/v1/jobs/crawl", Bearer("team-a-token"));
  EXPECT_EQ(other.status, 403);
  EXPECT_THAT(ErrorOf(other).fields().at("message").string_value(), HasSubstr("team-a-"));
  EXPECT_EQ(Get("/api/v1/jobs/crawl/events", Bearer("team-a-token")).status, 403);
  EXPECT_EQ(
      FromJson<v1::ListJobsResponse>(Get("/api/v1/jobs", Bearer("reader-token")).body).jobs_size(),
      2);
}

}  // namespace
}  // namespace ckpt
