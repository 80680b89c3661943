#include "tests/engine/recount.h"

#include <cstdint>
#include <map>
#include <set>

#include "gtest/gtest.h"
#include "service/store/keys.h"

namespace ckpt {
namespace testutil {

std::vector<v1::Item> ListAll(EngineHarness& h, const std::string& job, const std::string& step,
                              v1::ItemState state, uint32_t page) {
  std::vector<v1::Item> out;
  v1::ListItemsRequest request;
  request.set_job_id(job);
  request.set_step(step);
  request.set_state(state);
  request.set_limit(page);
  for (int guard = 0; guard < 1000000; ++guard) {
    auto response = h.Read(&Engine::ListItems, request);
    EXPECT_TRUE(response.ok()) << response.status();
    if (!response.ok()) break;
    for (const auto& item : response->items()) out.push_back(item);
    if (response->next_page_token().empty()) break;
    request.set_page_token(response->next_page_token());
  }
  return out;
}

void ExpectCountersMatchRecount(EngineHarness& h, const std::string& job) {
  v1::GetJobRequest get;
  get.set_job_id(job);
  auto response = h.Read(&Engine::GetJob, get);
  ASSERT_TRUE(response.ok()) << response.status();
  for (const v1::StepProgress& step : response->job().step_progress()) {
    std::map<v1::ItemState, uint64_t> counts;
    std::set<std::string> seen;
    for (const v1::Item& item : ListAll(h, job, step.step(), v1::ITEM_STATE_UNSPECIFIED, 97)) {
      ++counts[item.state()];
      EXPECT_TRUE(seen.insert(keys::EncodeItemKey(item.key())).second)
          << "listed twice: " << item.ShortDebugString();
    }
    const v1::Progress& p = step.progress();
    EXPECT_EQ(counts[v1::ITEM_STATE_PENDING], p.pending()) << job << "/" << step.step();
    EXPECT_EQ(counts[v1::ITEM_STATE_LEASED], p.leased()) << job << "/" << step.step();
    EXPECT_EQ(counts[v1::ITEM_STATE_COMPLETED], p.completed()) << job << "/" << step.step();
    EXPECT_EQ(counts[v1::ITEM_STATE_FAILED], p.failed()) << job << "/" << step.step();
    EXPECT_EQ(seen.size(), p.total()) << job << "/" << step.step();
    std::set<std::string> completed;
    for (v1::ItemState state : {v1::ITEM_STATE_PENDING, v1::ITEM_STATE_LEASED,
                                v1::ITEM_STATE_COMPLETED, v1::ITEM_STATE_FAILED}) {
      auto by_state = ListAll(h, job, step.step(), state, 13);
      EXPECT_EQ(by_state.size(), counts[state]) << "state " << state;
      for (const auto& item : by_state) {
        EXPECT_EQ(item.state(), state);
        if (state == v1::ITEM_STATE_COMPLETED) completed.insert(keys::EncodeItemKey(item.key()));
      }
    }
    ExpectCompletionIndexIs(h, job, step.step(), completed);
  }
}

void ExpectCompletionIndexIs(EngineHarness& h, const std::string& job, const std::string& step,
                             const std::set<std::string>& completed) {
  v1::ListItemsRequest request;
  request.set_job_id(job);
  request.set_step(step);
  request.set_order(v1::ITEM_ORDER_COMPLETED_OLDEST_FIRST);
  request.set_limit(31);
  std::set<std::string> indexed;
  int64_t last_micros = 0;
  for (int guard = 0; guard < 1000000; ++guard) {
    auto response = h.Read(&Engine::ListItems, request);
    ASSERT_TRUE(response.ok()) << response.status();
    for (const auto& item : response->items()) {
      EXPECT_TRUE(indexed.insert(keys::EncodeItemKey(item.key())).second)
          << "indexed twice: " << item.ShortDebugString();
      const int64_t micros =
          item.update_time().seconds() * 1000000 + item.update_time().nanos() / 1000;
      EXPECT_GE(micros, last_micros) << "out of completion order: " << item.ShortDebugString();
      last_micros = micros;
    }
    if (response->next_page_token().empty()) break;
    request.set_page_token(response->next_page_token());
  }
  EXPECT_EQ(indexed, completed) << job << "/" << step << ": the completion index is not exact";
}

}  // namespace testutil
}  // namespace ckpt
