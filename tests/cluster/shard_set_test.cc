// ShardSet: routes to local engines (real RocksDB stores), to remote owners, and parks
// calls while a shard has no owner.
#include "service/cluster/shard_set.h"

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/store/rocksdb_store.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"

namespace ckpt {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testutil::StatusIs;

constexpr auto kForever = std::chrono::steady_clock::time_point::max();

struct Opened {
  std::unique_ptr<Store> store;
  std::unique_ptr<Engine> engine;
};

// An engine for `shard` of `shards` on a RocksDB store in its own directory.
Opened OpenShard(const std::string& dir, int shard, int shards) {
  RocksDbStoreOptions store_options;
  store_options.path = dir;
  auto store = RocksDbStore::Open(store_options);
  EXPECT_TRUE(store.ok()) << store.status();
  EngineOptions options;
  options.id_first = static_cast<uint64_t>(shard) + 1;
  options.id_stride = static_cast<uint64_t>(shards);
  auto engine = Engine::Open(store->get(), options);
  EXPECT_TRUE(engine.ok()) << engine.status();
  return {std::move(*store), std::move(*engine)};
}

// Routes and waits for the answer.
ShardRoute RouteNow(ShardSet& set, int shard, absl::Duration wait = absl::Seconds(30),
                    bool here = false) {
  absl::Notification done;
  ShardRoute out;
  auto then = [&](ShardRoute route) {
    out = std::move(route);
    done.Notify();
  };
  if (here) {
    set.RouteHere(shard, absl::Now() + wait, then);
  } else {
    set.Route(shard, absl::Now() + wait, then);
  }
  done.WaitForNotification();
  return out;
}

template <typename Request, typename Response>
absl::StatusOr<Response> Write(Engine& engine,
                               void (Engine::*method)(const Request&, Response*, Engine::Done),
                               const Request& request) {
  Response response;
  absl::Notification done;
  absl::Status status;
  (engine.*method)(request, &response, [&](absl::Status s) {
    status = s;
    done.Notify();
  });
  done.WaitForNotification();
  if (!status.ok()) return status;
  return response;
}

class ShardSetTest : public ::testing::Test {
 protected:
  void ServeShard(ShardSet& set, int shard) {
    Opened opened = OpenShard(testutil::NewTempDir("shard"), shard, set.shards());
    set.Serve(shard, std::move(opened.store), std::move(opened.engine), kForever);
  }
};

TEST_F(ShardSetTest, LocalRemoteAndUnknown) {
  ShardSet set({/*shards=*/4});
  ServeShard(set, 1);
  set.SetRemote(2, "127.0.0.1:7710", 3);
  ShardRoute local = RouteNow(set, 1);
  ASSERT_TRUE(local.local);
  EXPECT_EQ(local.local.shard(), 1);
  ShardRoute remote = RouteNow(set, 2);
  EXPECT_FALSE(remote.local);
  EXPECT_EQ(remote.owner, "127.0.0.1:7710");
  // Nobody owns shard 3: the call waits, then is refused UNAVAILABLE, not applied.
  ShardRoute nobody = RouteNow(set, 3, absl::Milliseconds(50));
  EXPECT_THAT(nobody.status, StatusIs(absl::StatusCode::kUnavailable, HasSubstr("no owner")));
  EXPECT_THAT(set.LocalShards(), ElementsAre(1));
}

TEST_F(ShardSetTest, ParkedCallsGoOnOnceTheShardHasAnOwner) {
  ShardSet set({/*shards=*/2});
  set.SetLoading(0);
  absl::Notification routed;
  ShardRoute parked;
  set.Route(0, absl::InfiniteFuture(), [&](ShardRoute route) {
    parked = std::move(route);
    routed.Notify();
  });
  EXPECT_FALSE(routed.HasBeenNotified());
  ServeShard(set, 0);
  routed.WaitForNotification();
  ASSERT_TRUE(parked.local);

  absl::Notification remote_routed;
  ShardRoute remote;
  set.Route(1, absl::InfiniteFuture(), [&](ShardRoute route) {
    remote = std::move(route);
    remote_routed.Notify();
  });
  set.SetRemote(1, "peer:1", 1);
  remote_routed.WaitForNotification();
  EXPECT_EQ(remote.owner, "peer:1");
}

TEST_F(ShardSetTest, ForwardedCallsForShardsNotOwnedHereAreRefusedAtOnce) {
  ShardSet set({/*shards=*/2});
  set.SetRemote(1, "peer:1", 1);
  EXPECT_THAT(RouteNow(set, 1, absl::Seconds(30), /*here=*/true).status,
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("does not own shard 1")));
  EXPECT_THAT(RouteNow(set, 0, absl::Seconds(30), /*here=*/true).status,
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("does not own shard 0")));
}

