#include "tests/durability/crash_load.h"

#include <chrono>
#include <memory>
#include <random>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "ckpt/v1/checkpoint.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/durability/wire.h"

namespace ckpt {
namespace testutil {
namespace {

using Stub = v1::Checkpoint::Stub;
constexpr const char* kJob = kCrashJob;

// The token a payload names, or 0 if it is not one of Payload()'s.
uint64_t TokenOf(const std::string& payload) {
  const size_t t = payload.find(" t=");
  const size_t end = payload.find(';');
  uint64_t token = 0;
  if (t == std::string::npos || end == std::string::npos || end < t) return 0;
  if (!absl::SimpleAtoi(payload.substr(t + 3, end - t - 3), &token)) return 0;
  return token;
}

// In an outage round, a call refused UNAVAILABLE has an unknown outcome: log nothing,
// back off a little (as the SDKs do) and go on. True if `status` was that.
bool RetryThroughOutage(Round& round, const absl::Status& status) {
  if (!round.outage || !absl::IsUnavailable(status)) return false;
  ++round.unavailable;
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  return true;
}

}  // namespace

// The result a writer sends for `index` under lease `token`: unique per grant, with NUL
// and high bytes, so a stored result that compares equal was stored byte for byte, and
// its token says which grant wrote it.
std::string Payload(uint64_t index, uint64_t token) {
  std::string payload = absl::StrCat("i=", index, " t=", token, ";");
  std::mt19937_64 bytes(index * 1000003 + token);
  const size_t size = 16 + bytes() % 240;
  while (payload.size() < size) payload.push_back(static_cast<char>(bytes()));
  return payload;
}

std::string OutputPath(uint64_t index, uint64_t token) {
  return absl::StrCat("/out/", index, "/", token, ".parquet");
}

void Write(int writer, Round& round, Ledger& ledger, std::string& worker_id, uint64_t seed) {
  std::mt19937_64 rng(seed);
  const absl::Time give_up = absl::Now() + absl::Minutes(3);  // a bound for a hang
  auto fail = [&](const std::string& what) {
    ledger.Error(absl::StrCat("writer ", writer, ": ", what));
    round.stop = true;
  };
  // After a SIGKILL every call has an unknown outcome: stop. Through an outage, go on.
  auto killed = [&] { return round.killed && !round.outage; };
  // Connected first: from then on a failed call is ckptd's doing (or the kill's).
  auto connected = round.server->NewConnectedStub(killed);
  if (!connected.ok()) {
    if (killed()) return;  // another writer killed ckptd before this one connected
    return fail(connected.status().ToString());
  }
  std::unique_ptr<Stub> stub = *std::move(connected);
  while (!killed() && !round.stop) {
    if (absl::Now() > give_up) return fail("no end after 3 minutes");
    v1::LeaseItemsRequest lease;
    lease.set_job_id(kJob);
    lease.set_worker_id(worker_id);
    lease.set_max_items(1 + rng() % 8);
    auto leased = testutil::WireCall(*stub, &Stub::LeaseItems, lease);
    if (!leased.ok()) {
      if (RetryThroughOutage(round, leased.status())) continue;
      if (killed()) return;
      if (leased.status().code() == absl::StatusCode::kFailedPrecondition &&
          absl::StrContains(leased.status().message(), "register again")) {
        // Silent past the lease timeout (e.g. across a restart): a new id.
        auto registered = testutil::RegisterWorker(*stub, kJob);
        if (!registered.ok() && RetryThroughOutage(round, registered.status())) continue;
        if (!registered.ok()) return fail(registered.status().ToString());
        worker_id = *registered;
        continue;
      }
      return fail(absl::StrCat("LeaseItems: ", leased.status().ToString()));
    }
    if (leased->leases().empty()) {
      const auto shortfall = leased->shortfall();
      if (shortfall == v1::LEASE_SHORTFALL_JOB_FINISHED) return;
      if (shortfall != v1::LEASE_SHORTFALL_NONE_PENDING) {
        return fail(absl::StrCat("shortfall ", v1::LeaseShortfall_Name(shortfall)));
      }
      // Others hold the rest, or leases lost in a crash have yet to expire: back off.
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
      continue;
    }
    v1::CompleteItemsRequest complete;
    complete.set_job_id(kJob);
    complete.set_worker_id(worker_id);
    complete.set_skip_lost_leases(rng() % 2 == 0);
    for (const v1::Lease& l : leased->leases()) {
      const uint64_t index = l.key().index(), token = l.lease_token();
      v1::Completion* c = complete.add_items();
      *c->mutable_key() = l.key();
      c->set_lease_token(token);
      c->mutable_result()->set_payload(Payload(index, token));
      c->mutable_result()->add_output_paths(OutputPath(index, token));
      ledger.Sent(index, token);
    }
    auto done = testutil::WireCall(*stub, &Stub::CompleteItems, complete);
    if (!done.ok()) {
      if (RetryThroughOutage(round, done.status())) continue;
      if (killed()) return;  // unknown outcome: the call may or may not have applied
      if (done.status().code() == absl::StatusCode::kFailedPrecondition) {
        // A lease expired (all or nothing: none applied).
        for (const auto& c : complete.items()) ledger.Refused(c.key().index(), c.lease_token());
        continue;
      }
      return fail(absl::StrCat("CompleteItems: ", done.status().ToString()));
    }
    uint64_t acks = 0;
    for (int i = 0; i < done->outcomes_size(); ++i) {
      const auto& c = complete.items(i);
      switch (done->outcomes(i)) {
        case v1::COMPLETION_OUTCOME_COMPLETED:
          ledger.Acked(c.key().index(), c.lease_token());
          ++acks;
          break;
        case v1::COMPLETION_OUTCOME_LEASE_LOST:
          ledger.Refused(c.key().index(), c.lease_token());
          break;
        default:
          return fail(absl::StrCat("outcome ", v1::CompletionOutcome_Name(done->outcomes(i)),
                                   " for index ", c.key().index()));
      }
    }
    const uint64_t before = round.acks.fetch_add(acks);
    if (round.kill_at > 0 && before < round.kill_at && before + acks >= round.kill_at) {
      round.killed = true;
      if (round.fault) {
        round.fault();
      } else {
        round.server->Kill();  // mid-flight for the other seven
      }
    }
  }
}

void Verify(CkptdProcess& server, const Ledger& ledger, uint64_t registered) {
  auto connected = server.NewConnectedStub();
  ASSERT_TRUE(connected.ok()) << connected.status();
  std::unique_ptr<Stub> stub = *std::move(connected);
  auto job = testutil::GetJob(*stub, kJob);
  ASSERT_TRUE(job.ok()) << job.status();
  const v1::Progress& p = job->progress();
  EXPECT_EQ(p.total(), registered);
  EXPECT_EQ(p.pending() + p.leased() + p.completed() + p.failed(), p.total());
  EXPECT_EQ(p.failed(), 0u);

  auto all = testutil::ListAll(*stub, kJob, v1::ITEM_STATE_UNSPECIFIED, /*keys_only=*/false);
  ASSERT_TRUE(all.ok()) << all.status();
  std::map<uint64_t, v1::Item> items;
  for (const v1::Item& item : *all) {
    EXPECT_TRUE(items.emplace(item.key().index(), item).second)
        << "listed twice: " << item.key().index();
  }
  ASSERT_EQ(items.size(), registered);
  EXPECT_EQ(items.rbegin()->first, registered - 1);

  // One state per item: the lists by state are disjoint, cover every item, and have
  // the sizes GetJob counts.
  std::map<uint64_t, v1::ItemState> state_of;
  const std::map<v1::ItemState, uint64_t> counted = {{v1::ITEM_STATE_PENDING, p.pending()},
                                                     {v1::ITEM_STATE_LEASED, p.leased()},
                                                     {v1::ITEM_STATE_COMPLETED, p.completed()},
                                                     {v1::ITEM_STATE_FAILED, p.failed()}};
  for (const auto& [state, count] : counted) {
    auto listed = testutil::ListAll(*stub, kJob, state, /*keys_only=*/true);
    ASSERT_TRUE(listed.ok()) << listed.status();
    EXPECT_EQ(listed->size(), count) << v1::ItemState_Name(state);
    for (const v1::Item& item : *listed) {
      const uint64_t index = item.key().index();
      EXPECT_TRUE(state_of.emplace(index, state).second)
          << "item " << index << " is both " << v1::ItemState_Name(state_of[index]) << " and "
          << v1::ItemState_Name(state);
      EXPECT_EQ(items[index].state(), state) << "item " << index;
    }
  }
  EXPECT_EQ(state_of.size(), registered);

  // Every acknowledged completion, exactly.
  const std::map<uint64_t, uint64_t> acked = ledger.acked();
  EXPECT_GE(p.completed(), acked.size());
  for (const auto& [index, token] : acked) {
    const v1::Item& item = items[index];
    ASSERT_EQ(item.state(), v1::ITEM_STATE_COMPLETED)
        << "acknowledged completion of item " << index << " (token " << token << ") is lost";
    EXPECT_EQ(item.result().payload(), Payload(index, token)) << "item " << index;
    ASSERT_EQ(item.result().output_paths_size(), 1) << "item " << index;
    EXPECT_EQ(item.result().output_paths(0), OutputPath(index, token));
  }
  // Every completed item was completed by a completion that was sent and not refused.
  for (const auto& [index, item] : items) {
    if (item.state() != v1::ITEM_STATE_COMPLETED) continue;
    const uint64_t token = TokenOf(item.result().payload());
    EXPECT_TRUE(ledger.WasSent(index, token)) << "item " << index << " has a result nobody sent";
    EXPECT_FALSE(ledger.WasRefused(index, token))
        << "item " << index << " holds the result of a refused completion (token " << token << ")";
    EXPECT_EQ(item.result().payload(), Payload(index, token)) << "item " << index;
  }
  // GetItem reads the same records by key.
  int checked = 0;
  for (auto it = acked.rbegin(); it != acked.rend() && checked < 50; ++it, ++checked) {
    auto item = testutil::GetItem(*stub, kJob, it->first);
    ASSERT_TRUE(item.ok()) << item.status();
    EXPECT_EQ(item->result().payload(), Payload(it->first, it->second));
  }
}

}  // namespace testutil
}  // namespace ckpt
