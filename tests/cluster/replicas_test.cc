// Replicas over one real PostgreSQL (tests/testing/postgres_cluster.h), as real ckptd
// processes on loopback: they split the shards fairly through lease rows, any replica
// answers any call (forwarding it to the owner), a replica killed with SIGKILL has its
// shards taken over with every acknowledged completion kept, and SIGTERM hands a
// replica's shards over before it exits.
#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "ckpt/v1/checkpoint.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/cluster/shard_map.h"
#include "service/common/status_macros.h"
#include "tests/durability/ckptd_process.h"
#include "tests/durability/wire.h"
#include "tests/testing/free_port.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/test_stores.h"

namespace ckpt {
namespace {

using ::ckpt::testutil::CkptdProcess;
using ::testing::HasSubstr;
using Stub = v1::Checkpoint::Stub;

constexpr int kShards = 6;
// A replica that can no longer renew is not counted after this; a frozen one's shards
// are free after it.
constexpr char kLease[] = "--store_lease=2s";
// Bounds a condition is awaited for (never reached unless something is broken).
constexpr absl::Duration kSettle = absl::Seconds(60);

// Polls `condition` until it holds or `bound` passes; returns whether it held.
bool Await(const std::function<bool()>& condition, absl::Duration bound = kSettle) {
  const absl::Time give_up = absl::Now() + bound;
  while (!condition()) {
    if (absl::Now() > give_up) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return true;
}

class ReplicasTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = testutil::StoreLocation::New(testutil::StoreKind::kPostgres).address();
    const size_t at = store_.find("search_path%3D");
    ASSERT_NE(at, std::string::npos) << store_;
    schema_ = store_.substr(at + std::strlen("search_path%3D"));
  }

  // Starts a replica on a free port; returns its index in replicas_.
  int StartReplica() {
    absl::StatusOr<int> port = testutil::FreeLoopbackPort();
    EXPECT_TRUE(port.ok()) << port.status();
    if (!port.ok()) return -1;
    const std::string address = absl::StrCat("127.0.0.1:", *port);
    auto started = CkptdProcess::Start(
        store_, {absl::StrCat("--listen=", address), absl::StrCat("--advertise=", address), kLease,
                 absl::StrCat("--shards=", kShards)});
    EXPECT_TRUE(started.ok()) << started.status();
    if (!started.ok()) return -1;
    replicas_.push_back(std::move(*started));
    return static_cast<int>(replicas_.size()) - 1;
  }

  // Shards whose lease runs, by the owner's address.
  std::map<std::string, int> HeldByAddress() const {
    std::map<std::string, int> held;
    absl::StatusOr<std::string> rows = testutil::TestPostgres().Query(
        absl::StrCat("SELECT coalesce(string_agg(address, ','), '') FROM ", schema_,
                     ".ckpt_owners WHERE expires > now()"));
    if (!rows.ok()) return held;
    for (absl::string_view address : absl::StrSplit(*rows, ',', absl::SkipEmpty())) {
      ++held[std::string(address)];
    }
    return held;
  }

  // The address of the replica whose lease on `shard` runs, or "".
  std::string OwnerOf(int shard) const {
    return testutil::TestPostgres()
        .Query(absl::StrCat("SELECT coalesce(max(address), '') FROM ", schema_,
                            ".ckpt_owners WHERE expires > now() AND shard = ", shard))
        .value_or("");
  }

  // Every shard held, and each of `addresses` holding its fair share (kShards split
  // as evenly as it goes).
  bool Balanced(const std::vector<std::string>& addresses) const {
    const std::map<std::string, int> held = HeldByAddress();
    int total = 0;
    for (const auto& [address, count] : held) total += count;
    if (total != kShards || held.size() != addresses.size()) return false;
    const int n = static_cast<int>(addresses.size());
    for (const std::string& address : addresses) {
      auto it = held.find(address);
      if (it == held.end() || it->second < kShards / n || it->second > (kShards + n - 1) / n) {
        return false;
      }
    }
    return true;
  }

  std::vector<std::string> Addresses() const {
    std::vector<std::string> out;
    for (const auto& replica : replicas_) out.push_back(replica->address());
    return out;
  }

