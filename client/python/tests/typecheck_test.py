"""mypy --strict (Debian's mypy, the settings of pyproject.toml) is clean on the ckpt
package, its generated ckpt.v1 stubs and the example."""

import os
import subprocess
import sys
import tempfile
import unittest


def package_dir():
    """client/python: in the test's runfiles under Bazel, else in the source tree (after
    generate.sh)."""
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class TypecheckTest(unittest.TestCase):

    def test_mypy_strict_is_clean(self):
        cache = tempfile.mkdtemp(prefix="mypy-", dir=os.environ.get("TEST_TMPDIR"))
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MYPYPATH")}
        run = subprocess.run(
            [sys.executable, "-m", "mypy", "--config-file", "pyproject.toml",
             "--cache-dir", cache, "--no-error-summary", "ckpt", "examples"],
            cwd=package_dir(), env=env, capture_output=True, text=True, check=False)
        self.assertEqual(run.returncode, 0, run.stdout + run.stderr)


if __name__ == "__main__":
    unittest.main()
