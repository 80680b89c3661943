#include "tests/durability/small_disk.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "tests/testing/child_process.h"

namespace ckpt {
namespace testutil {
namespace {

// Runs a system tool to completion; FAILED_PRECONDITION with its output if it fails.
absl::Status RunTool(const std::vector<std::string>& argv) {
  if (::access(argv[0].c_str(), X_OK) != 0) {
    return absl::FailedPreconditionError(absl::StrCat(argv[0], ": ", std::strerror(errno)));
  }
  absl::StatusOr<ChildProcess> child = SpawnChild(argv);
  if (!child.ok()) return child.status();
  ::close(child->stdin_fd);
  const int status = WaitFor(child->pid);
  child->stdout_.reset();
  const std::string output = child->stderr_->Text();
  child->stderr_.reset();
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat(absl::StrJoin(argv, " "), " failed (wait status ", status, "): ", output));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status EnterPrivateMountNamespace() {
  if (::unshare(CLONE_NEWNS) != 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "unshare(CLONE_NEWNS): ", std::strerror(errno), " (mounting needs root / CAP_SYS_ADMIN)"));
  }
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
    return absl::FailedPreconditionError(absl::StrCat("making / private: ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

absl::Status MountTmpfs(const std::string& dir, uint64_t bytes) {
  const std::string size = absl::StrCat("size=", bytes);
  if (::mount("tmpfs", dir.c_str(), "tmpfs", 0, size.c_str()) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("mount -t tmpfs -o ", size, " ", dir, ": ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

absl::Status MountExt4(const std::string& dir, const std::string& image, uint64_t bytes) {
  const int fd = ::open(image.c_str(), O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return absl::FailedPreconditionError(absl::StrCat(image, ": ", std::strerror(errno)));
  const bool sized = ::ftruncate(fd, static_cast<off_t>(bytes)) == 0;
  ::close(fd);
  if (!sized) return absl::FailedPreconditionError(absl::StrCat("ftruncate ", image));
  // Inode tables and the journal written now, not by a background thread later.
  if (absl::Status made = RunTool({"/usr/sbin/mkfs.ext4", "-q", "-F", "-m", "0", "-E",
                                   "lazy_itable_init=0,lazy_journal_init=0", image});
      !made.ok()) {
    return made;
  }
  absl::Status mounted = RunTool({"/usr/bin/mount", "-t", "ext4", "-o", "loop", image, dir});
  // The loop device holds the image open; with its name gone, its blocks are freed when
  // the device detaches, with the mount.
  ::unlink(image.c_str());
  return mounted;
}

uint64_t FreeBytes(const std::string& dir) {
  struct statvfs fs {};
  if (::statvfs(dir.c_str(), &fs) != 0) return 0;
  return static_cast<uint64_t>(fs.f_bavail) * fs.f_frsize;
}

absl::Status AllocateFile(const std::string& path, uint64_t bytes) {
  const int fd = ::open(path.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
  if (fd < 0) return absl::FailedPreconditionError(absl::StrCat(path, ": ", std::strerror(errno)));
  const int error = ::posix_fallocate(fd, 0, static_cast<off_t>(bytes));
  ::close(fd);
  if (error != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("fallocate ", bytes, " bytes for ", path, ": ", std::strerror(error)));
  }
  return absl::OkStatus();
}

uint64_t BytesWrittenBy(pid_t pid) {
  std::ifstream io(absl::StrCat("/proc/", pid, "/io"));
  std::string name;
  uint64_t value = 0;
  while (io >> name >> value) {
    if (name == "wchar:") return value;
  }
  return 0;
}

}  // namespace testutil
}  // namespace ckpt
