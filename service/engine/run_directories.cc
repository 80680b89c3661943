#include "service/engine/run_directories.h"

#include <algorithm>
#include <optional>
#include <utility>

#include "absl/hash/hash.h"
#include "absl/strings/match.h"
#include "service/common/status_macros.h"
#include "service/engine/item_runs.h"

namespace ckpt {

RunDirectories::RunDirectories(const StoreReader& store, size_t capacity)
    : store_(store), shard_capacity_(std::max<size_t>(1, capacity / kShards)) {}

RunDirectories::Shard& RunDirectories::ShardOf(absl::string_view key) const {
  return shards_[absl::Hash<absl::string_view>()(key) % kShards];
}

absl::StatusOr<std::vector<uint64_t>> RunDirectories::Read(const std::string& key) const {
  Shard& shard = ShardOf(key);
  uint64_t writes = 0;
  {
    absl::MutexLock lock(&shard.mu);
    auto it = shard.blocks.find(key);
    if (it != shard.blocks.end()) return it->second;
    writes = shard.writes;
  }
  CKPT_ASSIGN_OR_RETURN(std::optional<std::string> bytes, store_.Get(kRunDirectoryFamily, key));
  std::vector<uint64_t> firsts;
  if (bytes.has_value()) {
    CKPT_ASSIGN_OR_RETURN(firsts, ParseRunDirectory(*bytes));
  }
  absl::MutexLock lock(&shard.mu);
  // A write-through since the read may be newer than what was read.
  if (shard.writes == writes) Insert(shard, key, firsts);
  return firsts;
}

std::optional<std::vector<uint64_t>> RunDirectories::Cached(const std::string& key) const {
  Shard& shard = ShardOf(key);
  absl::MutexLock lock(&shard.mu);
  auto it = shard.blocks.find(key);
  if (it == shard.blocks.end()) return std::nullopt;
  return it->second;
}

void RunDirectories::Committed(const std::string& key, std::vector<uint64_t> firsts) {
  Shard& shard = ShardOf(key);
  absl::MutexLock lock(&shard.mu);
  ++shard.writes;
  Insert(shard, key, std::move(firsts));
}

void RunDirectories::ForgetPrefixes(const std::vector<absl::string_view>& prefixes) {
  auto deleted = [&](const auto& entry) {
    for (absl::string_view prefix : prefixes) {
      if (absl::StartsWith(entry.first, prefix)) return true;
    }
    return false;
  };
  for (Shard& shard : shards_) {
    absl::MutexLock lock(&shard.mu);
    ++shard.writes;
    absl::erase_if(shard.blocks, deleted);
  }
}

void RunDirectories::ForgetAll() {
  for (Shard& shard : shards_) {
    absl::MutexLock lock(&shard.mu);
    ++shard.writes;
    shard.blocks.clear();
  }
}

size_t RunDirectories::size() const {
  size_t total = 0;
  for (const Shard& shard : shards_) {
    absl::MutexLock lock(&shard.mu);
    total += shard.blocks.size();
  }
  return total;
}

void RunDirectories::Insert(Shard& shard, const std::string& key,
                            std::vector<uint64_t> firsts) const {
  auto it = shard.blocks.find(key);
  if (it != shard.blocks.end()) {
    it->second = std::move(firsts);
    return;
  }
  if (shard.blocks.size() >= shard_capacity_) shard.blocks.erase(shard.blocks.begin());
  shard.blocks.emplace(key, std::move(firsts));
}

}  // namespace ckpt
