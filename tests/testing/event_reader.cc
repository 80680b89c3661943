#include "tests/testing/event_reader.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "google/protobuf/util/json_util.h"

namespace ckpt {
namespace testutil {

EventReader::EventReader(std::unique_ptr<httplib::Client> client, const std::string& path,
                         const HttpHeaders& headers)
    : client_(std::move(client)) {
  thread_ = std::thread([this, path, headers] {
    httplib::Headers sent;
    for (const auto& [name, value] : headers) sent.emplace(name, value);
    auto result = client_->Get(path.c_str(), sent, [this](const char* data, size_t size) {
      Take(data, size);
      return true;
    });
    absl::MutexLock lock(&mu_);
    status_ = result ? result->status : -1;
    ended_ = true;
  });
}

EventReader::EventReader(const std::string& address, const std::string& path,
                         const HttpHeaders& headers)
    : EventReader(std::make_unique<httplib::Client>(absl::StrCat("http://", address)), path,
                  headers) {}

EventReader::~EventReader() {
  client_->stop();
  thread_.join();
}

void EventReader::Take(const char* data, size_t size) {
  absl::MutexLock lock(&mu_);
  buffer_.append(data, size);
  for (size_t end; (end = buffer_.find("\n\n")) != std::string::npos;) {
    Event event;
    for (absl::string_view line : absl::StrSplit(buffer_.substr(0, end), '\n')) {
      if (absl::ConsumePrefix(&line, "event: ")) event.name = std::string(line);
      if (absl::ConsumePrefix(&line, "data: ")) event.data = std::string(line);
    }
    buffer_.erase(0, end + 2);
    if (!event.name.empty()) events_.push_back(std::move(event));
  }
}

std::optional<EventReader::Event> EventReader::Next(absl::Duration patience) {
  absl::MutexLock lock(&mu_);
  auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !events_.empty() || ended_; };
  mu_.AwaitWithTimeout(absl::Condition(&ready), patience);
  if (events_.empty()) return std::nullopt;
  Event event = std::move(events_.front());
  events_.pop_front();
  return event;
}

std::optional<v1::GetJobResponse> EventReader::NextJobWhere(
    const std::function<bool(const v1::GetJobResponse&)>& want) {
  while (std::optional<Event> event = Next()) {
    if (event->name != "job") return std::nullopt;
    v1::GetJobResponse job;
    if (!google::protobuf::util::JsonStringToMessage(event->data, &job).ok()) return std::nullopt;
    if (want(job)) return job;
  }
  return std::nullopt;
}

int EventReader::AwaitEnd(absl::Duration patience) {
  absl::MutexLock lock(&mu_);
  mu_.AwaitWithTimeout(absl::Condition(&ended_), patience);
  return status_;
}

}  // namespace testutil
}  // namespace ckpt
