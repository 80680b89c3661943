#include "service/auth/roles.h"

#include <set>
#include <string>

#include "ckpt/v1/checkpoint.pb.h"
#include "google/protobuf/descriptor.h"
#include "gtest/gtest.h"

namespace ckpt {
namespace auth {
namespace {

TEST(RolesTest, EveryRoleIsAtLeastItselfAndTheOnesBefore) {
  EXPECT_TRUE(RoleAtLeast(Role::kAdmin, Role::kWorker));
  EXPECT_TRUE(RoleAtLeast(Role::kWorker, Role::kReader));
  EXPECT_TRUE(RoleAtLeast(Role::kReader, Role::kReader));
  EXPECT_FALSE(RoleAtLeast(Role::kReader, Role::kWorker));
  EXPECT_FALSE(RoleAtLeast(Role::kWorker, Role::kAdmin));
}

TEST(RolesTest, NamesRoundTrip) {
  for (Role role : {Role::kReader, Role::kWorker, Role::kAdmin}) {
    EXPECT_EQ(ParseRole(RoleName(role)), role);
  }
  EXPECT_FALSE(ParseRole("Admin").has_value());
  EXPECT_FALSE(ParseRole("").has_value());
}

// A new RPC in the proto must get a rule here, or nobody can call it.
TEST(RolesTest, EveryRpcOfTheServiceHasExactlyOneRule) {
  const google::protobuf::ServiceDescriptor* service =
      v1::CreateJobRequest::descriptor()->file()->FindServiceByName("Checkpoint");
  ASSERT_NE(service, nullptr);
  std::set<std::string> rpcs;
  for (int i = 0; i < service->method_count(); ++i) {
    rpcs.insert(service->method(i)->name());
    EXPECT_NE(FindRpcRule(service->method(i)->name()), nullptr) << service->method(i)->name();
  }
  rpcs.insert("ServerReflectionInfo");
  std::set<std::string> ruled;
  for (const RpcRule& rule : RpcRules()) {
    EXPECT_TRUE(ruled.insert(std::string(rule.rpc)).second) << "twice: " << rule.rpc;
  }
  EXPECT_EQ(ruled, rpcs);
}

TEST(RolesTest, TheIssuesBoundaries) {
  for (const char* rpc : {"GetJob", "ListJobs", "GetItem", "ListItems", "FindOutput", "ListWorkers",
                          "GetState", "ListStates", "WatchJob", "ListLogs"}) {
    EXPECT_EQ(FindRpcRule(rpc)->role, Role::kReader) << rpc;
  }
  for (const char* rpc :
       {"CreateJob", "UpdateJob", "AddItems", "LeaseItems", "CompleteItems", "FailItems",
        "RegisterWorker", "Heartbeat", "UnregisterWorker", "PutState", "FinishJob", "WriteLogs"}) {
    EXPECT_EQ(FindRpcRule(rpc)->role, Role::kWorker) << rpc;
  }
  for (const char* rpc :
       {"PauseJob", "ResumeJob", "StopJob", "ResetJob", "DeleteJob", "ResetItems"}) {
    EXPECT_EQ(FindRpcRule(rpc)->role, Role::kAdmin) << rpc;
  }
  EXPECT_EQ(FindRpcRule("ListJobs")->scope, JobScope::kFiltered);
  EXPECT_EQ(FindRpcRule("FindOutput")->scope, JobScope::kFiltered);
  // A confined admin deletes in bulk only among its own jobs.
  EXPECT_EQ(FindRpcRule("DeleteJobs")->role, Role::kAdmin);
  EXPECT_EQ(FindRpcRule("DeleteJobs")->scope, JobScope::kFiltered);
  EXPECT_EQ(FindRpcRule("ServerReflectionInfo")->scope, JobScope::kNoJob);
  // A backup holds every job: only an unconfined admin may take one.
  EXPECT_EQ(FindRpcRule("BackupStore")->role, Role::kAdmin);
  EXPECT_EQ(FindRpcRule("BackupStore")->scope, JobScope::kAllJobs);
  EXPECT_EQ(FindRpcRule("Check"), nullptr);
}

}  // namespace
}  // namespace auth
}  // namespace ckpt
