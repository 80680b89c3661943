// Requests and responses of raw (ByteBuffer) gRPC handlers: parsing that says why a
// request does not parse, and serialization. gRPC's typed callback handlers answer a
// request that does not parse UNIMPLEMENTED with no message, which tells a client the
// method does not exist; ckptd's handlers are raw so that they can answer
// INVALID_ARGUMENT with protobuf's reason instead.
//
// protobuf logs that reason at ERROR on the parsing thread (e.g. invalid UTF-8 in a
// string field). While ParseWireMessage runs, such lines are captured into its error
// instead; every other protobuf line goes to stderr through LogLine, at most
// kProtobufLogLinesPerMinute a minute, so no client can flood the log.
//
// Thread-safe.
#ifndef CKPT_SERVICE_RPC_WIRE_MESSAGE_H_
#define CKPT_SERVICE_RPC_WIRE_MESSAGE_H_

#include <grpcpp/support/byte_buffer.h>

#include "absl/status/status.h"
#include "google/protobuf/message_lite.h"

namespace ckpt {

inline constexpr int kProtobufLogLinesPerMinute = 10;

// Parses `wire` into `out` (consuming the buffer). INVALID_ARGUMENT if it does not
// parse: "request does not parse as ckpt.v1.CreateJobRequest: <reason>".
absl::Status ParseWireMessage(grpc::ByteBuffer* wire, google::protobuf::MessageLite* out);

// Serializes `message` into `wire`. INTERNAL if it cannot be (never for ckpt's messages).
absl::Status SerializeWireMessage(const google::protobuf::MessageLite& message,
                                  grpc::ByteBuffer* wire);

// Routes protobuf's log lines as described above. Idempotent; ParseWireMessage calls it.
void RouteProtobufLogs();

}  // namespace ckpt

#endif  // CKPT_SERVICE_RPC_WIRE_MESSAGE_H_
