// The fixture every test of the ckpt commands shares: a real ckptd in process and a
// client on it (testutil::ServerAndClientTest), and Run() to run a command the way the
// binary does and read what it printed.
#ifndef CKPT_TESTS_CLI_CLI_TEST_BASE_H_
#define CKPT_TESTS_CLI_CLI_TEST_BASE_H_

#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/clock.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "tests/testing/client_fixture.h"
#include "tools/cli/commands.h"

namespace ckpt {
namespace cli {

template <typename Message>
Message FromJson(const std::string& json) {
  Message message;
  const auto status = google::protobuf::util::JsonStringToMessage(json, &message);
  EXPECT_TRUE(status.ok()) << json;
  return message;
}

class CliTest : public testutil::ServerAndClientTest {
 protected:
  // Runs `ckpt ARGS...` and returns what it printed, or its error.
  absl::StatusOr<std::string> Run(std::vector<std::string> argv,
                                  const std::string& stdin_text = "") {
    std::ostringstream out;
    std::istringstream in(stdin_text);
    Context ctx;
    ctx.client = client_.get();
    ctx.out = &out;
    ctx.in = &in;
    ctx.now = absl::Now() + now_ahead_;
    ctx.on_watch_snapshot = on_watch_snapshot_;
    ctx.open_url = open_url_;
    ctx.keep_following = keep_following_;
    const absl::Status status = RunCommand(ctx, argv);
    if (!status.ok()) return status;
    return out.str();
  }

  // How far ahead of the real clock commands think they are: ages ("30d") then reach
  // jobs that ckptd finished moments ago.
  absl::Duration now_ahead_ = absl::ZeroDuration();
  std::function<bool(const v1::Job&)> on_watch_snapshot_;
  std::function<bool(const std::string&)> open_url_;  // `open`: none by default
  std::function<bool()> keep_following_;
};

}  // namespace cli
}  // namespace ckpt

#endif  // CKPT_TESTS_CLI_CLI_TEST_BASE_H_
