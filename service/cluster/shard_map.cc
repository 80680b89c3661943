#include "service/cluster/shard_map.h"

#include "service/store/keys.h"

namespace ckpt {
namespace {

uint64_t MurmurFinalize(uint64_t h) {
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ULL;
  h ^= h >> 33;
  return h;
}

}  // namespace

int ShardOfJob(absl::string_view job_id, int shards) {
  if (shards <= 1) return 0;
  return static_cast<int>(MurmurFinalize(keys::Fnv1a64(job_id)) % static_cast<uint64_t>(shards));
}

}  // namespace ckpt