TEST_F(ShardSetTest, OlderEpochsAndStaleOwnersAreForgotten) {
  int stale_calls = 0;
  ShardSetOptions options;
  options.shards = 2;
  options.on_stale = [&] { ++stale_calls; };
  ShardSet set(options);
  set.SetRemote(0, "new:1", 5);
  set.SetRemote(0, "old:1", 4);  // an older scan: ignored
  EXPECT_EQ(RouteNow(set, 0).owner, "new:1");
  set.NoteStale(0, "other:1");  // not the known owner: nothing to forget
  EXPECT_EQ(stale_calls, 0);
  set.NoteStale(0, "new:1");
  EXPECT_EQ(stale_calls, 1);
  EXPECT_THAT(RouteNow(set, 0, absl::Milliseconds(20)).status,
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("no owner")));
}

TEST_F(ShardSetTest, ALapsedLeaseParksCallsUntilRenewed) {
  ShardSet set({/*shards=*/1});
  Opened opened = OpenShard(testutil::NewTempDir("shard"), 0, 1);
  set.Serve(0, std::move(opened.store), std::move(opened.engine),
            std::chrono::steady_clock::now());  // lapsed at once
  absl::Notification routed;
  ShardRoute parked;
  set.Route(0, absl::InfiniteFuture(), [&](ShardRoute route) {
    parked = std::move(route);
    routed.Notify();
  });
  EXPECT_FALSE(routed.HasBeenNotified());
  set.Extend(0, kForever);
  routed.WaitForNotification();
  EXPECT_TRUE(parked.local);
}

TEST_F(ShardSetTest, RetireAnswersHeldWritesFirstThenCloses) {
  ShardSet set({/*shards=*/1});
  ServeShard(set, 0);
  ShardRoute route = RouteNow(set, 0);
  ASSERT_TRUE(route.local);
  v1::CreateJobRequest create;
  create.set_job_id("j");
  v1::CreateJobResponse created;
  absl::Notification answered;
  absl::Status status;
  // The hold moves into the write's callback, as service/rpc does.
  route.local.engine().CreateJob(create, &created,
                                 [&, hold = std::move(route.local)](absl::Status s) mutable {
                                   status = s;
                                   hold = ShardHold();
                                   answered.Notify();
                                 });
  set.Retire(0, absl::Seconds(30));
  EXPECT_TRUE(answered.HasBeenNotified());  // Retire waited for it
  CKPT_EXPECT_OK(status);
  EXPECT_TRUE(set.LocalShards().empty());
  EXPECT_THAT(RouteNow(set, 0, absl::Milliseconds(20)).status,
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("no owner")));
}

class Recorder : public ShardListener {
 public:
  void OnServing(int shard, Engine*) override { events.push_back(absl::StrCat("+", shard)); }
  void OnRetiring(int shard, Engine*) override { events.push_back(absl::StrCat("-", shard)); }
  std::vector<std::string> events;
};

TEST_F(ShardSetTest, ListenersHearServingAndRetiring) {
  ShardSet set({/*shards=*/2});
  Recorder recorder;
  set.AddListener(&recorder);
  ServeShard(set, 1);
  set.Retire(1, absl::Seconds(30));
  set.RemoveListener(&recorder);
  EXPECT_THAT(recorder.events, ElementsAre("+1", "-1"));
}

TEST_F(ShardSetTest, IdsOfEachShardAreItsOwnAndContinueAfterAReopen) {
  const std::string dir = testutil::NewTempDir("ids");
  std::vector<std::string> workers;
  std::vector<uint64_t> tokens;
  for (int round = 0; round < 2; ++round) {  // the second round is a restart
    Opened opened = OpenShard(dir, /*shard=*/3, /*shards=*/16);
    v1::CreateJobRequest create;
    create.set_job_id(absl::StrCat("j", round));
    ASSERT_TRUE(Write(*opened.engine, &Engine::CreateJob, create).ok());
    v1::AddItemsRequest add;
    add.set_job_id(create.job_id());
    add.add_ranges()->set_end(2);
    ASSERT_TRUE(Write(*opened.engine, &Engine::AddItems, add).ok());
    v1::RegisterWorkerRequest reg;
    reg.set_job_id(create.job_id());
    auto worker = Write(*opened.engine, &Engine::RegisterWorker, reg);
    ASSERT_TRUE(worker.ok());
    workers.push_back(worker->worker_id());
    v1::LeaseItemsRequest lease;
    lease.set_job_id(create.job_id());
    lease.set_worker_id(worker->worker_id());
    lease.set_max_items(2);
    auto leased = Write(*opened.engine, &Engine::LeaseItems, lease);
    ASSERT_TRUE(leased.ok());
    for (const v1::Lease& l : leased->leases()) tokens.push_back(l.lease_token());
  }
  // Shard 3 of 16 issues 4, 20, 36, ...: never an id another shard issues.
  EXPECT_THAT(workers, ElementsAre("w-4", "w-20"));
  EXPECT_THAT(tokens, ElementsAre(4, 20, 36, 52));
}

}  // namespace
}  // namespace ckpt
