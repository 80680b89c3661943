"""A real ckptd as a child process, for the SDK's tests.

Under Bazel the binary comes from $CKPTD (set by the py_test from its data dependency);
the data directory is a fresh one under $TEST_TMPDIR. ckptd listens on 127.0.0.1:0 and
says where on stderr ("ckptd: serving on 127.0.0.1:PORT, data in DIR"), which is how
start() learns the port: it blocks until that line, never on a timer.
"""

import os
import re
import signal
import subprocess
import tempfile
import threading
import unittest

import ckpt

_SERVING = re.compile(r"^ckptd: serving on (\S+), data in ")


class Ckptd:
    """One ckptd process over one data directory. Not thread-safe."""

    def __init__(self, data_dir, binary=None):
        self.binary = binary or os.environ["CKPTD"]
        self.data_dir = data_dir
        self.address = None
        self.log = []  # every stderr line, from every start
        self._process = None
        self._drain = None

    def start(self, listen="127.0.0.1:0", flags=()):
        """Starts ckptd with `flags` added; returns its address once it serves. Raises
        if it exits."""
        self._process = subprocess.Popen(
            [self.binary, f"--listen={listen}", "--http_listen=",
             f"--data_dir={self.data_dir}", "--shutdown_grace=2s", *flags],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            text=True)
        for line in self._process.stderr:
            self.log.append(line)
            match = _SERVING.match(line)
            if match:
                self.address = match.group(1)
                break
        else:
            code = self._process.wait()
            raise RuntimeError(f"ckptd exited ({code}) before serving:\n{''.join(self.log)}")
        # Keep reading stderr so that ckptd never blocks on a full pipe.
        self._drain = threading.Thread(target=self._read_rest, args=(self._process.stderr,),
                                       daemon=True)
        self._drain.start()
        return self.address

    def stop(self):
        """SIGTERM, then waits for the process to exit; returns its exit code."""
        self._process.send_signal(signal.SIGTERM)
        code = self._process.wait()
        self._drain.join()
        self._process.stderr.close()
        return code

    def restart(self):
        """Stops ckptd and starts it again on the same address and data directory."""
        self.stop()
        return self.start(listen=self.address)

    def _read_rest(self, stream):
        for line in stream:
            self.log.append(line)


def new_data_dir():
    return tempfile.mkdtemp(prefix="ckptd-", dir=os.environ.get("TEST_TMPDIR"))


class CkptdTestCase(unittest.TestCase):
    """One ckptd and one ckpt.Client per test class; a fresh job id per test."""

    @classmethod
    def setUpClass(cls):
        cls.ckptd = Ckptd(new_data_dir())
        cls.ckptd.start()
        cls.client = ckpt.Client(cls.ckptd.address)

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        cls.ckptd.stop()

    def job_id(self):
        """A job id unique to the running test."""
        return re.sub(r"[^A-Za-z0-9._:-]", "-", self.id())[-128:]

    def new_job(self, items=0, seal=True, **create_options):
        """Creates this test's job with `items` indices [0, items), sealed."""
        job = self.client.create_job(self.job_id(), **create_options)
        if items:
            job.add_items(range(items), seal=seal)
        return job


def run_in_thread(target, wait=120):
    """Runs target() on a thread; returns a join() that re-raises its exception.

    join() waits at most `wait` seconds (a hang guard, not a measurement).
    """
    failures = []

    def run():
        try:
            target()
        except BaseException as e:  # handed to the test thread
            failures.append(e)
    thread = threading.Thread(target=run, daemon=True)
    thread.start()

    def join():
        thread.join(timeout=wait)
        if thread.is_alive():
            raise AssertionError("worker thread did not finish")
        if failures:
            raise failures[0]
    return join
