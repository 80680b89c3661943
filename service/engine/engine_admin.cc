// Administration: backups of the store.
#include "service/common/status_macros.h"
#include "service/engine/engine.h"

namespace ckpt {

absl::Status Engine::BackupStore(const v1::BackupStoreRequest& request,
                                 v1::BackupStoreResponse* response) const {
  CKPT_ASSIGN_OR_RETURN(const StoreCopy copy, store_->Checkpoint(request.dir()));
  response->set_dir(request.dir());
  response->set_files(copy.files);
  response->set_bytes(copy.bytes);
  return absl::OkStatus();
}

}  // namespace ckpt
