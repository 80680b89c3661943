// Server reflection (what grpcurl uses to list and describe services) needs the reader
// role when ckptd authenticates calls: it shows no job data, but a stranger should not
// learn what the server is. A gRPC server interceptor cannot stop a handler, so the
// guard lets the reflection handler run (it only reads descriptors) and replaces
// every answer it sends with an error response, and the call's status with the
// refusal (UNAUTHENTICATED or PERMISSION_DENIED).
#ifndef CKPT_SERVICE_SERVER_REFLECTION_GUARD_H_
#define CKPT_SERVICE_SERVER_REFLECTION_GUARD_H_

#include <grpcpp/support/server_interceptor.h>

#include <memory>

#include "service/auth/authorizer.h"

namespace ckpt {

// Interceptors for the reflection service only (no cost for other calls).
// `authorizer` must outlive the server. Thread-safe.
std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> NewReflectionGuard(
    const auth::Authorizer* authorizer);

}  // namespace ckpt

#endif  // CKPT_SERVICE_SERVER_REFLECTION_GUARD_H_
