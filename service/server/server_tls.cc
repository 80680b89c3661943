#include "service/server/server_tls.h"

#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpcpp/security/server_credentials.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "service/common/file.h"
#include "service/common/status_macros.h"

namespace ckpt {
namespace {

constexpr size_t kMaxPemBytes = 1 << 20;

// gRPC server credentials over a grpc_server_credentials of the C API: the C++ API has
// no SSL credentials that re-read their certificate on demand, the C API's config
// fetcher does. gRPC's C++ server binds a port through AddPortToServer, which this
// overrides (it is the one hook ServerCredentials has for that).
class FetchingServerCredentials final : public grpc::ServerCredentials {
 public:
  explicit FetchingServerCredentials(grpc_server_credentials* credentials)
      : credentials_(credentials) {}
  ~FetchingServerCredentials() override { grpc_server_credentials_release(credentials_); }

  // ckptd authenticates calls in its handlers (service/rpc/call_auth.h), not here.
  void SetAuthMetadataProcessor(const std::shared_ptr<grpc::AuthMetadataProcessor>&) override {}

 private:
  int AddPortToServer(const std::string& address, grpc_server* server) override {
    return grpc_server_add_http2_port(server, address.c_str(), credentials_);
  }

  grpc_server_credentials* const credentials_;
};

std::string OpenSslError() {
  const unsigned long code = ERR_get_error();  // NOLINT(runtime/int): OpenSSL's type
  ERR_clear_error();
  if (code == 0) return "no PEM data";
  char buffer[256];
  ERR_error_string_n(code, buffer, sizeof(buffer));
  return buffer;
}

using Bio = std::unique_ptr<BIO, decltype(&BIO_free)>;
using X509Ptr = std::unique_ptr<X509, decltype(&X509_free)>;
using KeyPtr = std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)>;

struct FreeCertificates {
  void operator()(STACK_OF(X509) * certificates) const {
    sk_X509_pop_free(certificates, X509_free);
  }
};
struct FreeNames {
  void operator()(STACK_OF(X509_NAME) * names) const {
    sk_X509_NAME_pop_free(names, X509_NAME_free);
  }
};
struct FreeStore {
  void operator()(X509_STORE* store) const { X509_STORE_free(store); }
};
using Certificates = std::unique_ptr<STACK_OF(X509), FreeCertificates>;
using Names = std::unique_ptr<STACK_OF(X509_NAME), FreeNames>;
using Store = std::unique_ptr<X509_STORE, FreeStore>;

Bio MemoryBio(const std::string& pem) {
  return Bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), &BIO_free);
}

// Every certificate of `pem`, in order; INVALID_ARGUMENT naming `what` if there is none.
absl::StatusOr<Certificates> AllCertificates(const std::string& pem, const std::string& what) {
  Bio bio = MemoryBio(pem);
  Certificates certificates(sk_X509_new_null());
  while (X509* certificate = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
    sk_X509_push(certificates.get(), certificate);
  }
  // Reading stops at the end of the PEM data, with an error that says so.
  const std::string reason = OpenSslError();
  if (sk_X509_num(certificates.get()) == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " holds no PEM certificate (", reason, ")"));
  }
  return certificates;
}

std::string Asn1Time(const ASN1_TIME* time) {
  struct tm parts {};
  if (ASN1_TIME_to_tm(time, &parts) != 1) return "an unreadable date";
  char buffer[64];
  std::strftime(buffer, sizeof(buffer), "%Y-%m-%d %H:%M UTC", &parts);
  return buffer;
}

std::string SubjectCommonName(X509* certificate) {
  char buffer[256] = {0};
  X509_NAME_get_text_by_NID(X509_get_subject_name(certificate), NID_commonName, buffer,
                            sizeof(buffer));
  return buffer;
}

}  // namespace

struct ServerTls::Material {
  std::string cert_pem;
  std::string key_pem;
  std::string client_ca_pem;
  std::string description;
  // The same, parsed, for OpenSSL's handshakes (ConfigureSslContext).
  X509Ptr certificate{nullptr, &X509_free};
  Certificates intermediates;  // the rest of the chain in cert_pem
  KeyPtr key{nullptr, &EVP_PKEY_free};
  Store client_ca;  // null: no mTLS
  Names client_ca_names;
};

