// Which write-ahead log file RocksDB created last, remembered in the data dir's
// NEWEST_WAL file: RocksDB's MANIFEST tracks closed WALs only, so a deleted newest WAL
// (whose writes are acknowledged and nowhere else) would go unnoticed at start-up.
// For rocksdb_store.cc.
#ifndef CKPT_SERVICE_STORE_NEWEST_WAL_H_
#define CKPT_SERVICE_STORE_NEWEST_WAL_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "rocksdb/env.h"

namespace ckpt {

// The default Env, but each WAL it creates in `data_dir` is first recorded in
// NEWEST_WAL (written to a temporary file renamed over it, so that after a crash the
// file names a WAL whose creation came before). Not synced: a power failure may leave
// an older number, which only weakens the check. Thread-safe, like RocksDB's Env.
std::unique_ptr<rocksdb::Env> NewWalRecordingEnv(const std::string& data_dir);

// The WAL number NEWEST_WAL names, if the file is there (stores written before it
// existed have none).
std::optional<uint64_t> RecordedNewestWal(const std::string& data_dir);

// RocksDB's name for WAL `number` in `data_dir` (NNNNNN.log).
std::string WalPath(const std::string& data_dir, uint64_t number);

}  // namespace ckpt

#endif  // CKPT_SERVICE_STORE_NEWEST_WAL_H_
