#!/usr/bin/env bash
# Builds ckptd (optimised) and runs it in the foreground. Ctrl-C stops it.
#
#   ./tools/serve.sh                                   # 127.0.0.1:7700, data in ./ckpt-data
#   ./tools/serve.sh --listen=127.0.0.1:7710 --data_dir=/tmp/x
#   ./tools/serve.sh --store=postgresql://ckpt@127.0.0.1:5433/ckpt   # README: on PostgreSQL
#
# Every argument is passed to ckptd unchanged. The script runs from the repository
# root, so ckptd's default data directory is the repository's ./ckpt-data
# (git-ignored).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

# shellcheck source=tools/install_deps.sh
source "$repo_root/tools/install_deps.sh"
ckpt_install_deps

bazel build -c opt //service/server:ckptd

# bazel-bin is a symlink to the output directory of whichever build ran last, so a
# `bazel test` started in between (default fastbuild) would repoint it. Ask Bazel
# for the opt output directory instead; fall back to the symlink if that fails.
bin_dir="$(bazel info -c opt bazel-bin 2>/dev/null)" || bin_dir="$repo_root/bazel-bin"
ckptd="$bin_dir/service/server/ckptd"
if [[ ! -x "$ckptd" ]]; then
  echo "ckpt: built ckptd not found at $ckptd" >&2
  exit 1
fi

# Describe the defaults the user did not override (ckptd's own defaults; flags may
# be spelled --flag=value, --flag value, or with a single dash).
listen_set=0
data_dir_set=0
http_set=0
http_scheme=http  # ckptd serves HTTPS only when it has a certificate
for arg in "$@"; do
  case "$arg" in
    --listen | --listen=* | -listen | -listen=*) listen_set=1 ;;
    --data_dir | --data_dir=* | -data_dir | -data_dir=*) data_dir_set=1 ;;
    --store | --store=* | -store | -store=*) data_dir_set=1 ;;
    --http_listen | --http_listen=* | -http_listen | -http_listen=*) http_set=1 ;;
    --tls_cert | --tls_cert=* | -tls_cert | -tls_cert=*) http_scheme=https ;;
  esac
done
where=()
if (( ! listen_set )); then where+=("listening on 127.0.0.1:7700"); fi
if (( ! data_dir_set )); then where+=("data in $repo_root/ckpt-data"); fi
if (( ! http_set )); then where+=("dashboard on $http_scheme://127.0.0.1:7701/"); fi
if (( ${#where[@]} == 0 )); then
  echo "ckpt: starting ckptd (Ctrl-C to stop)"
else
  joined="$(printf '%s, ' "${where[@]}")"
  echo "ckpt: starting ckptd, ${joined%, } (Ctrl-C to stop)"
fi

exec "$ckptd" "$@"
