// Every SQL statement the PostgreSQL store sends, in one place: the tables, the owner
// check, and the prepared statements of writes, reads and ownership. STORAGE_FORMAT.md
// ("PostgreSQL") describes the mapping; this is its executable form. Tables are created
// in the first schema of the connection's search_path (`options=-csearch_path=...` in
// the connection string picks another).
#ifndef CKPT_SERVICE_STORE_PG_SQL_H_
#define CKPT_SERVICE_STORE_PG_SQL_H_

namespace ckpt {
namespace pgsql {

// A statement prepared on every connection under `name`; `what` names it in messages.
struct Statement {
  const char* name;
  const char* sql;
  const char* what;
};

// ---- Schema (created in one transaction on a database without ckpt's tables) ----

// Records: the same keys and values as RocksDB's column families. bytea compares
// bytewise, so the primary key's btree orders keys as RocksDB does.
inline constexpr char kCreateRecords[] =
    "CREATE TABLE ckpt_records ("
    " shard integer NOT NULL,"
    " family smallint NOT NULL,"
    " key bytea NOT NULL,"
    " value bytea NOT NULL,"
    " PRIMARY KEY (shard, family, key))";

// One row per shard: who owns it, until when, and the epoch that fences every write.
inline constexpr char kCreateOwners[] =
    "CREATE TABLE ckpt_owners ("
    " shard integer PRIMARY KEY,"
    " owner text NOT NULL,"
    " address text NOT NULL,"
    " epoch bigint NOT NULL,"
    " expires timestamptz NOT NULL)";

// One row per replica taking part (shard_leases.h): renewed like a lease, and alive
// while its session holds the advisory lock `lock_key`.
inline constexpr char kCreateMembers[] =
    "CREATE TABLE IF NOT EXISTS ckpt_members ("
    " member text PRIMARY KEY,"
    " address text NOT NULL,"
    " lock_key bigint NOT NULL,"
    " expires timestamptz NOT NULL)";

// The fence: raises SQLSTATE CK001 unless `e` is still the shard's epoch. FOR SHARE
// holds the owner row until the transaction ends, so a takeover (which updates the
// row) waits for a write in flight, and every later write sees the new epoch.
inline constexpr char kCreateCheckOwner[] =
    "CREATE FUNCTION ckpt_check_owner(s integer, e bigint) RETURNS void"
    " LANGUAGE plpgsql AS $$"
    " DECLARE current bigint;"
    " BEGIN"
    "  SELECT epoch INTO current FROM ckpt_owners WHERE shard = s FOR SHARE;"
    "  IF current IS DISTINCT FROM e THEN"
    "   RAISE EXCEPTION 'shard % is owned by epoch %, not %', s, current, e"
    "    USING ERRCODE = 'CK001';"
    "  END IF;"
    " END $$";

// The SQLSTATE ckpt_check_owner raises.
inline constexpr char kFencedState[] = "CK001";

// Which of ckpt's tables exist (search_path), and the owner table's oid (0 if none).
inline constexpr char kFindTables[] =
    "SELECT to_regclass('ckpt_records') IS NOT NULL, to_regclass('ckpt_owners') IS NOT NULL,"
    " to_regprocedure('ckpt_check_owner(integer,bigint)') IS NOT NULL,"
    " coalesce(to_regclass('ckpt_owners')::oid::bigint, 0)";

// Serialises schema creation between ckptds starting at once.
inline constexpr char kLockSetup[] = "SELECT pg_advisory_xact_lock(7163010476291735861)";

// ---- Writes: one group commit = these, pipelined in one implicit transaction ----

inline constexpr Statement kCheckOwner = {"ckpt_check_owner", "SELECT ckpt_check_owner($1, $2)",
                                          "check ownership"};
inline constexpr Statement kDeleteRange = {
    "ckpt_delete_range",
    "DELETE FROM ckpt_records WHERE shard = $1 AND family = $2 AND key >= $3 AND key < $4",
    "delete a range"};
inline constexpr Statement kDeleteFrom = {
    "ckpt_delete_from", "DELETE FROM ckpt_records WHERE shard = $1 AND family = $2 AND key >= $3",
    "delete a range"};
inline constexpr Statement kDeleteKeys = {
    "ckpt_delete_keys",
    "DELETE FROM ckpt_records r USING unnest($2::smallint[], $3::bytea[]) AS d(f, k)"
    " WHERE r.shard = $1 AND r.family = d.f AND r.key = d.k",
    "delete keys"};
inline constexpr Statement kUpsert = {
    "ckpt_upsert",
    "INSERT INTO ckpt_records (shard, family, key, value)"
    " SELECT $1, f, k, v FROM unnest($2::smallint[], $3::bytea[], $4::bytea[]) AS t(f, k, v)"
    " ON CONFLICT (shard, family, key) DO UPDATE SET value = EXCLUDED.value",
    "write records"};

// ---- Reads ----

inline constexpr Statement kGet = {
    "ckpt_get", "SELECT value FROM ckpt_records WHERE shard = $1 AND family = $2 AND key = $3",
    "read"};
// One page of a prefix scan (keyset pagination: the next page starts after the last key).
inline constexpr Statement kScanBounded = {
    "ckpt_scan_bounded",
    "SELECT key, value FROM ckpt_records WHERE shard = $1 AND family = $2 AND key >= $3"
    " AND key < $4 ORDER BY key LIMIT $5",
    "scan"};
inline constexpr Statement kScanOpen = {
    "ckpt_scan_open",
    "SELECT key, value FROM ckpt_records WHERE shard = $1 AND family = $2 AND key >= $3"
    " ORDER BY key LIMIT $4",
    "scan"};
inline constexpr Statement kFloor = {
    "ckpt_floor",
    "SELECT key, value FROM ckpt_records WHERE shard = $1 AND family = $2 AND key >= $3"
    " AND key <= $4 ORDER BY key DESC LIMIT 1",
    "read"};

// A read view: one snapshot from its first statement on, released by kEndView.
inline constexpr char kBeginView[] = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SELECT 1";
inline constexpr char kEndView[] = "COMMIT";

// ---- Ownership ----

// Probes whether the owner of an epoch still has a session: it holds this key's
// session lock for as long as it is connected (see pg_owner.h). Waits (lock_timeout)
// rather than tries: the backend of an owner that just died may take a moment to go.
inline constexpr Statement kProbeOwnerLock = {
    "ckpt_probe_owner_lock", "SELECT pg_advisory_xact_lock($1)", "probe the owner's lock"};
inline constexpr Statement kTakeOwnerLock = {"ckpt_take_owner_lock",
                                             "SELECT pg_try_advisory_lock($1)", "take the lock"};
inline constexpr Statement kReadOwner = {"ckpt_read_owner",
                                         "SELECT owner, address, epoch, expires > now(),"
                                         " (extract(epoch FROM now() - expires) * 1000000)::bigint"
                                         " FROM ckpt_owners WHERE shard = $1",
                                         "read the owner"};
inline constexpr Statement kLockOwner = {"ckpt_lock_owner",
                                         "SELECT owner, address, epoch, expires > now(),"
                                         " (extract(epoch FROM now() - expires) * 1000000)::bigint"
                                         " FROM ckpt_owners WHERE shard = $1 FOR UPDATE",
                                         "read the owner"};
inline constexpr Statement kInsertOwner = {
    "ckpt_insert_owner",
    "INSERT INTO ckpt_owners (shard, owner, address, epoch, expires)"
    " VALUES ($1, $2, $3, 1, now() + make_interval(secs => $4::bigint / 1000000.0))"
    " RETURNING epoch",
    "take ownership"};
inline constexpr Statement kTakeOver = {
    "ckpt_take_over",
    "UPDATE ckpt_owners SET owner = $2, address = $3, epoch = epoch + 1,"
    " expires = now() + make_interval(secs => $4::bigint / 1000000.0)"
    " WHERE shard = $1 RETURNING epoch",
    "take ownership"};
inline constexpr Statement kRenew = {
    "ckpt_renew",
    "UPDATE ckpt_owners SET expires = now() + make_interval(secs => $3::bigint / 1000000.0)"
    " WHERE shard = $1 AND epoch = $2",
    "renew the lease"};

// Every prepared statement, prepared on each new connection.
inline constexpr const Statement* kAllStatements[] = {
    &kCheckOwner,  &kDeleteRange, &kDeleteFrom, &kDeleteKeys,     &kUpsert,        &kGet,
    &kScanBounded, &kScanOpen,    &kFloor,      &kProbeOwnerLock, &kTakeOwnerLock, &kReadOwner,
    &kLockOwner,   &kInsertOwner, &kTakeOver,   &kRenew};

// ---- Replicas: shard leases and members (pg_leases.h), on the lease table's session ----

// An interval parameter: microseconds as bigint.
#define CKPT_PG_MICROS(p) "make_interval(secs => " p "::bigint / 1000000.0)"

inline constexpr char kDropOldMembers[] =
    "DELETE FROM ckpt_members WHERE expires < now() - interval '1 day'";
// $1 member, $2 address, $3 lock key, $4 lease (us).
inline constexpr Statement kJoin = {
    "ckpt_join",
    "INSERT INTO ckpt_members (member, address, lock_key, expires)"
    " VALUES ($1, $2, $3, now() + " CKPT_PG_MICROS("$4") ")"
    " ON CONFLICT (member) DO UPDATE SET address = EXCLUDED.address,"
    " lock_key = EXCLUDED.lock_key, expires = EXCLUDED.expires",
    "join the cluster"};
// $1 member, $2 lease (us). No row: the member was removed; join again.
inline constexpr Statement kRenewMember = {
    "ckpt_renew_member",
    "UPDATE ckpt_members SET expires = now() + " CKPT_PG_MICROS("$2") " WHERE member = $1",
    "renew membership"};
// Every member: its row renewed, and its session holding its lock (pg_locks shows a
// bigint advisory key as classid = high 32 bits, objid = low 32 bits, objsubid 1).
inline constexpr Statement kReadMembers = {
    "ckpt_read_members",
    "SELECT m.member, m.address, m.expires > now(), EXISTS (SELECT 1 FROM pg_locks l"
    "  WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1"
    "  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    "  AND l.classid::bigint = (m.lock_key >> 32) & 4294967295"
    "  AND l.objid::bigint = m.lock_key & 4294967295)"
    " FROM ckpt_members m",
    "read the members"};
inline constexpr Statement kReadLeases = {
    "ckpt_read_leases",
    "SELECT shard, owner, address, epoch, expires > now() FROM ckpt_owners ORDER BY shard",
    "read the shard leases"};
// $1 shard, $2 member, $3 address, $4 lease (us), $5 the epoch seen, $6 the owner is
// gone (take even if the lease runs). No row: someone else took or renewed it first.
inline constexpr Statement kTakeShard = {
    "ckpt_take_shard",
    "INSERT INTO ckpt_owners AS o (shard, owner, address, epoch, expires)"
    " VALUES ($1, $2, $3, 1, now() + " CKPT_PG_MICROS("$4") ")"
    " ON CONFLICT (shard) DO UPDATE SET owner = EXCLUDED.owner, address = EXCLUDED.address,"
    " epoch = o.epoch + 1, expires = EXCLUDED.expires"
    " WHERE o.epoch = $5 AND (o.expires <= now() OR $6)"
    " RETURNING epoch",
    "take a shard"};
// $1 member, $2 shards (int4[]), $3 their epochs (int8[]), $4 lease (us): the shards
// renewed.
inline constexpr Statement kRenewShards = {
    "ckpt_renew_shards",
    "UPDATE ckpt_owners o SET expires = now() + " CKPT_PG_MICROS("$4")
    " FROM unnest($2::int4[], $3::int8[]) AS mine(shard, epoch)"
    " WHERE o.shard = mine.shard AND o.epoch = mine.epoch AND o.owner = $1"
    " RETURNING o.shard",
    "renew shard leases"};
// $1 shard, $2 epoch, $3 member.
inline constexpr Statement kReleaseShard = {
    "ckpt_release_shard",
    "UPDATE ckpt_owners SET expires = '-infinity' WHERE shard = $1 AND epoch = $2 AND owner = $3",
    "release a shard"};
inline constexpr Statement kLeave = {"ckpt_leave", "DELETE FROM ckpt_members WHERE member = $1",
                                     "leave the cluster"};

#undef CKPT_PG_MICROS

inline constexpr const Statement* kLeaseStatements[] = {
    &kJoin,      &kRenewMember, &kReadMembers,  &kReadLeases,
    &kTakeShard, &kRenewShards, &kReleaseShard, &kLeave};

}  // namespace pgsql
}  // namespace ckpt

#endif  // CKPT_SERVICE_STORE_PG_SQL_H_
