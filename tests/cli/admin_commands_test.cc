// ckpt backup: a copy of the whole store, and what it says when it cannot make one.
#include <filesystem>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/cli/cli_test_base.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"

namespace ckpt {
namespace cli {
namespace {

using ::ckpt::testutil::StatusIs;
using ::testing::HasSubstr;

class AdminCommandsTest : public CliTest {};

TEST_F(AdminCommandsTest, BackupCopiesTheStoreAndSaysHowToRestoreIt) {
  v1::CreateJobRequest create;
  create.set_job_id("nightly");
  CKPT_ASSERT_OK(client_->CreateJob(create));
  const std::string dir = testutil::NewTempDir("backups") + "/copy";
  auto printed = Run({"backup", dir});
  CKPT_ASSERT_OK(printed);
  EXPECT_THAT(*printed, HasSubstr("backup in " + dir));
  EXPECT_THAT(*printed, HasSubstr("ckptd --data_dir=" + dir));
  EXPECT_TRUE(std::filesystem::exists(dir + "/CURRENT"));

  const std::string other = testutil::NewTempDir("backups") + "/copy";
  auto json = Run({"backup", other, "--json"});
  CKPT_ASSERT_OK(json);
  const auto response = FromJson<v1::BackupStoreResponse>(*json);
  EXPECT_EQ(response.dir(), other);
  EXPECT_GT(response.files(), 0u);
}

TEST_F(AdminCommandsTest, BackupRefusesAPathItCannotUse) {
  const std::string dir = testutil::NewTempDir("backups");
  EXPECT_THAT(Run({"backup", dir}),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("already exists")));
  EXPECT_THAT(Run({"backup", "copy"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("absolute path")));
  EXPECT_THAT(Run({"backup"}), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("usage")));
}

}  // namespace
}  // namespace cli
}  // namespace ckpt
