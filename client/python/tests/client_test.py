"""ckpt.Client against a real ckptd: errors, deadlines, retries across a restart."""

import datetime
import os
import queue
import threading
import time
import unittest

import grpc

import ckpt
from ckpt import retry as retry_lib
from ckpt.v1 import checkpoint_pb2 as pb
from ckptd_process import Ckptd, CkptdTestCase, new_data_dir


class ErrorsTest(CkptdTestCase):

    def test_unknown_job_is_not_found_with_the_servers_message(self):
        with self.assertRaises(ckpt.NotFoundError) as raised:
            self.client.call("GetJob", job_id="no-such-job")
        error = raised.exception
        self.assertIsInstance(error, ckpt.CkptError)
        self.assertEqual(error.code, grpc.StatusCode.NOT_FOUND)
        self.assertEqual(error.message, 'job "no-such-job" not found')
        self.assertEqual(error.method, "GetJob")
        self.assertFalse(error.maybe_applied)
        self.assertEqual(str(error), 'NOT_FOUND: job "no-such-job" not found (GetJob)')

    def test_invalid_argument_names_the_field(self):
        with self.assertRaises(ckpt.InvalidArgumentError) as raised:
            self.client.create_job("not a valid id!")
        self.assertEqual(raised.exception.code, grpc.StatusCode.INVALID_ARGUMENT)
        self.assertTrue(raised.exception.message.startswith("job_id"), raised.exception.message)

        job = self.client.create_job(self.job_id())
        with self.assertRaises(ckpt.InvalidArgumentError) as raised:
            self.client.call("LeaseItems", job_id=job.job_id, worker_id="w-1", max_items=0)
        self.assertTrue(raised.exception.message.startswith("max_items"),
                        raised.exception.message)

    def test_a_refused_call_is_not_retried(self):
        retries = []
        client = ckpt.Client(self.ckptd.address, on_retry=lambda *args: retries.append(args))
        job = self.client.create_job(self.job_id())
        job.stop("done here")
        with self.assertRaises(ckpt.FailedPreconditionError) as raised:
            client.call("ResumeJob", job_id=job.job_id)
        self.assertIn("STOPPED", raised.exception.message)
        self.assertEqual(retries, [])
        client.close()

    def test_unknown_method_and_wrong_request_type(self):
        with self.assertRaises(ValueError):
            self.client.call("NoSuchRpc")
        with self.assertRaises(ValueError):
            self.client.call("WatchJob", job_id="x")  # streaming: use watch_job()
        with self.assertRaises(TypeError):
            self.client.call("GetJob", pb.GetItemRequest(job_id="x"))
        with self.assertRaises(TypeError):
            self.client.call("GetJob", pb.GetJobRequest(), job_id="x")

    def test_create_job_resumes_and_refuses_a_new_fingerprint(self):
        first = self.client.create_job(self.job_id(), config={"b": 2, "a": 1})
        self.assertTrue(first.created)
        again = self.client.create_job(self.job_id(), config={"a": 1, "b": 2})
        self.assertTrue(again.resumed)
        with self.assertRaises(ckpt.FailedPreconditionError) as raised:
            self.client.create_job(self.job_id(), config={"a": 2})
        self.assertIn("fingerprint", raised.exception.message)

    def test_watch_job_streams_until_the_job_completes(self):
        job = self.new_job(items=2)
        snapshots = []
        stream = self.client.watch_job(job.job_id)
        snapshots.append(next(stream))  # the job as it is, at once
        job.mark_completed(0)
        job.mark_completed(1)
        snapshots.extend(stream)  # ends after the snapshot that shows COMPLETED
        self.assertEqual(snapshots[0].status, pb.JOB_STATUS_RUNNING)
        self.assertEqual(snapshots[-1].status, pb.JOB_STATUS_COMPLETED)
        self.assertEqual(snapshots[-1].progress.completed, 2)


class BackupTest(CkptdTestCase):

    def test_backup_store_makes_a_copy_that_ckptd_serves(self):
        job = self.new_job(items=3)
        job.mark_completed(1)
        copy = os.path.join(new_data_dir(), "copy")
        answer = self.client.backup_store(copy)
        self.assertEqual(answer.dir, copy)
        self.assertGreater(answer.files, 0)
        with self.assertRaises(ckpt.FailedPreconditionError) as raised:
            self.client.backup_store(copy)
        self.assertIn("already exists", raised.exception.message)
        with self.assertRaises(ckpt.InvalidArgumentError):
            self.client.backup_store("relative/copy")

        restored = Ckptd(copy)
        restored.start()
        try:
            with ckpt.Client(restored.address) as client:
                progress = client.job(job.job_id).progress()
                self.assertEqual((progress.total, progress.completed), (3, 1))
        finally:
            restored.stop()


