#include "client/retry_table.h"

#include <algorithm>
#include <functional>

#include "absl/container/flat_hash_map.h"
#include "ckpt/v1/checkpoint.pb.h"

namespace ckpt {
namespace {

using Rule = std::function<bool(const google::protobuf::Message&)>;

Rule Always(bool resend) {
  return [resend](const google::protobuf::Message&) { return resend; };
}

// A rule that looks at the request, as its concrete type.
template <typename Request>
Rule When(bool (*resend)(const Request&)) {
  return [resend](const google::protobuf::Message& message) {
    const auto* request = dynamic_cast<const Request*>(&message);
    return request != nullptr && resend(*request);
  };
}

const absl::flat_hash_map<std::string, Rule>& Table() {
  static const auto* table = new absl::flat_hash_map<std::string, Rule>{
      // Reads change nothing.
      {"GetJob", Always(true)},
      {"ListJobs", Always(true)},
      {"GetItem", Always(true)},
      {"ListItems", Always(true)},
      {"FindOutput", Always(true)},
      {"ListWorkers", Always(true)},
      {"GetState", Always(true)},
      {"ListStates", Always(true)},
      {"WatchJob", Always(true)},
      {"ListLogs", Always(true)},
      // A repeat is answered as the first was, or "already so", and changes nothing.
      {"UpdateJob", Always(true)},
      {"PauseJob", Always(true)},
      {"ResumeJob", Always(true)},
      {"StopJob", Always(true)},
      {"FinishJob", Always(true)},
      {"Heartbeat", Always(true)},
      {"UnregisterWorker", Always(true)},
      // ALREADY_COMPLETED, and its entries not logged again; with lease_next, the first
      // call's leases again (no second set).
      {"CompleteItems", Always(true)},
      {"WriteLogs", Always(true)},  // logged again: a duplicate line beats a lost one
      {"AddItems", Always(true)},   // duplicates, even on the job it sealed
      // With a job_id: resumed. Without: a second job.
      {"CreateJob", When<v1::CreateJobRequest>(
                        [](const v1::CreateJobRequest& r) { return !r.job_id().empty(); })},
      // With tokens: lease lost (the first applied). With a token-0 item: attempts +1 again.
      {"FailItems", When<v1::FailItemsRequest>([](const v1::FailItemsRequest& r) {
         return std::none_of(r.items().begin(), r.items().end(),
                             [](const v1::Failure& f) { return f.lease_token() == 0; });
       })},
      {"LeaseItems", Always(false)},      // a second set of leases
      {"RegisterWorker", Always(false)},  // a second worker
      {"ResetItems",                      // resets work done since, unless it only counts
       When<v1::ResetItemsRequest>([](const v1::ResetItemsRequest& r) { return r.dry_run(); })},
      {"ResetJob", Always(false)},     // clears work done since
      {"DeleteJob", Always(false)},    // NOT_FOUND, or deletes a job created again since
      {"BackupStore", Always(false)},  // FAILED_PRECONDITION: the first call's copy is there
      {"DeleteJobs",                   // deletes what matches by then, unless it only counts
       When<v1::DeleteJobsRequest>([](const v1::DeleteJobsRequest& r) { return r.dry_run(); })},
      // Unconditional: written again. With expected_version: ABORTED.
      {"PutState", When<v1::PutStateRequest>(
                       [](const v1::PutStateRequest& r) { return !r.has_expected_version(); })},
  };
  return *table;
}

}  // namespace

bool ResendAfterLostAnswer(absl::string_view method, const google::protobuf::Message& request) {
  const auto it = Table().find(method);
  return it != Table().end() && it->second(request);
}

std::vector<std::string> RetryTableMethods() {
  std::vector<std::string> methods;
  for (const auto& [name, rule] : Table()) methods.push_back(name);
  std::sort(methods.begin(), methods.end());
  return methods;
}

}  // namespace ckpt
