// Server-sent events (GET /api/v1/jobs/{job}/events) read by a thread of its own, from
// an HTTP or an HTTPS listener.
#ifndef CKPT_TESTS_TESTING_EVENT_READER_H_
#define CKPT_TESTS_TESTING_EVENT_READER_H_

#include <httplib.h>

#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "ckpt/v1/checkpoint.pb.h"
#include "tests/testing/http_client.h"

namespace ckpt {
namespace testutil {

// Thread-safe.
class EventReader {
 public:
  // Opens the stream at `path` through `client` (configured for TLS if need be) on a
  // thread of its own; "host:port" for plain HTTP.
  EventReader(std::unique_ptr<httplib::Client> client, const std::string& path,
              const HttpHeaders& headers = {});
  EventReader(const std::string& address, const std::string& path, const HttpHeaders& headers = {});
  // Closes the stream.
  ~EventReader();
  EventReader(const EventReader&) = delete;
  EventReader& operator=(const EventReader&) = delete;

  struct Event {
    std::string name;
    std::string data;
  };
  // The first event not yet taken, waiting up to `patience` for it; nullopt if the
  // stream ended (or the wait did) first.
  std::optional<Event> Next(absl::Duration patience = absl::Seconds(30));
  // The job of the next "job" event whose job satisfies `want`, skipping the others;
  // nullopt at another event or the end.
  std::optional<v1::GetJobResponse> NextJobWhere(
      const std::function<bool(const v1::GetJobResponse&)>& want);
  // The HTTP status once the stream ended (-1: no answer).
  int AwaitEnd(absl::Duration patience = absl::Seconds(30));

 private:
  // Splits complete events off the buffer.
  void Take(const char* data, size_t size) ABSL_LOCKS_EXCLUDED(mu_);

  std::unique_ptr<httplib::Client> client_;
  absl::Mutex mu_;
  std::string buffer_ ABSL_GUARDED_BY(mu_);
  std::deque<Event> events_ ABSL_GUARDED_BY(mu_);
  bool ended_ ABSL_GUARDED_BY(mu_) = false;
  int status_ ABSL_GUARDED_BY(mu_) = 0;
  std::thread thread_;
};

}  // namespace testutil
}  // namespace ckpt

#endif  // CKPT_TESTS_TESTING_EVENT_READER_H_
