// Recounting a job through ListItems (which derives states from records, ranges and
// leases) to check the O(1) counters GetJob reports.
#ifndef CKPT_TESTS_ENGINE_RECOUNT_H_
#define CKPT_TESTS_ENGINE_RECOUNT_H_

#include <set>
#include <string>
#include <vector>

#include "ckpt/v1/checkpoint.pb.h"
#include "tests/testing/engine_harness.h"

namespace ckpt {
namespace testutil {

// Every item of `step` in `state` (UNSPECIFIED: all), paging `page` at a time.
std::vector<v1::Item> ListAll(EngineHarness& h, const std::string& job, const std::string& step,
                              v1::ItemState state, uint32_t page);

// For every step: the counts by state from listing equal GetJob's step counters, each
// item appears once, and listing by state agrees with listing everything.
// ... and the step's completion-time index lists exactly its completed items, each
// once, in completion order.
void ExpectCountersMatchRecount(EngineHarness& h, const std::string& job);

// The step's completion-time index, listed oldest first, holds exactly `completed`
// (encoded item keys), each once, in completion order.
void ExpectCompletionIndexIs(EngineHarness& h, const std::string& job, const std::string& step,
                             const std::set<std::string>& completed);

}  // namespace testutil
}  // namespace ckpt

#endif  // CKPT_TESTS_ENGINE_RECOUNT_H_
