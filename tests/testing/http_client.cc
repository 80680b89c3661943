#include "tests/testing/http_client.h"

#include <httplib.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace ckpt {
namespace testutil {
namespace {

httplib::Headers ToHeaders(const HttpHeaders& headers) {
  httplib::Headers out;
  for (const auto& [name, value] : headers) out.emplace(name, value);
  return out;
}

absl::StatusOr<HttpAnswer> ToAnswer(const httplib::Result& result, const std::string& what) {
  if (!result) {
    return absl::UnavailableError(
        absl::StrCat(what, ": no answer (", httplib::to_string(result.error()), ")"));
  }
  HttpAnswer answer;
  answer.status = result->status;
  answer.body = result->body;
  for (const auto& [name, value] : result->headers) answer.headers.emplace(name, value);
  return answer;
}

}  // namespace

std::string HttpAnswer::Header(const std::string& name) const {
  for (const auto& [key, value] : headers) {
    if (absl::EqualsIgnoreCase(key, name)) return value;
  }
  return "";
}

absl::StatusOr<HttpAnswer> HttpGet(const std::string& address, const std::string& path,
                                   const HttpHeaders& headers) {
  httplib::Client client(absl::StrCat("http://", address));
  client.set_read_timeout(30, 0);
  return ToAnswer(client.Get(path.c_str(), ToHeaders(headers)), absl::StrCat("GET ", path));
}

absl::StatusOr<HttpAnswer> HttpPost(const std::string& address, const std::string& path,
                                    const std::string& body, const HttpHeaders& headers) {
  httplib::Client client(absl::StrCat("http://", address));
  client.set_read_timeout(30, 0);
  return ToAnswer(client.Post(path.c_str(), ToHeaders(headers), body, "application/json"),
                  absl::StrCat("POST ", path));
}

std::map<std::string, double> ParseMetricsPage(absl::string_view page) {
  std::map<std::string, double> samples;
  for (absl::string_view line : absl::StrSplit(page, '\n', absl::SkipEmpty())) {
    if (line.front() == '#') continue;
    const size_t space = line.rfind(' ');
    if (space == absl::string_view::npos) continue;
    double value = 0;
    absl::string_view text = line.substr(space + 1);
    if (text == "+Inf") {
      value = HUGE_VAL;
    } else if (!absl::SimpleAtod(text, &value)) {
      continue;
    }
    samples[std::string(line.substr(0, space))] = value;
  }
  return samples;
}

}  // namespace testutil
}  // namespace ckpt
