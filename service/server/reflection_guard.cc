#include "service/server/reflection_guard.h"

#include <grpcpp/support/byte_buffer.h>

#include <cstring>
#include <string>

#include "grpc/reflection/v1alpha/reflection.pb.h"
#include "service/common/grpc_status.h"
#include "service/rpc/call_auth.h"

namespace ckpt {
namespace {

using grpc::experimental::InterceptionHookPoints;

constexpr char kReflectionMethod[] =
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo";

class ReflectionGuard final : public grpc::experimental::Interceptor {
 public:
  ReflectionGuard(const auth::Authorizer* authorizer, grpc::experimental::ServerRpcInfo* info)
      : authorizer_(authorizer), info_(info) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::POST_RECV_INITIAL_METADATA)) {
      refusal_ =
          AuthorizeCall(authorizer_, *info_->server_context(), "ServerReflectionInfo", "").status();
    }
    if (!refusal_.ok()) {
      if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_MESSAGE)) {
        *methods->GetSerializedSendMessage() = RefusalMessage();
      }
      if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS)) {
        methods->ModifySendStatus(ToGrpcStatus(refusal_));
      }
    }
    methods->Proceed();
  }

 private:
  // The refusal as reflection's own error answer, for clients that read it first.
  grpc::ByteBuffer RefusalMessage() const {
    grpc::reflection::v1alpha::ServerReflectionResponse response;
    response.mutable_error_response()->set_error_code(static_cast<int>(refusal_.code()));
    response.mutable_error_response()->set_error_message(std::string(refusal_.message()));
    grpc::Slice slice(response.SerializeAsString());
    return grpc::ByteBuffer(&slice, 1);
  }

  const auth::Authorizer* const authorizer_;
  grpc::experimental::ServerRpcInfo* const info_;
  absl::Status refusal_;
};

class ReflectionGuardFactory final : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit ReflectionGuardFactory(const auth::Authorizer* authorizer) : authorizer_(authorizer) {}

  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    if (std::strcmp(info->method(), kReflectionMethod) != 0) return nullptr;
    return new ReflectionGuard(authorizer_, info);
  }

 private:
  const auth::Authorizer* const authorizer_;
};

}  // namespace

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> NewReflectionGuard(
    const auth::Authorizer* authorizer) {
  return std::make_unique<ReflectionGuardFactory>(authorizer);
}

}  // namespace ckpt
