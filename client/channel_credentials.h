// How a client proves who it is and whom it talks to: TLS (ckptd's CA), mutual TLS (a
// client certificate) and a bearer token, from ClientOptions or, where those are
// empty, from $CKPT_TLS_CA, $CKPT_TLS_CERT, $CKPT_TLS_KEY and $CKPT_TOKEN.
#ifndef CKPT_CLIENT_CHANNEL_CREDENTIALS_H_
#define CKPT_CLIENT_CHANNEL_CREDENTIALS_H_

#include <grpcpp/security/credentials.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace ckpt {

struct ClientSecurity {
  bool tls = false;       // use TLS even without a CA file (the system's CAs)
  std::string ca_file;    // PEM CA certificates ckptd's certificate must chain to
  std::string cert_file;  // PEM client certificate chain (mutual TLS)
  std::string key_file;   // its PEM private key
  std::string token;      // bearer token, sent with every call
};

// `security` with every empty field taken from its environment variable.
ClientSecurity WithEnvironmentDefaults(ClientSecurity security);

// Whether the channel is TLS: `tls` or any file is set.
bool UsesTls(const ClientSecurity& security);

// The channel's credentials: TLS when UsesTls (INVALID_ARGUMENT if only
// one of cert_file and key_file is; the files' read errors name them), else plaintext.
absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> ChannelCredentialsFor(
    const ClientSecurity& security);

// "Bearer TOKEN", the value of the "authorization" metadata; "" without a token.
// INVALID_ARGUMENT (never showing the token) if it cannot travel in a header.
absl::StatusOr<std::string> AuthorizationValue(absl::string_view token);

}  // namespace ckpt

#endif  // CKPT_CLIENT_CHANNEL_CREDENTIALS_H_
