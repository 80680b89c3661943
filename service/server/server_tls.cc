#include "service/server/server_tls.h"

#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpcpp/security/server_credentials.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
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

Bio MemoryBio(const std::string& pem) {
  return Bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), &BIO_free);
}

// The first certificate of `pem`; INVALID_ARGUMENT naming `what` if there is none.
absl::StatusOr<X509Ptr> FirstCertificate(const std::string& pem, const std::string& what) {
  Bio bio = MemoryBio(pem);
  X509Ptr certificate(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr), &X509_free);
  if (certificate == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " holds no PEM certificate (", OpenSslError(), ")"));
  }
  return certificate;
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

namespace {

absl::StatusOr<std::string> ReadPem(const std::string& what, const std::string& path) {
  return ReadSmallFile(what, path, kMaxPemBytes);
}

// Checks the certificate and key make one identity, valid now, and describes it.
absl::StatusOr<std::string> CheckIdentity(const TlsFiles& files, const std::string& cert_pem,
                                          const std::string& key_pem) {
  CKPT_ASSIGN_OR_RETURN(X509Ptr certificate,
                        FirstCertificate(cert_pem, "TLS certificate " + files.cert));
  Bio bio = MemoryBio(key_pem);
  KeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr), &EVP_PKEY_free);
  if (key == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        "TLS key ", files.key, " holds no unencrypted PEM private key (", OpenSslError(), ")"));
  }
  if (X509_check_private_key(certificate.get(), key.get()) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError(
        absl::StrCat("TLS key ", files.key, " does not belong to certificate ", files.cert));
  }
  const ASN1_TIME* not_after = X509_get0_notAfter(certificate.get());
  if (X509_cmp_current_time(X509_get0_notBefore(certificate.get())) > 0 ||
      X509_cmp_current_time(not_after) < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "TLS certificate ", files.cert, " is not valid now (valid from ",
        Asn1Time(X509_get0_notBefore(certificate.get())), " to ", Asn1Time(not_after), ")"));
  }
  return absl::StrCat("certificate ", files.cert, " (CN=", SubjectCommonName(certificate.get()),
                      ", expires ", Asn1Time(not_after), ")");
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
  CKPT_ASSIGN_OR_RETURN(material->description,
                        CheckIdentity(files, material->cert_pem, material->key_pem));
  if (!files.client_ca.empty()) {
    CKPT_ASSIGN_OR_RETURN(material->client_ca_pem, ReadPem("TLS client CA", files.client_ca));
    CKPT_RETURN_IF_ERROR(
        FirstCertificate(material->client_ca_pem, "TLS client CA " + files.client_ca).status());
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
