// Small file systems of a test's own, to fill up: a tmpfs, or ext4 on a loop device (what
// servers run; ext4 allocates blocks ahead for files that grow, tmpfs hides that). Both
// are mounted in a private mount namespace, so they vanish with the test process however
// it ends (the loop device detaches with its last mount).
#ifndef CKPT_TESTS_DURABILITY_SMALL_DISK_H_
#define CKPT_TESTS_DURABILITY_SMALL_DISK_H_

#include <sys/types.h>

#include <cstdint>
#include <string>

#include "absl/status/status.h"

namespace ckpt {
namespace testutil {

// Moves this process into a mount namespace of its own whose mounts do not propagate to
// the machine's. REQUIRES: no thread has been started yet (the namespace is per thread
// until then inherited), and root (CAP_SYS_ADMIN): else FAILED_PRECONDITION saying why.
absl::Status EnterPrivateMountNamespace();

// Mounts a tmpfs of `bytes` on the directory `dir`.
absl::Status MountTmpfs(const std::string& dir, uint64_t bytes);

// Makes an ext4 file system of `bytes` in the image file `image` (no blocks reserved for
// root, so ckptd, which runs as root in tests, sees what df shows), and mounts it on the
// directory `dir` through a loop device (mkfs.ext4 and mount(8) from e2fsprogs and
// util-linux), then unlinks the image. FAILED_PRECONDITION with their output if either
// fails.
absl::Status MountExt4(const std::string& dir, const std::string& image, uint64_t bytes);

// Bytes an unprivileged writer may still allocate under `dir` (statvfs f_bavail).
uint64_t FreeBytes(const std::string& dir);

// Creates `path` with `bytes` of allocated blocks (fallocate).
absl::Status AllocateFile(const std::string& path, uint64_t bytes);

// What process `pid` has written, from /proc/PID/io: wchar, the bytes of every write
// call (files, pipes, sockets). 0 if it cannot be read.
uint64_t BytesWrittenBy(pid_t pid);

}  // namespace testutil
}  // namespace ckpt

#endif  // CKPT_TESTS_DURABILITY_SMALL_DISK_H_
