#include "tests/testing/dir_digest.h"

#include <filesystem>
#include <fstream>

#include "absl/hash/hash.h"
#include "absl/strings/str_cat.h"

namespace ckpt {
namespace testutil {

namespace fs = std::filesystem;

DirDigest DigestDirectory(const std::string& dir) {
  DirDigest digests;
  for (const auto& entry : fs::recursive_directory_iterator(dir)) {
    if (!entry.is_regular_file()) continue;
    std::ifstream in(entry.path(), std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    digests[fs::relative(entry.path(), dir).string()] =
        absl::StrCat(bytes.size(), ":", absl::Hash<std::string>()(bytes));
  }
  return digests;
}

std::vector<std::string> ChangedFiles(const DirDigest& before, const DirDigest& after) {
  std::vector<std::string> changed;
  for (const auto& [name, digest] : before) {
    auto it = after.find(name);
    if (it == after.end()) {
      changed.push_back(name + " (deleted)");
    } else if (it->second != digest) {
      changed.push_back(name + " (rewritten)");
    }
  }
  for (const auto& [name, digest] : after) {
    if (!before.count(name)) changed.push_back(name + " (created)");
  }
  return changed;
}

}  // namespace testutil
}  // namespace ckpt
