// WatchJob streams, all served by one thread that waits on the engine's publish
// counter: an idle watcher costs nothing per write, a busy one gets at most one
// snapshot per min_interval (default and floor 100 ms).
#ifndef CKPT_SERVICE_RPC_WATCH_HUB_H_
#define CKPT_SERVICE_RPC_WATCH_HUB_H_

#include <grpcpp/grpcpp.h>

#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "ckpt/v1/checkpoint.pb.h"
#include "service/engine/engine.h"

namespace ckpt {

// Thread-safe.
class WatchHub {
 public:
  // `engine` must outlive the hub.
  explicit WatchHub(const Engine* engine);
  // Ends every open stream (UNAVAILABLE) and stops the thread.
  ~WatchHub();

  // Starts a stream for a validated request: the job's snapshot at once, then one on
  // each change; ends after the snapshot that shows the job finished or stopped, or
  // NOT_FOUND once the job is deleted.
  // Writes serialized v1::WatchJobResponse messages (the method is served raw).
  grpc::ServerWriteReactor<grpc::ByteBuffer>* Watch(const v1::WatchJobRequest& request);

  // Ends every open stream with UNAVAILABLE (the server is shutting down).
  void Shutdown();

 private:
  class Stream;

  void Loop();
  void Remove(Stream* stream);

  const Engine* const engine_;
  absl::Mutex mu_;
  absl::flat_hash_set<Stream*> streams_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace ckpt

#endif  // CKPT_SERVICE_RPC_WATCH_HUB_H_
