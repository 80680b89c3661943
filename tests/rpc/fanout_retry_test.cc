// A call spanning jobs through a replica whose view of a shard's owner is stale: the
// replica it forwards to answers that it does not own the shard, the first replica looks
// again and asks the new owner, and only that shard: the shards that answered the first
// time are not asked again. For DeleteJobs this matters: each shard deletes its share of
// the limit once, and the answer tells every job deleted. Two in-process replicas on
// loopback (CheckpointService, ShardSet, Forwarder), each shard a real engine on RocksDB.
#include <grpcpp/grpcpp.h>

#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "ckpt/v1/checkpoint.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/cluster/shard_map.h"
#include "service/cluster/shard_set.h"
#include "service/engine/engine.h"
#include "service/rpc/checkpoint_service.h"
#include "service/rpc/forwarder.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/test_stores.h"

namespace ckpt {
namespace {

using ::testing::UnorderedElementsAreArray;

constexpr int kShards = 2;

// One replica: its shards, how it reaches the others, and its gRPC server.
struct Replica {
  std::unique_ptr<ShardSet> shards;
  std::unique_ptr<Forwarder> forwarder;
  std::unique_ptr<CheckpointService> service;
  std::unique_ptr<grpc::Server> server;
  std::string address;

  ~Replica() {
    if (server != nullptr) server->Shutdown();
  }
};

void StartReplica(Replica& replica, ShardSetOptions options) {
  options.shards = kShards;
  replica.shards = std::make_unique<ShardSet>(options);
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  // The service needs the forwarder, which needs the address: a port picked first.
  replica.forwarder = std::make_unique<Forwarder>(ForwarderOptions{});
  replica.service =
      std::make_unique<CheckpointService>(replica.shards.get(), replica.forwarder.get(), Limits{});
  builder.RegisterService(replica.service.get());
  replica.server = builder.BuildAndStart();
  ASSERT_NE(replica.server, nullptr);
  replica.address = absl::StrCat("127.0.0.1:", port);
}

// A shard's engine on its own RocksDB store, with these finished jobs in it.
struct OpenShard {
  std::unique_ptr<Store> store;
  std::unique_ptr<Engine> engine;
};

template <typename Request, typename Response>
absl::Status Run(Engine& engine, void (Engine::*method)(const Request&, Response*, Engine::Done),
                 const Request& request) {
  Response response;
  absl::Status status;
  absl::Notification done;
  (engine.*method)(request, &response, [&](absl::Status s) {
    status = s;
    done.Notify();
  });
  done.WaitForNotification();
  return status;
}

OpenShard ShardWith(const std::vector<std::string>& jobs) {
  OpenShard shard;
  auto store = testutil::StoreLocation::New(testutil::StoreKind::kRocksDb).Open();
  EXPECT_TRUE(store.ok()) << store.status();
  if (!store.ok()) return shard;
  shard.store = std::move(*store);
  auto engine = Engine::Open(shard.store.get(), EngineOptions{});
  EXPECT_TRUE(engine.ok()) << engine.status();
  if (!engine.ok()) return shard;
  shard.engine = std::move(*engine);
  for (const std::string& id : jobs) {
    v1::CreateJobRequest create;
    create.set_job_id(id);
    CKPT_EXPECT_OK(Run(*shard.engine, &Engine::CreateJob, create));
    v1::StopJobRequest stop;
    stop.set_job_id(id);
    CKPT_EXPECT_OK(Run(*shard.engine, &Engine::StopJob, stop));
  }
  return shard;
}

TEST(FanOutRetryTest, ADeleteSentAgainAfterAShardMovedAsksOnlyThatShard) {
  // Three stopped jobs on each shard.
  std::vector<std::string> jobs[kShards];
  for (int i = 0; jobs[0].size() < 3 || jobs[1].size() < 3; ++i) {
    const std::string id = absl::StrCat("job-", i);
    std::vector<std::string>& bucket = jobs[ShardOfJob(id, kShards)];
    if (bucket.size() < 3) bucket.push_back(id);
  }
  OpenShard shard0 = ShardWith(jobs[0]);
  OpenShard shard1 = ShardWith(jobs[1]);
  ASSERT_FALSE(HasFailure());

  // Replica a serves shard 0 and believes b serves shard 1, which b does not yet. Told
  // otherwise (b answers "not owner"), a looks again: by then b serves it.
  Replica a, b;
  ShardSetOptions stale;
  stale.on_stale = [&] {
    if (shard1.engine == nullptr) return;
    b.shards->Serve(1, std::move(shard1.store), std::move(shard1.engine), SteadyTime::max());
    a.shards->SetRemote(1, b.address, 2);
  };
  StartReplica(a, stale);
  StartReplica(b, ShardSetOptions{});
  ASSERT_FALSE(HasFatalFailure());
  a.shards->Serve(0, std::move(shard0.store), std::move(shard0.engine), SteadyTime::max());
  a.shards->SetRemote(1, b.address, 1);

  // A limit of 4 over two shards: each deletes 2.
  auto stub =
      v1::Checkpoint::NewStub(grpc::CreateChannel(a.address, grpc::InsecureChannelCredentials()));
  v1::DeleteJobsRequest request;
  request.set_limit(4);
  grpc::ClientContext context;
  v1::DeleteJobsResponse deleted;
  ASSERT_TRUE(stub->DeleteJobs(&context, request, &deleted).ok());

  std::vector<std::string> told, gone, kept;
  for (const v1::DeletedJob& job : deleted.jobs()) told.push_back(job.job_id());
  for (int shard = 0; shard < kShards; ++shard) {
    for (const std::string& id : jobs[shard]) {
      grpc::ClientContext get_context;
      v1::GetJobRequest get;
      get.set_job_id(id);
      v1::GetJobResponse job;
      const grpc::Status status = stub->GetJob(&get_context, get, &job);
      (status.error_code() == grpc::StatusCode::NOT_FOUND ? gone : kept).push_back(id);
    }
  }
  // Every job deleted is told, and shard 0 was not asked again after it had deleted its 2.
  EXPECT_THAT(told, UnorderedElementsAreArray(gone));
  EXPECT_THAT(kept, UnorderedElementsAreArray({jobs[0][2], jobs[1][2]}));
  EXPECT_FALSE(deleted.next_page_token().empty());
}

}  // namespace
}  // namespace ckpt
