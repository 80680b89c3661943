#include "tools/bench/serve_child.h"

#include <pthread.h>

#include <cstdio>
#include <memory>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace ckpt {
namespace bench {

sigset_t BlockStopSignals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  return signals;
}

int ServeUntilSignalled(grpc::Service* service, const sigset_t& signals) {
  int port = 0;
  grpc::ServerBuilder builder;
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.SetMaxReceiveMessageSize(16 << 20);  // ckptd's default --max_message_bytes
  builder.RegisterService(service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    std::fprintf(stderr, "ckpt_bench: cannot listen on 127.0.0.1:0\n");
    return 1;
  }
  std::fprintf(stderr, "ckpt_bench: serving on 127.0.0.1:%d\n", port);
  std::fflush(stderr);
  int signal_number = 0;
  sigwait(&signals, &signal_number);
  server->Shutdown(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
  server->Wait();
  return 0;
}

}  // namespace bench
}  // namespace ckpt
