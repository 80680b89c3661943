"""Record mode, ckpt.track and the query API (physicsnemo-curator's) on a real ckptd."""

import unittest

import ckpt
from ckpt.v1 import checkpoint_pb2 as pb
from ckptd_process import CkptdTestCase


class Crash(Exception):
    """Stands for a pipeline dying in the middle of its loop."""


class RecordModeTest(CkptdTestCase):

    def test_marks_on_an_empty_job_register_the_items(self):
        job = self.client.create_job(self.job_id())
        self.assertFalse(job.is_completed(3))

        self.assertTrue(job.mark_in_progress(3))
        item = self.client.call("GetItem", job_id=job.job_id, key=pb.ItemKey(index=3)).item
        self.assertEqual(item.state, pb.ITEM_STATE_LEASED)
        self.assertFalse(job.mark_in_progress(3))  # already claimed

        self.assertTrue(job.mark_completed(3, output_paths=["/out/3.parquet"], wall_time=1.5))
        self.assertTrue(job.is_completed(3))
        self.assertFalse(job.mark_completed(3))  # the first result stands
        self.assertFalse(job.mark_in_progress(3))

        job.mark_failed(4, "corrupt header")
        job.mark_failed("doc-7.pdf", ValueError("no text layer"))
        self.assertEqual(job.failed_indices, {4: "corrupt header"})
        self.assertEqual(job.failed_keys(), {4: "corrupt header",
                                             "doc-7.pdf": "ValueError: no text layer"})
        found = self.client.call("FindOutput", output_path="/out/3.parquet")
        self.assertEqual(found.item.key.index, 3)

    def test_add_items_seals_in_its_last_call(self):
        job = self.client.create_job(self.job_id())
        calls = []
        real_perform = self.client._perform

        def counting_perform(op):
            calls.append(op.method)
            return real_perform(op)

        self.client._perform = counting_perform
        self.assertEqual(job.add_items(["a", "b", 7], seal=True), (3, 0))
        self.assertEqual(calls, ["AddItems"])  # no separate UpdateJob to seal
        self.assertTrue(job.info().sealed)
        # A resubmission of what is registered is fine on a sealed job; new items are not.
        self.assertEqual(job.add_items(["a", 7], seal=True), (0, 2))
        with self.assertRaises(ckpt.FailedPreconditionError):
            job.add_items(["c"])
        self.client._perform = real_perform

    def test_add_items_of_nothing_with_seal_seals(self):
        job = self.client.create_job(self.job_id())
        self.assertEqual(job.add_items([], seal=True), (0, 0))
        self.assertTrue(job.info().sealed)

    def test_is_completed_of_an_unknown_job_raises(self):
        with self.assertRaises(ckpt.NotFoundError):
            self.client.job("no-such-job").is_completed(0)

    def test_track_skips_what_is_done_across_restarts(self):
        job = self.client.create_job(self.job_id())
        processed = []

        def run(crash_at=None):
            for i in ckpt.track(range(10), job=job.job_id, client=self.client):
                if i == crash_at:
                    raise Crash()
                processed.append(i)

        with self.assertRaises(Crash):
            run(crash_at=5)
        self.assertEqual(processed, [0, 1, 2, 3, 4])
        # The range was registered up front: the total is known from the start.
        self.assertEqual(job.summary()["total"], 10)
        self.assertEqual(job.completed_indices, {0, 1, 2, 3, 4})

        # ckptd restarts too; what was recorded is on disk.
        self.ckptd.restart()
        processed.clear()
        run()
        self.assertEqual(processed, [5, 6, 7, 8, 9])

        processed.clear()
        run()
        self.assertEqual(processed, [])
        self.assertEqual(job.completed_indices, set(range(10)))

    def test_track_records_the_failures_it_is_told(self):
        job = self.client.create_job(self.job_id())
        tracker = ckpt.track(range(4), job=job)
        for i in tracker:
            if i == 2:
                tracker.fail(OSError("disk full"))
        self.assertEqual(job.completed_indices, {0, 1, 3})
        self.assertEqual(job.failed_indices, {2: "OSError: disk full"})
        # The next run does exactly the failed one.
        self.assertEqual(list(ckpt.track(range(4), job=job)), [2])
        self.assertEqual(job.completed_indices, {0, 1, 2, 3})

    def test_track_with_named_keys_and_a_generator(self):
        job = self.client.create_job(self.job_id())
        docs = ["a.pdf", "b.pdf", "c.pdf"]
        first = []
        for doc in ckpt.track((d for d in docs), job=job, key=lambda d: d):
            first.append(doc)
            if doc == "b.pdf":
                break  # the element in hand is not recorded
        self.assertEqual(first, ["a.pdf", "b.pdf"])
        self.assertEqual(job.completed_keys(), {"a.pdf"})
        again = list(ckpt.track(docs, job=job, key=lambda d: d, seal=True))
        self.assertEqual(again, ["b.pdf", "c.pdf"])
        self.assertEqual(job.info().status, pb.JOB_STATUS_COMPLETED)


