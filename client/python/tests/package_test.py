"""The SDK as a package, as a new user gets it: a wheel and an sdist built offline
(`python3 -m build --no-isolation`), the generated code built into them, each installed
into a fresh venv (`--system-site-packages`: grpcio and protobuf are Debian's) with
`pip install --no-index`, and then used against a real ckptd, over local: (nothing else
to start, as the README's quick start) and over TCP."""

import glob
import os
import shutil
import subprocess
import sys
import tempfile
import unittest
import zipfile

from ckptd_process import Ckptd, new_data_dir

# Run by the venv's Python, outside the source tree: the installed package only.
USE_IT = r"""
import asyncio, os, sys
import ckpt, ckpt.aio
from ckpt.v1 import checkpoint_pb2
assert ckpt.__file__.startswith(sys.prefix), ckpt.__file__
here = os.path.dirname(ckpt.__file__)
for typed in ("py.typed", "v1/checkpoint_pb2.pyi", "v1/checkpoint_pb2_grpc.pyi"):
    assert os.path.exists(os.path.join(here, typed)), typed
with ckpt.Client(sys.argv[1]) as client:
    job = client.create_job("installed")
    job.add_items(range(20), seal=True)
    for item in job.worker():
        with item:
            pass
    assert job.summary()["completed"] == 20, job.summary()

async def main():
    async with ckpt.aio.Client(sys.argv[1]) as client:
        job = await client.create_job("installed-aio")
        async for i in ckpt.aio.track(range(5), job=job):
            pass
        assert (await job.summary())["completed"] == 5
asyncio.run(main())
print("ok")
"""


def clean_env():
    """The environment without Bazel's PYTHONPATH, so only the venv's packages count;
    $CKPTD made absolute, since the venv's processes run elsewhere."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONSAFEPATH")}
    env["CKPTD"] = os.path.abspath(os.environ["CKPTD"])
    return env


def run(args, **kwargs):
    result = subprocess.run(args, env=kwargs.pop("env", clean_env()), capture_output=True,
                            text=True, check=False, **kwargs)
    if result.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited {result.returncode}:\n"
                             f"{result.stdout}\n{result.stderr}")
    return result.stdout


class PackageTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.work = tempfile.mkdtemp(prefix="package-", dir=os.environ.get("TEST_TMPDIR"))
        here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        cls.source = os.path.join(cls.work, "client", "python")
        # A copy as a fresh clone has it: symlinks resolved, nothing generated.
        shutil.copytree(here, cls.source, ignore=shutil.ignore_patterns(
            "*_pb2.py", "*_pb2_grpc.py", "*_pb2.pyi", "*_pb2_grpc.pyi", "tests", "typings",
            "__pycache__", "build", "dist", "*.egg-info"))
        proto = os.path.join(here, "..", "..", "proto", "ckpt", "v1", "checkpoint.proto")
        os.makedirs(os.path.join(cls.work, "proto", "ckpt", "v1"))
        shutil.copyfile(proto, os.path.join(cls.work, "proto", "ckpt", "v1", "checkpoint.proto"))
        cls.ckptd = Ckptd(new_data_dir())
        cls.ckptd.start()

    @classmethod
    def tearDownClass(cls):
        cls.ckptd.stop()

    def venv(self):
        path = tempfile.mkdtemp(prefix="venv-", dir=self.work)
        run(["/usr/bin/python3", "-m", "venv", "--system-site-packages", path])
        return os.path.join(path, "bin", "python")

    def use(self, python):
        """The installed package against ckptd over TCP and over local:."""
        outside = tempfile.mkdtemp(prefix="user-", dir=self.work)
        script = os.path.join(outside, "use_it.py")
        with open(script, "w", encoding="utf-8") as f:
            f.write(USE_IT)
        self.assertIn("ok", run([python, script, self.ckptd.address], cwd=outside))
        data = os.path.join(outside, "ckpt-data")
        self.assertIn("ok", run([python, script, f"local:{data}"], cwd=outside))
        # The README's quick start: the example against local:, nothing else started.
        example = os.path.join(self.source, "examples", "pipeline.py")
        out = run([python, example, "--address", f"local:{data}", "--items", "30"],
                  cwd=outside)
        self.assertIn("30 completed", out)
        run([python, "-c", "import sys, ckpt.local as l; l.LocalServer(sys.argv[1]).stop()",
             data], cwd=outside)

    def test_wheel_and_sdist_build_offline_and_install(self):
        dist = os.path.join(self.work, "dist")
        run(["/usr/bin/python3", "-m", "build", "--no-isolation", "--outdir", dist,
             self.source])
        (wheel,) = glob.glob(os.path.join(dist, "ckpt-*-py3-none-any.whl"))
        (sdist,) = glob.glob(os.path.join(dist, "ckpt-*.tar.gz"))
        with zipfile.ZipFile(wheel) as archive:
            names = set(archive.namelist())
        for name in ("ckpt/py.typed", "ckpt/v1/checkpoint_pb2.py", "ckpt/v1/checkpoint_pb2.pyi",
                     "ckpt/v1/checkpoint_pb2_grpc.py", "ckpt/aio/worker.py", "ckpt/local.py"):
            self.assertIn(name, names)
        python = self.venv()
        run([python, "-m", "pip", "install", "--no-index", "--no-build-isolation", wheel])
        self.use(python)
        # The sdist carries the proto: it builds (and installs) on its own.
        python = self.venv()
        run([python, "-m", "pip", "install", "--no-index", "--no-build-isolation", sdist])
        self.use(python)

    def test_the_bazel_wheel_carries_ckptd_for_local_mode(self):
        here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        (wheel,) = glob.glob(os.path.join(here, "ckpt-*-py3-none-linux_x86_64.whl"))
        with zipfile.ZipFile(wheel) as archive:
            self.assertTrue(any(name.endswith("ckpt/_bin/ckptd") for name in archive.namelist()))
        python = self.venv()
        run([python, "-m", "pip", "install", "--no-index", "--no-build-isolation", wheel])
        outside = tempfile.mkdtemp(prefix="user-", dir=self.work)
        script = os.path.join(outside, "use_it.py")
        with open(script, "w", encoding="utf-8") as f:
            f.write(USE_IT)
        # No $CKPTD and no ckptd on the PATH: only the wheel's.
        env = clean_env()
        del env["CKPTD"]
        env["PATH"] = "/usr/bin:/bin"
        data = os.path.join(outside, "ckpt-data")
        self.assertIn("ok", run([python, script, f"local:{data}"], cwd=outside, env=env))
        run([python, "-c", "import sys, ckpt.local as l; l.LocalServer(sys.argv[1]).stop()",
             data], cwd=outside, env=env)

    def test_pip_install_of_the_source_directory(self):
        python = self.venv()
        run([python, "-m", "pip", "install", "--no-index", "--no-build-isolation",
             self.source])
        self.use(python)


if __name__ == "__main__":
    unittest.main()
