// A full disk, on two file systems of this test's own: a small tmpfs, and a 192 MiB ext4
// on a loop device (what servers run: ext4 allocates blocks ahead for a growing file,
// which tmpfs hides).
//   - writes fail RESOURCE_EXHAUSTED saying the disk is full and how much free space
//     writes need to resume; never a false OK;
//   - reads keep working, and ckptd keeps running;
//   - while less than that is free, refused writes write next to nothing (no doomed
//     flush attempts); once that much is free, the next write succeeds: nothing to
//     restart;
//   - a restart on the full disk is refused with how much must be freed, leaving the
//     store as it was; once that much is free, it starts, and every acknowledged write
//     is there, exactly.
//
// Both are mounted in a mount namespace of this test's own (small_disk.h). That needs
// root; without it the tests are skipped and say why.
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "ckpt/v1/checkpoint.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/durability/ckptd_process.h"
#include "tests/durability/small_disk.h"
#include "tests/durability/wire.h"
#include "tests/testing/dir_digest.h"
#include "tests/testing/temp_dir.h"

namespace ckpt {
namespace {

namespace fs = std::filesystem;
using ::ckpt::testutil::CkptdProcess;
using ::ckpt::testutil::FreeBytes;
using ::testing::HasSubstr;
using Stub = v1::Checkpoint::Stub;

constexpr char kJob[] = "full";
constexpr uint64_t kMiB = 1 << 20;

// The most free space ckptd may ask for to resume writing, and to restart, in MiB (what
// docs/api.md promises: 16 MiB of memtables, which may run a little over their budget,
// or a 32 MiB WAL, plus the next WAL's 4.4 MiB and 4 MiB spare).
constexpr uint64_t kMaxResumeMiB = 28;
constexpr uint64_t kMaxRestartMiB = 44;

struct Disk {
  std::string type;  // "tmpfs" or "ext4"
  uint64_t bytes;
  std::string mount;        // set by main()
  std::string skip_reason;  // set by main(): why it could not be mounted
};

std::vector<Disk>* g_disks = nullptr;

// 60 KiB that do not compress, different for each item.
std::string Payload(uint64_t index) {
  std::string payload = absl::StrCat("item ", index, ":");
  std::mt19937_64 bytes(index);
  while (payload.size() < (60 << 10)) payload.push_back(static_cast<char>(bytes()));
  return payload;
}

// Record-mode completion of items [first, first + count), one call.
absl::Status Complete(Stub& stub, uint64_t first, uint64_t count = 1) {
  v1::CompleteItemsRequest request;
  request.set_job_id(kJob);
  for (uint64_t i = first; i < first + count; ++i) {
    v1::Completion* item = request.add_items();
    item->mutable_key()->set_index(i);
    item->mutable_result()->set_payload(Payload(i));
  }
  return testutil::WireCall(stub, &Stub::CompleteItems, request).status();
}

// The whole MiB after `prefix` in `text` ("... once 9 MiB are free"), or 0.
uint64_t MibAfter(const std::string& text, const std::string& prefix) {
  const size_t at = text.find(prefix);
  if (at == std::string::npos) return 0;
  uint64_t mib = 0;
  const std::string rest = text.substr(at + prefix.size());
  return absl::SimpleAtoi(rest.substr(0, rest.find(' ')), &mib) ? mib : 0;
}

class DiskFullTest : public ::testing::TestWithParam<size_t> {
 protected:
  void SetUp() override {
    disk_ = &(*g_disks)[GetParam()];
    if (!disk_->skip_reason.empty())
      GTEST_SKIP() << "no " << disk_->type << ": " << disk_->skip_reason;
    data_dir_ = disk_->mount + "/data";
  }
  // The next test gets an empty disk.
  void TearDown() override {
    if (disk_->skip_reason.empty()) {
      for (const auto& entry : fs::directory_iterator(disk_->mount)) fs::remove_all(entry.path());
    }
  }

