// doc_pipeline: a document batch that obeys pause, resume and stop given from outside.
//
//   bazel run //client/examples:doc_pipeline -- --job=docs --count=200 --page_ms=200
//   ckpt pause docs
//   grpcurl -plaintext -d '{"job_id":"docs"}' 127.0.0.1:7700 ckpt.v1.Checkpoint/PauseJob
//   ckpt resume docs
//   ckpt stop docs
//
// Each document has --pages pages, each taking --page_ms. After every page it saves a
// cursor ("page 3"), so a document interrupted by a crash resumes at its next page. On
// PAUSE the current document finishes and the worker waits, still heartbeating; on
// STOP the current document finishes and the program exits 0. Messages go to stderr.
//
// Flags: --server (default $CKPT_SERVER, else 127.0.0.1:7700), --tls_ca, --tls_cert,
// --tls_key and --token (default $CKPT_TLS_CA, ... $CKPT_TOKEN), --job (docs), --count
// (100), --pages (5), --page_ms (100).
#include <cstdio>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/client.h"
#include "client/examples/example_flags.h"
#include "client/worker.h"

namespace {

using ckpt::examples::Flags;

// "page 3" -> 3; anything else -> 0.
uint64_t PagesDone(const std::string& cursor) {
  uint64_t pages = 0;
  if (cursor.rfind("page ", 0) == 0 && absl::SimpleAtoi(cursor.substr(5), &pages)) return pages;
  return 0;
}

void Say(const std::string& line) { std::fprintf(stderr, "doc_pipeline: %s\n", line.c_str()); }

int Main(const Flags& flags) {
  const std::string job_id = flags.Get("job", "docs");
  const uint64_t count = flags.GetInt("count", 100);
  const uint64_t pages = flags.GetInt("pages", 5);
  const absl::Duration page_time = absl::Milliseconds(flags.GetInt("page_ms", 100));

  ckpt::ClientOptions client_options = ckpt::examples::ConnectionOptions(flags);
  auto client = ckpt::Client::Connect(client_options);
  if (!client.ok()) {
    Say(client.status().ToString());
    return 1;
  }

  ckpt::v1::CreateJobRequest create;
  create.set_job_id(job_id);
  create.set_display_name("document batch example");
  create.set_config(absl::StrCat(R"({"documents": )", count, R"(, "pages": )", pages, "}"));
  auto created = (*client)->CreateJob(create);
  if (!created.ok()) {
    Say(absl::StrCat("cannot create job ", job_id, ": ", created.status().ToString()));
    return 1;
  }
  ckpt::v1::AddItemsRequest add;
  add.set_job_id(job_id);
  for (uint64_t i = 0; i < count; ++i) add.add_names(absl::StrFormat("doc-%04d.pdf", i));
  add.set_seal(true);
  if (auto added = (*client)->AddItems(add); !added.ok()) {
    Say(absl::StrCat("cannot add documents: ", added.status().ToString()));
    return 1;
  }
  Say(absl::StrCat(created->resumed() ? "resuming" : "created", " job ", job_id, " with ", count,
                   " documents"));

  ckpt::WorkerOptions options;
  options.job_id = job_id;
  options.lease_batch = 1;  // one document at a time: a pause takes effect after it
  options.on_control = [](ckpt::v1::ControlWord control) {
    switch (control) {
      case ckpt::v1::CONTROL_WORD_PAUSE:
        Say("paused: finishing the current document, then waiting (still heartbeating)");
        break;
      case ckpt::v1::CONTROL_WORD_STOP:
        Say("stopped: finishing the current document, then exiting");
        break;
      default:
        Say("running");
    }
  };
  auto worker = ckpt::Worker::Register(client->get(), options);
  if (!worker.ok()) {
    Say(absl::StrCat("cannot register: ", worker.status().ToString()));
    return 1;
  }
  const absl::Status run = (*worker)->Run([&](ckpt::WorkItem& item) {
    for (uint64_t page = PagesDone(item.cursor()); page < pages; ++page) {
      if (item.lease_lost()) return absl::OkStatus();  // someone else has it now
      absl::SleepFor(page_time);                       // "processing" the page
      item.SaveCursor(absl::StrCat("page ", page + 1));
    }
    Say(absl::StrCat("done ", item.name()));
    item.AddOutput(absl::StrCat("/tmp/docs/", item.name(), ".txt"));
    return absl::OkStatus();
  });
  if (!run.ok()) {
    Say(absl::StrCat("worker failed: ", run.ToString()));
    return 1;
  }
  const ckpt::WorkerStats stats = (*worker)->stats();
  Say(absl::StrCat("exiting: ", stats.completed, " documents done by this worker"));
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return Main(Flags(argc, argv)); }
