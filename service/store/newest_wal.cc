#include "service/store/newest_wal.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "rocksdb/file_system.h"

namespace ckpt {
namespace {

constexpr char kFileName[] = "NEWEST_WAL";

namespace fs = std::filesystem;

// The WAL number of `path` if it names a WAL directly in `dir` ("DIR/000012.log").
std::optional<uint64_t> WalNumber(const fs::path& dir, const std::string& path) {
  const fs::path file = fs::path(path).lexically_normal();
  const std::string name = file.filename().string();
  uint64_t number = 0;
  if (file.parent_path() != dir || !absl::EndsWith(name, ".log") ||
      !absl::SimpleAtoi(name.substr(0, name.size() - 4), &number)) {
    return std::nullopt;
  }
  return number;
}

class WalRecordingFileSystem : public rocksdb::FileSystemWrapper {
 public:
  WalRecordingFileSystem(std::shared_ptr<rocksdb::FileSystem> target, const std::string& dir)
      : rocksdb::FileSystemWrapper(std::move(target)), dir_(fs::path(dir).lexically_normal()) {
    if (dir_.filename().empty()) dir_ = dir_.parent_path();  // "dir/" -> "dir"
  }
  const char* Name() const override { return "CkptWalRecordingFileSystem"; }

  rocksdb::IOStatus NewWritableFile(const std::string& path, const rocksdb::FileOptions& options,
                                    std::unique_ptr<rocksdb::FSWritableFile>* result,
                                    rocksdb::IODebugContext* dbg) override {
    rocksdb::IOStatus s = target()->NewWritableFile(path, options, result, dbg);
    if (s.ok()) {
      if (std::optional<uint64_t> number = WalNumber(dir_, path)) Record(*number);
    }
    return s;
  }

 private:
  // A WAL RocksDB could create is not refused for want of this record: if it cannot be
  // written (a full disk), the file goes, and with it the check, until the next WAL.
  void Record(uint64_t number) {
    const std::string file = (dir_ / kFileName).string();
    const std::string temporary = file + ".tmp";
    bool written = false;
    {
      std::ofstream out(temporary, std::ios::trunc);
      out << number << "\n";
      written = static_cast<bool>(out.flush());
    }
    if (!written || std::rename(temporary.c_str(), file.c_str()) != 0) {
      std::remove(temporary.c_str());
      std::remove(file.c_str());
    }
  }

  fs::path dir_;
};

}  // namespace

std::unique_ptr<rocksdb::Env> NewWalRecordingEnv(const std::string& data_dir) {
  return rocksdb::NewCompositeEnv(
      std::make_shared<WalRecordingFileSystem>(rocksdb::FileSystem::Default(), data_dir));
}

std::optional<uint64_t> RecordedNewestWal(const std::string& data_dir) {
  std::ifstream in(data_dir + "/" + kFileName);
  if (!in) return std::nullopt;
  std::stringstream text;
  text << in.rdbuf();
  uint64_t number = 0;
  if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(text.str()), &number)) return std::nullopt;
  return number;
}

std::string WalPath(const std::string& data_dir, uint64_t number) {
  return absl::StrFormat("%s/%06d.log", data_dir, number);
}

}  // namespace ckpt
