// The authorization matrix over real TLS: every RPC of ckpt.v1.Checkpoint, called by
// every kind of caller (no credentials, a wrong token, reader, worker, admin, a
// prefix-confined principal inside and outside its prefix), against a real server.
// Each call gets a fresh job; an allowed call must succeed, a refused one must answer
// its code and leave the job (and the job it would create) exactly as it was.
#include <grpcpp/grpcpp.h>

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "ckpt/v1/checkpoint.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/auth/roles.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/test_credentials.h"
#include "tests/testing/test_server.h"

namespace ckpt {
namespace {

using ::ckpt::testutil::AuthLine;
using ::ckpt::testutil::NewTestToken;
using ::ckpt::testutil::TestPki;
using ::ckpt::testutil::TestServer;
using ::testing::HasSubstr;
using Stub = v1::Checkpoint::Stub;

// A job made for one call: items 0..9 in step "main", item 0 leased to a worker,
// item 1 completed with an output, state "cursor" at version 1.
struct Fixture {
  std::string job_id;
  std::string worker_id;
  uint64_t lease_token = 0;
  std::string output_path;
};

// What a call saw: its status, and the jobs a cross-job read showed.
struct Outcome {
  grpc::Status status;
  std::vector<std::string> job_ids;
};

using RpcCall = std::function<Outcome(Stub&, grpc::ClientContext*, const Fixture&)>;

template <typename Request, typename Response>
Outcome Unary(Stub& stub, grpc::ClientContext* context,
              grpc::Status (Stub::*method)(grpc::ClientContext*, const Request&, Response*),
              const Request& request) {
  Response response;
  return Outcome{(stub.*method)(context, request, &response), {}};
}

template <typename Request>
Request ForJob(const Fixture& f) {
  Request request;
  request.set_job_id(f.job_id);
  return request;
}

v1::ItemKey Index(uint64_t index) {
  v1::ItemKey key;
  key.set_index(index);
  return key;
}

Outcome ListJobsCall(Stub& stub, grpc::ClientContext* context, const Fixture&) {
  v1::ListJobsRequest request;
  request.set_limit(1000);
  v1::ListJobsResponse response;
  Outcome outcome{stub.ListJobs(context, request, &response), {}};
  for (const v1::Job& job : response.jobs()) outcome.job_ids.push_back(job.job_id());
  return outcome;
}

Outcome FindOutputCall(Stub& stub, grpc::ClientContext* context, const Fixture& f) {
  v1::FindOutputRequest request;
  request.set_output_path(f.output_path);
  v1::FindOutputResponse response;
  Outcome outcome{stub.FindOutput(context, request, &response), {}};
  if (outcome.status.ok()) outcome.job_ids.push_back(response.job_id());
  return outcome;
}

// Deletes the fixture's job (running: it has to say so) by its id as a prefix, and
// returns the jobs deleted: a confined principal reaches only its own.
Outcome DeleteJobsCall(Stub& stub, grpc::ClientContext* context, const Fixture& f) {
  v1::DeleteJobsRequest request;
  request.set_job_id_prefix(f.job_id);
  request.add_statuses(v1::JOB_STATUS_RUNNING);
  request.set_include_unfinished(true);
  v1::DeleteJobsResponse response;
  Outcome outcome{stub.DeleteJobs(context, request, &response), {}};
  for (const v1::DeletedJob& job : response.jobs()) outcome.job_ids.push_back(job.job_id());
  return outcome;
}

Outcome WatchJobCall(Stub& stub, grpc::ClientContext* context, const Fixture& f) {
  auto reader = stub.WatchJob(context, ForJob<v1::WatchJobRequest>(f));
  v1::WatchJobResponse first;
  if (reader->Read(&first)) {
    context->TryCancel();
    reader->Finish().IgnoreError();
    return Outcome{grpc::Status::OK, {first.job().job_id()}};
  }
  return Outcome{reader->Finish(), {}};
}

// One call per RPC, each valid against its fixture, so an allowed call answers OK.
std::map<std::string, RpcCall> Calls() {
  std::map<std::string, RpcCall> calls;
  calls["CreateJob"] = [](Stub& s, grpc::ClientContext* c, const Fixture& f) {
    v1::CreateJobRequest r;
    r.set_job_id(f.job_id + "-new");
    return Unary(s, c, &Stub::CreateJob, r);
  };
  calls["GetJob"] = [](Stub& s, grpc::ClientContext* c, const Fixture& f) {
    return Unary(s, c, &Stub::GetJob, ForJob<v1::GetJobRequest>(f));
  };
  calls["ListJobs"] = ListJobsCall;
  calls["UpdateJob"] = [](Stub& s, grpc::ClientContext* c, const Fixture& f) {
    auto r = ForJob<v1::UpdateJobRequest>(f);
    r.set_stage("updated");
    return Unary(s, c, &Stub::UpdateJob, r);
  };
  calls["PauseJob"] = [](Stub& s, grpc::ClientContext* c, const Fixture& f) {
    return Unary(s, c, &Stub::PauseJob, ForJob<v1::PauseJobRequest>(f));
  };
  calls["ResumeJob"] = [](Stub& s, grpc::ClientContext* c, const Fixture& f) {
    return Unary(s, c, &Stub::ResumeJob, ForJob<v1::ResumeJobRequest>(f));
  };
  calls["StopJob"] = [](Stub& s, grpc::ClientContext* c, const Fixture& f) {
    return Unary(s, c, &Stub::StopJob, ForJob<v1::StopJobRequest>(f));
  };
  calls["FinishJob"] = [](Stub& s, grpc::ClientContext* c, const Fixture& f) {
    auto r = ForJob<v1::FinishJobRequest>(f);
    r.set_status(v1::JOB_STATUS_FAILED);
    r.set_reason("input is broken");
    return Unary(s, c, &Stub::FinishJob, r);
  };
  calls["ResetJob"] = [](Stub& s, grpc::ClientContext* c, const Fixture& f) {
    return Unary(s, c, &Stub::ResetJob, ForJob<v1::ResetJobRequest>(f));
  };
  calls["DeleteJob"] = [](Stub& s, grpc::ClientContext* c, const Fixture& f) {
    return Unary(s, c, &Stub::DeleteJob, ForJob<v1::DeleteJobRequest>(f));
  };
  calls["AddItems"] = [](Stub& s, grpc::ClientContext* c, const Fixture& f) {
    auto r = ForJob<v1::AddItemsRequest>(f);
    r.add_ranges()->set_begin(10);
    r.mutable_ranges(0)->set_end(20);
    return Unary(s, c, &Stub::AddItems, r);
  };
  calls["LeaseItems"] = [](Stub& s, grpc::ClientContext* c, const Fixture& f) {
    auto r = ForJob<v1::LeaseItemsRequest>(f);
    r.set_worker_id(f.worker_id);
    r.set_max_items(1);
    return Unary(s, c, &Stub::LeaseItems, r);
  };
  calls["CompleteItems"] = [](Stub& s, grpc::ClientContext* c, const Fixture& f) {
    auto r = ForJob<v1::CompleteItemsRequest>(f);
    *r.add_items()->mutable_key() = Index(0);
    r.mutable_items(0)->set_lease_token(f.lease_token);
    return Unary(s, c, &Stub::CompleteItems, r);
  };
  calls["FailItems"] = [](Stub& s, grpc::ClientContext* c, const Fixture& f) {
    auto r = ForJob<v1::FailItemsRequest>(f);
    v1::Failure* failure = r.add_items();
    *failure->mutable_key() = Index(0);
    failure->set_lease_token(f.lease_token);
    failure->mutable_error()->set_message("boom");
    return Unary(s, c, &Stub::FailItems, r);
  };
  calls["GetItem"] = [](Stub& s, grpc::ClientContext* c, const Fixture& f) {
    auto r = ForJob<v1::GetItemRequest>(f);
    *r.mutable_key() = Index(1);
    return Unary(s, c, &Stub::GetItem, r);
  };
  calls["ListItems"] = [](Stub& s, grpc::ClientContext* c, const Fixture& f) {
    return Unary(s, c, &Stub::ListItems, ForJob<v1::ListItemsRequest>(f));
  };
  calls["ResetItems"] = [](Stub& s, grpc::ClientContext* c, const Fixture& f) {
    return Unary(s, c, &Stub::ResetItems, ForJob<v1::ResetItemsRequest>(f));
  };
  calls["FindOutput"] = FindOutputCall;
  calls["RegisterWorker"] = [](Stub& s, grpc::ClientContext* c, const Fixture& f) {
    auto r = ForJob<v1::RegisterWorkerRequest>(f);
    r.set_hostname("node2");
    return Unary(s, c, &Stub::RegisterWorker, r);
  };
  calls["Heartbeat"] = [](Stub& s, grpc::ClientContext* c, const Fixture& f) {
    auto r = ForJob<v1::HeartbeatRequest>(f);
    r.set_worker_id(f.worker_id);
    v1::HeldLease* held = r.add_leases();
    *held->mutable_key() = Index(0);
    held->set_lease_token(f.lease_token);
    held->set_cursor("row 7");
    return Unary(s, c, &Stub::Heartbeat, r);
  };
  calls["ListWorkers"] = [](Stub& s, grpc::ClientContext* c, const Fixture& f) {
    return Unary(s, c, &Stub::ListWorkers, ForJob<v1::ListWorkersRequest>(f));
  };
  calls["UnregisterWorker"] = [](Stub& s, grpc::ClientContext* c, const Fixture& f) {
    auto r = ForJob<v1::UnregisterWorkerRequest>(f);
    r.set_worker_id(f.worker_id);
    return Unary(s, c, &Stub::UnregisterWorker, r);
  };
  calls["PutState"] = [](Stub& s, grpc::ClientContext* c, const Fixture& f) {
    auto r = ForJob<v1::PutStateRequest>(f);
    r.set_name("cursor");
    r.set_value("42");
    return Unary(s, c, &Stub::PutState, r);
  };
  calls["GetState"] = [](Stub& s, grpc::ClientContext* c, const Fixture& f) {
    auto r = ForJob<v1::GetStateRequest>(f);
    r.set_name("cursor");
    return Unary(s, c, &Stub::GetState, r);
  };
  calls["ListStates"] = [](Stub& s, grpc::ClientContext* c, const Fixture& f) {
    return Unary(s, c, &Stub::ListStates, ForJob<v1::ListStatesRequest>(f));
  };
  calls["WriteLogs"] = [](Stub& s, grpc::ClientContext* c, const Fixture& f) {
    auto r = ForJob<v1::WriteLogsRequest>(f);
    r.set_worker_id(f.worker_id);
    v1::ItemLogs* item = r.add_items();
    *item->mutable_key() = Index(0);
    item->add_entries()->set_message("parsed row 7");
    return Unary(s, c, &Stub::WriteLogs, r);
  };
  calls["ListLogs"] = [](Stub& s, grpc::ClientContext* c, const Fixture& f) {
    return Unary(s, c, &Stub::ListLogs, ForJob<v1::ListLogsRequest>(f));
  };
  calls["WatchJob"] = WatchJobCall;
  calls["DeleteJobs"] = DeleteJobsCall;
  calls["BackupStore"] = [](Stub& s, grpc::ClientContext* c, const Fixture&) {
    v1::BackupStoreRequest r;
    r.set_dir(testutil::NewTempDir("backup") + "/copy");
    return Unary(s, c, &Stub::BackupStore, r);
  };
  return calls;
}

// A kind of caller: its token (none: no credentials) and the jobs it is called on.
struct Caller {
  std::string label;
  std::optional<std::string> token;
  bool authenticates = true;
  auth::Role role = auth::Role::kReader;
  std::string job_prefix;    // of the jobs it calls on
  bool outside_own = false;  // they are outside the prefix it is confined to
};

class AuthorizationMatrixTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto pki = TestPki::Make();
    CKPT_ASSERT_OK(pki);
    pki_.emplace(*std::move(pki));
    const std::string auth_file = testutil::NewTempDir("auth") + "/auth";
    testutil::WriteFileAtomically(
        auth_file, AuthLine("ops", "admin", admin_token_) +
                       AuthLine("pipeline", "worker", worker_token_) +
                       AuthLine("dashboard", "reader", reader_token_) +
                       AuthLine("team-a-lead", "admin", team_admin_token_, "job_prefix=team-a-") +
                       AuthLine("team-a-view", "reader", team_reader_token_, "job_prefix=team-a-"));
    ServerOptions options;
    options.store.sync = false;  // the matrix checks decisions, not durability
    options.tls.cert = pki_->Path("server.crt");
    options.tls.key = pki_->Path("server.key");
    options.auth_file = auth_file;
    auto server = TestServer::Start(options);
    CKPT_ASSERT_OK(server);
    server_ = std::move(*server);
    stub_ = server_->NewStub(pki_->Credentials());
  }

