#include "service/http/json_reply.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "service/engine/write_queue.h"

namespace ckpt {
namespace {

constexpr char kJson[] = "application/json; charset=utf-8";

const char* CodeName(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kOk:
      return "OK";
    case absl::StatusCode::kCancelled:
      return "CANCELLED";
    case absl::StatusCode::kInvalidArgument:
      return "INVALID_ARGUMENT";
    case absl::StatusCode::kDeadlineExceeded:
      return "DEADLINE_EXCEEDED";
    case absl::StatusCode::kNotFound:
      return "NOT_FOUND";
    case absl::StatusCode::kAlreadyExists:
      return "ALREADY_EXISTS";
    case absl::StatusCode::kPermissionDenied:
      return "PERMISSION_DENIED";
    case absl::StatusCode::kResourceExhausted:
      return "RESOURCE_EXHAUSTED";
    case absl::StatusCode::kFailedPrecondition:
      return "FAILED_PRECONDITION";
    case absl::StatusCode::kAborted:
      return "ABORTED";
    case absl::StatusCode::kOutOfRange:
      return "OUT_OF_RANGE";
    case absl::StatusCode::kUnimplemented:
      return "UNIMPLEMENTED";
    case absl::StatusCode::kInternal:
      return "INTERNAL";
    case absl::StatusCode::kUnavailable:
      return "UNAVAILABLE";
    case absl::StatusCode::kDataLoss:
      return "DATA_LOSS";
    case absl::StatusCode::kUnauthenticated:
      return "UNAUTHENTICATED";
    default:
      return "UNKNOWN";
  }
}

}  // namespace

int HttpStatusFor(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kOk:
      return 200;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kOutOfRange:
      return 400;
    case absl::StatusCode::kUnauthenticated:
      return 401;
    case absl::StatusCode::kPermissionDenied:
      return 403;
    case absl::StatusCode::kNotFound:
      return 404;
    case absl::StatusCode::kAborted:
    case absl::StatusCode::kAlreadyExists:
      return 409;
    case absl::StatusCode::kResourceExhausted:
      return 429;
    case absl::StatusCode::kCancelled:
      return 499;
    case absl::StatusCode::kUnimplemented:
      return 501;
    case absl::StatusCode::kUnavailable:
      return 503;
    case absl::StatusCode::kDeadlineExceeded:
      return 504;
    default:
      return 500;
  }
}

std::string ToJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.always_print_primitive_fields = true;
  std::string json;
  if (!google::protobuf::util::MessageToJsonString(message, &json, options).ok()) return "{}";
  return json;
}

std::string ErrorJson(const absl::Status& status) {
  google::protobuf::Struct error;
  auto& fields = *error.mutable_fields();
  fields["code"].set_number_value(HttpStatusFor(status.code()));
  fields["status"].set_string_value(CodeName(status.code()));
  fields["message"].set_string_value(std::string(status.message()));
  google::protobuf::Struct body;
  *(*body.mutable_fields())["error"].mutable_struct_value() = std::move(error);
  std::string json;
  if (!google::protobuf::util::MessageToJsonString(body, &json).ok()) return "{}";
  return json;
}

void ReplyJson(const absl::Status& status, const google::protobuf::Message& message,
               httplib::Response& response) {
  if (!status.ok()) return ReplyError(status, response);
  response.status = 200;
  response.set_content(ToJson(message), kJson);
}

void ReplyError(const absl::Status& status, httplib::Response& response) {
  response.status = HttpStatusFor(status.code());
  if (status.code() == absl::StatusCode::kUnauthenticated) {
    response.set_header("WWW-Authenticate", "Bearer");
  }
  // The write queue was full and the write not applied: HTTP's own retry hint, in
  // whole seconds (rounded up), for what gRPC clients get as ckpt-retry-after-ms.
  int64_t retry_ms = 0;
  if (auto hint = status.GetPayload(kRetryAfterPayload);
      hint.has_value() && absl::SimpleAtoi(std::string(*hint), &retry_ms) && retry_ms >= 0) {
    response.set_header("Retry-After", absl::StrCat((retry_ms + 999) / 1000));
  }
  response.set_content(ErrorJson(status), kJson);
}

}  // namespace ckpt