// Gives gRPC the files as last loaded, before each handshake, if they changed since
// it last asked.
class ServerTls::Fetcher {
 public:
  static grpc_ssl_certificate_config_reload_status Fetch(
      void* user_data, grpc_ssl_server_certificate_config** config) {
    ServerTls* tls = static_cast<ServerTls*>(user_data);
    absl::MutexLock lock(&tls->mu_);
    if (tls->served_generation_ == tls->generation_) {
      return GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_UNCHANGED;
    }
    const Material& material = *tls->material_;
    grpc_ssl_pem_key_cert_pair pair = {material.key_pem.c_str(), material.cert_pem.c_str()};
    // gRPC insists on roots even when it requests no client certificate; then they
    // are never used, and ckptd's own chain serves.
    *config = grpc_ssl_server_certificate_config_create(
        material.client_ca_pem.empty() ? material.cert_pem.c_str() : material.client_ca_pem.c_str(),
        &pair, 1);
    if (*config == nullptr) return GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_FAIL;
    tls->served_generation_ = tls->generation_;
    return GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_NEW;
  }
};

// Gives each OpenSSL handshake the files as last loaded: OpenSSL calls it after the
// ClientHello, before it sends a certificate or asks for the client's.
class ServerTls::Selector {
 public:
  static int Select(SSL* ssl, void* arg) {
    std::shared_ptr<const Material> material;
    {
      ServerTls* tls = static_cast<ServerTls*>(arg);
      absl::MutexLock lock(&tls->mu_);
      material = tls->material_;
    }
    // The connection takes references of its own, which outlive a Reload.
    if (SSL_use_cert_and_key(ssl, material->certificate.get(), material->key.get(),
                             material->intermediates.get(), /*override=*/1) != 1) {
      return 0;
    }
    if (material->client_ca == nullptr) return 1;
    // Whom the client's certificate must come from (browsers pick one by these names),
    // and what it is verified against.
    SSL_set_client_CA_list(ssl, SSL_dup_CA_list(material->client_ca_names.get()));
    return SSL_set1_verify_cert_store(ssl, material->client_ca.get()) == 1 ? 1 : 0;
  }
};

namespace {

absl::StatusOr<std::string> ReadPem(const std::string& what, const std::string& path) {
  return ReadSmallFile(what, path, kMaxPemBytes);
}

// Checks the certificate and key make one identity, valid now, and describes it.
absl::StatusOr<std::string> CheckIdentity(const TlsFiles& files, X509* certificate, EVP_PKEY* key) {
  if (X509_check_private_key(certificate, key) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError(
        absl::StrCat("TLS key ", files.key, " does not belong to certificate ", files.cert));
  }
  const ASN1_TIME* not_after = X509_get0_notAfter(certificate);
  if (X509_cmp_current_time(X509_get0_notBefore(certificate)) > 0 ||
      X509_cmp_current_time(not_after) < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("TLS certificate ", files.cert, " is not valid now (valid from ",
                     Asn1Time(X509_get0_notBefore(certificate)), " to ", Asn1Time(not_after), ")"));
  }
  return absl::StrCat("certificate ", files.cert, " (CN=", SubjectCommonName(certificate),
                      ", expires ", Asn1Time(not_after), ")");
}

absl::StatusOr<KeyPtr> ParseKey(const TlsFiles& files, const std::string& key_pem) {
  Bio bio = MemoryBio(key_pem);
  KeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr), &EVP_PKEY_free);
  if (key == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        "TLS key ", files.key, " holds no unencrypted PEM private key (", OpenSslError(), ")"));
  }
  return key;
}

