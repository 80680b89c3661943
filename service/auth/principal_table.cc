#include "service/auth/principal_table.h"

#include <openssl/crypto.h>

#include <cstdint>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace ckpt {
namespace auth {
namespace {

constexpr size_t kMaxNameBytes = 128;
constexpr size_t kMaxCertificateNameBytes = 1024;
constexpr size_t kMaxJobPrefixBytes = 128;  // a job_id's own limit

bool AllOf(absl::string_view text, absl::string_view extra) {
  for (char c : text) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) &&
        extra.find(c) == absl::string_view::npos) {
      return false;
    }
  }
  return true;
}

bool IsVisibleAscii(absl::string_view text) {
  for (char c : text) {
    if (c <= ' ' || c > '~') return false;
  }
  return true;
}

// 64 hex digits -> the digest; false for anything else.
bool ParseHexDigest(absl::string_view hex, Sha256Digest* digest) {
  if (hex.size() != 2 * digest->size()) return false;
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (size_t i = 0; i < digest->size(); ++i) {
    const int high = nibble(hex[2 * i]);
    const int low = nibble(hex[2 * i + 1]);
    if (high < 0 || low < 0) return false;
    (*digest)[i] = static_cast<unsigned char>(high << 4 | low);
  }
  return true;
}

absl::Status ParseName(absl::string_view name, Principal* principal) {
  if (name.empty() || name.size() > kMaxNameBytes || !AllOf(name, "._:@/-")) {
    return absl::InvalidArgumentError(
        "the principal's name (first field) must be 1..128 characters of [A-Za-z0-9._:@/-]");
  }
  principal->name = std::string(name);
  return absl::OkStatus();
}

absl::Status ParseJobPrefix(absl::string_view prefix, Principal* principal) {
  if (principal->confined()) return absl::InvalidArgumentError("job_prefix= is given twice");
  if (prefix.empty() || prefix.size() > kMaxJobPrefixBytes || !AllOf(prefix, "._:-")) {
    return absl::InvalidArgumentError(
        "job_prefix= must be 1..128 characters of [A-Za-z0-9._:-], as job ids are");
  }
  principal->job_prefix = std::string(prefix);
  return absl::OkStatus();
}

// One line of the file, checked for form only (uniqueness is the table's business).
struct ParsedLine {
  Principal principal;
  std::vector<Sha256Digest> hashes;
  std::vector<std::string> certificate_names;
};

// One key=value field (the `position`-th of its line) into `out`.
absl::Status ParseField(absl::string_view field, size_t position, ParsedLine* out) {
  const std::pair<absl::string_view, absl::string_view> kv =
      absl::StrSplit(field, absl::MaxSplits('=', 1));
  if (kv.first == "token_sha256") {
    Sha256Digest digest;
    // The value is never echoed: it may be a token pasted by mistake.
    if (!ParseHexDigest(kv.second, &digest)) {
      return absl::InvalidArgumentError(
          "token_sha256= must be 64 hex digits: the SHA-256 of the token, never the token "
          "(printf %s \"$TOKEN\" | sha256sum)");
    }
    out->hashes.push_back(digest);
  } else if (kv.first == "cert") {
    if (kv.second.empty() || kv.second.size() > kMaxCertificateNameBytes ||
        !IsVisibleAscii(kv.second)) {
      return absl::InvalidArgumentError(
          "cert= must be a certificate's subject CN or a SAN: 1..1024 visible ASCII characters");
    }
    out->certificate_names.emplace_back(kv.second);
  } else if (kv.first == "job_prefix") {
    return ParseJobPrefix(kv.second, &out->principal);
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("field ", position,
                     " is not token_sha256=, cert= or job_prefix= (the file never holds "
                     "a token itself, only its SHA-256)"));
  }
  return absl::OkStatus();
}

