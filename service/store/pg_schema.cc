#include "service/store/pg_schema.h"

#include <algorithm>
#include <string>

#include "absl/strings/str_cat.h"
#include "ckpt/storage/v1/records.pb.h"
#include "service/common/log.h"
#include "service/common/status_macros.h"
#include "service/store/keys.h"
#include "service/store/pg_sql.h"
#include "service/store/store.h"

namespace ckpt {
namespace {

// The schema record's place: shard 0's meta family, as RocksDB's meta/"schema".
constexpr int32_t kSchemaShard = 0;

constexpr char kReadSchema[] =
    "SELECT value FROM ckpt_records WHERE shard = $1 AND family = $2 AND key = $3";
constexpr char kWriteSchema[] =
    "INSERT INTO ckpt_records (shard, family, key, value) VALUES ($1, $2, $3, $4)"
    " ON CONFLICT (shard, family, key) DO UPDATE SET value = EXCLUDED.value";

PgParams SchemaKey() {
  PgParams params;
  params.Int4(kSchemaShard).Int2(static_cast<int16_t>(Cf::kMeta)).Bytes(keys::kSchemaKey);
  return params;
}

absl::Status WriteSchemaRecord(PgConnection& c, const storage::v1::SchemaRecord& schema) {
  PgParams params = SchemaKey();
  params.Owned(schema.SerializeAsString());
  return c.Exec(kWriteSchema, params, "write the schema record").status();
}

absl::Status CreateTables(PgConnection& c, absl::Time now, int shards) {
  for (const char* ddl : {pgsql::kCreateRecords, pgsql::kCreateOwners, pgsql::kCreateCheckOwner}) {
    CKPT_RETURN_IF_ERROR(c.RunSql(ddl, "create ckpt's tables"));
  }
  storage::v1::SchemaRecord schema;
  schema.set_version(kSchemaVersion);
  schema.set_created_by("ckptd");
  schema.set_create_time_micros(absl::ToUnixMicros(now));
  schema.set_shards(static_cast<uint32_t>(shards));
  return WriteSchemaRecord(c, schema);
}

// Reads and checks the schema record; marks an older store as this version.
absl::StatusOr<storage::v1::SchemaRecord> CheckSchemaRecord(PgConnection& c) {
  const std::string& where = c.target().display();
  CKPT_ASSIGN_OR_RETURN(PgResult result,
                        c.Exec(kReadSchema, SchemaKey(), "read the schema record"));
  if (PgRows(result.get()) == 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("PostgreSQL at ", where,
                     " has a ckpt_records table but no ckpt schema record: it is not ckpt's; "
                     "point --store at another database or schema"));
  }
  storage::v1::SchemaRecord schema;
  const absl::string_view bytes = PgBytes(result.get(), 0, 0);
  if (!schema.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return absl::DataLossError(absl::StrCat("store at ", where,
                                            " has an unreadable schema record; ckptd will not "
                                            "modify it: restore the database from a backup"));
  }
  if (schema.version() > kSchemaVersion) {
    return absl::FailedPreconditionError(
        absl::StrCat("store at ", where, " has schema version ", schema.version(),
                     ", newer than this ckptd understands (", kSchemaVersion,
                     "): run a newer ckptd; the store was not changed"));
  }
  if (schema.version() < kSchemaVersion) {
    LogLine(absl::StrCat("store at ", where, ": schema version ", schema.version(), " -> ",
                         kSchemaVersion));
    schema.set_version(kSchemaVersion);
    CKPT_RETURN_IF_ERROR(WriteSchemaRecord(c, schema));
  }
  return schema;
}

absl::StatusOr<PgSchema> OpenInTransaction(PgConnection& c, absl::Time now, int shards) {
  CKPT_RETURN_IF_ERROR(c.RunSql(pgsql::kLockSetup, "lock the schema"));
  CKPT_ASSIGN_OR_RETURN(PgResult found,
                        c.Exec(pgsql::kFindTables, PgParams(), "find ckpt's tables"));
  const bool records = PgBool(found.get(), 0, 0), owners = PgBool(found.get(), 0, 1),
             check = PgBool(found.get(), 0, 2);
  PgSchema schema;
  if (!records && !owners && !check) {
    CKPT_RETURN_IF_ERROR(CreateTables(c, now, shards));
    CKPT_ASSIGN_OR_RETURN(found, c.Exec(pgsql::kFindTables, PgParams(), "find ckpt's tables"));
    schema.version = kSchemaVersion;
    schema.created = true;
    schema.shards = shards;
  } else if (!records || !owners || !check) {
    return absl::FailedPreconditionError(absl::StrCat(
        "PostgreSQL at ", c.target().display(), " has some of ckpt's tables but not all (",
        records ? "" : "no ckpt_records, ", owners ? "" : "no ckpt_owners, ",
        check ? "" : "no ckpt_check_owner function, ",
        "so it is damaged or not ckpt's); ckptd will not modify it: restore it or point "
        "--store at another database"));
  } else {
    CKPT_ASSIGN_OR_RETURN(const storage::v1::SchemaRecord record, CheckSchemaRecord(c));
    schema.version = record.version();
    schema.shards = std::max<int>(1, static_cast<int>(record.shards()));
  }
  CKPT_RETURN_IF_ERROR(c.RunSql(pgsql::kCreateMembers, "create ckpt's member table"));
  schema.owners_oid = PgInt8(found.get(), 0, 3);
  return schema;
}

}  // namespace

absl::StatusOr<PgSchema> OpenSchema(PgConnection& connection, absl::Time now, int shards) {
  CKPT_RETURN_IF_ERROR(connection.RunSql("BEGIN", "open the schema"));
  absl::StatusOr<PgSchema> schema = OpenInTransaction(connection, now, shards);
  if (!schema.ok()) {
    connection.RunSql("ROLLBACK", "open the schema").IgnoreError();
    return schema.status();
  }
  CKPT_RETURN_IF_ERROR(connection.RunSql("COMMIT", "open the schema"));
  if (schema->created) {
    LogLine(absl::StrCat("store at ", connection.target().display(),
                         ": created ckpt's tables, schema version ", kSchemaVersion, ", ",
                         schema->shards, schema->shards == 1 ? " shard" : " shards"));
  }
  return schema;
}

}  // namespace ckpt