// The client CA's certificates as a store to verify against, and their subjects.
absl::Status ParseClientCa(const TlsFiles& files, const std::string& pem, Store* store,
                           Names* names) {
  CKPT_ASSIGN_OR_RETURN(Certificates certificates,
                        AllCertificates(pem, "TLS client CA " + files.client_ca));
  store->reset(X509_STORE_new());
  names->reset(sk_X509_NAME_new_null());
  for (int i = 0; i < sk_X509_num(certificates.get()); ++i) {
    X509* certificate = sk_X509_value(certificates.get(), i);
    X509_STORE_add_cert(store->get(), certificate);  // takes a reference
    sk_X509_NAME_push(names->get(), X509_NAME_dup(X509_get_subject_name(certificate)));
  }
  ERR_clear_error();  // a CA given twice
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<ServerTls::Material>> ServerTls::ReadMaterial(
    const TlsFiles& files) {
  if (files.cert.empty() || files.key.empty()) {
    return absl::InvalidArgumentError("--tls_cert and --tls_key go together: give both");
  }
  auto material = std::make_unique<Material>();
  CKPT_ASSIGN_OR_RETURN(material->cert_pem, ReadPem("TLS certificate", files.cert));
  CKPT_ASSIGN_OR_RETURN(material->key_pem, ReadPem("TLS key", files.key));
  CKPT_ASSIGN_OR_RETURN(material->intermediates,
                        AllCertificates(material->cert_pem, "TLS certificate " + files.cert));
  material->certificate.reset(sk_X509_shift(material->intermediates.get()));
  CKPT_ASSIGN_OR_RETURN(material->key, ParseKey(files, material->key_pem));
  CKPT_ASSIGN_OR_RETURN(material->description,
                        CheckIdentity(files, material->certificate.get(), material->key.get()));
  if (!files.client_ca.empty()) {
    CKPT_ASSIGN_OR_RETURN(material->client_ca_pem, ReadPem("TLS client CA", files.client_ca));
    CKPT_RETURN_IF_ERROR(ParseClientCa(files, material->client_ca_pem, &material->client_ca,
                                       &material->client_ca_names));
    absl::StrAppend(&material->description, ", client certificates from ", files.client_ca,
                    " required");
  }
  return material;
}

absl::StatusOr<std::unique_ptr<ServerTls>> ServerTls::Load(const TlsFiles& files) {
  CKPT_ASSIGN_OR_RETURN(std::unique_ptr<Material> material, ReadMaterial(files));
  std::unique_ptr<ServerTls> tls(new ServerTls(files, std::move(material)));
  // gRPC asks the fetcher for the first config here, and before every handshake after.
  grpc_ssl_server_credentials_options* options =
      grpc_ssl_server_credentials_create_options_using_config_fetcher(
          files.client_ca.empty() ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
                                  : GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY,
          &Fetcher::Fetch, tls.get());
  grpc_server_credentials* credentials = grpc_ssl_server_credentials_create_with_options(options);
  if (credentials == nullptr) {
    return absl::InternalError(
        absl::StrCat("gRPC refused the TLS certificate ", files.cert, " and key ", files.key));
  }
  tls->credentials_ = std::make_shared<FetchingServerCredentials>(credentials);
  return tls;
}

ServerTls::ServerTls(TlsFiles files, std::unique_ptr<Material> material)
    : files_(std::move(files)), material_(std::move(material)) {}

ServerTls::~ServerTls() = default;

bool ServerTls::ConfigureSslContext(SSL_CTX* ctx) {
  // As gRPC's: TLS 1.2 and 1.3 only. Without resumption every connection is verified
  // against the files in force when it was made.
  if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1) return false;
  SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET | SSL_OP_NO_RENEGOTIATION);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  if (requires_client_certificates()) {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  }
  SSL_CTX_set_cert_cb(ctx, &Selector::Select, this);
  return true;
}

absl::StatusOr<std::string> ServerTls::Reload() {
  CKPT_ASSIGN_OR_RETURN(std::unique_ptr<Material> material, ReadMaterial(files_));
  std::string description = material->description;
  absl::MutexLock lock(&mu_);
  material_ = std::move(material);
  ++generation_;
  return description;
}

std::string ServerTls::Summary() const {
  absl::MutexLock lock(&mu_);
  return material_->description;
}

}  // namespace ckpt
