"""setuptools' build steps for ckpt; the metadata is pyproject.toml's.

build_py also writes ckpt/v1 (messages, gRPC stubs and their type stubs) generated from
proto/ by build_stubs.py, so generated code is in every wheel and never in the source
tree. sdist carries the proto, so a wheel builds from the sdist alone. With
$CKPT_BUNDLE_CKPTD naming a ckptd binary, the wheel carries it as ckpt/_bin/ckptd (for
local: mode, ckpt/local.py) and is tagged for this platform: the Bazel target
//client/python:wheel does that.
"""

import os
import shutil
import sys

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import build_stubs  # noqa: E402  (next to this file, in the sdist too)

BUNDLE = os.environ.get("CKPT_BUNDLE_CKPTD", "")


def proto_root() -> str:
    """proto/ inside an sdist, else the repository's (client/python/../../proto)."""
    for root in (os.path.join(HERE, "proto"), os.path.join(HERE, "..", "..", "proto")):
        if os.path.exists(os.path.join(root, build_stubs.PROTO)):
            return root
    sys.exit(f"ckpt: {build_stubs.PROTO} not found next to setup.py or in ../../proto")


class BuildPy(build_py):
    def run(self) -> None:
        super().run()
        build_stubs.generate(proto_root(), self.build_lib)
        if BUNDLE:
            target = os.path.join(self.build_lib, "ckpt", "_bin", "ckptd")
            os.makedirs(os.path.dirname(target), exist_ok=True)
            shutil.copyfile(BUNDLE, target)
            os.chmod(target, 0o755)


class Sdist(sdist):
    def make_release_tree(self, base_dir: str, files: list) -> None:
        super().make_release_tree(base_dir, files)
        target = os.path.join(base_dir, "proto", build_stubs.PROTO)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copyfile(os.path.join(proto_root(), build_stubs.PROTO), target)


commands = {"build_py": BuildPy, "sdist": Sdist}
if BUNDLE:
    from wheel.bdist_wheel import bdist_wheel

    class PlatformWheel(bdist_wheel):
        """A wheel for this platform only: it carries a native ckptd."""

        def finalize_options(self) -> None:
            super().finalize_options()
            self.root_is_pure = False

        def get_tag(self) -> tuple:
            return ("py3", "none", super().get_tag()[2])

    commands["bdist_wheel"] = PlatformWheel

setup(cmdclass=commands)
