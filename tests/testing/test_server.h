// A real ckptd in process for tests that go through gRPC: a Server on 127.0.0.1:0 with a
// real store in a fresh temp dir, and a stub on a channel to it. Restart() shuts the
// server down and starts it again on the same data dir, as a redeploy would.
#ifndef CKPT_TESTS_TESTING_TEST_SERVER_H_
#define CKPT_TESTS_TESTING_TEST_SERVER_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "ckpt/v1/checkpoint.grpc.pb.h"
#include "service/common/grpc_status.h"
#include "service/server/server.h"

namespace ckpt {
namespace testutil {

// Not thread-safe: Restart() and Shutdown() must not race with calls to stub() or
// NewStub(). Calls through the stubs may run on any number of threads.
class TestServer {
 public:
  // Starts a server with `options`, except that it listens on 127.0.0.1:0 and its store
  // is a new directory under $TEST_TMPDIR. Errors are Server::Start's.
  static absl::StatusOr<std::unique_ptr<TestServer>> Start(ServerOptions options = {});

  // Shuts the server down (5 s grace) if it is running.
  ~TestServer();
  TestServer(const TestServer&) = delete;
  TestServer& operator=(const TestServer&) = delete;

  // Shuts down (calls in flight finish within a 5 s grace) and starts again on the same
  // data dir, on a new port. stub() then talks to the new server; stubs from NewStub()
  // still point at the old port and must be made again.
  absl::Status Restart();

  // Server::Shutdown. Restart() or StartOnSamePort() starts it again.
  void Shutdown(absl::Duration grace);

  // Starts again on the same data dir and the same port, as a redeployed ckptd would,
  // so that clients holding the address find it again. REQUIRES: Shutdown() was called.
  absl::Status StartOnSamePort();

  // A stub on a channel made at start (or restart).
  v1::Checkpoint::Stub& stub() { return *stub_; }
  // A stub on a new channel with its own connection (a local subchannel pool), as a
  // separate client process would have.
  std::unique_ptr<v1::Checkpoint::Stub> NewStub() const;
  // The same over `credentials`, e.g. TLS for a server started with options.tls.
  std::unique_ptr<v1::Checkpoint::Stub> NewStub(
      const std::shared_ptr<grpc::ChannelCredentials>& credentials) const;

  Server& server() { return *server_; }
  const std::string& data_dir() const { return options_.store.path; }

 private:
  explicit TestServer(ServerOptions options) : options_(std::move(options)) {}
  absl::Status StartServer();

  ServerOptions options_;
  std::unique_ptr<Server> server_;
  std::unique_ptr<v1::Checkpoint::Stub> stub_;
};

// Calls a unary RPC as a client does and returns the answer or the status gRPC gave:
//   auto job = Call(stub, &v1::Checkpoint::Stub::GetJob, request);
template <typename Request, typename Response>
absl::StatusOr<Response> Call(v1::Checkpoint::Stub& stub,
                              grpc::Status (v1::Checkpoint::Stub::*method)(grpc::ClientContext*,
                                                                           const Request&,
                                                                           Response*),
                              const Request& request) {
  grpc::ClientContext context;
  Response response;
  const grpc::Status status = (stub.*method)(&context, request, &response);
  if (!status.ok()) return FromGrpcStatus(status);
  return response;
}

}  // namespace testutil
}  // namespace ckpt

#endif  // CKPT_TESTS_TESTING_TEST_SERVER_H_
