// An online backup (BackupStore) is consistent and complete: taken while the eight
// writers of crash_load.h lease and complete items, the copy serves as a store of its
// own (ckptd --data_dir=COPY, the documented restore) where crash_load.h's Verify holds
// against every completion acknowledged before the backup was asked for: each one is
// there with its exact result, every item is in one state, and GetJob's counters equal
// a recount through ListItems.
#include <sys/wait.h>

#include <atomic>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "ckpt/v1/checkpoint.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/durability/ckptd_process.h"
#include "tests/durability/crash_load.h"
#include "tests/durability/wire.h"
#include "tests/testing/temp_dir.h"

namespace ckpt {
namespace {

using ::ckpt::testutil::CkptdProcess;
using ::ckpt::testutil::kWriters;
using ::ckpt::testutil::Ledger;
using ::ckpt::testutil::Round;
using ::ckpt::testutil::Verify;
using ::testing::IsEmpty;
using Stub = v1::Checkpoint::Stub;

constexpr uint64_t kItems = 2000;
constexpr uint64_t kBackupAtAck = 300;  // well before the job can finish
constexpr const char* kJob = testutil::kCrashJob;

TEST(BackupTest, ACopyTakenUnderEightWritersHoldsEveryEarlierAcknowledgedCompletion) {
  const std::string data_dir = testutil::NewTempDir("store");
  const std::string copy_dir = testutil::NewTempDir("backups") + "/copy";
  auto server = CkptdProcess::Start(data_dir, {"--sync=true"});
  ASSERT_TRUE(server.ok()) << server.status();
  std::unique_ptr<Stub> stub = (*server)->NewStub();
  v1::CreateJobRequest create;
  create.set_job_id(kJob);
  create.set_max_attempts(1000);
  ASSERT_TRUE(testutil::WireCall(*stub, &Stub::CreateJob, create).ok());
  std::vector<std::string> workers(kWriters);
  for (std::string& worker : workers) {
    auto registered = testutil::RegisterWorker(*stub, kJob);
    ASSERT_TRUE(registered.ok()) << registered.status();
    worker = *registered;
  }
  v1::AddItemsRequest add;
  add.set_job_id(kJob);
  add.add_ranges()->set_end(kItems);
  add.set_seal(true);
  ASSERT_TRUE(testutil::WireCall(*stub, &Stub::AddItems, add).ok());

  // At kBackupAtAck acknowledgements, the writer that gets there notes what was
  // acknowledged so far and starts the backup on a thread of its own; all eight go on.
  Ledger ledger;
  std::map<uint64_t, uint64_t> acked_before;
  absl::StatusOr<v1::BackupStoreResponse> backup = absl::UnknownError("not taken");
  std::atomic<uint64_t> acks_after_backup{0};
  std::thread backup_thread;
  Round round;
  round.server = server->get();
  round.kill_at = kBackupAtAck;
  round.outage = true;  // the "fault" stops no one
  round.fault = [&] {
    acked_before = ledger.acked();
    backup_thread = std::thread([&] {
      std::unique_ptr<Stub> admin = (*server)->NewStub();
      v1::BackupStoreRequest request;
      request.set_dir(copy_dir);
      backup = testutil::WireCall(*admin, &Stub::BackupStore, request);
      acks_after_backup = round.acks.load();
    });
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < kWriters; ++t) {
    threads.emplace_back(testutil::Write, t, std::ref(round), std::ref(ledger),
                         std::ref(workers[t]), 20251205 + t);
  }
  for (std::thread& thread : threads) thread.join();
  ASSERT_TRUE(backup_thread.joinable()) << "the writers finished before the backup's turn";
  backup_thread.join();
  ASSERT_THAT(ledger.errors(), IsEmpty());
  ASSERT_TRUE(backup.ok()) << backup.status();
  EXPECT_EQ(backup->dir(), copy_dir);
  std::cerr << "backup: " << backup->files() << " files, " << backup->bytes() << " bytes; "
            << acked_before.size() << " completions acknowledged before it, " << acks_after_backup
            << " when it returned, " << round.acks << " in all\n";
  Verify(**server, ledger, kItems);
  const int stopped = (*server)->Stop();
  EXPECT_TRUE(WIFEXITED(stopped) && WEXITSTATUS(stopped) == 0) << stopped;

  // The restore: ckptd on the copy.
  auto restored = CkptdProcess::Start(copy_dir, {});
  ASSERT_TRUE(restored.ok()) << restored.status();
  ledger.KeepOnlyAcks(acked_before);
  Verify(**restored, ledger, kItems);
}

}  // namespace
}  // namespace ckpt
