// Fresh directories under $TEST_TMPDIR (Bazel's per-test scratch space).
#ifndef CKPT_TESTS_TESTING_TEMP_DIR_H_
#define CKPT_TESTS_TESTING_TEMP_DIR_H_

#include <string>

#include "absl/strings/string_view.h"

namespace ckpt {
namespace testutil {

// Creates and returns a new empty directory whose name starts with `name`.
std::string NewTempDir(absl::string_view name);

}  // namespace testutil
}  // namespace ckpt

#endif  // CKPT_TESTS_TESTING_TEMP_DIR_H_
