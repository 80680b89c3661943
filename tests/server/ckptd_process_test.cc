// The ckptd binary as an operator runs it: what it does to its files, its start-up
// lines, and how quickly it stops. ckptd runs as a child process (//:ckptd).
#include "tests/durability/ckptd_process.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "ckpt/v1/checkpoint.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/temp_dir.h"

namespace ckpt {
namespace {

namespace fs = std::filesystem;
using ::ckpt::testutil::ChildSetup;
using ::ckpt::testutil::CkptdProcess;
using ::testing::HasSubstr;
using ::testing::Not;

// A bound for a hung ckptd, never a pass/fail threshold.
constexpr absl::Duration kBound = absl::Seconds(120);

mode_t ModeOf(const fs::path& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return st.st_mode & 07777;
}

// One write, so the store has WAL, MANIFEST, OPTIONS, LOG and the rest.
void CreateJob(const CkptdProcess& ckptd, const std::string& job_id) {
  auto stub = ckptd.NewStub();
  grpc::ClientContext context;
  v1::CreateJobRequest request;
  request.set_job_id(job_id);
  v1::CreateJobResponse response;
  ASSERT_TRUE(stub->CreateJob(&context, request, &response).ok());
}

// Under the common umask 022, a new data dir and every file in it are the owner's only.
TEST(CkptdFilesTest, NewDataDirAndItsFilesArePrivate) {
  const std::string data_dir = testutil::NewTempDir("files") + "/nested/data";
  ChildSetup setup;
  setup.umask = 022;
  auto ckptd = CkptdProcess::Start(data_dir, {}, setup);
  ASSERT_TRUE(ckptd.ok()) << ckptd.status();
  CreateJob(**ckptd, "private");
  EXPECT_EQ(ModeOf(data_dir), 0700u);
  int files = 0;
  for (const auto& entry : fs::recursive_directory_iterator(data_dir)) {
    EXPECT_EQ(ModeOf(entry.path()) & 077, 0u) << entry.path() << " is open to others";
    ++files;
  }
  EXPECT_GT(files, 3);
  EXPECT_THAT((*ckptd)->Stderr(), Not(HasSubstr("open to other users")));
}

// An existing data dir others can read is used as it is, with one warning saying how
// to fix it.
TEST(CkptdFilesTest, OpenDataDirIsWarnedAbout) {
  const std::string data_dir = testutil::NewTempDir("files") + "/data";
  ASSERT_TRUE(fs::create_directory(data_dir));
  ASSERT_EQ(::chmod(data_dir.c_str(), 0755), 0);
  auto ckptd = CkptdProcess::Start(data_dir, {});
  ASSERT_TRUE(ckptd.ok()) << ckptd.status();
  EXPECT_THAT((*ckptd)->Stderr(), HasSubstr(absl::StrCat("warning: data dir ", data_dir,
                                                         " is open to other users (mode 0755)")));
  EXPECT_THAT((*ckptd)->Stderr(), HasSubstr("chmod 700"));
  EXPECT_EQ(ModeOf(data_dir), 0755u);  // not changed behind the operator's back
}

// A soft limit below the hard one is raised, and ckptd says so in one line.
TEST(CkptdFilesTest, OpenFilesLimitIsRaisedToTheHardLimit) {
  const std::string data_dir = testutil::NewTempDir("files") + "/data";
  ChildSetup setup;
  setup.open_files_soft = 1024;
  setup.open_files_hard = 4096;
  auto ckptd = CkptdProcess::Start(data_dir, {}, setup);
  ASSERT_TRUE(ckptd.ok()) << ckptd.status();
  EXPECT_THAT((*ckptd)->Stderr(),
              HasSubstr("open files limit raised from 1024 to 4096 (the hard limit)"));
}

}  // namespace
}  // namespace ckpt