  std::string store_;
  std::string schema_;
  std::vector<std::unique_ptr<CkptdProcess>> replicas_;
};

// A job id in every shard: job-<shard>-<n>, the first n that hashes there.
std::vector<std::string> OneJobPerShard() {
  std::vector<std::string> jobs(kShards);
  int found = 0;
  for (int n = 0; found < kShards; ++n) {
    const std::string id = absl::StrCat("job-", n);
    const int shard = ShardOfJob(id, kShards);
    if (jobs[shard].empty()) {
      jobs[shard] = id;
      ++found;
    }
  }
  return jobs;
}

absl::Status CreateJobWithItems(Stub& stub, const std::string& job, uint64_t items) {
  v1::CreateJobRequest create;
  create.set_job_id(job);
  create.mutable_lease_timeout()->set_seconds(30);
  CKPT_RETURN_IF_ERROR(testutil::WireCall(stub, &Stub::CreateJob, create).status());
  v1::AddItemsRequest add;
  add.set_job_id(job);
  add.add_ranges()->set_begin(0);
  add.mutable_ranges(0)->set_end(items);
  add.set_seal(true);
  return testutil::WireCall(stub, &Stub::AddItems, add).status();
}

std::string Payload(const std::string& job, uint64_t index, uint64_t token) {
  return absl::StrCat(job, "/", index, "/", token, std::string("\0\xff", 2));
}

// Leases up to `count` items of `job` as a newly registered worker and completes them;
// adds each acknowledged completion's payload to `acked` (index -> payload).
absl::Status CompleteSome(Stub& stub, const std::string& job, int count,
                          std::map<uint64_t, std::string>* acked) {
  CKPT_ASSIGN_OR_RETURN(const std::string worker, testutil::RegisterWorker(stub, job));
  v1::LeaseItemsRequest lease;
  lease.set_job_id(job);
  lease.set_worker_id(worker);
  lease.set_max_items(count);
  CKPT_ASSIGN_OR_RETURN(const v1::LeaseItemsResponse leased,
                        testutil::WireCall(stub, &Stub::LeaseItems, lease));
  v1::CompleteItemsRequest complete;
  complete.set_job_id(job);
  complete.set_worker_id(worker);
  for (const v1::Lease& l : leased.leases()) {
    v1::Completion* c = complete.add_items();
    *c->mutable_key() = l.key();
    c->set_lease_token(l.lease_token());
    c->mutable_result()->set_payload(Payload(job, l.key().index(), l.lease_token()));
  }
  CKPT_ASSIGN_OR_RETURN(const v1::CompleteItemsResponse done,
                        testutil::WireCall(stub, &Stub::CompleteItems, complete));
  for (int i = 0; i < done.outcomes_size(); ++i) {
    if (done.outcomes(i) != v1::COMPLETION_OUTCOME_COMPLETED) {
      return absl::InternalError(absl::StrCat("outcome ", done.outcomes(i), " for ", job));
    }
    (*acked)[complete.items(i).key().index()] = complete.items(i).result().payload();
  }
  return absl::OkStatus();
}

// Every item of `job` as read through `stub`: the acknowledged ones COMPLETED with their
// exact payloads, and the job's counters equal to a recount.
void ExpectKept(Stub& stub, const std::string& job, const std::map<uint64_t, std::string>& acked) {
  auto items = testutil::ListAll(stub, job, v1::ITEM_STATE_UNSPECIFIED, /*keys_only=*/false);
  ASSERT_TRUE(items.ok()) << job << ": " << items.status();
  uint64_t completed = 0;
  for (const v1::Item& item : *items) {
    if (item.state() == v1::ITEM_STATE_COMPLETED) ++completed;
    auto it = acked.find(item.key().index());
    if (it == acked.end()) continue;
    EXPECT_EQ(item.state(), v1::ITEM_STATE_COMPLETED) << job << " " << item.key().index();
    EXPECT_EQ(item.result().payload(), it->second) << job << " " << item.key().index();
  }
  EXPECT_GE(completed, acked.size()) << job;
  auto got = testutil::GetJob(stub, job);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->progress().completed(), completed) << job;
  EXPECT_EQ(got->progress().total(), items->size()) << job;
}

