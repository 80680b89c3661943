#include "tests/testing/test_server.h"

#include <utility>

#include "service/common/status_macros.h"
#include "tests/testing/temp_dir.h"

namespace ckpt {
namespace testutil {

absl::StatusOr<std::unique_ptr<TestServer>> TestServer::Start(ServerOptions options) {
  options.listen_address = "127.0.0.1:0";
  options.store.path = NewTempDir("test_server");
  std::unique_ptr<TestServer> server(new TestServer(std::move(options)));
  CKPT_RETURN_IF_ERROR(server->StartServer());
  return server;
}

TestServer::~TestServer() {
  if (server_ != nullptr) server_->Shutdown(absl::Seconds(5));
}

absl::Status TestServer::StartServer() {
  CKPT_ASSIGN_OR_RETURN(server_, Server::Start(options_));
  stub_ = v1::Checkpoint::NewStub(
      grpc::CreateChannel(server_->address(), grpc::InsecureChannelCredentials()));
  return absl::OkStatus();
}

absl::Status TestServer::Restart() {
  stub_.reset();
  if (server_ != nullptr) server_->Shutdown(absl::Seconds(5));
  server_.reset();
  return StartServer();
}

void TestServer::Shutdown(absl::Duration grace) { server_->Shutdown(grace); }

absl::Status TestServer::StartOnSamePort() {
  ServerOptions options = options_;
  options.listen_address = server_->address();
  stub_.reset();
  server_.reset();
  CKPT_ASSIGN_OR_RETURN(server_, Server::Start(options));
  stub_ = v1::Checkpoint::NewStub(
      grpc::CreateChannel(server_->address(), grpc::InsecureChannelCredentials()));
  return absl::OkStatus();
}

std::unique_ptr<v1::Checkpoint::Stub> TestServer::NewStub() const {
  return NewStub(grpc::InsecureChannelCredentials());
}

std::unique_ptr<v1::Checkpoint::Stub> TestServer::NewStub(
    const std::shared_ptr<grpc::ChannelCredentials>& credentials) const {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return v1::Checkpoint::NewStub(grpc::CreateCustomChannel(server_->address(), credentials, args));
}

}  // namespace testutil
}  // namespace ckpt
