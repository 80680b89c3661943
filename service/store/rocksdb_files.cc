#include "service/store/rocksdb_files.h"

#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <system_error>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "service/common/log.h"

namespace ckpt {

namespace fs = std::filesystem;

FileLogger::~FileLogger() {
  absl::MutexLock lock(&mu_);
  if (file_ != nullptr) std::fclose(file_);
}

void FileLogger::Release() {
  absl::MutexLock lock(&mu_);
  released_ = true;
  for (const std::string& line : held_) Append(line);
  held_.clear();
}

void FileLogger::Logv(const char* format, va_list ap) {
  timeval now{};
  ::gettimeofday(&now, nullptr);
  tm local{};
  ::localtime_r(&now.tv_sec, &local);
  char stamp[32];
  std::strftime(stamp, sizeof(stamp), "%Y/%m/%d-%H:%M:%S", &local);
  char text[1024];
  std::vsnprintf(text, sizeof(text), format, ap);
  std::string line =
      absl::StrCat(stamp, ".", absl::Dec(now.tv_usec, absl::kZeroPad6), " ", text, "\n");
  absl::MutexLock lock(&mu_);
  if (released_) {
    Append(line);
  } else if (held_.size() < 1000) {
    held_.push_back(std::move(line));
  }
}

void FileLogger::Append(const std::string& line) {
  if (file_ == nullptr) file_ = std::fopen(path_.c_str(), "ae");
  if (file_ == nullptr) return;
  std::fwrite(line.data(), 1, line.size(), file_);
  std::fflush(file_);
}

absl::Status PrepareDirectory(const std::string& path) {
  std::error_code ec;
  const fs::path dir = fs::path(path).lexically_normal();
  if (dir.has_parent_path() && !dir.parent_path().empty()) {
    fs::create_directories(dir.parent_path(), ec);
  }
  if (!ec && ::mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) {
    ec = std::error_code(errno, std::generic_category());
  }
  if (ec) {
    return absl::FailedPreconditionError(absl::StrCat(
        "data dir ", path, " cannot be created: ", ec.message(), "; choose a writable --data_dir"));
  }
  if (!fs::is_directory(path, ec)) {
    return absl::FailedPreconditionError(
        absl::StrCat("data dir ", path, " is not a directory; choose another --data_dir"));
  }
  if (::access(path.c_str(), W_OK | X_OK) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("data dir ", path, " is not writable: ", std::strerror(errno),
                     "; fix its permissions or choose another --data_dir"));
  }
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && (st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
    LogLine(
        absl::StrFormat("warning: data dir %s is open to other users (mode %04o): they can "
                        "read every job's data; run chmod 700 %s",
                        path, st.st_mode & 07777, path));
  }
  return absl::OkStatus();
}

absl::StatusOr<bool> StoreExists(const std::string& path) {
  std::error_code ec;
  if (fs::exists(fs::path(path) / "CURRENT", ec)) return true;
  for (const auto& entry : fs::directory_iterator(path, ec)) {
    if (absl::StartsWith(entry.path().filename().string(), "ckptd.")) continue;
    return absl::FailedPreconditionError(
        absl::StrCat("data dir ", path, " holds files (", entry.path().filename().string(),
                     ", ...) but no store (its CURRENT file is missing); ckptd will not touch it: "
                     "restore the store or choose an empty --data_dir"));
  }
  if (ec) {
    return absl::FailedPreconditionError(
        absl::StrCat("data dir ", path, " cannot be read: ", ec.message()));
  }
  return false;
}

uint64_t FreeDiskBytes(const std::string& path) {
  struct statvfs disk {};
  if (::statvfs(path.c_str(), &disk) != 0) return 0;
  return static_cast<uint64_t>(disk.f_bavail) * disk.f_frsize;
}

WalFiles ListWalFiles(const std::string& path) {
  WalFiles wals;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(path, ec)) {
    const std::string name = entry.path().filename().string();
    uint64_t number = 0;
    if (!absl::EndsWith(name, ".log") ||
        !absl::SimpleAtoi(name.substr(0, name.size() - 4), &number)) {
      continue;
    }
    wals.numbers.push_back(number);
    wals.bytes += entry.file_size(ec);
  }
  std::sort(wals.numbers.begin(), wals.numbers.end());
  return wals;
}

}  // namespace ckpt
