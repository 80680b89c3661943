// Reading small files whole: configuration, certificates, keys.
#ifndef CKPT_SERVICE_COMMON_FILE_H_
#define CKPT_SERVICE_COMMON_FILE_H_

#include <cstddef>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace ckpt {

// The contents of `path`. NOT_FOUND if it does not exist, PERMISSION_DENIED if it may
// not be read, FAILED_PRECONDITION if it is not a regular file or is over `max_bytes`
// (then nothing is read); each message names `what` ("auth file") and the path, never
// the contents. Thread-safe.
absl::StatusOr<std::string> ReadSmallFile(absl::string_view what, const std::string& path,
                                          size_t max_bytes);

}  // namespace ckpt

#endif  // CKPT_SERVICE_COMMON_FILE_H_
