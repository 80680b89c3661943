#include "tests/testing/temp_dir.h"

#include <stdlib.h>

#include <cstdlib>
#include <stdexcept>

#include "absl/strings/str_cat.h"

namespace ckpt {
namespace testutil {

std::string NewTempDir(absl::string_view name) {
  const char* root = std::getenv("TEST_TMPDIR");
  std::string pattern = absl::StrCat(root != nullptr ? root : "/tmp", "/", name, ".XXXXXX");
  if (::mkdtemp(pattern.data()) == nullptr) {
    throw std::runtime_error("mkdtemp failed for " + pattern);
  }
  return pattern;
}

}  // namespace testutil
}  // namespace ckpt
