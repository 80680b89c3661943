// gMock matchers for absl::Status / StatusOr and grpc::Status (this GoogleTest predates
// absl_testing::StatusIs).
#ifndef CKPT_TESTS_TESTING_STATUS_MATCHERS_H_
#define CKPT_TESTS_TESTING_STATUS_MATCHERS_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gmock/gmock.h"

namespace ckpt {
namespace testutil {

inline const absl::Status& GetStatus(const absl::Status& s) { return s; }
template <typename T>
const absl::Status& GetStatus(const absl::StatusOr<T>& s) {
  return s.status();
}

// EXPECT_THAT(status_or, StatusIs(absl::StatusCode::kNotFound, HasSubstr("job")));
MATCHER_P2(StatusIs, code, message_matcher, "has code " + absl::StatusCodeToString(code)) {
  const absl::Status& status = GetStatus(arg);
  *result_listener << "status is " << status;
  return status.code() == code &&
         ::testing::ExplainMatchResult(message_matcher, std::string(status.message()),
                                       result_listener);
}

MATCHER(IsOk, "is OK") {
  const absl::Status& status = GetStatus(arg);
  *result_listener << "status is " << status;
  return status.ok();
}

}  // namespace testutil
}  // namespace ckpt

#define CKPT_ASSERT_OK(expr) ASSERT_THAT((expr), ::ckpt::testutil::IsOk())
#define CKPT_EXPECT_OK(expr) EXPECT_THAT((expr), ::ckpt::testutil::IsOk())

#endif  // CKPT_TESTS_TESTING_STATUS_MATCHERS_H_
