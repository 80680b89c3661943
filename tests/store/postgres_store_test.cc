// What the PostgreSQL store adds to the Store contract: its schema, its ownership (one
// live ckptd per store, fenced by epoch), losing the server and getting it back, and
// keeping the password out of every message. Against real PostgreSQL clusters
// (tests/testing/postgres_cluster.h).
#include "service/store/postgres_store.h"

#include <postgresql/libpq-fe.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "ckpt/storage/v1/records.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/store/keys.h"
#include "tests/testing/postgres_cluster.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/test_stores.h"

namespace ckpt {
namespace {

using ::ckpt::testutil::PostgresCluster;
using ::ckpt::testutil::StatusIs;
using ::ckpt::testutil::TestPostgres;
using ::testing::_;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

// A fresh schema of the test cluster, and the URI that selects it.
struct Schema {
  std::string name;
  std::string uri;
};

Schema NewSchema() {
  static int next = 0;
  Schema schema{absl::StrCat("p", ++next), ""};
  EXPECT_TRUE(TestPostgres().Sql("CREATE SCHEMA " + schema.name).ok());
  schema.uri = TestPostgres().Uri("postgres", "options=-c%20search_path%3D" + schema.name);
  return schema;
}

absl::StatusOr<std::unique_ptr<PostgresStore>> OpenAt(const std::string& uri,
                                                      absl::Duration lease = absl::Seconds(2)) {
  PostgresStoreOptions options;
  options.conninfo = uri;
  options.address = "127.0.0.1:7700";
  options.lease = lease;
  return PostgresStore::Open(options);
}

absl::Status Put(Store& store, Cf cf, const std::string& key, const std::string& value) {
  auto batch = store.NewBatch();
  batch->Put(cf, key, value);
  return store.Write(batch.get());
}

// What a store told its availability listener, in order. Thread-safe.
class Availability {
 public:
  explicit Availability(Store& store) : store_(store) {
    store.SetAvailabilityListener([this](bool up) {
      absl::MutexLock lock(&mu_);
      seen_.push_back(up);
    });
  }
  ~Availability() { store_.SetAvailabilityListener(nullptr); }
  // Waits until the last state told is `up` (bounded: a hang fails, never a timing).
  bool Await(bool up) {
    absl::MutexLock lock(&mu_);
    auto told = [&]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
      return !seen_.empty() && seen_.back() == up;
    };
    return mu_.AwaitWithTimeout(absl::Condition(&told), absl::Seconds(60));
  }

 private:
  Store& store_;
  absl::Mutex mu_;
  std::vector<bool> seen_ ABSL_GUARDED_BY(mu_);
};

TEST(PostgresStoreTest, CreatesItsTablesAndTheSameSchemaRecordAsRocksDb) {
  const Schema schema = NewSchema();
  auto store = OpenAt(schema.uri);
  CKPT_ASSERT_OK(store);
  EXPECT_EQ((*store)->schema_version(), kSchemaVersion);
  auto bytes = (*store)->Get(Cf::kMeta, keys::kSchemaKey);
  CKPT_ASSERT_OK(bytes);
  ASSERT_TRUE(bytes->has_value());
  storage::v1::SchemaRecord record;
  ASSERT_TRUE(record.ParseFromString(**bytes));
  EXPECT_EQ(record.version(), kSchemaVersion);
  EXPECT_EQ(record.created_by(), "ckptd");
  auto owner =
      TestPostgres().Query(absl::StrCat("SELECT owner || ' ' || address || ' ' || epoch FROM ",
                                        schema.name, ".ckpt_owners WHERE shard = 0"));
  CKPT_ASSERT_OK(owner);
  EXPECT_THAT(*owner, AllOf(HasSubstr("ckptd on "), HasSubstr("127.0.0.1:7700 1")));
}

TEST(PostgresStoreTest, RefusesANewerSchemaAndChangesNothing) {
  const Schema schema = NewSchema();
  storage::v1::SchemaRecord newer;
  newer.set_version(kSchemaVersion + 1);
  {
    auto store = OpenAt(schema.uri);
    CKPT_ASSERT_OK(store);
    CKPT_ASSERT_OK(Put(**store, Cf::kMeta, keys::kSchemaKey, newer.SerializeAsString()));
  }
  EXPECT_THAT(OpenAt(schema.uri),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr("newer than this ckptd"), HasSubstr("run a newer ckptd"))));
  auto stored = TestPostgres().Query(absl::StrCat("SELECT encode(value, 'hex') FROM ", schema.name,
                                                  ".ckpt_records WHERE family = 0"));
  CKPT_ASSERT_OK(stored);
  EXPECT_EQ(*stored, absl::BytesToHexString(newer.SerializeAsString()));
}

