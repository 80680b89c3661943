// SHA-256 of a byte string (OpenSSL's libcrypto). Thread-safe.
#ifndef CKPT_SERVICE_COMMON_SHA256_H_
#define CKPT_SERVICE_COMMON_SHA256_H_

#include <array>
#include <string>

#include "absl/strings/string_view.h"

namespace ckpt {

using Sha256Digest = std::array<unsigned char, 32>;

Sha256Digest Sha256(absl::string_view data);

// The digest as 64 lowercase hex digits, as `sha256sum` prints it.
std::string Sha256Hex(absl::string_view data);

}  // namespace ckpt

#endif  // CKPT_SERVICE_COMMON_SHA256_H_
