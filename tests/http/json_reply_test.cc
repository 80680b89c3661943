// The gateway's answers: codes to HTTP statuses, the error object, and the headers that
// tell a client what to do (authenticate; retry after the write queue's hint).
#include "service/http/json_reply.h"

#include "absl/strings/cord.h"
#include "ckpt/v1/checkpoint.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/engine/write_queue.h"

namespace ckpt {
namespace {

using ::testing::HasSubstr;

TEST(JsonReplyTest, CodesMapToTheHttpStatusesGoogleApisUse) {
  EXPECT_EQ(HttpStatusFor(absl::StatusCode::kOk), 200);
  EXPECT_EQ(HttpStatusFor(absl::StatusCode::kInvalidArgument), 400);
  EXPECT_EQ(HttpStatusFor(absl::StatusCode::kFailedPrecondition), 400);
  EXPECT_EQ(HttpStatusFor(absl::StatusCode::kUnauthenticated), 401);
  EXPECT_EQ(HttpStatusFor(absl::StatusCode::kPermissionDenied), 403);
  EXPECT_EQ(HttpStatusFor(absl::StatusCode::kNotFound), 404);
  EXPECT_EQ(HttpStatusFor(absl::StatusCode::kAborted), 409);
  EXPECT_EQ(HttpStatusFor(absl::StatusCode::kResourceExhausted), 429);
  EXPECT_EQ(HttpStatusFor(absl::StatusCode::kUnavailable), 503);
  EXPECT_EQ(HttpStatusFor(absl::StatusCode::kDataLoss), 500);
}

TEST(JsonReplyTest, ErrorsCarryTheMessageAndWhatToDo) {
  httplib::Response unauthenticated;
  ReplyError(absl::UnauthenticatedError("no token"), unauthenticated);
  EXPECT_EQ(unauthenticated.status, 401);
  EXPECT_EQ(unauthenticated.get_header_value("WWW-Authenticate"), "Bearer");
  EXPECT_THAT(unauthenticated.body, HasSubstr(R"("status":"UNAUTHENTICATED")"));
  EXPECT_THAT(unauthenticated.body, HasSubstr(R"("message":"no token")"));

  absl::Status full = absl::ResourceExhaustedError("the write queue is full");
  full.SetPayload(kRetryAfterPayload, absl::Cord("1250"));
  httplib::Response busy;
  ReplyError(full, busy);
  EXPECT_EQ(busy.status, 429);
  EXPECT_EQ(busy.get_header_value("Retry-After"), "2");  // whole seconds, rounded up

  httplib::Response ok;
  v1::ResetItemsResponse matched;
  matched.set_matched(3);
  ReplyJson(absl::OkStatus(), matched, ok);
  EXPECT_EQ(ok.status, 200);
  EXPECT_EQ(ok.body, R"({"matched":"3"})");
}

}  // namespace
}  // namespace ckpt
