"""local: mode against the real ckptd binary ($CKPTD): one ckptd per data directory
whoever starts it, restarted when it is gone with nothing acknowledged lost, exiting by
itself when idle, and a multiprocessing pipeline on it.

Waits are on processes (pidfd: readable when the process exits), pipes and barriers,
never on timers; the timeouts only keep a broken build from hanging.
"""

import multiprocessing
import os
import re
import select
import signal
import stat
import tempfile
import unittest

import ckpt
from ckpt import local
from ckptd_process import new_data_dir

WAIT = 120  # seconds: a hang guard, not a measurement
# Long enough that no test's ckptd exits while it runs (the idle test sets its own).
OPTIONS = ckpt.LocalOptions(idle_exit=600)


def wait_for_exit(pid):
    """Returns once process `pid` (not our child) has exited."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return  # it has exited (and been reaped) already
    try:
        if not select.select([fd], [], [], WAIT)[0]:
            raise AssertionError(f"process {pid} did not exit")
    finally:
        os.close(fd)


def started(data_dir):
    """How many ckptd the local: clients started for `data_dir` (their log lines)."""
    with open(os.path.join(data_dir, local.LOG_NAME), encoding="utf-8") as log:
        return len(re.findall(r"^ckptd: serving on unix:", log.read(), re.M))


def race_to_call(address, barrier, results):
    """A child process: opens `address` when every child is ready, makes a call, and
    reports which process serves it."""
    barrier.wait(WAIT)
    with ckpt.Client(address, local=OPTIONS) as client:
        client.create_job("race")
        results.put(local.LocalServer(address[len("local:"):]).pid())


def pipeline_worker(address, job_id, results):
    """A child process of the pipeline: one Worker, as a curator-style script runs it."""
    with ckpt.Client(address, local=OPTIONS) as client:
        done = []
        with client.job(job_id).worker(lease_batch=8) as worker:
            for item in worker:
                with item:
                    done.append(item.key)
        results.put(done)


class LocalModeTest(unittest.TestCase):

    def setUp(self):
        self.data_dir = os.path.join(new_data_dir(), "ckpt-data")
        self.address = f"local:{self.data_dir}"
        self.server = local.LocalServer(self.data_dir)

    def tearDown(self):
        self.server.stop()

    def test_racing_processes_end_with_exactly_one_ckptd(self):
        context = multiprocessing.get_context("spawn")
        barrier = context.Barrier(8)
        results = context.Queue()
        processes = [context.Process(target=race_to_call, args=(self.address, barrier, results))
                     for _ in range(8)]
        for process in processes:
            process.start()
        pids = {results.get(timeout=WAIT) for _ in processes}
        for process in processes:
            process.join(WAIT)
            self.assertEqual(process.exitcode, 0)
        self.assertEqual(len(pids), 1)
        self.assertEqual(pids, {self.server.pid()})
        self.assertEqual(started(self.data_dir), 1)

    def test_a_killed_ckptd_is_restarted_and_nothing_acknowledged_is_lost(self):
        client = ckpt.Client(self.address, local=OPTIONS)
        job = client.create_job("kill-9")
        job.add_items(range(100), seal=True)
        acknowledged = []
        for index in range(100):
            if index == 50:
                first = self.server.pid()
                os.kill(first, signal.SIGKILL)
                wait_for_exit(first)
            if job.mark_completed(index, output_paths=[f"/out/{index}"]):
                acknowledged.append(index)
        self.assertNotEqual(self.server.pid(), first)
        self.assertEqual(started(self.data_dir), 2)
        self.assertEqual(acknowledged, list(range(100)))
        self.assertEqual(job.completed_indices, set(range(100)))
        self.assertEqual(job.info().status, ckpt.pb.JOB_STATUS_COMPLETED)
        client.close()

    def test_a_killed_ckptd_under_a_worker_loses_nothing(self):
        client = ckpt.Client(self.address, local=OPTIONS)
        job = client.create_job("kill-9-worker")
        job.add_items(range(200), seal=True)
        seen = []
        with job.worker(lease_batch=10, complete_batch=10) as worker:
            for item in worker:
                with item:
                    seen.append(item.key)
                    if len(seen) == 95:
                        pid = self.server.pid()
                        os.kill(pid, signal.SIGKILL)
                        wait_for_exit(pid)
        self.assertEqual(job.completed_indices, set(range(200)))
        self.assertEqual(set(seen), set(range(200)))
        self.assertEqual(started(self.data_dir), 2)
        client.close()

    def test_ckptd_exits_when_idle_and_the_next_call_starts_another(self):
        client = ckpt.Client(self.address, local=ckpt.LocalOptions(idle_exit=1))
        client.create_job("idle")
        pid = self.server.pid()
        wait_for_exit(pid)  # nothing calls it: it exits by itself
        with open(os.path.join(self.data_dir, local.LOG_NAME), encoding="utf-8") as log:
            self.assertIn("stopped on idle for 1s (--idle_exit)", log.read())
        self.assertIsNone(self.server.pid())
        self.assertTrue(client.job("idle").info().job_id == "idle")  # starts it again
        self.assertEqual(started(self.data_dir), 2)
        client.close()

    def test_a_removed_socket_is_created_again_by_the_ckptd_that_serves(self):
        with ckpt.Client(self.address, local=OPTIONS) as client:
            client.create_job("before-removal")
            pid = self.server.pid()
            os.unlink(self.server.socket_path)
            # A new client finds no socket and starts a ckptd, which finds the store in
            # use; the client then finds the socket the serving ckptd created again.
            with ckpt.Client(self.address, local=OPTIONS) as fresh:
                self.assertEqual(fresh.job("before-removal").info().job_id, "before-removal")
            self.assertEqual(self.server.pid(), pid)
            self.assertEqual(started(self.data_dir), 1)
            self.assertEqual(client.job("before-removal").info().job_id, "before-removal")

    def test_a_multiprocessing_pipeline_processes_every_item_once(self):
        with ckpt.Client(self.address, local=OPTIONS) as client:
            client.create_job("pipeline").add_items(range(400), seal=True)
        context = multiprocessing.get_context("spawn")
        results = context.Queue()
        processes = [context.Process(target=pipeline_worker,
                                     args=(self.address, "pipeline", results))
                     for _ in range(8)]
        for process in processes:
            process.start()
        done = [key for _ in processes for key in results.get(timeout=WAIT)]
        for process in processes:
            process.join(WAIT)
            self.assertEqual(process.exitcode, 0)
        self.assertEqual(sorted(done), list(range(400)))
        self.assertEqual(started(self.data_dir), 1)

    def test_files_are_private_and_the_socket_is_in_the_data_dir_when_it_fits(self):
        short = tempfile.mkdtemp(prefix="ckpt-", dir="/tmp")
        server = local.LocalServer(short)
        try:
            self.assertEqual(server.socket_path, os.path.join(short, local.SOCKET_NAME))
            server.ensure()
            self.assertEqual(stat.S_IMODE(os.stat(server.socket_path).st_mode), 0o600)
            self.assertEqual(stat.S_IMODE(os.stat(os.path.join(short, local.LOG_NAME))
                                          .st_mode), 0o600)
        finally:
            server.stop()

    def test_a_long_data_dir_path_gets_a_socket_in_a_private_directory(self):
        deep = os.path.join(new_data_dir(), "x" * 120)
        server = local.LocalServer(deep)
        try:
            self.assertFalse(server.socket_path.startswith(deep))
            self.assertLessEqual(len(server.socket_path), 107)
            directory = os.stat(os.path.dirname(server.socket_path))
            self.assertEqual(stat.S_IMODE(directory.st_mode), 0o700)
            with ckpt.Client(f"local:{deep}", local=OPTIONS) as client:
                self.assertTrue(client.create_job("deep").created)
        finally:
            server.stop()

    def test_a_missing_binary_says_where_it_was_looked_for(self):
        saved = {name: os.environ.pop(name, None) for name in ("CKPTD", "PATH")}
        try:
            with self.assertRaises(ckpt.UnavailableError) as raised:
                local.find_ckptd()
            self.assertIn("$CKPTD", raised.exception.message)
        finally:
            for name, value in saved.items():
                if value is not None:
                    os.environ[name] = value


if __name__ == "__main__":
    unittest.main()
