"""Generates ckpt/v1's messages and gRPC stubs, with their type stubs, from
proto/ckpt/v1/checkpoint.proto: the one recipe, used by setup.py (the wheel), the Bazel
genrule (//client/python:checkpoint_py_gen) and generate.sh (the source tree).

    build_stubs.py --proto_root=../../proto --out=.

Needs Debian's protobuf-compiler (protoc), protobuf-compiler-grpc (grpc_python_plugin)
and mypy-protobuf (protoc-gen-mypy, protoc-gen-mypy_grpc): tools/install_deps.sh.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys

PROTO = os.path.join("ckpt", "v1", "checkpoint.proto")
OUTPUTS = [os.path.join("ckpt", "v1", name) for name in (
    "checkpoint_pb2.py", "checkpoint_pb2.pyi", "checkpoint_pb2_grpc.py",
    "checkpoint_pb2_grpc.pyi")]
_TOOLS = {
    "protoc": "protobuf-compiler",
    "grpc_python_plugin": "protobuf-compiler-grpc",
    "protoc-gen-mypy": "mypy-protobuf",
    "protoc-gen-mypy_grpc": "mypy-protobuf",
}


def _tool(name: str) -> str:
    found = shutil.which(name) or (f"/usr/bin/{name}" if os.path.exists(f"/usr/bin/{name}")
                                   else None)
    if found is None:
        sys.exit(f"ckpt: {name} not found: install Debian's {_TOOLS[name]} "
                 "(tools/install_deps.sh)")
    return found


def generate(proto_root: str, out: str) -> list[str]:
    """Writes OUTPUTS under `out` from `proto_root`/PROTO; returns their paths."""
    if not os.path.exists(os.path.join(proto_root, PROTO)):
        sys.exit(f"ckpt: {os.path.join(proto_root, PROTO)} not found")
    os.makedirs(os.path.join(out, "ckpt", "v1"), exist_ok=True)
    subprocess.run([
        _tool("protoc"), f"-I{proto_root}", "-I/usr/include",
        f"--python_out={out}", f"--grpc_python_out={out}", f"--mypy_out={out}",
        f"--mypy_grpc_out={out}",
        f"--plugin=protoc-gen-grpc_python={_tool('grpc_python_plugin')}",
        f"--plugin=protoc-gen-mypy={_tool('protoc-gen-mypy')}",
        f"--plugin=protoc-gen-mypy_grpc={_tool('protoc-gen-mypy_grpc')}",
        os.path.join(proto_root, PROTO)], check=True, stdout=subprocess.DEVNULL)
    return [os.path.join(out, path) for path in OUTPUTS]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--proto_root", required=True, help="the directory holding ckpt/v1/")
    parser.add_argument("--out", required=True, help="where ckpt/v1/ is written")
    args = parser.parse_args()
    for path in generate(args.proto_root, args.out):
        print(f"ckpt: generated {path}")


if __name__ == "__main__":
    main()