class QueryApiTest(CkptdTestCase):

    def test_query_api_values(self):
        job = self.new_job(items=10)
        for i in (0, 1, 2):
            job.mark_completed(i, wall_time=0.2 * (i + 1))  # 200, 400, 600 ms
        job.mark_failed(3, "disk full")
        job.mark_failed(5, "disk full")
        job.mark_failed(6, "timeout")
        self.assertTrue(job.mark_in_progress(4))
        worker = self.client.call("RegisterWorker", job_id=job.job_id, hostname="h")

        self.assertEqual(job.completed_indices, {0, 1, 2})
        self.assertEqual(job.failed_indices, {3: "disk full", 5: "disk full", 6: "timeout"})
        self.assertEqual(job.remaining_indices(), [4, 7, 8, 9])
        self.assertEqual(job.active_workers, 1)
        summary = job.summary()
        self.assertEqual({k: summary[k] for k in
                          ("total", "completed", "failed", "remaining", "errors", "workers")},
                         {"total": 10, "completed": 3, "failed": 3, "remaining": 4,
                          "errors": {"disk full": 2, "timeout": 1}, "workers": 1})
        self.assertAlmostEqual(summary["avg_time_ms"], 400.0, places=3)
        self.assertGreater(summary["elapsed"], 0.0)
        self.assertEqual(summary["status"], "RUNNING")
        self.assertAlmostEqual(summary["percent"], 60.0)

        self.assertEqual(job.reset_index(3), 1)
        self.assertEqual(job.failed_indices, {5: "disk full", 6: "timeout"})
        self.assertEqual(job.remaining_indices(), [3, 4, 7, 8, 9])

        job.reset()
        self.assertEqual(job.completed_indices, set())
        self.assertEqual(job.failed_indices, {})
        self.assertEqual(job.remaining_indices(), list(range(10)))
        self.client.call("UnregisterWorker", job_id=job.job_id, worker_id=worker.worker_id)

    def test_a_step_handle_reads_its_own_step(self):
        self.client.create_job(self.job_id(), steps=["extract", "embed"])
        extract = self.client.job(self.job_id(), step="extract")
        embed = self.client.job(self.job_id(), step="embed")
        extract.add_items(range(4))
        embed.add_items([0, 1])
        extract.mark_completed(2)
        self.assertEqual(extract.remaining_indices(), [0, 1, 3])
        self.assertEqual(embed.remaining_indices(), [0, 1])
        self.assertEqual(embed.summary()["total"], 2)
        self.assertEqual(extract.summary()["completed"], 1)
        self.assertEqual(embed.reset_index(0), 0)  # never tried: nothing to reset


class HistoryTest(CkptdTestCase):
    """Who did what, and resuming a run that failed."""

    def test_items_say_which_worker_completed_or_failed_them(self):
        job = self.new_job(items=3)
        job.mark_completed(0, worker_id="host-a:17")
        job.mark_failed(1, "timeout", worker_id="host-b:3")
        self.assertEqual(job.item(0).worker_id, "host-a:17")
        self.assertEqual(job.item(1).worker_id, "host-b:3")
        self.assertEqual(job.item(1).last_error.worker_id, "host-b:3")
        self.assertEqual(job.item(2).worker_id, "")

    def test_a_budget_failed_run_resumes_once_its_budget_is_raised(self):
        job = self.client.create_job(self.job_id(), max_failed_items=1)
        job.add_items(range(10))
        job.mark_completed(0)
        job.mark_failed(1, "bad input")
        job.mark_failed(2, "bad input")
        job.client.call("PutState", job_id=job.job_id, name="cursor", value=b"msg-4411")
        self.assertEqual(job.info().status, pb.JOB_STATUS_FAILED)
        with self.assertRaisesRegex(ckpt.FailedPreconditionError, "raise the budget"):
            job.resume()
        job.set_failure_budget(max_failed_items=5)
        self.assertEqual(job.resume().status, pb.JOB_STATUS_RUNNING)
        self.assertEqual(job.completed_indices, {0})
        self.assertEqual(job.failed_indices, {1: "bad input", 2: "bad input"})
        state = self.client.call("GetState", job_id=job.job_id, name="cursor").state
        self.assertEqual(state.value, b"msg-4411")


class CompletionsTest(CkptdTestCase):
    """Recent progress that survives a restart."""

    def test_completed_items_by_time_across_a_restart(self):
        job = self.new_job(items=6)
        for i in (4, 1, 3):
            job.mark_completed(i)
        first_look = [item.key.index for item in job.completed_items()]
        self.assertEqual(first_look, [4, 1, 3])
        since = job.item(3).update_time  # a monitor's last look
        job.mark_completed(0)
        self.ckptd.restart()
        self.assertEqual([i.key.index for i in job.completed_items(after=since)], [0])
        self.assertEqual([i.key.index for i in job.completed_items(newest_first=True)],
                         [0, 3, 1, 4])
        recent = self.client.call("GetJob", job_id=job.job_id).recent_completions
        self.assertEqual([c.key.index for c in recent], [0, 3, 1, 4])


if __name__ == "__main__":
    unittest.main()
