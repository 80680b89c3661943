// A worker process for frozen_worker_test: registers, leases one item, heartbeats every
// 100 ms, and completes the item when told to on stdin. What ckptd answered goes to
// stdout, one line each:
//   worker <worker_id>
//   leased <index> <token>
//   heartbeat OK                     (the first accepted heartbeat)
//   heartbeat <CODE> <message>       (the first refused one, or a lease reported lost;
//                                     heartbeats stop there)
//   complete <CODE> <message>        (after "complete" on stdin; then it exits 0)
//
// Usage: frozen_worker ADDRESS JOB_ID
#include <grpcpp/grpcpp.h>
#include <poll.h>
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "ckpt/v1/checkpoint.grpc.pb.h"
#include "tests/durability/wire.h"

namespace ckpt {
namespace {

using Stub = v1::Checkpoint::Stub;

void Say(const std::string& line) {
  std::cout << line << std::endl;  // flushed: the test reads it at once
}

std::string Describe(const absl::Status& status) {
  return absl::StrCat(absl::StatusCodeToString(status.code()), " ", status.message());
}

int Run(const std::string& address, const std::string& job_id) {
  auto stub =
      v1::Checkpoint::NewStub(grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  auto worker = testutil::RegisterWorker(*stub, job_id);
  if (!worker.ok()) return Say("register " + Describe(worker.status())), 1;
  Say("worker " + *worker);

  v1::LeaseItemsRequest lease;
  lease.set_job_id(job_id);
  lease.set_worker_id(*worker);
  lease.set_max_items(1);
  auto leased = testutil::WireCall(*stub, &Stub::LeaseItems, lease);
  if (!leased.ok()) return Say("lease " + Describe(leased.status())), 1;
  if (leased->leases_size() != 1) return Say("lease none"), 1;
  const v1::Lease held = leased->leases(0);
  Say(absl::StrCat("leased ", held.key().index(), " ", held.lease_token()));

  bool heartbeating = true, said_ok = false;
  for (;;) {
    pollfd in{STDIN_FILENO, POLLIN, 0};
    // The worker's own heartbeat period (a third of the shortest lease timeout and
    // less); the test never waits on it.
    if (::poll(&in, 1, 100) > 0) {
      std::string command;
      if (!std::getline(std::cin, command)) return 1;
      if (command != "complete") continue;
      v1::CompleteItemsRequest complete;
      complete.set_job_id(job_id);
      complete.set_worker_id(*worker);
      v1::Completion* item = complete.add_items();
      *item->mutable_key() = held.key();
      item->set_lease_token(held.lease_token());
      item->mutable_result()->set_payload("from the frozen worker");
      auto done = testutil::WireCall(*stub, &Stub::CompleteItems, complete);
      Say("complete " + (done.ok() ? std::string("OK") : Describe(done.status())));
      return 0;
    }
    if (!heartbeating) continue;
    v1::HeartbeatRequest heartbeat;
    heartbeat.set_job_id(job_id);
    heartbeat.set_worker_id(*worker);
    v1::HeldLease* mine = heartbeat.add_leases();
    *mine->mutable_key() = held.key();
    mine->set_lease_token(held.lease_token());
    auto beat = testutil::WireCall(*stub, &Stub::Heartbeat, heartbeat);
    if (!beat.ok()) {
      Say("heartbeat " + Describe(beat.status()));
      heartbeating = false;
    } else if (beat->lost_size() > 0) {
      Say("heartbeat LOST " + beat->lost(0).reason());
      heartbeating = false;
    } else if (!said_ok) {
      Say("heartbeat OK");
      said_ok = true;
    }
  }
}

}  // namespace
}  // namespace ckpt

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: frozen_worker ADDRESS JOB_ID\n";
    return 2;
  }
  return ckpt::Run(argv[1], argv[2]);
}