TEST_F(ReplicasTest, ThreeReplicasTakeAFairShareAndAnswerEveryCallThroughAnyAddress) {
  for (int i = 0; i < 3; ++i) ASSERT_GE(StartReplica(), 0);
  ASSERT_TRUE(Await([&] { return Balanced(Addresses()); })) << "held: " << HeldByAddress().size();

  const std::vector<std::string> jobs = OneJobPerShard();
  std::set<std::string> owners;
  for (int shard = 0; shard < kShards; ++shard) owners.insert(OwnerOf(shard));
  EXPECT_EQ(owners.size(), 3u);  // the jobs live on every replica

  std::vector<std::unique_ptr<Stub>> stubs;
  for (const auto& replica : replicas_) stubs.push_back(replica->NewStub());
  std::map<std::string, std::map<uint64_t, std::string>> acked;
  for (size_t j = 0; j < jobs.size(); ++j) {
    // Created through one replica, worked through the next, read through the third.
    CKPT_ASSERT_OK(CreateJobWithItems(*stubs[j % 3], jobs[j], 20));
    CKPT_ASSERT_OK(CompleteSome(*stubs[(j + 1) % 3], jobs[j], 12, &acked[jobs[j]]));
    EXPECT_EQ(acked[jobs[j]].size(), 12u);
  }
  for (int r = 0; r < 3; ++r) {
    for (const std::string& job : jobs) ExpectKept(*stubs[r], job, acked[job]);
    v1::ListJobsRequest list;
    auto listed = testutil::WireCall(*stubs[r], &Stub::ListJobs, list);
    CKPT_ASSERT_OK(listed);
    std::set<std::string> ids;
    for (const v1::Job& job : listed->jobs()) ids.insert(job.job_id());
    EXPECT_EQ(ids, std::set<std::string>(jobs.begin(), jobs.end())) << "through replica " << r;
  }
  // A job that does not exist is NOT_FOUND through any replica, forwarded or not.
  EXPECT_THAT(testutil::GetJob(*stubs[0], "no-such-job").status(),
              testutil::StatusIs(absl::StatusCode::kNotFound, ::testing::_));
  // DeleteJobs answers from every shard too: a dry run pages through them all, then
  // one call deletes them, wherever each is served.
  for (size_t j = 0; j < jobs.size(); ++j) {
    v1::StopJobRequest stop;
    stop.set_job_id(jobs[j]);
    CKPT_ASSERT_OK(testutil::WireCall(*stubs[j % 3], &Stub::StopJob, stop));
  }
  std::vector<std::string> listed;
  v1::DeleteJobsRequest dry;
  dry.set_dry_run(true);
  dry.set_limit(2);
  do {
    auto page = testutil::WireCall(*stubs[0], &Stub::DeleteJobs, dry);
    CKPT_ASSERT_OK(page);
    EXPECT_EQ(page->matched(), jobs.size());
    EXPECT_LE(page->jobs_size(), 2);
    for (const v1::DeletedJob& job : page->jobs()) listed.push_back(job.job_id());
    dry.set_page_token(page->next_page_token());
  } while (!dry.page_token().empty());
  EXPECT_THAT(listed, ::testing::UnorderedElementsAreArray(jobs));
  auto deleted = testutil::WireCall(*stubs[2], &Stub::DeleteJobs, v1::DeleteJobsRequest());
  CKPT_ASSERT_OK(deleted);
  EXPECT_EQ(deleted->jobs_size(), static_cast<int>(jobs.size()));
  EXPECT_TRUE(deleted->next_page_token().empty());
  for (const std::string& job : jobs) {
    EXPECT_THAT(testutil::GetJob(*stubs[1], job).status(),
                testutil::StatusIs(absl::StatusCode::kNotFound, ::testing::_));
  }
  // BackupStore copies a single node's store; a replica's is PostgreSQL's to back up.
  v1::BackupStoreRequest backup;
  backup.set_dir(absl::StrCat(::testing::TempDir(), "/backup"));
  EXPECT_THAT(testutil::WireCall(*stubs[1], &Stub::BackupStore, backup).status(),
              testutil::StatusIs(absl::StatusCode::kFailedPrecondition,
                                 ::testing::HasSubstr("PostgreSQL's tools")));
}

