// ckpt export JOB and ckpt import FILE: a job as JSON Lines, and jobs rebuilt from it or
// from the checkpoints ckpt replaces (import_sources.h).
#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/util/json_util.h"
#include "service/common/status_macros.h"
#include "tools/cli/commands.h"
#include "tools/cli/format.h"
#include "tools/cli/import_sources.h"
#include "tools/cli/job_importer.h"

namespace ckpt {
namespace cli {
namespace {

// The export's version, in its first line; an importer refuses others.
constexpr int kExportVersion = 1;
// Items per ListItems page.
constexpr uint32_t kPage = 1000;

absl::Status ExportStates(const Context& ctx, const std::string& job_id, uint64_t* count) {
  v1::ListStatesRequest request;
  request.set_job_id(job_id);
  request.set_include_values(true);
  do {
    CKPT_ASSIGN_OR_RETURN(const v1::ListStatesResponse page, ctx.client->ListStates(request));
    for (const v1::State& state : page.states()) {
      *ctx.out << "{\"state\":" << ToJson(state) << "}\n";
      ++*count;
    }
    request.set_page_token(page.next_page_token());
  } while (!request.page_token().empty());
  return absl::OkStatus();
}

absl::Status ExportItems(const Context& ctx, const std::string& job_id, const std::string& step,
                         uint64_t* count) {
  v1::ListItemsRequest request;
  request.set_job_id(job_id);
  request.set_step(step);
  request.set_limit(kPage);
  do {
    CKPT_ASSIGN_OR_RETURN(const v1::ListItemsResponse page, ctx.client->ListItems(request));
    for (const v1::Item& item : page.items()) {
      *ctx.out << "{\"item\":" << ToJson(item) << "}\n";
      ++*count;
    }
    request.set_page_token(page.next_page_token());
  } while (!request.page_token().empty());
  return absl::OkStatus();
}

// "imported job J: 10 items (7 completed, 1 failed, 2 pending), 2 states; RUNNING"
void PrintImported(const Context& ctx, const v1::Job& job) {
  if (ctx.json) {
    *ctx.out << ToJson(job) << "\n";
    return;
  }
  const v1::Progress& p = job.progress();
  *ctx.out << "imported job " << job.job_id() << ": " << p.total() << " items (" << p.completed()
           << " completed, " << p.failed() << " failed, " << p.pending() << " pending); "
           << Name(job.status()) << "\n";
}

enum class Format { kExport, kCurator, kPipeline, kProgressive };

absl::StatusOr<Format> ParseFormat(const std::string& text) {
  if (text == "export") return Format::kExport;
  if (text == "curator") return Format::kCurator;
  if (text == "pipeline-checkpoint") return Format::kPipeline;
  if (text == "progressive") return Format::kProgressive;
  return UsageError(absl::StrCat(
      "--format must be one of export, curator, pipeline-checkpoint, progressive; not \"", text,
      "\""));
}

// The format of FILE from its first bytes: SQLite's header, an export's first line, or
// the members a JSON checkpoint has.
absl::StatusOr<Format> DetectFormat(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  std::string head(16, '\0');
  in.read(head.data(), head.size());
  head.resize(in.gcount());
  if (head == std::string("SQLite format 3\0", 16)) return Format::kCurator;
  in.seekg(0);
  std::string first;
  std::getline(in, first);
  if (absl::StrContains(first, "\"ckpt_export\"")) return Format::kExport;
  std::stringstream all;
  all << first << "\n" << in.rdbuf();
  CKPT_ASSIGN_OR_RETURN(const google::protobuf::Struct object, ParseJsonObject(all.str(), path));
  if (object.fields().contains("steps")) return Format::kPipeline;
  if (object.fields().contains("processed_doc_ids")) return Format::kProgressive;
  return absl::InvalidArgumentError(
      absl::StrCat(path,
                   " is none of the formats ckpt imports (a ckpt export, a curator database, "
                   "a pipeline_checkpoint.json, a progressive-saving checkpoint); give "
                   "--format if it is one"));
}

absl::StatusOr<std::string> ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

absl::StatusOr<v1::Job> ImportFile(const Context& ctx, const std::string& path, Format format,
                                   const ImportOptions& options) {
  if (format == Format::kCurator) {
    if (path == "-") return UsageError("a curator database is a file: give its path, not -");
    return ImportCurator(ctx.client, path, options);
  }
  if (format == Format::kExport) {
    if (path == "-") return ImportExport(ctx.client, *ctx.in, options);
    std::ifstream in(path, std::ios::binary);
    if (!in) return absl::NotFoundError(absl::StrCat("cannot open ", path));
    return ImportExport(ctx.client, in, options);
  }
  std::string text;
  if (path == "-") {
    std::stringstream all;
    all << ctx.in->rdbuf();
    text = all.str();
  } else {
    CKPT_ASSIGN_OR_RETURN(text, ReadAll(path));
  }
  if (format == Format::kPipeline) return ImportPipelineCheckpoint(ctx.client, text, options);
  return ImportProgressive(ctx.client, text, options);
}

// One line of an export: {"KIND": VALUE}.
absl::Status ReadLine(const std::string& line, std::string* kind, google::protobuf::Value* value,
                      uint64_t number) {
  CKPT_ASSIGN_OR_RETURN(const google::protobuf::Struct object,
                        ParseJsonObject(line, absl::StrCat("line ", number)));
  if (object.fields_size() != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("line ", number, ": an export line has one member (job, state, item or end)"));
  }
  *kind = object.fields().begin()->first;
  *value = object.fields().begin()->second;
  return absl::OkStatus();
}

absl::StatusOr<v1::Job> ReadHeader(std::istream& in, const ImportOptions& options) {
  std::string line;
  if (!std::getline(in, line)) return absl::InvalidArgumentError("the export is empty");
  std::string kind;
  google::protobuf::Value value;
  CKPT_RETURN_IF_ERROR(ReadLine(line, &kind, &value, 1));
  const auto& header = value.struct_value().fields();
  if (kind != "ckpt_export" || !header.contains("job")) {
    return absl::InvalidArgumentError("line 1: not a ckpt export (no ckpt_export header)");
  }
  if (header.contains("version") && header.at("version").number_value() != kExportVersion) {
    return absl::InvalidArgumentError(absl::StrCat("line 1: export version ",
                                                   header.at("version").number_value(),
                                                   ", this ckpt reads ", kExportVersion));
  }
  v1::Job job;
  CKPT_RETURN_IF_ERROR(ValueToMessage(header.at("job"), &job, "line 1: job"));
  if (!options.job_id.empty()) job.set_job_id(options.job_id);
  return job;
}

}  // namespace

absl::StatusOr<google::protobuf::Struct> ParseJsonObject(absl::string_view text,
                                                         absl::string_view what) {
  google::protobuf::Struct object;
  const auto status = google::protobuf::util::JsonStringToMessage(std::string(text), &object);
  if (!status.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": not a JSON object (", std::string(status.message()), ")"));
  }
  return object;
}

