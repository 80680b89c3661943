// Just enough flag parsing for the examples: --name=value, nothing else.
#ifndef CKPT_CLIENT_EXAMPLES_EXAMPLE_FLAGS_H_
#define CKPT_CLIENT_EXAMPLES_EXAMPLE_FLAGS_H_

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "client/client.h"

namespace ckpt {
namespace examples {

class Flags {
 public:
  // Exits 2 with a message for anything that is not --name=value.
  Flags(int argc, char** argv) {
    for (int i = 1; i < argc; ++i) {
      const std::string arg = argv[i];
      const size_t eq = arg.find('=');
      if (!absl::StartsWith(arg, "--") || eq == std::string::npos) Usage(arg);
      values_[arg.substr(2, eq - 2)] = arg.substr(eq + 1);
    }
  }

  std::string Get(const std::string& name, const std::string& fallback) const {
    auto it = values_.find(name);
    return it == values_.end() ? fallback : it->second;
  }

  uint64_t GetInt(const std::string& name, uint64_t fallback) const {
    auto it = values_.find(name);
    if (it == values_.end()) return fallback;
    uint64_t value = 0;
    if (!absl::SimpleAtoi(it->second, &value)) Usage("--" + name + "=" + it->second);
    return value;
  }

 private:
  [[noreturn]] static void Usage(const std::string& arg) {
    std::fprintf(stderr, "bad argument %s: flags are --name=value\n", arg.c_str());
    std::exit(2);
  }

  std::map<std::string, std::string> values_;
};

// How to reach ckptd: --server, and --tls_ca, --tls_cert, --tls_key and --token (each
// defaulting to its $CKPT_* variable in ClientOptions).
inline ClientOptions ConnectionOptions(const Flags& flags) {
  ClientOptions options;
  options.target = flags.Get("server", "");
  options.tls_ca_file = flags.Get("tls_ca", "");
  options.tls_cert_file = flags.Get("tls_cert", "");
  options.tls_key_file = flags.Get("tls_key", "");
  options.token = flags.Get("token", "");
  return options;
}

}  // namespace examples
}  // namespace ckpt

#endif  // CKPT_CLIENT_EXAMPLES_EXAMPLE_FLAGS_H_