  // Files of 1 MiB filling all but `leave` bytes, to be freed one at a time.
  void FillWithPieces(uint64_t leave) {
    while (FreeBytes(disk_->mount) > leave + kMiB) {
      const std::string piece = absl::StrCat(disk_->mount, "/piece.", pieces_.size());
      ASSERT_TRUE(testutil::AllocateFile(piece, kMiB).ok());
      pieces_.push_back(piece);
    }
  }
  // Deletes pieces until at least `mib` MiB are free; false if there are not enough.
  bool FreeUntil(uint64_t mib) {
    while (FreeBytes(disk_->mount) < mib * kMiB) {
      if (pieces_.empty()) return false;
      ::unlink(pieces_.back().c_str());
      pieces_.pop_back();
    }
    return true;
  }

  // Completes items from next_ in calls of `per_call` until one is refused; returns
  // that status.
  absl::Status CompleteUntilRefused(Stub& stub, uint64_t per_call) {
    for (int calls = 0; calls < 10000; ++calls) {
      absl::Status status = Complete(stub, next_, per_call);
      if (!status.ok()) {
        next_ += per_call;
        return status;
      }
      for (uint64_t i = 0; i < per_call; ++i) acked_.push_back(next_++);
    }
    return absl::OkStatus();
  }

  // Every acknowledged item is completed with its payload, and nothing else is.
  void ExpectEveryAcknowledgedWrite(Stub& stub) {
    auto job = testutil::GetJob(stub, kJob);
    ASSERT_TRUE(job.ok()) << job.status();
    EXPECT_EQ(job->progress().completed(), acked_.size());
    auto completed = testutil::ListAll(stub, kJob, v1::ITEM_STATE_COMPLETED, /*keys_only=*/true);
    ASSERT_TRUE(completed.ok()) << completed.status();
    ASSERT_EQ(completed->size(), acked_.size());
    for (size_t i = 0; i < acked_.size(); ++i) {
      ASSERT_EQ((*completed)[i].key().index(), acked_[i]);
      auto item = testutil::GetItem(stub, kJob, acked_[i]);
      ASSERT_TRUE(item.ok()) << item.status();
      EXPECT_EQ(item->result().payload(), Payload(acked_[i])) << acked_[i];
    }
  }

  absl::StatusOr<std::unique_ptr<CkptdProcess>> StartWithJob() {
    auto server = CkptdProcess::Start(data_dir_, {"--sync=true"});
    if (!server.ok()) return server.status();
    std::unique_ptr<Stub> stub = (*server)->NewStub();
    v1::CreateJobRequest create;
    create.set_job_id(kJob);
    if (auto created = testutil::WireCall(*stub, &Stub::CreateJob, create); !created.ok()) {
      return created.status();
    }
    v1::AddItemsRequest add;
    add.set_job_id(kJob);
    add.add_ranges()->set_end(1000000);
    if (auto added = testutil::WireCall(*stub, &Stub::AddItems, add); !added.ok()) {
      return added.status();
    }
    return server;
  }

