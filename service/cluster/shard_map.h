// Which shard a job belongs to. A cluster's jobs are split into a fixed number of
// shards (recorded in the database when it is first initialised, never changed after);
// each shard is owned by one ckptd at a time, which runs the engine for every job in
// it. The mapping is part of the store format (STORAGE_FORMAT.md, "Shards"): a job's
// records live in its shard's rows, so it must never change.
#ifndef CKPT_SERVICE_CLUSTER_SHARD_MAP_H_
#define CKPT_SERVICE_CLUSTER_SHARD_MAP_H_

#include <cstdint>

#include "absl/strings/string_view.h"

namespace ckpt {

// Shards of a new PostgreSQL database unless --shards says otherwise.
inline constexpr int kDefaultShards = 16;
// Bounds of --shards: each owned shard costs a replica one writer thread and one
// PostgreSQL connection.
inline constexpr int kMaxShards = 256;

// The shard of `job_id` among `shards` (>= 1): MurmurHash3's 64-bit finaliser of the
// FNV-1a-64 of the id's bytes, modulo `shards`. (FNV-1a alone would leave the low bits
// depending only on the low bits of each byte: "job-a1" and "job-q1" would share a
// shard whenever `shards` is a power of two.) Never changes.
int ShardOfJob(absl::string_view job_id, int shards);

}  // namespace ckpt

#endif  // CKPT_SERVICE_CLUSTER_SHARD_MAP_H_
