#!/usr/bin/env bash
# Generates ckpt/v1/checkpoint_pb2.py and ckpt/v1/checkpoint_pb2_grpc.py next to the
# hand-written package, for using the SDK outside Bazel:
#
#   client/python/generate.sh
#   PYTHONPATH=client/python /usr/bin/python3 client/python/examples/pipeline.py
#
# Needs Debian's protobuf-compiler and protobuf-compiler-grpc (tools/install_deps.sh).
# The outputs are git-ignored (client/python/.gitignore); Bazel builds its own copies.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd "$here/../.." && pwd)"

/usr/bin/protoc -I"$repo_root/proto" -I/usr/include \
  --python_out="$here" \
  --grpc_python_out="$here" \
  --plugin=protoc-gen-grpc_python=/usr/bin/grpc_python_plugin \
  "$repo_root/proto/ckpt/v1/checkpoint.proto"
echo "ckpt: generated $here/ckpt/v1/checkpoint_pb2.py and checkpoint_pb2_grpc.py"
