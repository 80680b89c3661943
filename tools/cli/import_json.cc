// ckpt import of the JSON checkpoints: a pipeline_checkpoint.json and a progressive-saving
// job checkpoint. Both are whole JSON documents, so each is read into memory once, checked
// item by item before the job is created, and then written through a JobImporter.
#include <algorithm>
#include <cmath>
#include <set>
#include <vector>

#include "absl/strings/str_cat.h"
#include "google/protobuf/util/json_util.h"
#include "service/common/status_macros.h"
#include "tools/cli/import_sources.h"
#include "tools/cli/job_importer.h"

namespace ckpt {
namespace cli {
namespace {

using google::protobuf::ListValue;
using google::protobuf::Struct;
using google::protobuf::Value;

// ---------------------------------------------------------------- member order
// A Struct forgets the order of an object's members, but a pipeline's steps have one:
// these scan the text for the names of the top-level "steps" object's members in order.

size_t SkipSpace(absl::string_view text, size_t i) {
  while (i < text.size() &&
         (text[i] == ' ' || text[i] == '\n' || text[i] == '\r' || text[i] == '\t')) {
    ++i;
  }
  return i;
}

// `i` at a '"': the index after its closing quote.
size_t SkipString(absl::string_view text, size_t i) {
  for (++i; i < text.size(); ++i) {
    if (text[i] == '\\') {
      ++i;
    } else if (text[i] == '"') {
      return i + 1;
    }
  }
  return text.size();
}

// `i` at a value: the index after it.
size_t SkipValue(absl::string_view text, size_t i) {
  if (i < text.size() && text[i] == '"') return SkipString(text, i);
  if (i < text.size() && (text[i] == '{' || text[i] == '[')) {
    int depth = 0;
    for (; i < text.size(); ++i) {
      const char c = text[i];
      if (c == '"') {
        i = SkipString(text, i) - 1;
      } else if (c == '{' || c == '[') {
        ++depth;
      } else if ((c == '}' || c == ']') && --depth == 0) {
        return i + 1;
      }
    }
    return text.size();
  }
  while (i < text.size() && text[i] != ',' && text[i] != '}' && text[i] != ']') ++i;
  return i;
}

// The member names of the object at `i`, raw (still JSON-quoted), in order; and for the
// member `wanted`, where its value starts.
std::vector<std::string> MemberNames(absl::string_view text, size_t i, absl::string_view wanted,
                                     size_t* wanted_at) {
  std::vector<std::string> names;
  i = SkipSpace(text, i);
  if (i >= text.size() || text[i] != '{') return names;
  for (i = SkipSpace(text, i + 1); i < text.size() && text[i] == '"';) {
    const size_t end = SkipString(text, i);
    names.emplace_back(text.substr(i, end - i));
    i = SkipSpace(text, end);
    if (i >= text.size() || text[i] != ':') break;
    i = SkipSpace(text, i + 1);
    if (names.back() == absl::StrCat("\"", wanted, "\"")) *wanted_at = i;
    i = SkipSpace(text, SkipValue(text, i));
    if (i < text.size() && text[i] == ',') i = SkipSpace(text, i + 1);
  }
  return names;
}

// The steps' names in the file's order; `fallback` (the Struct's) if the scan disagrees.
std::vector<std::string> StepOrder(absl::string_view text, const Struct& steps) {
  std::vector<std::string> fallback;
  for (const auto& [name, value] : steps.fields()) fallback.push_back(name);
  std::sort(fallback.begin(), fallback.end());
  size_t at = std::string::npos;
  (void)MemberNames(text, 0, "steps", &at);
  if (at == std::string::npos) return fallback;
  size_t unused = 0;
  std::vector<std::string> order;
  for (const std::string& raw : MemberNames(text, at, "", &unused)) {
    Value name;
    if (!google::protobuf::util::JsonStringToMessage(raw, &name).ok()) return fallback;
    order.push_back(name.string_value());
  }
  std::vector<std::string> sorted = order;
  std::sort(sorted.begin(), sorted.end());
  return sorted == fallback ? order : fallback;
}

// ---------------------------------------------------------------- pipeline_checkpoint

std::string Member(const Struct& object, const std::string& name) {
  auto it = object.fields().find(name);
  return it == object.fields().end() ? "" : it->second.string_value();
}

// An entry's key: a string is a name, a whole number an index, and an object the seed's
// own key, "foodcourt_id|restaurant_id|item_id" (item_name when there is no item_id).
absl::StatusOr<v1::ItemKey> EntryKey(const Value& entry, const std::string& where) {
  v1::ItemKey key;
  if (entry.has_string_value() && !entry.string_value().empty()) {
    key.set_name(entry.string_value());
    return key;
  }
  const double number = entry.number_value();
  if (entry.has_number_value() && number >= 0 && number < 9.2e18 && number == std::floor(number)) {
    key.set_index(static_cast<uint64_t>(number));
    return key;
  }
  if (entry.has_struct_value()) {
    const Struct& object = entry.struct_value();
    const std::string id =
        Member(object, "item_id").empty() ? Member(object, "item_name") : Member(object, "item_id");
    if (!id.empty()) {
      key.set_name(absl::StrCat(Member(object, "foodcourt_id"), "|",
                                Member(object, "restaurant_id"), "|", id));
      return key;
    }
  }
  return absl::InvalidArgumentError(
      absl::StrCat(where,
                   ": an item is a string, a whole number, or an object with item_id or "
                   "item_name"));
}

absl::StatusOr<std::vector<const Value*>> EntriesOf(const Struct& step, const std::string& list,
                                                    const std::string& where) {
  std::vector<const Value*> entries;
  auto it = step.fields().find(list);
  if (it == step.fields().end()) return entries;
  if (!it->second.has_list_value()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ".", list, " must be a list"));
  }
  for (const Value& entry : it->second.list_value().values()) entries.push_back(&entry);
  return entries;
}

// One list of a step as items in `state`, leaving out keys already in `seen`.
absl::Status AddEntries(const Struct& step, const std::string& list, const std::string& where,
                        v1::ItemState state, std::set<std::string>* seen,
                        std::vector<v1::Item>* items) {
  CKPT_ASSIGN_OR_RETURN(const std::vector<const Value*> entries, EntriesOf(step, list, where));
  for (size_t i = 0; i < entries.size(); ++i) {
    const std::string at = absl::StrCat(where, ".", list, "[", i, "]");
    CKPT_ASSIGN_OR_RETURN(const v1::ItemKey key, EntryKey(*entries[i], at));
    if (!seen->insert(key.SerializeAsString()).second) continue;
    v1::Item item;
    *item.mutable_key() = key;
    item.set_state(state);
    const Struct& fields = entries[i]->struct_value();
    if (state == v1::ITEM_STATE_COMPLETED && entries[i]->has_struct_value()) {
      std::string json;
      (void)google::protobuf::util::MessageToJsonString(fields, &json);
      if (json.size() <= 64 * 1024) item.mutable_result()->set_payload(json);
    }
    if (state == v1::ITEM_STATE_FAILED) {
      item.set_attempts(1);
      const std::string error = Member(fields, "error");
      item.mutable_last_error()->set_message(
          error.empty() ? "failed (pipeline_checkpoint.json recorded no error)" : error);
    }
    items->push_back(std::move(item));
  }
  return absl::OkStatus();
}

// A step's items: completed first (completion wins, as the seed skips completed items),
// then failed, then in progress (PENDING: they run again).
absl::Status StepItems(const Value& step, const std::string& name, std::vector<v1::Item>* items) {
  const std::string where = absl::StrCat("steps.", name);
  if (!step.has_struct_value()) return absl::InvalidArgumentError(where + " must be an object");
  std::set<std::string> seen;
  const size_t first = items->size();
  CKPT_RETURN_IF_ERROR(AddEntries(step.struct_value(), "completed_items", where,
                                  v1::ITEM_STATE_COMPLETED, &seen, items));
  CKPT_RETURN_IF_ERROR(
      AddEntries(step.struct_value(), "failed_items", where, v1::ITEM_STATE_FAILED, &seen, items));
  CKPT_RETURN_IF_ERROR(AddEntries(step.struct_value(), "in_progress_items", where,
                                  v1::ITEM_STATE_PENDING, &seen, items));
  for (size_t i = first; i < items->size(); ++i) (*items)[i].set_step(name);
  return absl::OkStatus();
}

absl::StatusOr<v1::Job> ImportItems(Client* client, const v1::Job& job,
                                    std::vector<v1::Item> items) {
  CKPT_ASSIGN_OR_RETURN(auto importer, JobImporter::Start(client, job));
  for (v1::Item& item : items) CKPT_RETURN_IF_ERROR(importer->AddItem(std::move(item)));
  return importer->Finish(job);
}

// ---------------------------------------------------------------- progressive saving

absl::StatusOr<v1::JobStatus> ProgressiveStatus(const std::string& status) {
  if (status == "RUNNING" || status.empty()) return v1::JOB_STATUS_RUNNING;
  if (status == "PAUSED") return v1::JOB_STATUS_PAUSED;
  if (status == "STOPPED") return v1::JOB_STATUS_STOPPED;
  if (status == "COMPLETED") return v1::JOB_STATUS_COMPLETED;
  if (status == "FAILED") return v1::JOB_STATUS_FAILED;
  return absl::InvalidArgumentError(absl::StrCat(
      "status: \"", status, "\" is none of RUNNING, PAUSED, STOPPED, COMPLETED, FAILED"));
}

absl::Status AddDocuments(const Struct& checkpoint, const std::string& list, v1::ItemState state,
                          std::set<std::string>* seen, std::vector<v1::Item>* items) {
  auto it = checkpoint.fields().find(list);
  if (it == checkpoint.fields().end()) return absl::OkStatus();
  if (!it->second.has_list_value()) {
    return absl::InvalidArgumentError(absl::StrCat(list, " must be a list of document ids"));
  }
  const ListValue& ids = it->second.list_value();
  for (int i = 0; i < ids.values_size(); ++i) {
    if (!ids.values(i).has_string_value() || ids.values(i).string_value().empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(list, "[", i, "]: a document id is a non-empty string"));
    }
    if (!seen->insert(ids.values(i).string_value()).second) continue;
    v1::Item item;
    item.set_step("main");
    item.mutable_key()->set_name(ids.values(i).string_value());
    item.set_state(state);
    if (state == v1::ITEM_STATE_FAILED) {
      item.set_attempts(1);
      item.mutable_last_error()->set_message(
          "failed (the progressive-saving checkpoint records no error message)");
    }
    items->push_back(std::move(item));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<v1::Job> ImportPipelineCheckpoint(Client* client, const std::string& text,
                                                 const ImportOptions& options) {
  CKPT_ASSIGN_OR_RETURN(const Struct checkpoint, ParseJsonObject(text, "pipeline_checkpoint.json"));
  auto steps = checkpoint.fields().find("steps");
  if (steps == checkpoint.fields().end() || !steps->second.has_struct_value() ||
      steps->second.struct_value().fields().empty()) {
    return absl::InvalidArgumentError(
        "pipeline_checkpoint.json: \"steps\" must be an object with at least one step");
  }
  if (options.job_id.empty()) {
    return absl::InvalidArgumentError(
        "a pipeline_checkpoint.json names no job: give the new job's id with --job ID");
  }
  v1::Job job;
  job.set_job_id(options.job_id);
  (*job.mutable_labels())["imported-from"] = "pipeline_checkpoint";
  const Struct metadata = checkpoint.fields().contains("metadata")
                              ? checkpoint.fields().at("metadata").struct_value()
                              : Struct();
  job.set_display_name(Member(metadata, "pipeline_type"));
  for (const char* name : {"pipeline_type", "created_at", "last_updated"}) {
    if (!Member(metadata, name).empty()) (*job.mutable_params())[name] = Member(metadata, name);
  }
  std::vector<v1::Item> items;
  for (const std::string& step : StepOrder(text, steps->second.struct_value())) {
    job.add_steps(step);
    CKPT_RETURN_IF_ERROR(StepItems(steps->second.struct_value().fields().at(step), step, &items));
  }
  job.set_status(v1::JOB_STATUS_RUNNING);
  return ImportItems(client, job, std::move(items));
}

absl::StatusOr<v1::Job> ImportProgressive(Client* client, const std::string& text,
                                          const ImportOptions& options) {
  CKPT_ASSIGN_OR_RETURN(const Struct checkpoint,
                        ParseJsonObject(text, "progressive-saving checkpoint"));
  CKPT_ASSIGN_OR_RETURN(const v1::JobStatus status,
                        ProgressiveStatus(Member(checkpoint, "status")));
  v1::Job job;
  job.set_job_id(options.job_id.empty() ? Member(checkpoint, "job_id") : options.job_id);
  if (job.job_id().empty()) {
    return absl::InvalidArgumentError("the checkpoint has no job_id: give one with --job ID");
  }
  job.set_display_name(Member(checkpoint, "batch_id"));
  (*job.mutable_labels())["imported-from"] = "progressive-saving";
  if (!Member(checkpoint, "batch_id").empty()) {
    (*job.mutable_params())["batch_id"] = Member(checkpoint, "batch_id");
  }
  auto total = checkpoint.fields().find("total_documents");
  if (total != checkpoint.fields().end() && total->second.has_number_value()) {
    (*job.mutable_params())["total_documents"] =
        absl::StrCat(static_cast<uint64_t>(total->second.number_value()));
  }
  std::set<std::string> seen;
  std::vector<v1::Item> items;
  CKPT_RETURN_IF_ERROR(
      AddDocuments(checkpoint, "processed_doc_ids", v1::ITEM_STATE_COMPLETED, &seen, &items));
  CKPT_RETURN_IF_ERROR(
      AddDocuments(checkpoint, "failed_doc_ids", v1::ITEM_STATE_FAILED, &seen, &items));
  job.set_status(status);
  job.set_sealed(status == v1::JOB_STATUS_COMPLETED);
  job.set_status_reason(absl::StrCat("imported from a progressive-saving checkpoint (",
                                     Member(checkpoint, "status"), ")"));
  return ImportItems(client, job, std::move(items));
}

}  // namespace cli
}  // namespace ckpt
