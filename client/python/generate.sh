#!/usr/bin/env bash
# Generates ckpt/v1's messages, gRPC stubs and their type stubs next to the hand-written
# package, for using the SDK from the source tree without installing it:
#
#   client/python/generate.sh
#   PYTHONPATH=client/python /usr/bin/python3 client/python/examples/pipeline.py
#
# (`pip install ./client/python` does this by itself.) The outputs are git-ignored
# (client/python/.gitignore); Bazel builds its own copies. The recipe is build_stubs.py.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
/usr/bin/python3 "$here/build_stubs.py" --proto_root="$here/../../proto" --out="$here"
