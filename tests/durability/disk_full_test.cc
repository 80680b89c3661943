// A full disk: ckptd's data dir is on a small tmpfs that a filler file fills up.
//   - writes fail RESOURCE_EXHAUSTED saying the disk is full, never a false OK;
//   - reads keep working, and ckptd keeps running;
//   - once the filler is deleted, the next write succeeds: nothing to restart;
//   - after a SIGKILL and a restart, every acknowledged write is there, exactly.
//
// The tmpfs is mounted in a mount namespace of this test's own (unshare), so it
// disappears with the test whatever happens. That needs root (CAP_SYS_ADMIN); without
// it the test is skipped and says why.
#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "ckpt/v1/checkpoint.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/durability/ckptd_process.h"
#include "tests/durability/wire.h"
#include "tests/testing/temp_dir.h"

namespace ckpt {
namespace {

using ::ckpt::testutil::CkptdProcess;
using ::testing::HasSubstr;
using Stub = v1::Checkpoint::Stub;

constexpr char kJob[] = "full";
constexpr size_t kDiskBytes = 32 << 20;
constexpr size_t kLeftFree = 2 << 20;  // what the filler leaves for ckptd to fill

// Set by main(): the tmpfs, or why there is none.
std::string g_mount;
std::string g_skip_reason;

// Mounts a kDiskBytes tmpfs in a private mount namespace; returns why it cannot.
std::string MountTmpfs(const std::string& dir) {
  if (::unshare(CLONE_NEWNS) != 0) {
    return absl::StrCat("unshare(CLONE_NEWNS): ", std::strerror(errno),
                        " (mounting a tmpfs needs root / CAP_SYS_ADMIN)");
  }
  // Mounts made here must not propagate to the rest of the machine.
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
    return absl::StrCat("making / private: ", std::strerror(errno));
  }
  const std::string size = absl::StrCat("size=", kDiskBytes);
  if (::mount("tmpfs", dir.c_str(), "tmpfs", 0, size.c_str()) != 0) {
    return absl::StrCat("mount -t tmpfs -o ", size, " ", dir, ": ", std::strerror(errno));
  }
  return "";
}

uint64_t FreeBytes(const std::string& dir) {
  struct statvfs fs {};
  if (::statvfs(dir.c_str(), &fs) != 0) return 0;
  return static_cast<uint64_t>(fs.f_bavail) * fs.f_frsize;
}

// A file taking all but `leave` bytes of the disk.
void Fill(const std::string& path, uint64_t leave) {
  const uint64_t free_bytes = FreeBytes(g_mount);
  ASSERT_GT(free_bytes, leave);
  const int fd = ::open(path.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  ASSERT_EQ(::posix_fallocate(fd, 0, static_cast<off_t>(free_bytes - leave)), 0);
  ::close(fd);
}

// 60 KiB that do not compress, different for each item.
std::string Payload(uint64_t index) {
  std::string payload = absl::StrCat("item ", index, ":");
  std::mt19937_64 bytes(index);
  while (payload.size() < (60 << 10)) payload.push_back(static_cast<char>(bytes()));
  return payload;
}

// Record-mode completion of one item.
absl::Status Complete(Stub& stub, uint64_t index) {
  v1::CompleteItemsRequest request;
  request.set_job_id(kJob);
  v1::Completion* item = request.add_items();
  item->mutable_key()->set_index(index);
  item->mutable_result()->set_payload(Payload(index));
  return testutil::WireCall(stub, &Stub::CompleteItems, request).status();
}

TEST(DiskFullTest, WritesFailCleanlyReadsWorkAndWritesComeBack) {
  if (!g_skip_reason.empty()) GTEST_SKIP() << "no tmpfs: " << g_skip_reason;
  const std::string data_dir = g_mount + "/data";
  const std::string filler = g_mount + "/filler";
  auto server = CkptdProcess::Start(data_dir, {"--sync=true"});
  ASSERT_TRUE(server.ok()) << server.status();
  std::unique_ptr<Stub> stub = (*server)->NewStub();
  v1::CreateJobRequest create;
  create.set_job_id(kJob);
  ASSERT_TRUE(testutil::WireCall(*stub, &Stub::CreateJob, create).ok());
  v1::AddItemsRequest add;
  add.set_job_id(kJob);
  add.add_ranges()->set_end(100000);
  ASSERT_TRUE(testutil::WireCall(*stub, &Stub::AddItems, add).ok());

  // Fill the disk: completions until one fails.
  Fill(filler, kLeftFree);
  std::map<uint64_t, bool> acked;  // index -> acknowledged
  uint64_t next = 0;
  absl::Status refused;
  for (; next < 1000 && refused.ok(); ++next) {
    refused = Complete(*stub, next);
    if (refused.ok()) acked[next] = true;
  }
  ASSERT_FALSE(refused.ok()) << "the disk never filled up";
  EXPECT_EQ(refused.code(), absl::StatusCode::kResourceExhausted) << refused;
  EXPECT_THAT(std::string(refused.message()), HasSubstr("disk is full"));
  EXPECT_GT(acked.size(), 0u);

  // While full: every kind of write is refused the same way; reads work.
  for (int i = 0; i < 3; ++i, ++next) {
    absl::Status again = Complete(*stub, next);
    EXPECT_EQ(again.code(), absl::StatusCode::kResourceExhausted) << again;
    if (again.ok()) acked[next] = true;  // it would have to be on disk, checked below
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
  auto job = testutil::GetJob(*stub, kJob);
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->progress().completed(), acked.size());
  auto first = testutil::GetItem(*stub, kJob, acked.begin()->first);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->result().payload(), Payload(acked.begin()->first));
  auto listed = testutil::ListAll(*stub, kJob, v1::ITEM_STATE_COMPLETED, /*keys_only=*/true);
  ASSERT_TRUE(listed.ok()) << listed.status();
  EXPECT_EQ(listed->size(), acked.size());
  EXPECT_THAT(testutil::GetJob(*stub, "another").status().code(), absl::StatusCode::kNotFound);

  // Space is freed: the next write succeeds, without a restart.
  ASSERT_EQ(::unlink(filler.c_str()), 0);
  absl::Status back = Complete(*stub, next);
  ASSERT_TRUE(back.ok()) << back;
  acked[next++] = true;
  for (int i = 0; i < 10; ++i, ++next) {
    ASSERT_TRUE(Complete(*stub, next).ok());
    acked[next] = true;
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
  server = CkptdProcess::Start(data_dir, {"--sync=true"});
  ASSERT_TRUE(server.ok()) << server.status();
  stub = (*server)->NewStub();
  job = testutil::GetJob(*stub, kJob);
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->progress().completed(), acked.size());
  auto completed = testutil::ListAll(*stub, kJob, v1::ITEM_STATE_COMPLETED, /*keys_only=*/false);
  ASSERT_TRUE(completed.ok()) << completed.status();
  ASSERT_EQ(completed->size(), acked.size());
  for (const v1::Item& item : *completed) {
    EXPECT_TRUE(acked.count(item.key().index())) << item.key().index();
    EXPECT_EQ(item.result().payload(), Payload(item.key().index())) << item.key().index();
  }
  v1::GetStateRequest get;
  get.set_job_id(kJob);
  get.set_name("cursor");
  auto state = testutil::WireCall(*stub, &Stub::GetState, get);
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_EQ(state->state().version(), 1u);
}

}  // namespace
}  // namespace ckpt

int main(int argc, char** argv) {
  // Before any thread starts: a mount namespace is per thread until then inherited.
  ckpt::g_mount = ckpt::testutil::NewTempDir("tmpfs");
  ckpt::g_skip_reason = ckpt::MountTmpfs(ckpt::g_mount);
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
