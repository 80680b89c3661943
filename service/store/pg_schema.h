// The PostgreSQL store's tables: created on a database that has none of them, checked
// on one that has them all, refused otherwise (STORAGE_FORMAT.md, "PostgreSQL").
// Internal to service/store.
#ifndef CKPT_SERVICE_STORE_PG_SCHEMA_H_
#define CKPT_SERVICE_STORE_PG_SCHEMA_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "service/store/pg_connection.h"

namespace ckpt {

// What OpenSchema found or made.
struct PgSchema {
  uint32_t version = 0;    // the schema record's, now kSchemaVersion
  int64_t owners_oid = 0;  // ckpt_owners' oid: part of the owner lock's key
  bool created = false;    // the tables were created just now
  int shards = 1;          // the schema record's (0 there reads as 1)
};

// In one transaction, serialised with other ckptds doing the same: creates the tables,
// the owner check and the schema record (version kSchemaVersion, in shard 0's meta
// family, the same bytes as RocksDB's) when none of ckpt's tables exists; otherwise
// checks them and the schema record, marking an older version as this one. Refusals
// change nothing and say what to do in one line:
//   FAILED_PRECONDITION: some of ckpt's tables but not all; no schema record (not
//     ckpt's); a newer schema; no permission to create tables;
//   DATA_LOSS: an unreadable schema record;
//   UNAVAILABLE: the connection failed.
// A store created now gets `shards` shards. The replicas' member table is created when
// missing (on a store made before replicas) without changing the version.
absl::StatusOr<PgSchema> OpenSchema(PgConnection& connection, absl::Time now, int shards = 1);

}  // namespace ckpt

#endif  // CKPT_SERVICE_STORE_PG_SCHEMA_H_
