// A hostile HTTP/2 client of our own, speaking raw frames over a socket: the "rapid
// reset" pattern (CVE-2023-44487), HEADERS opening a gRPC call and RST_STREAM
// cancelling it at once, as fast as the socket takes them.
#ifndef CKPT_TESTS_SERVER_HTTP2_FLOOD_H_
#define CKPT_TESTS_SERVER_HTTP2_FLOOD_H_

#include <string>

#include "absl/status/statusor.h"

namespace ckpt {
namespace testutil {

// Connects to "127.0.0.1:PORT", sends the HTTP/2 preface and `pairs` HEADERS +
// RST_STREAM pairs for `path` (e.g. "/ckpt.v1.Checkpoint/GetJob"), reading and dropping
// whatever the server sends meanwhile, then a PING, and closes once the server has
// acknowledged it (so it has read every frame). Returns how many pairs were
// written before the server closed the connection (it may cut the flood short);
// INTERNAL if the connection cannot be made.
absl::StatusOr<int> RapidReset(const std::string& address, const std::string& path, int pairs);

}  // namespace testutil
}  // namespace ckpt

#endif  // CKPT_TESTS_SERVER_HTTP2_FLOOD_H_