class RetentionAndDeleteJobsTest(CkptdTestCase):
    """A ckptd of its own: delete_jobs must not meet other classes' jobs."""

    def test_retention_is_set_at_creation_and_by_update(self):
        job = self.client.create_job(self.job_id(), retention=datetime.timedelta(days=30))
        self.assertEqual(job.info().retention.seconds, 30 * 86400)
        self.assertEqual(job.set_retention(3600).retention.seconds, 3600)
        self.assertFalse(job.set_retention(None).HasField("retention"))
        with self.assertRaises(ckpt.InvalidArgumentError) as raised:
            self.client.create_job(self.job_id() + "-bad", retention=-1)
        self.assertTrue(raised.exception.message.startswith("retention"),
                        raised.exception.message)

    def test_delete_jobs_lists_then_deletes_every_page(self):
        prefix = self.job_id()[-100:] + "-"
        for i in range(5):
            self.client.create_job(f"{prefix}{i}").finish()
        running = self.client.create_job(f"{prefix}running")

        listed = self.client.delete_jobs(job_id_prefix=prefix, dry_run=True, page_size=2)
        self.assertIsInstance(listed, ckpt.DeletedJobs)
        self.assertEqual(listed.matched, 5)
        self.assertEqual([job.job_id for job in listed.jobs], [f"{prefix}{i}" for i in range(5)])
        self.assertEqual(listed.jobs[0].status, pb.JOB_STATUS_COMPLETED)
        self.assertEqual(len(self.client.call("ListJobs", limit=1000).jobs), 6)

        deleted = self.client.delete_jobs(job_id_prefix=prefix, statuses=["completed"],
                                          finished_before=time.time() + 60, page_size=2)
        self.assertEqual(deleted.matched, 5)
        self.assertEqual(len(deleted.jobs), 5)
        for job in deleted.jobs:
            with self.assertRaises(ckpt.NotFoundError):
                self.client.call("GetJob", job_id=job.job_id)
        self.assertEqual(running.info().status, pb.JOB_STATUS_RUNNING)

        with self.assertRaises(ckpt.InvalidArgumentError) as raised:
            self.client.delete_jobs(statuses=["running"])
        self.assertIn("include_unfinished", raised.exception.message)
        with self.assertRaises(ValueError):
            self.client.delete_jobs(statuses=["done"])
        self.assertEqual(running.info().status, pb.JOB_STATUS_RUNNING)


class RetryAcrossRestartTest(unittest.TestCase):
    """A ckptd of its own, stopped and started again on the same port and data."""

    def setUp(self):
        self.ckptd = Ckptd(new_data_dir())
        self.ckptd.start()
        self.events = queue.Queue()
        self.client = ckpt.Client(
            self.ckptd.address, timeout=0.5,
            on_retry=lambda method, error, attempt, delay: self.events.put(
                (method, error.code, attempt)))
        self.client.create_job("restart", config="{}")

    def tearDown(self):
        self.client.close()
        self.ckptd.stop()

    def stop_ckptd(self):
        """Stops ckptd and returns once the client's channel has seen it go (until
        then a call could still be sent on the dead connection)."""
        gone = threading.Event()

        def on_state(state):
            if state != grpc.ChannelConnectivity.READY:
                gone.set()
        self.client.channel.subscribe(on_state)
        self.ckptd.stop()
        self.assertTrue(gone.wait(timeout=60))
        self.client.channel.unsubscribe(on_state)

    def call_in_thread(self, method, **fields):
        results = queue.Queue()

        def run():
            try:
                results.put(self.client.call(method, **fields))
            except Exception as e:  # handed to the test thread
                results.put(e)
        threading.Thread(target=run, daemon=True).start()
        return results

    def test_a_read_is_retried_until_ckptd_is_back(self):
        self.stop_ckptd()
        results = self.call_in_thread("GetJob", job_id="restart")
        # The first attempt failed while ckptd was down, and a retry is scheduled.
        method, code, attempt = self.events.get(timeout=60)
        self.assertEqual((method, attempt), ("GetJob", 1))
        self.assertIn(code, retry_lib.RETRYABLE_CODES)
        self.ckptd.start(listen=self.ckptd.address)
        response = results.get(timeout=60)
        self.assertIsInstance(response, pb.GetJobResponse)
        self.assertEqual(response.job.job_id, "restart")

    def test_a_write_that_must_not_repeat_waits_for_the_connection(self):
        self.stop_ckptd()
        results = self.call_in_thread("RegisterWorker", job_id="restart", hostname="h")
        # Attempt 0: waiting for a connection, nothing sent yet.
        self.assertEqual(self.events.get(timeout=60),
                         ("RegisterWorker", grpc.StatusCode.UNAVAILABLE, 0))
        self.ckptd.start(listen=self.ckptd.address)
        response = results.get(timeout=60)
        self.assertIsInstance(response, pb.RegisterWorkerResponse)
        workers = self.client.call("ListWorkers", job_id="restart").workers
        self.assertEqual([w.worker_id for w in workers], [response.worker_id])

    def test_a_read_gives_up_when_the_policy_says(self):
        self.stop_ckptd()
        retries = []
        client = ckpt.Client(self.ckptd.address, timeout=0.1,
                             retry=ckpt.RetryPolicy(max_attempts=3, total_timeout=60),
                             on_retry=lambda *args: retries.append(args[2]))
        with self.assertRaises(ckpt.CkptError) as raised:
            client.call("GetJob", job_id="restart")
        self.assertIn(raised.exception.code, retry_lib.RETRYABLE_CODES)
        self.assertIn("3 attempts", raised.exception.message)
        self.assertFalse(raised.exception.maybe_applied)  # a read
        self.assertEqual(retries, [1, 2])
        client.close()
        self.ckptd.start(listen=self.ckptd.address)

    def test_a_write_that_must_not_repeat_says_nothing_was_sent(self):
        self.stop_ckptd()
        client = ckpt.Client(self.ckptd.address,
                             retry=ckpt.RetryPolicy(total_timeout=0.2))
        with self.assertRaises(ckpt.UnavailableError) as raised:
            client.call("RegisterWorker", job_id="restart")
        self.assertFalse(raised.exception.maybe_applied)
        self.assertIn("nothing was sent", raised.exception.message)
        client.close()
        self.ckptd.start(listen=self.ckptd.address)


if __name__ == "__main__":
    unittest.main()