TEST_F(ReplicasTest, AKilledReplicasShardsAreTakenOverWithNothingAcknowledgedLost) {
  for (int i = 0; i < 3; ++i) ASSERT_GE(StartReplica(), 0);
  ASSERT_TRUE(Await([&] { return Balanced(Addresses()); }));
  const std::vector<std::string> jobs = OneJobPerShard();
  auto stub = replicas_[0]->NewStub();
  std::map<std::string, std::map<uint64_t, std::string>> acked;
  for (const std::string& job : jobs) {
    CKPT_ASSERT_OK(CreateJobWithItems(*stub, job, 40));
    CKPT_ASSERT_OK(CompleteSome(*stub, job, 15, &acked[job]));
  }
  const std::string victim = replicas_[2]->address();
  std::vector<std::string> orphaned;  // the victim's jobs
  for (int shard = 0; shard < kShards; ++shard) {
    if (OwnerOf(shard) == victim) orphaned.push_back(jobs[shard]);
  }
  ASSERT_FALSE(orphaned.empty());

  const absl::Time killed = absl::Now();
  replicas_[2]->Kill();
  replicas_[2]->Wait();
  // Calls for the victim's shards wait (parked) until a survivor has taken them over.
  auto survivor = replicas_[1]->NewStub();
  CKPT_ASSERT_OK(CompleteSome(*survivor, orphaned[0], 5, &acked[orphaned[0]]));
  std::cerr << "takeover after SIGKILL: first completion on the victim's shard "
            << absl::FormatDuration(absl::Now() - killed) << " after the kill\n";
  ASSERT_TRUE(Await([&] { return Balanced({replicas_[0]->address(), replicas_[1]->address()}); }));
  for (const std::string& job : jobs) {
    CKPT_ASSERT_OK(CompleteSome(*survivor, job, 40, &acked[job]));
    ExpectKept(*stub, job, acked[job]);
    EXPECT_EQ(acked[job].size(), 40u) << job;  // the job finished
  }
}

TEST_F(ReplicasTest, SigtermHandsEveryShardOverBeforeExiting) {
  for (int i = 0; i < 2; ++i) ASSERT_GE(StartReplica(), 0);
  ASSERT_TRUE(Await([&] { return Balanced(Addresses()); }));
  const std::vector<std::string> jobs = OneJobPerShard();
  auto stub = replicas_[0]->NewStub();
  std::map<std::string, std::map<uint64_t, std::string>> acked;
  for (const std::string& job : jobs) {
    CKPT_ASSERT_OK(CreateJobWithItems(*stub, job, 10));
    CKPT_ASSERT_OK(CompleteSome(*stub, job, 4, &acked[job]));
  }
  const int status = replicas_[1]->Stop();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  EXPECT_THAT(replicas_[1]->Stderr(), HasSubstr("left the cluster: every shard handed over"));
  // Released, not left to expire: the remaining replica holds them all at once.
  ASSERT_TRUE(Await([&] { return Balanced({replicas_[0]->address()}); }));
  for (const std::string& job : jobs) {
    CKPT_ASSERT_OK(CompleteSome(*stub, job, 10, &acked[job]));
    ExpectKept(*stub, job, acked[job]);
  }
}

absl::Status PutState(Stub& stub, const std::string& job, const std::string& name) {
  v1::PutStateRequest put;
  put.set_job_id(job);
  put.set_name(name);
  put.set_value(name);
  return testutil::WireCall(stub, &Stub::PutState, put).status();
}

// Whether every thread of `pid` is stopped (SIGSTOP): kill() returns before they are,
// and one busy in the kernel may still answer a call meanwhile.
bool AllThreadsStopped(pid_t pid) {
  const std::string tasks = absl::StrCat("/proc/", pid, "/task");
  DIR* dir = ::opendir(tasks.c_str());
  if (dir == nullptr) return false;
  bool stopped = true;
  while (const dirent* entry = ::readdir(dir)) {
    if (entry->d_name[0] == '.') continue;
    std::ifstream stat(absl::StrCat(tasks, "/", entry->d_name, "/stat"));
    std::string line;
    std::getline(stat, line);
    // "TID (COMM) STATE ...": the state follows the last ')'.
    const size_t paren = line.rfind(')');
    if (paren == std::string::npos || line.size() < paren + 3 || line[paren + 2] != 'T') {
      stopped = false;
    }
  }
  ::closedir(dir);
  return stopped;
}

// Calls `call` again while it answers UNAVAILABLE, at most 5 times.
absl::Status RetryUnavailable(const std::function<absl::Status()>& call) {
  absl::Status status;
  for (int attempt = 0; attempt < 5; ++attempt) {
    status = call();
    if (!absl::IsUnavailable(status)) return status;
    std::cerr << "retrying after: " << status << "\n";
  }
  return status;
}