absl::Status ValueToMessage(const google::protobuf::Value& value,
                            google::protobuf::Message* message, absl::string_view what) {
  std::string json;
  (void)google::protobuf::util::MessageToJsonString(value, &json);
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = true;
  const auto status = google::protobuf::util::JsonStringToMessage(json, message, options);
  if (!status.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": ", std::string(status.message())));
  }
  return absl::OkStatus();
}

absl::StatusOr<v1::Job> ImportExport(Client* client, std::istream& in,
                                     const ImportOptions& options) {
  CKPT_ASSIGN_OR_RETURN(const v1::Job job, ReadHeader(in, options));
  CKPT_ASSIGN_OR_RETURN(auto importer, JobImporter::Start(client, job));
  std::string line;
  for (uint64_t number = 2; std::getline(in, line); ++number) {
    std::string kind;
    google::protobuf::Value value;
    CKPT_RETURN_IF_ERROR(ReadLine(line, &kind, &value, number));
    const std::string where = absl::StrCat("line ", number, ": ", kind);
    if (kind == "state") {
      v1::State state;
      CKPT_RETURN_IF_ERROR(ValueToMessage(value, &state, where));
      CKPT_RETURN_IF_ERROR(importer->PutState(state));
    } else if (kind == "item") {
      v1::Item item;
      CKPT_RETURN_IF_ERROR(ValueToMessage(value, &item, where));
      CKPT_RETURN_IF_ERROR(importer->AddItem(std::move(item)));
    } else if (kind == "end") {
      const auto& counts = value.struct_value().fields();
      const double items = counts.contains("items") ? counts.at("items").number_value() : -1;
      if (items != static_cast<double>(importer->items())) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, " counts ", items, " items, the export holds ", importer->items()));
      }
      return importer->Finish(job);
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("line ", number, ": unknown line kind \"", kind, "\""));
    }
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "the export ends without its end line: it was cut short; job \"", importer->job_id(),
      "\" stays labelled ", kImportLabel, "=incomplete (delete it)"));
}

absl::Status Export(const Context& ctx, const Args& args) {
  v1::GetJobRequest get;
  get.set_job_id(args.positional[0]);
  CKPT_ASSIGN_OR_RETURN(const v1::GetJobResponse job, ctx.client->GetJob(get));
  *ctx.out << "{\"ckpt_export\":{\"version\":" << kExportVersion << ",\"job\":" << ToJson(job.job())
           << "}}\n";
  uint64_t states = 0;
  uint64_t items = 0;
  CKPT_RETURN_IF_ERROR(ExportStates(ctx, job.job().job_id(), &states));
  for (const std::string& step : job.job().steps()) {
    CKPT_RETURN_IF_ERROR(ExportItems(ctx, job.job().job_id(), step, &items));
  }
  *ctx.out << "{\"end\":{\"states\":" << states << ",\"items\":" << items << "}}\n";
  return absl::OkStatus();
}

absl::Status Import(const Context& ctx, const Args& args) {
  const std::string& path = args.positional[0];
  ImportOptions options;
  options.job_id = args.Get("job");
  CKPT_ASSIGN_OR_RETURN(const uint64_t run, args.GetInt("run", 0, 0, INT64_MAX));
  options.curator_run = static_cast<int64_t>(run);
  Format format = Format::kExport;
  if (args.Has("format")) {
    CKPT_ASSIGN_OR_RETURN(format, ParseFormat(args.Get("format")));
  } else if (path != "-") {
    CKPT_ASSIGN_OR_RETURN(format, DetectFormat(path));
  }
  CKPT_ASSIGN_OR_RETURN(const v1::Job job, ImportFile(ctx, path, format, options));
  PrintImported(ctx, job);
  return absl::OkStatus();
}

}  // namespace cli
}  // namespace ckpt
