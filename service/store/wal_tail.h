// A check RocksDB's WAL reader cannot make. In the file's last 32 KiB block, a record
// whose length runs past the end of the file reads as a torn tail (a crash mid-append)
// and is dropped silently with everything after it, in every recovery mode; and a header
// of zeros makes the reader skip the rest of its block, anywhere. A tear leaves nothing
// after it; a damaged header leaves whole records after it. For rocksdb_store.cc.
// Thread-compatible (reads files only).
#ifndef CKPT_SERVICE_STORE_WAL_TAIL_H_
#define CKPT_SERVICE_STORE_WAL_TAIL_H_

#include <optional>
#include <string>

namespace ckpt {

// For the WAL file at `path` (RocksDB's log format: 32 KiB blocks of records with a
// 7-byte header: masked CRC32C, length, type), what is wrong if the reader would stop
// early (a length past the end of the file, a header of zeros) while a whole record with
// a valid checksum follows in that block; nullopt when it reads to its end, ends in a
// tear, or has what RocksDB reports itself (a checksum mismatch) or records of a format
// this does not know.
std::optional<std::string> DamageBeforeWalTail(const std::string& path);

}  // namespace ckpt

#endif  // CKPT_SERVICE_STORE_WAL_TAIL_H_