TEST(PostgresStoreTest, RefusesTablesThatAreNotAllCkptsOrHaveNoSchemaRecord) {
  const Schema partial = NewSchema();
  CKPT_ASSERT_OK(
      TestPostgres().Sql(absl::StrCat("CREATE TABLE ", partial.name, ".ckpt_records (x integer)")));
  EXPECT_THAT(OpenAt(partial.uri), StatusIs(absl::StatusCode::kFailedPrecondition,
                                            HasSubstr("some of ckpt's tables but not all")));
  const Schema foreign = NewSchema();
  { CKPT_ASSERT_OK(OpenAt(foreign.uri)); }
  CKPT_ASSERT_OK(TestPostgres().Sql(absl::StrCat("DELETE FROM ", foreign.name, ".ckpt_records")));
  EXPECT_THAT(OpenAt(foreign.uri),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("not ckpt's")));
}

TEST(PostgresStoreTest, ASecondOwnerIsRefusedWithOneLineAndTheFirstGoesOn) {
  const Schema schema = NewSchema();
  auto first = OpenAt(schema.uri);
  CKPT_ASSERT_OK(first);
  auto second = OpenAt(schema.uri);
  EXPECT_THAT(second,
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr("is in use by another ckptd (ckptd on "),
                             HasSubstr("serving 127.0.0.1:7700, epoch 1"), Not(HasSubstr("\n")))));
  CKPT_EXPECT_OK(Put(**first, Cf::kJobs, "j", "still mine"));
}

TEST(PostgresStoreTest, ASuccessorTakesOverAtOnceWhenTheOwnerHasClosed) {
  const Schema schema = NewSchema();
  {
    auto first = OpenAt(schema.uri, absl::Hours(1));  // a lease that would not expire
    CKPT_ASSERT_OK(first);
    CKPT_ASSERT_OK(Put(**first, Cf::kJobs, "j", "1"));
  }
  auto second = OpenAt(schema.uri);
  CKPT_ASSERT_OK(second);
  EXPECT_EQ((*second)->epoch(), 2);
  CKPT_EXPECT_OK(Put(**second, Cf::kJobs, "j", "2"));
}

// The owner lock key of pg_owner.h, as a successor computes it.
int64_t OwnerLockKey(const Schema& schema, int64_t epoch) {
  auto oid = TestPostgres().Query(
      absl::StrCat("SELECT '", schema.name, ".ckpt_owners'::regclass::oid::bigint"));
  EXPECT_TRUE(oid.ok());
  return static_cast<int64_t>(keys::Fnv1a64(absl::StrCat("ckpt_owners/", *oid, "/0/", epoch)));
}

TEST(PostgresStoreTest, ALiveLeaseWithItsLockHeldRefusesAndAnExpiredOneIsTakenOver) {
  const Schema schema = NewSchema();
  { CKPT_ASSERT_OK(OpenAt(schema.uri)); }
  // A frozen owner: its session (this connection) holds the lock of epoch 5.
  std::unique_ptr<PGconn, void (*)(PGconn*)> frozen(PQconnectdb(schema.uri.c_str()), &PQfinish);
  ASSERT_EQ(PQstatus(frozen.get()), CONNECTION_OK);
  auto run = [&](const std::string& sql) {
    std::unique_ptr<PGresult, void (*)(PGresult*)> r(PQexec(frozen.get(), sql.c_str()), &PQclear);
    EXPECT_NE(PQresultStatus(r.get()), PGRES_FATAL_ERROR) << PQerrorMessage(frozen.get());
  };
  run(absl::StrCat("SELECT pg_advisory_lock(", OwnerLockKey(schema, 5), ")"));
  run("UPDATE ckpt_owners SET owner = 'frozen', epoch = 5, expires = now() + interval '1 hour'");
  EXPECT_THAT(OpenAt(schema.uri), StatusIs(absl::StatusCode::kFailedPrecondition,
                                           HasSubstr("in use by another ckptd (frozen")));
  run("UPDATE ckpt_owners SET expires = now() - interval '1 second'");
  auto successor = OpenAt(schema.uri);
  CKPT_ASSERT_OK(successor);
  EXPECT_EQ((*successor)->epoch(), 6);
}