  Disk* disk_ = nullptr;
  std::string data_dir_;
  std::vector<std::string> pieces_;
  std::vector<uint64_t> acked_;  // in order
  uint64_t next_ = 0;            // the next item index to complete
};

TEST_P(DiskFullTest, WritesFailCleanlyReadsWorkAndWritesComeBack) {
  auto server = StartWithJob();
  ASSERT_TRUE(server.ok()) << server.status();
  std::unique_ptr<Stub> stub = (*server)->NewStub();

  // Fill the disk: completions until one fails.
  FillWithPieces(2 * kMiB);
  absl::Status refused = CompleteUntilRefused(*stub, 1);
  ASSERT_FALSE(refused.ok()) << "the disk never filled up";
  EXPECT_EQ(refused.code(), absl::StatusCode::kResourceExhausted) << refused;
  EXPECT_THAT(std::string(refused.message()), HasSubstr("disk is full"));
  EXPECT_GT(acked_.size(), 0u);

  // While full: every kind of write is refused the same way; reads work.
  for (int i = 0; i < 3; ++i, ++next_) {
    absl::Status again = Complete(*stub, next_);
    EXPECT_EQ(again.code(), absl::StatusCode::kResourceExhausted) << again;
    if (again.ok()) acked_.push_back(next_);  // it would have to be on disk, checked below
  }
  v1::PutStateRequest put;
  put.set_job_id(kJob);
  put.set_name("cursor");
  put.set_value(std::string(100 << 10, 'c'));
  EXPECT_EQ(testutil::WireCall(*stub, &Stub::PutState, put).status().code(),
            absl::StatusCode::kResourceExhausted);
  v1::CreateJobRequest another;
  another.set_job_id("another");
  EXPECT_EQ(testutil::WireCall(*stub, &Stub::CreateJob, another).status().code(),
            absl::StatusCode::kResourceExhausted);
  auto first = testutil::GetItem(*stub, kJob, acked_.front());
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->result().payload(), Payload(acked_.front()));
  ExpectEveryAcknowledgedWrite(*stub);
  EXPECT_THAT(testutil::GetJob(*stub, "another").status().code(), absl::StatusCode::kNotFound);

  // Space is freed: the next write succeeds, without a restart.
  const uint64_t needed = MibAfter(std::string(refused.message()), "writes resume once ");
  ASSERT_GT(needed, 0u) << refused;
  ASSERT_TRUE(FreeUntil(needed));
  ASSERT_TRUE(Complete(*stub, next_).ok());
  acked_.push_back(next_++);
  for (int i = 0; i < 10; ++i, ++next_) {
    ASSERT_TRUE(Complete(*stub, next_).ok());
    acked_.push_back(next_);
  }
  ASSERT_TRUE(testutil::WireCall(*stub, &Stub::PutState, put).ok());
  // The lines were written before the answers, but are read from the pipe by another
  // thread: wait for them (the bound is for a hang, never a threshold).
  EXPECT_TRUE((*server)->AwaitStderrLine("write failed", absl::Seconds(60)).ok())
      << (*server)->Stderr();
  EXPECT_TRUE((*server)->AwaitStderrLine("writes resumed", absl::Seconds(60)).ok())
      << (*server)->Stderr();

  // Nothing acknowledged was lost, before or after the disk filled.
  (*server)->Kill();
  (*server)->Wait();
  ASSERT_TRUE(FreeUntil(kMaxRestartMiB));
  server = CkptdProcess::Start(data_dir_, {"--sync=true"});
  ASSERT_TRUE(server.ok()) << server.status();
  stub = (*server)->NewStub();
  ExpectEveryAcknowledgedWrite(*stub);
  v1::GetStateRequest get;
  get.set_job_id(kJob);
  get.set_name("cursor");
  auto state = testutil::WireCall(*stub, &Stub::GetState, get);
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_EQ(state->state().version(), 1u);
}

// ckptd fills the disk with its own writes (the write-ahead log and what its memtables
// flush), leaving room only for files of 1 MiB made first, which the test then frees.
TEST_P(DiskFullTest, CkptdFillsTheDiskAndWritesComeBackOnceEnoughIsFree) {
  FillWithPieces(disk_->bytes / 2);  // the other half is ckptd's
  auto server = StartWithJob();
  ASSERT_TRUE(server.ok()) << server.status();
  std::unique_ptr<Stub> stub = (*server)->NewStub();
  absl::Status refused = CompleteUntilRefused(*stub, 4);
  ASSERT_EQ(refused.code(), absl::StatusCode::kResourceExhausted) << refused;
  const std::string message(refused.message());
  EXPECT_THAT(message, HasSubstr("disk is full"));
  const uint64_t needed = MibAfter(message, "writes resume once ");
  ASSERT_GT(needed, 0u) << message;
  EXPECT_LE(needed, kMaxResumeMiB) << message;

  // Short of that (by more than the rounding up): writes are still refused, and cost no
  // doomed flushes.
  ASSERT_GE(needed, 3u) << message;
  ASSERT_TRUE(FreeUntil(needed - 2));
  const uint64_t written_before = testutil::BytesWrittenBy((*server)->pid());
  for (int i = 0; i < 10; ++i, next_ += 4) {
    absl::Status again = Complete(*stub, next_, 4);
    EXPECT_EQ(again.code(), absl::StatusCode::kResourceExhausted) << again;
    EXPECT_THAT(std::string(again.message()), HasSubstr("writes resume once"));
  }
  EXPECT_LT(testutil::BytesWrittenBy((*server)->pid()) - written_before, kMiB);

  // Enough: the next write succeeds, and so do the ones after it.
  ASSERT_TRUE(FreeUntil(needed));
  ASSERT_TRUE(Complete(*stub, next_, 4).ok());
  for (int i = 0; i < 4; ++i) acked_.push_back(next_++);
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(Complete(*stub, next_).ok());
    acked_.push_back(next_++);
  }
  EXPECT_TRUE((*server)->AwaitStderrLine("writes resumed", absl::Seconds(60)).ok())
      << (*server)->Stderr();

