// Item, worker and state commands: retry, items, item, workers, state, find-output.
#include <fstream>
#include <iterator>
#include <optional>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "service/common/status_macros.h"
#include "tools/cli/commands.h"
#include "tools/cli/format.h"

namespace ckpt {
namespace cli {
namespace {

absl::StatusOr<v1::ItemState> ParseItemState(absl::string_view text) {
  v1::ItemState state;
  if (v1::ItemState_Parse(absl::StrCat("ITEM_STATE_", absl::AsciiStrToUpper(text)), &state) &&
      state != v1::ITEM_STATE_UNSPECIFIED) {
    return state;
  }
  return UsageError(
      absl::StrCat("--state must be one of pending, leased, completed, failed; "
                   "not \"",
                   text, "\""));
}

std::string Outputs(const v1::Item& item) {
  return item.result().output_paths().empty() ? "-"
                                              : absl::StrJoin(item.result().output_paths(), ", ");
}

void PrintItem(const Context& ctx, const v1::Item& item, absl::string_view job_id) {
  std::ostream& out = *ctx.out;
  auto line = [&out](absl::string_view label, absl::string_view value) {
    out << label << std::string(11 - label.size(), ' ') << value << "\n";
  };
  line("Job", job_id);
  line("Step", item.step());
  line("Item", KeyText(item.key()));
  line("State", Name(item.state()));
  line("Attempts", absl::StrCat(item.attempts()));
  line("Updated", FormatTime(item.update_time(), ctx.now));
  if (item.state() == v1::ITEM_STATE_LEASED) {
    line("Worker", item.worker_id().empty() ? "(claimed, no worker)" : item.worker_id());
    line("Lease", absl::StrCat(item.lease_token()));
  } else if (!item.worker_id().empty()) {
    line(item.state() == v1::ITEM_STATE_COMPLETED ? "Done by" : "Worker", item.worker_id());
  }
  if (item.state() == v1::ITEM_STATE_COMPLETED) {
    line("Outputs", Outputs(item));
    line("Payload", absl::StrCat(item.result().payload().size(), " bytes"));
    line("Wall time", FormatDuration(item.result().metrics().wall_time()));
  }
  if (!item.last_error().message().empty()) {
    line("Error", item.last_error().message());
    line("Failed at", FormatTime(item.last_error().time(), ctx.now));
    if (!item.last_error().worker_id().empty()) line("Failed on", item.last_error().worker_id());
  }
  if (!item.cursor().empty()) line("Cursor", item.cursor());
}

}  // namespace

absl::Status Retry(const Context& ctx, const Args& args) {
  v1::ResetItemsRequest request;
  request.set_job_id(args.positional[0]);
  request.set_step(args.Get("step"));
  request.set_state(v1::ITEM_STATE_FAILED);
  request.set_error_message(args.Get("error"));
  request.set_dry_run(args.Has("dry-run"));
  CKPT_ASSIGN_OR_RETURN(v1::ResetItemsResponse response, ctx.client->ResetItems(request));
  if (ctx.json) {
    *ctx.out << ToJson(response) << "\n";
  } else if (request.dry_run()) {
    *ctx.out << response.matched() << " failed items would go back to pending (dry run)\n";
  } else {
    *ctx.out << response.matched() << " failed items are pending again\n";
  }
  return absl::OkStatus();
}

absl::Status Items(const Context& ctx, const Args& args) {
  v1::ListItemsRequest request;
  request.set_job_id(args.positional[0]);
  request.set_step(args.Get("step"));
  if (args.Has("state")) {
    CKPT_ASSIGN_OR_RETURN(v1::ItemState state, ParseItemState(args.Get("state")));
    request.set_state(state);
  }
  CKPT_ASSIGN_OR_RETURN(const uint64_t limit, args.GetInt("limit", 50, 1, 8192));
  request.set_limit(static_cast<uint32_t>(limit));
  request.set_page_token(args.Get("page-token"));
  // What completed since a time, oldest first, or the latest completions.
  CKPT_ASSIGN_OR_RETURN(std::optional<absl::Time> after, args.GetTime("completed-after", ctx.now));
  if (after.has_value()) {
    const int64_t nanos = absl::ToUnixNanos(*after);
    request.mutable_completed_after()->set_seconds(nanos / 1000000000);
    request.mutable_completed_after()->set_nanos(static_cast<int32_t>(nanos % 1000000000));
  }
  if (args.Has("newest-first")) request.set_order(v1::ITEM_ORDER_COMPLETED_NEWEST_FIRST);
  CKPT_ASSIGN_OR_RETURN(v1::ListItemsResponse listed, ctx.client->ListItems(request));
  if (ctx.json) {
    *ctx.out << ToJson(listed) << "\n";
    return absl::OkStatus();
  }
  if (listed.items().empty()) {
    *ctx.out << "no items\n";
  } else {
    Table table({"ITEM", "STATE", "ATTEMPTS", "UPDATED", "WORKER", "OUTPUTS / ERROR"});
    for (const v1::Item& item : listed.items()) {
      table.AddRow(
          {KeyText(item.key()), Name(item.state()), absl::StrCat(item.attempts()),
           FormatTime(item.update_time(), ctx.now),
           item.worker_id().empty() ? "-" : item.worker_id(),
           item.state() == v1::ITEM_STATE_FAILED ? item.last_error().message() : Outputs(item)});
    }
    table.Print(*ctx.out);
  }
  if (!listed.next_page_token().empty()) {
    *ctx.out << "(more: --page-token " << listed.next_page_token() << ")\n";
  }
  return absl::OkStatus();
}

absl::Status Item(const Context& ctx, const Args& args) {
  v1::GetItemRequest request;
  request.set_job_id(args.positional[0]);
  request.set_step(args.Get("step"));
  *request.mutable_key() = ParseKey(args.positional[1], args.Has("name"));
  CKPT_ASSIGN_OR_RETURN(v1::GetItemResponse got, ctx.client->GetItem(request));
  if (ctx.json) {
    *ctx.out << ToJson(got.item()) << "\n";
  } else {
    PrintItem(ctx, got.item(), request.job_id());
  }
  return absl::OkStatus();
}

absl::Status Workers(const Context& ctx, const Args& args) {
  v1::ListWorkersRequest request;
  request.set_job_id(args.positional[0]);
  request.set_include_exited(args.Has("all"));
  CKPT_ASSIGN_OR_RETURN(v1::ListWorkersResponse listed, ctx.client->ListWorkers(request));
  if (ctx.json) {
    *ctx.out << ToJson(listed) << "\n";
    return absl::OkStatus();
  }
  if (listed.workers().empty()) {
    *ctx.out << "no workers\n";
    return absl::OkStatus();
  }
  Table table({"WORKER", "STATE", "HOST", "PID", "INVOCATION", "LAST HEARTBEAT", "ITEMS", "DONE",
               "FAILED"});
  for (const v1::Worker& w : listed.workers()) {
    std::vector<std::string> keys;
    for (const v1::ItemKey& key : w.current_items()) keys.push_back(KeyText(key));
    table.AddRow({w.worker_id(), Name(w.state()), w.hostname(), absl::StrCat(w.pid()),
                  w.invocation_id().empty() ? "-" : w.invocation_id(),
                  FormatTime(w.last_heartbeat(), ctx.now),
                  keys.empty() ? "-" : absl::StrJoin(keys, ","), absl::StrCat(w.completed()),
                  absl::StrCat(w.failed())});
  }
  table.Print(*ctx.out);
  return absl::OkStatus();
}

absl::Status State(const Context& ctx, const Args& args) {
  const std::string& verb = args.positional[0];
  if (verb == "list") {
    if (args.positional.size() != 2) return UsageError("state list takes JOB");
    v1::ListStatesRequest request;
    request.set_job_id(args.positional[1]);
    v1::ListStatesResponse listed;
    do {  // every page (a page ends at a byte budget)
      CKPT_ASSIGN_OR_RETURN(v1::ListStatesResponse page, ctx.client->ListStates(request));
      for (v1::State& state : *page.mutable_states()) *listed.add_states() = std::move(state);
      request.set_page_token(page.next_page_token());
    } while (!request.page_token().empty());
    if (ctx.json) {
      *ctx.out << ToJson(listed) << "\n";
      return absl::OkStatus();
    }
    Table table({"NAME", "VERSION", "UPDATED"});
    for (const v1::State& state : listed.states()) {
      table.AddRow(
          {state.name(), absl::StrCat(state.version()), FormatTime(state.update_time(), ctx.now)});
    }
    if (table.empty())
      *ctx.out << "no states\n";
    else
      table.Print(*ctx.out);
    return absl::OkStatus();
  }
  if (args.positional.size() < 3) return UsageError("state get|put takes JOB and NAME");
  if (verb == "get") {
    if (args.positional.size() != 3) return UsageError("state get takes JOB NAME");
    v1::GetStateRequest request;
    request.set_job_id(args.positional[1]);
    request.set_name(args.positional[2]);
    CKPT_ASSIGN_OR_RETURN(v1::GetStateResponse got, ctx.client->GetState(request));
    if (ctx.json) {
      *ctx.out << ToJson(got.state()) << "\n";  // the value base64, as JSON has it
    } else {
      *ctx.out << got.state().value();  // raw bytes, for redirecting to a file
    }
    return absl::OkStatus();
  }
  if (verb != "put") return UsageError(absl::StrCat("state takes get, put or list, not ", verb));
  if (args.positional.size() > 4) return UsageError("state put takes JOB NAME [FILE]");
  v1::PutStateRequest request;
  request.set_job_id(args.positional[1]);
  request.set_name(args.positional[2]);
  if (args.positional.size() == 4) {
    std::ifstream file(args.positional[3], std::ios::binary);
    if (!file) return UsageError(absl::StrCat("cannot read ", args.positional[3]));
    request.set_value(std::string(std::istreambuf_iterator<char>(file), {}));
  } else {
    request.set_value(std::string(std::istreambuf_iterator<char>(*ctx.in), {}));
  }
  if (args.Has("expected-version")) {
    CKPT_ASSIGN_OR_RETURN(const uint64_t version,
                          args.GetInt("expected-version", 0, 0, UINT64_MAX));
    request.set_expected_version(version);
  }
  CKPT_ASSIGN_OR_RETURN(v1::PutStateResponse put, ctx.client->PutState(request));
  if (ctx.json) {
    *ctx.out << ToJson(put) << "\n";
  } else {
    *ctx.out << "state " << request.name() << " of job " << request.job_id() << " is at version "
             << put.version() << " (" << request.value().size() << " bytes)\n";
  }
  return absl::OkStatus();
}

absl::Status FindOutput(const Context& ctx, const Args& args) {
  v1::FindOutputRequest request;
  request.set_output_path(args.positional[0]);
  CKPT_ASSIGN_OR_RETURN(v1::FindOutputResponse found, ctx.client->FindOutput(request));
  if (ctx.json) {
    *ctx.out << ToJson(found) << "\n";
  } else {
    PrintItem(ctx, found.item(), found.job_id());
  }
  return absl::OkStatus();
}

}  // namespace cli
}  // namespace ckpt
