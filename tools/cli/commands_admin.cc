// Commands of the store as a whole: backup.
#include "absl/strings/str_format.h"
#include "service/common/status_macros.h"
#include "tools/cli/commands.h"
#include "tools/cli/format.h"

namespace ckpt {
namespace cli {

absl::Status Backup(const Context& ctx, const Args& args) {
  v1::BackupStoreRequest request;
  request.set_dir(args.positional[0]);
  CKPT_ASSIGN_OR_RETURN(v1::BackupStoreResponse response, ctx.client->BackupStore(request));
  if (ctx.json) {
    *ctx.out << ToJson(response) << "\n";
    return absl::OkStatus();
  }
  *ctx.out << absl::StrFormat(
      "backup in %s (on ckptd's machine): %d files, %.1f MiB\n"
      "restore: ckptd --data_dir=%s (on a copy of it, to keep the backup)\n",
      response.dir(), response.files(), static_cast<double>(response.bytes()) / (1 << 20),
      response.dir());
  return absl::OkStatus();
}

}  // namespace cli
}  // namespace ckpt
