#!/usr/bin/env bash
# Installs the Debian packages ckpt needs to build, test and run, but only those that
# are missing. Nothing is downloaded from anywhere but the configured apt sources.
#
# Two ways to use it:
#   ./tools/install_deps.sh                 # run: installs what is missing
#   source tools/install_deps.sh            # source: defines ckpt_install_deps,
#   ckpt_install_deps                       #   then call it (tools/serve.sh, tools/test.sh)
#
# When everything is already installed it prints nothing and never calls apt-get.
# Otherwise it prints one "ckpt: ..." line per action, then apt-get's own output.

# Everything the WORKSPACE, the BUILD files and the Python tests rely on.
CKPT_DEBIAN_PACKAGES=(
  bazel-bootstrap          # Bazel 4.2.3 itself
  bazel-platforms          # @platforms       (WORKSPACE local_repository)
  bazel-skylib             # @bazel_skylib    (WORKSPACE local_repository)
  bazel-rules-java         # @rules_java      (WORKSPACE local_repository)
  libgrpc++-dev            # gRPC C++ runtime and headers
  protobuf-compiler-grpc   # grpc_cpp_plugin for protoc
  libprotobuf-dev          # protobuf C++ runtime and headers
  protobuf-compiler        # protoc
  libabsl-dev              # Abseil
  librocksdb-dev           # storage engine
  grpc-proto               # grpc/health/v1/health.proto (@grpc_proto_files)
  python3-grpcio           # Python client and tests
  python3-protobuf         # Python client and tests
  mypy-protobuf            # the Python SDK's typed message stubs (protoc-gen-mypy)
  mypy                     # mypy --strict on the Python SDK (typecheck_test)
  python3-setuptools       # the Python SDK's build backend (pyproject.toml)
  python3-wheel            # ... and its wheels
  python3-build            # python3 -m build --no-isolation (package_test)
  python3-venv             # fresh venvs to install the package into (package_test)
  python3-pip              # pip install inside them
  libgtest-dev             # GoogleTest
  libgmock-dev             # GoogleMock
  libbenchmark-dev         # Google Benchmark
  libsqlite3-dev           # SQLite
  libssl-dev               # SHA-256 of job configs and tokens (libcrypto); TLS for HTTP
  openssl                  # the TLS tests make their CA and certificates at test time
  libcpp-httplib-dev       # ckptd's HTTP listener: /metrics, /api/v1, the dashboard
  libpq-dev                # PostgreSQL's C client: ckptd's PostgreSQL store
  postgresql-15            # PostgreSQL server: the tests and the bench start their own
  postgresql-client-15     # psql, for people running ckptd on PostgreSQL (and tools/cluster)
  etcd-server              # tools/cluster: Patroni's DCS (the fault suite of tools/test.sh)
  patroni                  # tools/cluster: PostgreSQL made highly available
  curl                     # tools/cluster: asks etcd and Patroni how they are
  prometheus               # promtool and a real Prometheus server (tests/server)
  chromium                 # the dashboard's browser test (tests/web), headless
  clang                    # the fuzz build (--config=fuzz): libFuzzer needs clang
  libclang-rt-14-dev       # libFuzzer, ASan and UBSan runtimes for clang 14
  e2fsprogs                # mkfs.ext4: the disk-full test's small ext4 file system
  mount                    # mount -o loop: ... mounted on a loop device
)

# Not from Debian: Node.js (>= 20) and npm, for the browser test's playwright-core
# (tests/web; Debian 12's nodejs is 18). They come with the machine; tools/test.sh says
# so plainly if they are missing.

# Prints the names of the packages in CKPT_DEBIAN_PACKAGES that are not installed.
ckpt_missing_packages() {
  local pkg status
  for pkg in "${CKPT_DEBIAN_PACKAGES[@]}"; do
    # dpkg-query fails (and prints to stderr) for a package it has never heard of;
    # that simply means "missing".
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    if [[ "$status" != "install ok installed" ]]; then
      printf '%s\n' "$pkg"
    fi
  done
}

# Installs the missing packages, if any. Returns non-zero if it cannot.
ckpt_install_deps() {
  if ! command -v dpkg-query >/dev/null 2>&1; then
    echo "ckpt: dpkg-query not found; ckpt needs a Debian/Ubuntu system (see tools/install_deps.sh)" >&2
    return 1
  fi

  local missing=()
  mapfile -t missing < <(ckpt_missing_packages)
  if (( ${#missing[@]} == 0 )); then
    return 0
  fi

  # Root runs apt-get directly; anyone else needs sudo. sudo drops most of the
  # environment, so DEBIAN_FRONTEND is passed through env(1) instead.
  local as_root=()
  if (( EUID != 0 )); then
    if ! command -v sudo >/dev/null 2>&1; then
      echo "ckpt: missing packages and not root (no sudo available): ${missing[*]}" >&2
      return 1
    fi
    as_root=(sudo)
  fi

  echo "ckpt: installing ${#missing[@]} missing packages: ${missing[*]}"
  "${as_root[@]}" apt-get update || return 1
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y --no-install-recommends "${missing[@]}" || return 1
}

# Run directly (not sourced): strict mode applies to this process only, so sourcing
# the file never changes the options of the caller's shell.
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  set -euo pipefail
  ckpt_install_deps
fi
