// How the HTTP gateway answers: protobuf messages as JSON in protobuf's JSON mapping
// (camelCase names, enums by name, 64-bit integers as strings: what grpcurl prints), and
// errors as {"error": {"code": 404, "status": "NOT_FOUND", "message": "..."}} with the
// HTTP status that matches the gRPC code (as Google's HTTP APIs and grpc-gateway map
// them).
//
// Thread-safe: pure functions.
#ifndef CKPT_SERVICE_HTTP_JSON_REPLY_H_
#define CKPT_SERVICE_HTTP_JSON_REPLY_H_

#include <httplib.h>

#include <string>

#include "absl/status/status.h"
#include "google/protobuf/message.h"

namespace ckpt {

// The HTTP status for a canonical code: INVALID_ARGUMENT, FAILED_PRECONDITION and
// OUT_OF_RANGE 400, UNAUTHENTICATED 401, PERMISSION_DENIED 403, NOT_FOUND 404,
// ABORTED and ALREADY_EXISTS 409, RESOURCE_EXHAUSTED 429, CANCELLED 499,
// UNIMPLEMENTED 501, UNAVAILABLE 503, DEADLINE_EXCEEDED 504, others 500.
int HttpStatusFor(absl::StatusCode code);

// `message` as JSON; every field is printed, set or not, so readers need no defaults.
std::string ToJson(const google::protobuf::Message& message);

// The error object for a non-OK `status`.
std::string ErrorJson(const absl::Status& status);

// Fills `response` with `message` (200) when `status` is OK, else with the error.
void ReplyJson(const absl::Status& status, const google::protobuf::Message& message,
               httplib::Response& response);
// Fills `response` with the error of a non-OK `status`: with `WWW-Authenticate: Bearer`
// for UNAUTHENTICATED, and `Retry-After` when the status carries the write queue's retry
// hint (service/engine/write_queue.h).
void ReplyError(const absl::Status& status, httplib::Response& response);

}  // namespace ckpt

#endif  // CKPT_SERVICE_HTTP_JSON_REPLY_H_
