// What every --serve child of the bench does around its service: stop signals held for
// sigwait, a free loopback port, the "serving on" line ChildServer waits for, and a
// clean shutdown.
#ifndef CKPT_TOOLS_BENCH_SERVE_CHILD_H_
#define CKPT_TOOLS_BENCH_SERVE_CHILD_H_

#include <grpcpp/grpcpp.h>
#include <signal.h>

namespace ckpt {
namespace bench {

// Blocks SIGINT and SIGTERM in this thread and the threads it starts from now on, and
// returns them for ServeUntilSignalled. Call it first, before any thread exists.
sigset_t BlockStopSignals();

// Serves `service` on 127.0.0.1:0 with ckptd's default 16 MiB message limit, says
// "serving on 127.0.0.1:PORT" on stderr, and waits for one of `signals`; then shuts down
// (5 s grace). Returns the process exit code: 1 if it cannot listen, else 0.
int ServeUntilSignalled(grpc::Service* service, const sigset_t& signals);

}  // namespace bench
}  // namespace ckpt

#endif  // CKPT_TOOLS_BENCH_SERVE_CHILD_H_
