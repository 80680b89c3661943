// The RocksDB store's files outside RocksDB's own format: its data directory (created
// private, refused when it holds something that is not a store), RocksDB's info log, and
// what the directory's disk has free. For rocksdb_store.cc.
#ifndef CKPT_SERVICE_STORE_ROCKSDB_FILES_H_
#define CKPT_SERVICE_STORE_ROCKSDB_FILES_H_

#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "rocksdb/env.h"

namespace ckpt {

// RocksDB's info log. Its own LOG writer aborts the process (Debian builds RocksDB with
// assertions on) when it writes again after a failed write, which is what happens on a
// full disk; and it renames LOG to LOG.old.* on every open, even one that is refused.
// This one appends warnings to <data_dir>/LOG with stdio and ignores write errors.
// Until Release() (called once the store is open) it only holds the lines, so an open
// that is refused leaves no trace: its error says what RocksDB would have logged.
// Thread-safe.
class FileLogger : public rocksdb::Logger {
 public:
  explicit FileLogger(std::string path)
      : rocksdb::Logger(rocksdb::InfoLogLevel::WARN_LEVEL), path_(std::move(path)) {}
  ~FileLogger() override;

  // Writes the held lines, and from now on every line, to the file.
  void Release();

  using rocksdb::Logger::Logv;
  void Logv(const char* format, va_list ap) override;
  // The options dump RocksDB writes at every open.
  void LogHeader(const char* format, va_list ap) override {}

 private:
  void Append(const std::string& line) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string path_;
  absl::Mutex mu_;
  bool released_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::string> held_ ABSL_GUARDED_BY(mu_);
  std::FILE* file_ ABSL_GUARDED_BY(mu_) = nullptr;
};

// For the read-only look at a store before opening it: writes nothing anywhere.
class NullLogger : public rocksdb::Logger {
 public:
  using rocksdb::Logger::Logv;
  void Logv(const char* format, va_list ap) override {}
};

// Creates the directory if needed, private to its owner (0700: it holds every job's
// config, params, results and states), and checks that we can write in it. An existing
// directory keeps its mode; if others can read it, a warning says how to fix that.
absl::Status PrepareDirectory(const std::string& path);

// Whether `path` holds a store (its CURRENT file). A directory with files but no CURRENT
// is a damaged store or not a store: creating a fresh store there could overwrite what
// is left, so it is refused (FAILED_PRECONDITION). Files named "ckptd.*" are not the
// store's (STORAGE_FORMAT.md): a local-mode launcher keeps its lock, socket and log
// there, and they may come before the store.
absl::StatusOr<bool> StoreExists(const std::string& path);

// Bytes an unprivileged writer may still allocate on the disk holding `path` (statvfs
// f_bavail); 0 if it cannot be read.
uint64_t FreeDiskBytes(const std::string& path);

// RocksDB's write-ahead log files in the data dir `path` (NNNNNN.log): their numbers in
// ascending order, and their total size.
struct WalFiles {
  std::vector<uint64_t> numbers;
  uint64_t bytes = 0;
};
WalFiles ListWalFiles(const std::string& path);

// Whole MiB, rounded up: for messages that say how much space is needed.
inline uint64_t MiBRoundedUp(uint64_t bytes) { return (bytes + (1 << 20) - 1) >> 20; }

}  // namespace ckpt

#endif  // CKPT_SERVICE_STORE_ROCKSDB_FILES_H_
