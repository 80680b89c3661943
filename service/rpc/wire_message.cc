#include "service/rpc/wire_message.h"

#include <grpcpp/impl/codegen/proto_utils.h>

#include <mutex>
#include <string>

#include "absl/strings/str_cat.h"
#include "google/protobuf/stubs/logging.h"
#include "service/common/log.h"

namespace ckpt {
namespace {

// Where protobuf's lines on this thread go while a parse runs; null otherwise.
thread_local std::string* captured_lines = nullptr;

void HandleProtobufLog(google::protobuf::LogLevel level, const char* filename, int line,
                       const std::string& message) {
  if (captured_lines != nullptr) {
    if (!captured_lines->empty()) captured_lines->append("; ");
    captured_lines->append(message);
    return;
  }
  static LogLimiter* const limiter = new LogLimiter("protobuf", kProtobufLogLinesPerMinute);
  limiter->Log(message);
}

}  // namespace

void RouteProtobufLogs() {
  static std::once_flag once;
  std::call_once(once, [] { google::protobuf::SetLogHandler(&HandleProtobufLog); });
}

absl::Status ParseWireMessage(grpc::ByteBuffer* wire, google::protobuf::MessageLite* out) {
  RouteProtobufLogs();
  std::string lines;
  captured_lines = &lines;
  const grpc::Status parsed =
      grpc::GenericDeserialize<grpc::ProtoBufferReader, google::protobuf::MessageLite>(wire, out);
  captured_lines = nullptr;
  if (parsed.ok()) return absl::OkStatus();
  if (lines.empty()) {
    lines = "it is truncated, malformed or nested too deeply";
    if (!parsed.error_message().empty()) absl::StrAppend(&lines, " (", parsed.error_message(), ")");
  }
  return absl::InvalidArgumentError(
      absl::StrCat("request does not parse as ", out->GetTypeName(), ": ", lines));
}

absl::Status SerializeWireMessage(const google::protobuf::MessageLite& message,
                                  grpc::ByteBuffer* wire) {
  bool own_buffer = false;
  const grpc::Status status =
      grpc::GenericSerialize<grpc::ProtoBufferWriter, google::protobuf::MessageLite>(message, wire,
                                                                                     &own_buffer);
  if (status.ok()) return absl::OkStatus();
  return absl::InternalError(
      absl::StrCat("cannot serialize ", message.GetTypeName(), ": ", status.error_message()));
}

}  // namespace ckpt
