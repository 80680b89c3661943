#include "service/store/wal_tail.h"

#include <algorithm>
#include <array>
#include <cstdint>
#include <fstream>
#include <iterator>

#include "absl/strings/str_cat.h"

namespace ckpt {
namespace {

constexpr size_t kBlockBytes = 32 << 10;
constexpr size_t kHeaderBytes = 7;       // crc (4), length (2), type (1)
constexpr uint8_t kFirstRecordType = 1;  // full, first, middle, last (1..4)
constexpr uint8_t kLastRecordType = 4;

// CRC32C (Castagnoli), as RocksDB's crc32c::Extend.
uint32_t Crc32c(uint32_t crc, const uint8_t* data, size_t size) {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  crc = ~crc;
  for (size_t i = 0; i < size; ++i) crc = table[(crc ^ data[i]) & 0xff] ^ (crc >> 8);
  return ~crc;
}

uint32_t Fixed32(const uint8_t* p) {
  return uint32_t{p[0]} | uint32_t{p[1]} << 8 | uint32_t{p[2]} << 16 | uint32_t{p[3]} << 24;
}

enum class Record { kValid, kPastEnd, kZeros, kBadChecksum, kUnknown };

// The record whose header starts at `at` in `bytes`, within the block ending at
// `block_end`; its total size in *size when valid.
Record ReadRecord(const std::string& bytes, size_t at, size_t block_end, size_t* size) {
  const auto* p = reinterpret_cast<const uint8_t*>(bytes.data()) + at;
  const size_t length = size_t{p[4]} | size_t{p[5]} << 8;
  const uint8_t type = p[6];
  if (type == 0 && length == 0) return Record::kZeros;
  if (type < kFirstRecordType || type > kLastRecordType) return Record::kUnknown;
  if (at + kHeaderBytes + length > bytes.size()) return Record::kPastEnd;
  if (at + kHeaderBytes + length > block_end) return Record::kUnknown;
  uint32_t crc = Crc32c(Crc32c(0, &type, 1), p + kHeaderBytes, length);
  crc = ((crc >> 15) | (crc << 17)) + 0xa282ead8u;  // RocksDB's crc32c::Mask
  if (crc != Fixed32(p)) return Record::kBadChecksum;
  *size = kHeaderBytes + length;
  return Record::kValid;
}

// Where the reader stops early, at `at`: damage if a whole record follows in the block.
std::optional<std::string> WholeRecordAfter(const std::string& path, const std::string& bytes,
                                            size_t at, size_t block_end, const char* what) {
  size_t size = 0;
  for (size_t later = at + 1; later + kHeaderBytes <= std::min(bytes.size(), block_end); ++later) {
    if (ReadRecord(bytes, later, block_end, &size) == Record::kValid) {
      return absl::StrCat(path, ": the record header at byte ", at, " ", what,
                          ", yet a whole record follows at byte ", later);
    }
  }
  return std::nullopt;
}

}  // namespace

std::optional<std::string> DamageBeforeWalTail(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  for (size_t block = 0; block < bytes.size(); block += kBlockBytes) {
    const size_t block_end = block + kBlockBytes;
    size_t at = block;
    // Fewer than a header's bytes left in a block are its zero trailer.
    while (at + kHeaderBytes <= std::min(bytes.size(), block_end)) {
      size_t size = 0;
      switch (ReadRecord(bytes, at, block_end, &size)) {
        case Record::kValid:
          at += size;
          continue;
        case Record::kZeros:  // the reader skips the rest of the block without a word
          if (auto damage = WholeRecordAfter(path, bytes, at, block_end, "is zeros")) {
            return damage;
          }
          at = block_end;
          continue;
        case Record::kPastEnd:  // read as a torn tail
          return WholeRecordAfter(path, bytes, at, block_end, "runs past the end of the file");
        case Record::kBadChecksum:  // RocksDB reports these itself
        case Record::kUnknown:
          return std::nullopt;
      }
    }
  }
  return std::nullopt;
}

}  // namespace ckpt
