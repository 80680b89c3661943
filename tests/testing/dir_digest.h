// What a directory tree holds, compactly: for tests that must show a refused operation
// left every file byte for byte as it was.
#ifndef CKPT_TESTS_TESTING_DIR_DIGEST_H_
#define CKPT_TESTS_TESTING_DIR_DIGEST_H_

#include <map>
#include <string>
#include <vector>

namespace ckpt {
namespace testutil {

// Each regular file under `dir` (by path relative to it) and a digest of its bytes (its
// size and a 64-bit hash of its contents).
using DirDigest = std::map<std::string, std::string>;
DirDigest DigestDirectory(const std::string& dir);

// The files that differ between two digests, as "NAME (deleted)", "NAME (rewritten)" and
// "NAME (created)".
std::vector<std::string> ChangedFiles(const DirDigest& before, const DirDigest& after);

}  // namespace testutil
}  // namespace ckpt

#endif  // CKPT_TESTS_TESTING_DIR_DIGEST_H_
