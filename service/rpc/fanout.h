// Calls that span jobs (ListJobs, FindOutput, DeleteJobs) answered from every shard: each shard's
// engine answers for its own jobs, and these merge the answers into the one a single
// engine holding every job would have given.
#ifndef CKPT_SERVICE_RPC_FANOUT_H_
#define CKPT_SERVICE_RPC_FANOUT_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "ckpt/v1/checkpoint.pb.h"

namespace ckpt {

// `parts` answered `request` for disjoint sets of jobs, each in ListJobs' order with at
// most request's limit (default 50) rows after its page token: the first `limit` rows of
// them all, and a page token if any part had more.
v1::ListJobsResponse MergeListJobs(const v1::ListJobsRequest& request,
                                   std::vector<v1::ListJobsResponse> parts);

// FindOutput's answers of disjoint sets of jobs: the found item (the one updated last
// when several jobs recorded the path, ties to the smaller job id), else NOT_FOUND (the
// first part's), or the first error that is not NOT_FOUND.
absl::StatusOr<v1::FindOutputResponse> MergeFindOutput(
    std::vector<absl::StatusOr<v1::FindOutputResponse>> parts);

// DeleteJobs' answers of disjoint sets of jobs, each at most request's limit after its
// page token. A dry run: the first `limit` jobs of them all in DeleteJobs' order, and a
// page token if any part had more. A delete: every job deleted (they are gone, so all
// are told), in that order, and the earliest of the parts' page tokens (a shard resumes
// there at or before where it stopped; what it deleted in between is gone). `matched`
// sums the parts'.
v1::DeleteJobsResponse MergeDeleteJobs(const v1::DeleteJobsRequest& request,
                                       std::vector<v1::DeleteJobsResponse> parts);

// Every shard's part of a DeleteJobs, some of which may have failed: MergeDeleteJobs of
// them if none did. Else the first failure; when the other parts deleted jobs (those
// are gone), with its message after how many, and without a retry hint (which says that
// nothing was applied: the SDKs would send the call again, and lose these from the answer).
absl::StatusOr<v1::DeleteJobsResponse> MergeDeleteJobsParts(
    const v1::DeleteJobsRequest& request,
    std::vector<absl::StatusOr<v1::DeleteJobsResponse>> parts);

// The limit each of `shards` shards deletes up to for `request`: ceil(limit / shards) (at
// least 1), so that one call deletes about `limit` jobs in all (at most limit + shards -
// 1) and its answer stays small; a dry run keeps its limit (its merge keeps the first
// `limit` of all).
uint32_t ShardDeleteLimit(const v1::DeleteJobsRequest& request, int shards);

}  // namespace ckpt

#endif  // CKPT_SERVICE_RPC_FANOUT_H_
