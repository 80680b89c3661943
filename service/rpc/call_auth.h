// The gRPC side of authentication and authorization: reads a call's credentials (the
// "authorization: Bearer TOKEN" metadata, and the names of a client certificate that
// TLS verified) and asks auth::Authorizer, which knows no gRPC. Also the audit line of
// every admin action.
#ifndef CKPT_SERVICE_RPC_CALL_AUTH_H_
#define CKPT_SERVICE_RPC_CALL_AUTH_H_

#include <grpcpp/server_context.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "service/auth/authorizer.h"

namespace ckpt {

// The credentials `context`'s call carries. `bearer_token` views the call's metadata, so
// it is valid while the call is. Certificate names (SANs, then the subject CN) are
// gathered only if `with_certificate_names`, since that costs allocations per call.
// UNAUTHENTICATED if the "authorization" metadata is not "Bearer TOKEN".
absl::StatusOr<auth::Credentials> CallCredentials(const grpc::ServerContextBase& context,
                                                  bool with_certificate_names);

// The principal the call's credentials prove, or UNAUTHENTICATED starting with `rpc`'s
// name. With no `authorizer` (ckptd without --auth_file) every call is allowed and the
// principal is nullptr.
absl::StatusOr<auth::PrincipalRef> AuthenticateCall(const auth::Authorizer* authorizer,
                                                    const grpc::ServerContextBase& context,
                                                    absl::string_view rpc);

// AuthenticateCall, then auth::Authorizer::Authorize of `rpc` (a name in
// service/auth/roles.h) on `job_id`: the principal, or UNAUTHENTICATED /
// PERMISSION_DENIED starting with the RPC's name.
absl::StatusOr<auth::PrincipalRef> AuthorizeCall(const auth::Authorizer* authorizer,
                                                 const grpc::ServerContextBase& context,
                                                 absl::string_view rpc, absl::string_view job_id);

// Logs "admin action: <rpc> on job "<job_id>" by <principal>: <outcome code>". Thread-safe.
void LogAdminAction(absl::string_view rpc, const auth::Principal& principal,
                    absl::string_view job_id, const absl::Status& outcome);

}  // namespace ckpt

#endif  // CKPT_SERVICE_RPC_CALL_AUTH_H_
