// RocksDbStore::Checkpoint: a consistent copy of the live store (RocksDB's Checkpoint:
// immutable SST files hard-linked or copied, the live WAL copied), for backups.
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <memory>
#include <system_error>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "rocksdb/utilities/checkpoint.h"
#include "service/common/status_macros.h"
#include "service/store/rocksdb_store.h"

namespace ckpt {
namespace {

namespace fs = std::filesystem;

absl::Status BadDir(const std::string& dir, absl::string_view why) {
  return absl::FailedPreconditionError(absl::StrCat("dir: ", dir, " ", why));
}

// Whether `inner` is `outer` or under it, comparing real paths.
bool IsWithin(const fs::path& inner, const fs::path& outer) {
  std::error_code ec;
  const fs::path a = fs::weakly_canonical(inner, ec);
  if (ec) return false;
  const fs::path b = fs::weakly_canonical(outer, ec);
  if (ec) return false;
  const std::string a_text = a.string(), b_text = b.string();
  return a_text == b_text || absl::StartsWith(a_text, b_text + "/");
}

// Everything that makes `dir` unusable for a new copy, as one line naming it.
absl::Status CheckCopyDir(const std::string& dir, const std::string& data_dir) {
  const fs::path path(dir);
  if (!path.is_absolute()) return BadDir(dir, "is not an absolute path");
  std::error_code ec;
  if (fs::symlink_status(path, ec).type() != fs::file_type::not_found) {
    return BadDir(dir,
                  "already exists; a backup goes into a new directory: choose a path "
                  "that does not exist yet");
  }
  if (fs::symlink_status(dir + ".tmp", ec).type() != fs::file_type::not_found) {
    return BadDir(dir, absl::StrCat("cannot be used: ", dir,
                                    ".tmp exists, where the copy would be staged; remove it "
                                    "or choose another path"));
  }
  const fs::path parent = path.lexically_normal().parent_path();
  if (!fs::is_directory(parent, ec)) {
    return BadDir(dir, absl::StrCat("cannot be created: its parent ", parent.string(),
                                    " is not an existing directory"));
  }
  if (::access(parent.c_str(), W_OK | X_OK) != 0) {
    return BadDir(dir, absl::StrCat("cannot be created: its parent ", parent.string(),
                                    " is not writable by ckptd (", std::strerror(errno), ")"));
  }
  if (IsWithin(parent, data_dir)) {
    return BadDir(dir,
                  absl::StrCat("is inside the data dir ", data_dir, "; choose a path outside it"));
  }
  return absl::OkStatus();
}

// Makes the copy private (0700, files 0600: it holds every job's data) and counts it.
absl::StatusOr<StoreCopy> PrivatizeAndCount(const std::string& dir) {
  StoreCopy copy;
  if (::chmod(dir.c_str(), 0700) != 0) {
    return absl::InternalError(
        absl::StrCat("backup: chmod 0700 ", dir, ": ", std::strerror(errno)));
  }
  std::error_code ec;
  for (const fs::directory_entry& entry : fs::directory_iterator(dir, ec)) {
    if (!entry.is_regular_file(ec)) continue;
    const std::string file = entry.path().string();
    if (::chmod(file.c_str(), 0600) != 0) {
      return absl::InternalError(
          absl::StrCat("backup: chmod 0600 ", file, ": ", std::strerror(errno)));
    }
    ++copy.files;
    copy.bytes += entry.file_size(ec);
  }
  if (ec) return absl::InternalError(absl::StrCat("backup: listing ", dir, ": ", ec.message()));
  return copy;
}

}  // namespace

absl::StatusOr<StoreCopy> RocksDbStore::Checkpoint(const std::string& dir) {
  if (!checkpoint_mu_.TryLock()) {
    return absl::FailedPreconditionError(
        "another backup of this store is being made; retry once it has finished");
  }
  absl::StatusOr<StoreCopy> copy = CheckpointLocked(dir);
  checkpoint_mu_.Unlock();
  return copy;
}

absl::StatusOr<StoreCopy> RocksDbStore::CheckpointLocked(const std::string& dir) {
  CKPT_RETURN_IF_ERROR(CheckCopyDir(dir, options_.path));
  rocksdb::Checkpoint* raw = nullptr;
  rocksdb::Status s = rocksdb::Checkpoint::Create(db_.get(), &raw);
  std::unique_ptr<rocksdb::Checkpoint> checkpoint(raw);
  // The memtables are flushed first, so the copy is mostly SST files (hard links on the
  // same filesystem); the WAL written since is copied, so nothing acknowledged is
  // missing. RocksDB stages the copy in DIR.tmp and renames it when complete.
  if (s.ok()) s = checkpoint->CreateCheckpoint(dir, /*log_size_for_flush=*/0);
  if (!s.ok()) {
    std::error_code ec;
    fs::remove_all(dir + ".tmp", ec);
    return absl::Status(
        s.IsNoSpace() ? absl::StatusCode::kResourceExhausted : absl::StatusCode::kInternal,
        absl::StrCat("backup into ", dir, " failed: ", s.ToString()));
  }
  absl::StatusOr<StoreCopy> copy = PrivatizeAndCount(dir);
  if (!copy.ok()) {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
  return copy;
}

}  // namespace ckpt
