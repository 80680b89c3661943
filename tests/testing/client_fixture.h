// A gtest fixture for tests of the C++ SDK and of what is built on it (the CLI, the
// examples): a real ckptd in process (TestServer) and a ckpt::Client connected to it.
#ifndef CKPT_TESTS_TESTING_CLIENT_FIXTURE_H_
#define CKPT_TESTS_TESTING_CLIENT_FIXTURE_H_

#include <memory>
#include <utility>

#include "client/client.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/test_server.h"

namespace ckpt {
namespace testutil {

class ServerAndClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto server = TestServer::Start(ServerOptionsForTest());
    CKPT_ASSERT_OK(server);
    server_ = std::move(*server);
    client_ = Connect();
  }

  // A new client of the server, with `options` except its target.
  std::unique_ptr<Client> Connect(ClientOptions options = {}) {
    options.target = server_->server().address();
    auto client = Client::Connect(std::move(options));
    EXPECT_TRUE(client.ok()) << client.status();
    return client.ok() ? std::move(*client) : nullptr;
  }

  // The options SetUp starts the server with (TestServer::Start's rules apply).
  virtual ServerOptions ServerOptionsForTest() { return {}; }

  std::unique_ptr<TestServer> server_;
  std::unique_ptr<Client> client_;  // connected by SetUp
};

}  // namespace testutil
}  // namespace ckpt

#endif  // CKPT_TESTS_TESTING_CLIENT_FIXTURE_H_