TEST(PostgresStoreTest, AnOwnerWhoseEpochMovedOnNeverCommitsAgain) {
  const Schema schema = NewSchema();
  auto store = OpenAt(schema.uri);
  CKPT_ASSERT_OK(store);
  Availability availability(**store);
  ASSERT_TRUE(availability.Await(true));
  CKPT_ASSERT_OK(Put(**store, Cf::kJobs, "before", "1"));
  // What a successor's takeover does to the row.
  CKPT_ASSERT_OK(TestPostgres().Sql(absl::StrCat(
      "UPDATE ", schema.name, ".ckpt_owners SET owner = 'successor', epoch = epoch + 1")));
  EXPECT_THAT(Put(**store, Cf::kJobs, "after", "1"),
              StatusIs(absl::StatusCode::kUnavailable,
                       AllOf(HasSubstr("no longer owns the store"), HasSubstr("successor"))));
  EXPECT_THAT(Put(**store, Cf::kJobs, "later", "1"),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("no longer owns")));
  EXPECT_TRUE(availability.Await(false));
  auto rows = TestPostgres().Query(
      absl::StrCat("SELECT count(*) FROM ", schema.name, ".ckpt_records WHERE family = 1"));
  CKPT_ASSERT_OK(rows);
  EXPECT_EQ(*rows, "1");  // "before" only
  // Reads of committed records still work.
  auto before = (*store)->Get(Cf::kJobs, "before");
  CKPT_ASSERT_OK(before);
  EXPECT_TRUE(before->has_value());
}

TEST(PostgresStoreTest, NoMessageShowsThePassword) {
  PostgresCluster& cluster = TestPostgres();
  const std::string wrong = absl::StrCat("postgresql://ckpt:Secret", cluster.password(),
                                         "@127.0.0.1:", cluster.port(), "/postgres");
  auto refused = OpenAt(wrong);
  EXPECT_THAT(refused, StatusIs(absl::StatusCode::kUnavailable,
                                AllOf(HasSubstr("postgresql://ckpt@127.0.0.1:"),
                                      HasSubstr("password authentication failed"),
                                      Not(HasSubstr(cluster.password())))));
  auto malformed = OpenAt("host=127.0.0.1 password=Secret42 dbname");
  EXPECT_THAT(malformed, StatusIs(absl::StatusCode::kInvalidArgument,
                                  AllOf(HasSubstr("not a PostgreSQL connection string"),
                                        Not(HasSubstr("Secret42")))));
  const Schema schema = NewSchema();
  const std::string key_value =
      absl::StrCat("host=127.0.0.1 port=", cluster.port(),
                   " user=ckpt dbname=postgres password=", cluster.password(),
                   " options='-c search_path=", schema.name, "'");
  auto first = OpenAt(key_value);
  CKPT_ASSERT_OK(first);
  EXPECT_EQ((*first)->display_name(),
            absl::StrCat("postgresql://ckpt@127.0.0.1:", cluster.port(), "/postgres"));
  EXPECT_THAT(OpenAt(key_value),
              StatusIs(absl::StatusCode::kFailedPrecondition, Not(HasSubstr(cluster.password()))));
}

TEST(PostgresStoreTest, ServerGoneAndBackIsUnavailableMeanwhileAndRecoversByItself) {
  auto cluster = PostgresCluster::Start();
  CKPT_ASSERT_OK(cluster);
  auto store = OpenAt((*cluster)->Uri());
  CKPT_ASSERT_OK(store);
  Availability availability(**store);
  CKPT_ASSERT_OK(Put(**store, Cf::kJobs, "acked", "1"));
  (*cluster)->KillPostmaster();
  EXPECT_THAT(Put(**store, Cf::kJobs, "refused", "1"),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("PostgreSQL at")));
  EXPECT_THAT((*store)->Get(Cf::kJobs, "acked"), StatusIs(absl::StatusCode::kUnavailable, _));
  EXPECT_THAT((*store)->NewReadView(), StatusIs(absl::StatusCode::kUnavailable, _));
  EXPECT_TRUE(availability.Await(false));
  CKPT_ASSERT_OK((*cluster)->Restart());
  EXPECT_TRUE(availability.Await(true));
  CKPT_EXPECT_OK(Put(**store, Cf::kJobs, "after", "1"));
  auto acked = (*store)->Get(Cf::kJobs, "acked");
  CKPT_ASSERT_OK(acked);
  EXPECT_TRUE(acked->has_value());
  auto refused = (*store)->Get(Cf::kJobs, "refused");
  CKPT_ASSERT_OK(refused);
  EXPECT_FALSE(refused->has_value());
}

}  // namespace
}  // namespace ckpt