// "NAME ROLE FIELD=VALUE..."
absl::Status ParseLine(absl::string_view line, ParsedLine* out) {
  const std::vector<absl::string_view> fields =
      absl::StrSplit(line, absl::ByAnyChar(" \t\r"), absl::SkipEmpty());
  if (absl::Status s = ParseName(fields[0], &out->principal); !s.ok()) return s;
  const std::optional<Role> role = fields.size() > 1 ? ParseRole(fields[1]) : std::nullopt;
  if (!role.has_value()) {
    return absl::InvalidArgumentError("the second field must be a role: reader, worker or admin");
  }
  out->principal.role = *role;
  for (size_t i = 2; i < fields.size(); ++i) {
    if (absl::Status s = ParseField(fields[i], i + 1, out); !s.ok()) return s;
  }
  if (out->hashes.empty() && out->certificate_names.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("principal \"", out->principal.name, "\" has no token_sha256= and no cert="));
  }
  return absl::OkStatus();
}

}  // namespace

bool Principal::MayTouch(absl::string_view job_id) const {
  return absl::StartsWith(job_id, job_prefix);
}

absl::StatusOr<std::shared_ptr<const PrincipalTable>> PrincipalTable::Parse(
    absl::string_view text, absl::string_view source) {
  if (text.size() > kMaxFileBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("auth file ", source, " is over ", kMaxFileBytes, " bytes"));
  }
  std::shared_ptr<PrincipalTable> table(new PrincipalTable());
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_number;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line.front() == '#') continue;
    const absl::Status status = table->AddLine(line);
    if (!status.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("auth file ", source, ": line ", line_number, ": ", status.message()));
    }
  }
  if (table->principals_.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "auth file ", source, " names no principal, so ckptd would refuse every call"));
  }
  return std::shared_ptr<const PrincipalTable>(std::move(table));
}

absl::Status PrincipalTable::AddLine(absl::string_view line) {
  ParsedLine parsed;
  if (absl::Status s = ParseLine(line, &parsed); !s.ok()) return s;
  const std::string& name = parsed.principal.name;
  for (const Principal& other : principals_) {
    if (other.name == name) {
      return absl::InvalidArgumentError(absl::StrCat("principal \"", name, "\" is named twice"));
    }
  }
  const size_t index = principals_.size();
  for (size_t i = 0; i < parsed.hashes.size(); ++i) {
    for (size_t j = 0; j < i; ++j) {
      if (parsed.hashes[j] == parsed.hashes[i]) {
        return absl::InvalidArgumentError(
            absl::StrCat("principal \"", name, "\" lists a token_sha256= twice"));
      }
    }
    for (const auto& [known, owner] : token_hashes_) {
      if (known == parsed.hashes[i]) {
        return absl::InvalidArgumentError(
            absl::StrCat("a token_sha256= of \"", name, "\" is also \"", principals_[owner].name,
                         "\"'s: every token must name one principal"));
      }
    }
  }
  for (const std::string& certificate_name : parsed.certificate_names) {
    if (!by_certificate_name_.emplace(certificate_name, index).second) {
      return absl::InvalidArgumentError(absl::StrCat("cert=", certificate_name, " is given twice"));
    }
  }
  for (const Sha256Digest& hash : parsed.hashes) token_hashes_.emplace_back(hash, index);
  principals_.push_back(std::move(parsed.principal));
  return absl::OkStatus();
}

const Principal* PrincipalTable::FindByToken(absl::string_view token) const {
  const Sha256Digest digest = Sha256(token);
  // Every hash is compared, without branching on the result: 0 means none matched.
  size_t found = 0;
  for (const auto& [hash, index] : token_hashes_) {
    const size_t match =
        static_cast<size_t>(CRYPTO_memcmp(hash.data(), digest.data(), hash.size()) == 0);
    const size_t mask = size_t{0} - match;
    found = (found & ~mask) | ((index + 1) & mask);
  }
  return found == 0 ? nullptr : &principals_[found - 1];
}

const Principal* PrincipalTable::FindByCertificateName(absl::string_view certificate_name) const {
  const auto it = by_certificate_name_.find(certificate_name);
  return it == by_certificate_name_.end() ? nullptr : &principals_[it->second];
}

std::string PrincipalTable::Summary() const {
  int counts[4] = {0, 0, 0, 0};
  for (const Principal& principal : principals_) ++counts[static_cast<int>(principal.role)];
  return absl::StrCat(principals_.size(),
                      principals_.size() == 1 ? " principal (" : " principals (", counts[3],
                      " admin, ", counts[2], " worker, ", counts[1], " reader)");
}

}  // namespace auth
}  // namespace ckpt
