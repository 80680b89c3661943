// Plain HTTP calls to a server under test (cpp-httplib's client), and the Prometheus
// text format read back into numbers.
#ifndef CKPT_TESTS_TESTING_HTTP_CLIENT_H_
#define CKPT_TESTS_TESTING_HTTP_CLIENT_H_

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace ckpt {
namespace testutil {

struct HttpAnswer {
  int status = 0;
  std::string body;
  std::multimap<std::string, std::string> headers;  // names as sent
  std::string Header(const std::string& name) const;
};

using HttpHeaders = std::vector<std::pair<std::string, std::string>>;

// GET or POST `path` on "host:port". UNAVAILABLE if no answer came (connection refused,
// timeout). `body` is sent as application/json.
absl::StatusOr<HttpAnswer> HttpGet(const std::string& address, const std::string& path,
                                   const HttpHeaders& headers = {});
absl::StatusOr<HttpAnswer> HttpPost(const std::string& address, const std::string& path,
                                    const std::string& body, const HttpHeaders& headers = {});

// The samples of a /metrics page: "name{labels as written}" (or "name") -> value.
// Comment lines are skipped.
std::map<std::string, double> ParseMetricsPage(absl::string_view page);

}  // namespace testutil
}  // namespace ckpt

#endif  // CKPT_TESTS_TESTING_HTTP_CLIENT_H_
