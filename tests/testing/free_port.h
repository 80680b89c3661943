// A free loopback TCP port, for tests and the bench that start servers on ports of
// their own choosing (PostgreSQL, Prometheus, ckptd replicas that must know their
// advertised address before they start).
#ifndef CKPT_TESTS_TESTING_FREE_PORT_H_
#define CKPT_TESTS_TESTING_FREE_PORT_H_

#include "absl/status/statusor.h"

namespace ckpt {
namespace testutil {

// A port on 127.0.0.1 that nothing listened on when asked: the kernel's pick for a
// socket bound to port 0, released at once. Another process may take it before the
// caller binds it; callers start their server on it and retry with a new port if it
// was taken. INTERNAL if no socket could be bound. Thread-safe.
absl::StatusOr<int> FreeLoopbackPort();

}  // namespace testutil
}  // namespace ckpt

#endif  // CKPT_TESTS_TESTING_FREE_PORT_H_
