#include "client/channel_credentials.h"

#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "service/common/file.h"
#include "service/common/status_macros.h"

namespace ckpt {
namespace {

constexpr size_t kMaxPemBytes = 1 << 20;

void FromEnvironment(const char* variable, std::string* value) {
  const char* env = std::getenv(variable);
  if (value->empty() && env != nullptr) *value = env;
}

}  // namespace

ClientSecurity WithEnvironmentDefaults(ClientSecurity security) {
  FromEnvironment("CKPT_TLS_CA", &security.ca_file);
  FromEnvironment("CKPT_TLS_CERT", &security.cert_file);
  FromEnvironment("CKPT_TLS_KEY", &security.key_file);
  FromEnvironment("CKPT_TOKEN", &security.token);
  return security;
}

bool UsesTls(const ClientSecurity& security) {
  return security.tls || !security.ca_file.empty() || !security.cert_file.empty() ||
         !security.key_file.empty();
}

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> ChannelCredentialsFor(
    const ClientSecurity& security) {
  if (security.cert_file.empty() != security.key_file.empty()) {
    return absl::InvalidArgumentError(
        "a client certificate needs its key and a key its certificate: give both "
        "(--tls-cert and --tls-key, $CKPT_TLS_CERT and $CKPT_TLS_KEY)");
  }
  if (!UsesTls(security)) return grpc::InsecureChannelCredentials();
  grpc::SslCredentialsOptions options;
  if (!security.ca_file.empty()) {
    CKPT_ASSIGN_OR_RETURN(options.pem_root_certs,
                          ReadSmallFile("TLS CA file", security.ca_file, kMaxPemBytes));
  }
  if (!security.cert_file.empty()) {
    CKPT_ASSIGN_OR_RETURN(options.pem_cert_chain,
                          ReadSmallFile("TLS certificate file", security.cert_file, kMaxPemBytes));
    CKPT_ASSIGN_OR_RETURN(options.pem_private_key,
                          ReadSmallFile("TLS key file", security.key_file, kMaxPemBytes));
  }
  return grpc::SslCredentials(options);
}

absl::StatusOr<std::string> AuthorizationValue(absl::string_view token) {
  if (token.empty()) return std::string();
  for (char c : token) {
    if (c <= ' ' || c > '~') {
      return absl::InvalidArgumentError(
          "the bearer token has a character that cannot travel in a header (only visible "
          "ASCII can); check $CKPT_TOKEN or the token option");
    }
  }
  return absl::StrCat("Bearer ", token);
}

}  // namespace ckpt
