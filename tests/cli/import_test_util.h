// Reading `ckpt export` output in tests: its lines as protos, and a form of each line
// without what the API sets by itself (times, lease tokens, versions, progress), so two
// exports compare equal when their jobs hold the same things.
#ifndef CKPT_TESTS_CLI_IMPORT_TEST_UTIL_H_
#define CKPT_TESTS_CLI_IMPORT_TEST_UTIL_H_

#include <sstream>
#include <string>
#include <vector>

#include "ckpt/v1/checkpoint.pb.h"
#include "gtest/gtest.h"
#include "tools/cli/format.h"
#include "tools/cli/import_sources.h"

namespace ckpt {
namespace cli {

struct ExportLine {
  std::string kind;  // ckpt_export, state, item, end
  v1::Job job;
  v1::State state;
  v1::Item item;
};

inline std::vector<ExportLine> ParseExport(const std::string& text) {
  std::vector<ExportLine> lines;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    auto object = ParseJsonObject(line, "export line");
    EXPECT_TRUE(object.ok() && object->fields_size() == 1) << line;
    if (!object.ok() || object->fields_size() != 1) break;
    ExportLine parsed;
    parsed.kind = object->fields().begin()->first;
    const google::protobuf::Value& value = object->fields().begin()->second;
    if (parsed.kind == "ckpt_export") {
      EXPECT_TRUE(ValueToMessage(value.struct_value().fields().at("job"), &parsed.job, "").ok());
    } else if (parsed.kind == "state") {
      EXPECT_TRUE(ValueToMessage(value, &parsed.state, "").ok());
    } else if (parsed.kind == "item") {
      EXPECT_TRUE(ValueToMessage(value, &parsed.item, "").ok());
    }
    lines.push_back(std::move(parsed));
  }
  return lines;
}

// The line as JSON without its job id, times, versions, lease tokens and progress.
inline std::string Comparable(ExportLine line) {
  line.job.clear_job_id();
  line.job.clear_create_time();
  line.job.clear_update_time();
  line.job.clear_finish_time();
  line.job.clear_progress();
  line.job.clear_step_progress();
  line.state.clear_version();
  line.state.clear_update_time();
  line.item.clear_update_time();
  line.item.clear_lease_token();
  line.item.mutable_last_error()->clear_time();
  return absl::StrCat(line.kind, " ", ToJson(line.job), ToJson(line.state), ToJson(line.item));
}

}  // namespace cli
}  // namespace ckpt

#endif  // CKPT_TESTS_CLI_IMPORT_TEST_UTIL_H_