  std::vector<Caller> Callers() const {
    return {
        {"no credentials", std::nullopt, false, auth::Role::kReader, "job-"},
        {"wrong token", NewTestToken("wrong"), false, auth::Role::kReader, "job-"},
        {"reader", reader_token_, true, auth::Role::kReader, "job-"},
        {"worker", worker_token_, true, auth::Role::kWorker, "job-"},
        {"admin", admin_token_, true, auth::Role::kAdmin, "job-"},
        {"confined admin inside", team_admin_token_, true, auth::Role::kAdmin, "team-a-"},
        {"confined admin outside", team_admin_token_, true, auth::Role::kAdmin, "team-b-", true},
        {"confined reader inside", team_reader_token_, true, auth::Role::kReader, "team-a-"},
    };
  }

  // `token` in the call's metadata, as the clients send it.
  static void Authorize(grpc::ClientContext* context, const std::optional<std::string>& token) {
    if (token.has_value()) context->AddMetadata("authorization", "Bearer " + *token);
  }

  template <typename Request, typename Response>
  Response AsAdmin(grpc::Status (Stub::*method)(grpc::ClientContext*, const Request&, Response*),
                   const Request& request) {
    grpc::ClientContext context;
    Authorize(&context, admin_token_);
    Response response;
    const grpc::Status status = ((*stub_).*method)(&context, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response;
  }

  Fixture Prepare(const std::string& job_id);
  std::string Dump(const Fixture& f);

  const std::string admin_token_ = NewTestToken("admin");
  const std::string worker_token_ = NewTestToken("worker");
  const std::string reader_token_ = NewTestToken("reader");
  const std::string team_admin_token_ = NewTestToken("team-admin");
  const std::string team_reader_token_ = NewTestToken("team-reader");
  std::optional<TestPki> pki_;
  std::unique_ptr<TestServer> server_;
  std::unique_ptr<Stub> stub_;
};

Fixture AuthorizationMatrixTest::Prepare(const std::string& job_id) {
  Fixture f;
  f.job_id = job_id;
  f.output_path = "/out/" + job_id + "/1.parquet";
  v1::CreateJobRequest create;
  create.set_job_id(job_id);
  AsAdmin(&Stub::CreateJob, create);
  auto add = ForJob<v1::AddItemsRequest>(f);
  add.add_ranges()->set_begin(0);
  add.mutable_ranges(0)->set_end(10);
  AsAdmin(&Stub::AddItems, add);
  auto registered = AsAdmin(&Stub::RegisterWorker, ForJob<v1::RegisterWorkerRequest>(f));
  f.worker_id = registered.worker_id();
  auto lease = ForJob<v1::LeaseItemsRequest>(f);
  lease.set_worker_id(f.worker_id);
  lease.set_max_items(1);
  auto leased = AsAdmin(&Stub::LeaseItems, lease);
  EXPECT_EQ(leased.leases_size(), 1);
  if (leased.leases_size() == 1) f.lease_token = leased.leases(0).lease_token();
  auto complete = ForJob<v1::CompleteItemsRequest>(f);
  v1::Completion* completion = complete.add_items();
  *completion->mutable_key() = Index(1);
  completion->mutable_result()->add_output_paths(f.output_path);
  AsAdmin(&Stub::CompleteItems, complete);
  auto state = ForJob<v1::PutStateRequest>(f);
  state.set_name("cursor");
  state.set_value("7");
  AsAdmin(&Stub::PutState, state);
  return f;
}

void ClearClockFields(v1::Progress* progress) {
  progress->clear_elapsed();
  progress->clear_recent_rate();
  progress->clear_eta();
  progress->clear_active_workers();
}

// Everything a call could change about its fixture, read as admin.
std::string AuthorizationMatrixTest::Dump(const Fixture& f) {
  v1::Job job = AsAdmin(&Stub::GetJob, ForJob<v1::GetJobRequest>(f)).job();
  ClearClockFields(job.mutable_progress());
  for (v1::StepProgress& step : *job.mutable_step_progress()) {
    ClearClockFields(step.mutable_progress());
  }
  auto items = ForJob<v1::ListItemsRequest>(f);
  items.set_limit(100);
  auto workers = ForJob<v1::ListWorkersRequest>(f);
  workers.set_include_exited(true);
  v1::ListWorkersResponse listed_workers = AsAdmin(&Stub::ListWorkers, workers);
  for (v1::Worker& worker : *listed_workers.mutable_workers()) worker.clear_last_heartbeat();
  grpc::ClientContext context;
  Authorize(&context, admin_token_);
  v1::GetJobRequest created;
  created.set_job_id(f.job_id + "-new");
  v1::GetJobResponse unused;
  const grpc::Status new_job = stub_->GetJob(&context, created, &unused);
  return absl::StrCat(job.DebugString(), AsAdmin(&Stub::ListItems, items).DebugString(),
                      AsAdmin(&Stub::ListStates, ForJob<v1::ListStatesRequest>(f)).DebugString(),
                      listed_workers.DebugString(), "created job: ", new_job.error_code());
}

grpc::StatusCode Expected(const Caller& caller, const auth::RpcRule& rule) {
  if (!caller.authenticates) return grpc::StatusCode::UNAUTHENTICATED;
  if (!auth::RoleAtLeast(caller.role, rule.role)) return grpc::StatusCode::PERMISSION_DENIED;
  if (caller.outside_own && rule.scope == auth::JobScope::kOneJob) {
    return grpc::StatusCode::PERMISSION_DENIED;
  }
  // The whole store is beyond any prefix.
  const bool confined = caller.job_prefix == "team-a-" || caller.outside_own;
  if (confined && rule.scope == auth::JobScope::kAllJobs) {
    return grpc::StatusCode::PERMISSION_DENIED;
  }
  // A confined principal finds no output of another team's job.
  if (caller.outside_own && rule.rpc == "FindOutput") return grpc::StatusCode::NOT_FOUND;
  return grpc::StatusCode::OK;
}

TEST_F(AuthorizationMatrixTest, EveryRpcTimesEveryCaller) {
  const std::map<std::string, RpcCall> calls = Calls();
  // The table has a rule per RPC (roles_test checks it against the proto); the matrix
  // has a call per rule.
  for (const auth::RpcRule& rule : auth::RpcRules()) {
    if (rule.rpc != "ServerReflectionInfo") {
      EXPECT_EQ(calls.count(std::string(rule.rpc)), 1u) << rule.rpc;
    }
  }
  int cell = 0;
  for (const Caller& caller : Callers()) {
    for (const auto& [rpc, call] : calls) {
      SCOPED_TRACE(absl::StrCat(rpc, " by ", caller.label));
      const auth::RpcRule& rule = *auth::FindRpcRule(rpc);
      const Fixture f = Prepare(absl::StrCat(caller.job_prefix, rpc, "-", ++cell));
      const std::string before = Dump(f);
      grpc::ClientContext context;
      Authorize(&context, caller.token);
      const Outcome outcome = call(*stub_, &context, f);
      const grpc::StatusCode expected = Expected(caller, rule);
      EXPECT_EQ(outcome.status.error_code(), expected) << outcome.status.error_message();
      if (expected != grpc::StatusCode::OK) {
        EXPECT_EQ(Dump(f), before) << "a refused call changed its job";
        if (caller.token.has_value()) {
          EXPECT_THAT(outcome.status.error_message(), ::testing::Not(HasSubstr(*caller.token)));
        }
      }
      if (expected == grpc::StatusCode::PERMISSION_DENIED) {
        EXPECT_THAT(outcome.status.error_message(), HasSubstr(rpc));
        if (caller.outside_own) {
          EXPECT_THAT(outcome.status.error_message(), HasSubstr("team-a-"));
        }
        if (!auth::RoleAtLeast(caller.role, rule.role)) {
          EXPECT_THAT(outcome.status.error_message(),
                      HasSubstr(absl::StrCat("needs the ", auth::RoleName(rule.role), " role")));
        }
      }
      if (expected == grpc::StatusCode::UNAUTHENTICATED) {
        EXPECT_THAT(outcome.status.error_message(), HasSubstr(rpc));
      }
      // Cross-job reads show a confined principal only its own jobs.
      for (const std::string& job_id : outcome.job_ids) {
        if (caller.job_prefix == "team-a-" || caller.outside_own) {
          EXPECT_TRUE(absl::StartsWith(job_id, "team-a-")) << rpc << " showed " << job_id;
        }
      }
      if ((rpc == "ListJobs" || rpc == "DeleteJobs") && outcome.status.ok()) {
        const bool sees_own = caller.job_prefix == "team-a-" || !caller.outside_own;
        EXPECT_EQ(std::count(outcome.job_ids.begin(), outcome.job_ids.end(), f.job_id),
                  sees_own ? 1 : 0);
      }
    }
  }
}

}  // namespace
}  // namespace ckpt