  // Full again, then killed: a restart is refused with how much must be freed, and the
  // store is left as it was.
  refused = CompleteUntilRefused(*stub, 4);
  ASSERT_EQ(refused.code(), absl::StatusCode::kResourceExhausted) << refused;
  (*server)->Kill();
  (*server)->Wait();
  const auto before = testutil::DigestDirectory(data_dir_);
  const testutil::CkptdExit exit = testutil::RunCkptdExpectingExit(data_dir_, {});
  EXPECT_TRUE(WIFEXITED(exit.wait_status) && WEXITSTATUS(exit.wait_status) == 1)
      << exit.stderr_text;
  EXPECT_THAT(exit.stderr_text, HasSubstr("cannot start: "));
  EXPECT_THAT(exit.stderr_text, HasSubstr(data_dir_));
  EXPECT_EQ(
      std::vector<std::string>(absl::StrSplit(exit.stderr_text, '\n', absl::SkipEmpty())).size(),
      1u)
      << exit.stderr_text;
  EXPECT_THAT(testutil::ChangedFiles(before, testutil::DigestDirectory(data_dir_)),
              ::testing::IsEmpty());
  const uint64_t to_start = MibAfter(exit.stderr_text, "start once ");
  ASSERT_GT(to_start, 0u) << exit.stderr_text;
  EXPECT_LE(to_start, kMaxRestartMiB) << exit.stderr_text;

  // That much freed: it starts, with every acknowledged write.
  ASSERT_TRUE(FreeUntil(to_start));
  server = CkptdProcess::Start(data_dir_, {"--sync=true"});
  ASSERT_TRUE(server.ok()) << server.status();
  stub = (*server)->NewStub();
  ExpectEveryAcknowledgedWrite(*stub);
}

INSTANTIATE_TEST_SUITE_P(FileSystems, DiskFullTest, ::testing::Values(0, 1),
                         [](const ::testing::TestParamInfo<size_t>& info) {
                           return (*g_disks)[info.param].type;
                         });

}  // namespace
}  // namespace ckpt

int main(int argc, char** argv) {
  using ckpt::g_disks;
  g_disks = new std::vector<ckpt::Disk>{{"tmpfs", 128 << 20}, {"ext4", 192 << 20}};
  // Before any thread starts: see EnterPrivateMountNamespace.
  const absl::Status private_ns = ckpt::testutil::EnterPrivateMountNamespace();
  for (ckpt::Disk& disk : *g_disks) {
    disk.mount = ckpt::testutil::NewTempDir(disk.type);
    absl::Status mounted = private_ns;
    if (mounted.ok()) {
      mounted = disk.type == "tmpfs"
                    ? ckpt::testutil::MountTmpfs(disk.mount, disk.bytes)
                    : ckpt::testutil::MountExt4(disk.mount, disk.mount + ".img", disk.bytes);
    }
    disk.skip_reason = std::string(mounted.message());
  }
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