TEST_F(ReplicasTest, AFrozenReplicasShardsAreTakenAfterItsLeaseAndItForwardsOnceThawed) {
  for (int i = 0; i < 2; ++i) ASSERT_GE(StartReplica(), 0);
  ASSERT_TRUE(Await([&] { return Balanced(Addresses()); }));
  const std::vector<std::string> jobs = OneJobPerShard();
  int shard = 0;
  while (shard < kShards && OwnerOf(shard) != replicas_[1]->address()) ++shard;
  ASSERT_LT(shard, kShards);
  const std::string job = jobs[shard];
  auto live = replicas_[0]->NewStub();
  auto frozen = replicas_[1]->NewStub();
  CKPT_ASSERT_OK(CreateJobWithItems(*live, job, 1));
  CKPT_ASSERT_OK(PutState(*live, job, "before the freeze"));
  // A WatchJob through the live replica: relayed from the owner.
  grpc::ClientContext watch_context;
  watch_context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
  v1::WatchJobRequest watch_request;
  watch_request.set_job_id(job);
  auto watch = live->WatchJob(&watch_context, watch_request);
  v1::WatchJobResponse snapshot;
  ASSERT_TRUE(watch->Read(&snapshot));

  ASSERT_EQ(::kill(replicas_[1]->pid(), SIGSTOP), 0);
  ASSERT_TRUE(Await([&] { return AllThreadsStopped(replicas_[1]->pid()); }));
  const absl::Time stopped = absl::Now();
  // A call forwarded to the frozen owner before its lease ran out has an unknown outcome:
  // it ends UNAVAILABLE once the live replica sees the lease run out (Forwarder::Abandon),
  // not when the forwarding channel's keepalive gives up, and the client retries, as the
  // SDKs do; the retry waits (parked on the live replica) until the live one has taken
  // the shard at a new epoch. (Parked from the start if the live replica already saw the
  // lease run out when the call came.)
  const absl::Status first = PutState(*live, job, "while frozen");
  if (!first.ok()) {
    EXPECT_THAT(first, testutil::StatusIs(absl::StatusCode::kUnavailable,
                                          HasSubstr("shard moved to another replica")));
  }
  CKPT_ASSERT_OK(RetryUnavailable([&] { return PutState(*live, job, "while frozen"); }));
  std::cerr << "takeover after SIGSTOP: " << absl::FormatDuration(absl::Now() - stopped)
            << " from the freeze to the next acknowledged write\n";
  EXPECT_EQ(OwnerOf(shard), replicas_[0]->address());
  // The relayed stream ended the same way (the SDKs watch again).
  while (watch->Read(&snapshot)) {
  }
  const grpc::Status watch_end = watch->Finish();
  EXPECT_EQ(watch_end.error_code(), grpc::StatusCode::UNAVAILABLE) << watch_end.error_message();
  EXPECT_THAT(watch_end.error_message(), HasSubstr("shard moved to another replica"));
  ASSERT_EQ(::kill(replicas_[1]->pid(), SIGCONT), 0);
  // The thawed replica finds its lease taken, drops the shard and forwards.
  CKPT_ASSERT_OK(
      RetryUnavailable([&] { return PutState(*frozen, job, "through the thawed one"); }));
  EXPECT_THAT(replicas_[1]->Stderr(),
              HasSubstr(absl::StrCat("shard ", shard, " was taken over by another replica")));

  v1::ListStatesRequest list;
  list.set_job_id(job);
  for (auto* stub : {live.get(), frozen.get()}) {
    auto states = testutil::WireCall(*stub, &Stub::ListStates, list);
    CKPT_ASSERT_OK(states);
    std::set<std::string> names;
    for (const v1::State& state : states->states()) names.insert(state.name());
    EXPECT_EQ(names, (std::set<std::string>{"before the freeze", "while frozen",
                                            "through the thawed one"}));
  }
}

TEST_F(ReplicasTest, ASingleCkptdRefusesAStoreMadeForReplicas) {
  ASSERT_GE(StartReplica(), 0);
  const testutil::CkptdExit single = testutil::RunCkptdExpectingExit(store_, {});
  EXPECT_THAT(single.stderr_text, HasSubstr("was made for replicas (6 shards)"));
}

}  // namespace
}  // namespace ckpt
