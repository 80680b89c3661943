// ckptd's TLS: its certificate and key, and for mutual TLS the CA its clients'
// certificates must chain to, as gRPC server credentials that can be re-read while
// ckptd serves. A re-read takes effect for connections made after it; connections
// already open, and their calls, keep the certificate they were made with, so a
// rotation drops nothing.
#ifndef CKPT_SERVICE_SERVER_SERVER_TLS_H_
#define CKPT_SERVICE_SERVER_SERVER_TLS_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace grpc {
class ServerCredentials;
}  // namespace grpc

typedef struct ssl_ctx_st SSL_CTX;  // OpenSSL's

namespace ckpt {

struct TlsFiles {
  std::string cert;       // PEM: ckptd's certificate chain, its own certificate first
  std::string key;        // PEM: its private key
  std::string client_ca;  // PEM: CA certificates for clients' certificates; empty: no mTLS

  bool enabled() const { return !cert.empty() || !key.empty(); }
};

// Thread-safe. Must outlive every gRPC server built with credentials().
class ServerTls {
 public:
  // Reads and checks the files: INVALID_ARGUMENT (naming the file, never key
  // material) unless cert and key are both given, parse as PEM, match each other and
  // the certificate is valid now, and client_ca (if given) holds a certificate.
  // Reading errors are ReadSmallFile's.
  static absl::StatusOr<std::unique_ptr<ServerTls>> Load(const TlsFiles& files);
  ~ServerTls();
  ServerTls(const ServerTls&) = delete;
  ServerTls& operator=(const ServerTls&) = delete;

  // Server credentials serving the files as last loaded; with client_ca, clients
  // without a certificate that chains to it are refused in the handshake.
  std::shared_ptr<grpc::ServerCredentials> credentials() { return credentials_; }

  // Makes an OpenSSL server context (the HTTP listener's) serve the same files: each
  // handshake takes the certificate, key and client CA as last loaded, so a Reload
  // reaches new connections while open ones keep theirs. With client_ca, clients
  // without a certificate that chains to it are refused in the handshake. TLS 1.2 or
  // later; no session resumption (every connection is verified against the current
  // files). `ctx` must not outlive this. False if OpenSSL refused a setting.
  bool ConfigureSslContext(SSL_CTX* ctx);

  // Reads and checks the files again, as Load. On success new connections use them
  // and a description of the certificate is returned; on error the old ones stay.
  absl::StatusOr<std::string> Reload();

  // "certificate CN=ckptd (expires 2026-12-04 21:38 UTC), client certificates from
  // /etc/ckpt/ca.crt required" for the files as last loaded.
  std::string Summary() const;

  bool requires_client_certificates() const { return !files_.client_ca.empty(); }

 private:
  struct Material;  // PEM contents and a description
  class Fetcher;    // gRPC's certificate config callback
  class Selector;   // OpenSSL's certificate callback

  ServerTls(TlsFiles files, std::unique_ptr<Material> material);
  // Reads the files and checks they make a usable server identity.
  static absl::StatusOr<std::unique_ptr<Material>> ReadMaterial(const TlsFiles& files);

  const TlsFiles files_;
  std::shared_ptr<grpc::ServerCredentials> credentials_;
  mutable absl::Mutex mu_;
  // Shared with handshakes in progress; replaced whole by Reload.
  std::shared_ptr<const Material> material_ ABSL_GUARDED_BY(mu_);
  uint64_t generation_ ABSL_GUARDED_BY(mu_) = 1;
  uint64_t served_generation_ ABSL_GUARDED_BY(mu_) = 0;  // given to gRPC
};

}  // namespace ckpt

#endif  // CKPT_SERVICE_SERVER_SERVER_TLS_H_
