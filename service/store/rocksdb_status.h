// RocksDB statuses as absl ones, for the RocksDB store's files.
#ifndef CKPT_SERVICE_STORE_ROCKSDB_STATUS_H_
#define CKPT_SERVICE_STORE_ROCKSDB_STATUS_H_

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "rocksdb/status.h"

namespace ckpt {

// Maps a RocksDB status to absl: NoSpace -> RESOURCE_EXHAUSTED, Corruption ->
// DATA_LOSS, Busy/TryAgain -> UNAVAILABLE, NotFound -> NOT_FOUND, others INTERNAL.
// `context` says what was being done ("write", "read job").
inline absl::Status FromRocksStatus(const rocksdb::Status& status, absl::string_view context) {
  if (status.ok()) return absl::OkStatus();
  const std::string message = absl::StrCat(context, ": ", status.ToString());
  if (status.IsNoSpace() || status.subcode() == rocksdb::Status::kNoSpace) {
    return absl::ResourceExhaustedError(absl::StrCat(context, ": the data dir's disk is full (",
                                                     status.ToString(), "); free space and retry"));
  }
  if (status.IsCorruption()) return absl::DataLossError(message);
  if (status.IsBusy() || status.IsTryAgain() || status.IsShutdownInProgress()) {
    return absl::UnavailableError(message);
  }
  if (status.IsNotFound()) return absl::NotFoundError(message);
  return absl::InternalError(message);
}

inline bool IsNoSpace(const rocksdb::Status& status) {
  return status.IsNoSpace() || status.subcode() == rocksdb::Status::kNoSpace;
}

}  // namespace ckpt

#endif  // CKPT_SERVICE_STORE_ROCKSDB_STATUS_H_
