// Reading and writing the engine's stored records (STORAGE_FORMAT.md). Internal to
// the engine.
#ifndef CKPT_SERVICE_ENGINE_STORED_RECORD_H_
#define CKPT_SERVICE_ENGINE_STORED_RECORD_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "service/store/keys.h"

namespace ckpt {

// Parses a record read from the store. A record that does not parse is damage, never
// skipped: DATA_LOSS naming `what` ("job", "lease grant").
template <typename Proto>
absl::Status ParseStored(absl::string_view bytes, Proto* out, absl::string_view what) {
  if (out->ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return absl::OkStatus();
  }
  return absl::DataLossError(absl::StrCat("corrupt ", what, " record"));
}

// An 8-byte big-endian value (counters, range ends, error hashes).
inline std::string BigEndian(uint64_t value) {
  std::string out;
  keys::AppendBigEndian64(&out, value);
  return out;
}

}  // namespace ckpt

#endif  // CKPT_SERVICE_ENGINE_STORED_RECORD_H_
