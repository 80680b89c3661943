#include "service/http/http_auth.h"

#include <arpa/inet.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/strip.h"

namespace ckpt {

std::optional<std::string> BearerToken(const httplib::Request& request) {
  if (!request.has_header("Authorization")) return std::nullopt;
  const std::string header = request.get_header_value("Authorization");
  const absl::string_view value = absl::StripAsciiWhitespace(header);
  if (value.size() < 7 || !absl::EqualsIgnoreCase(value.substr(0, 7), "bearer ")) return "";
  return std::string(absl::StripAsciiWhitespace(value.substr(7)));
}

namespace {

// A subject alternative name as text, as gRPC shows it; "" for other kinds.
std::string AltName(const GENERAL_NAME& name) {
  int type = 0;
  const void* value = GENERAL_NAME_get0_value(&name, &type);
  if (type == GEN_DNS || type == GEN_URI || type == GEN_EMAIL) {
    const auto* text = static_cast<const ASN1_STRING*>(value);
    return std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(text)),
                       static_cast<size_t>(ASN1_STRING_length(text)));
  }
  if (type != GEN_IPADD) return "";
  const auto* address = static_cast<const ASN1_OCTET_STRING*>(value);
  const int length = ASN1_STRING_length(address);
  char buffer[INET6_ADDRSTRLEN] = {0};
  if ((length != 4 && length != 16) ||
      ::inet_ntop(length == 4 ? AF_INET : AF_INET6, ASN1_STRING_get0_data(address), buffer,
                  sizeof(buffer)) == nullptr) {
    return "";
  }
  return buffer;
}

}  // namespace

std::vector<std::string> VerifiedCertificateNames(const SSL* ssl) {
  std::vector<std::string> names;
  if (ssl == nullptr || SSL_get_verify_result(ssl) != X509_V_OK) return names;
  X509* certificate = SSL_get0_peer_certificate(ssl);
  if (certificate == nullptr) return names;
  auto* alt_names = static_cast<GENERAL_NAMES*>(
      X509_get_ext_d2i(certificate, NID_subject_alt_name, nullptr, nullptr));
  for (int i = 0; i < sk_GENERAL_NAME_num(alt_names); ++i) {
    std::string name = AltName(*sk_GENERAL_NAME_value(alt_names, i));
    if (!name.empty()) names.push_back(std::move(name));
  }
  GENERAL_NAMES_free(alt_names);
  char common_name[256] = {0};
  if (X509_NAME_get_text_by_NID(X509_get_subject_name(certificate), NID_commonName, common_name,
                                sizeof(common_name)) > 0) {
    names.emplace_back(common_name);
  }
  return names;
}

auth::Credentials HttpAuth::CredentialsOf(const httplib::Request& request,
                                          const std::optional<std::string>& token) const {
  auth::Credentials credentials;
  if (token.has_value()) {
    credentials.bearer_token = *token;
  } else if (authorizer_->UsesCertificates()) {
    credentials.certificate_names = VerifiedCertificateNames(request.ssl);
  }
  return credentials;
}

absl::StatusOr<auth::PrincipalRef> HttpAuth::Authenticate(const httplib::Request& request) const {
  if (authorizer_ == nullptr) return auth::PrincipalRef();
  const std::optional<std::string> token = BearerToken(request);
  return authorizer_->Authenticate(CredentialsOf(request, token));
}

absl::StatusOr<auth::PrincipalRef> HttpAuth::Check(const httplib::Request& request,
                                                   absl::string_view rpc,
                                                   absl::string_view job_id) const {
  if (authorizer_ == nullptr) return auth::PrincipalRef();
  const std::optional<std::string> token = BearerToken(request);
  return authorizer_->Check(CredentialsOf(request, token), rpc, job_id);
}

bool HttpAuth::Allows(const auth::Principal* principal, absl::string_view rpc,
                      absl::string_view job_id) {
  return principal == nullptr || auth::Authorizer::Authorize(*principal, rpc, job_id).ok();
}

}  // namespace ckpt
