"""ckpt.Worker against a real ckptd: leasing, failures, PAUSE, STOP, lost leases.

Every wait here is on an event the worker reports (on_event) or on a thread's end,
never on a timer; the timeouts on those waits only keep a broken build from hanging.
"""

import collections
import dataclasses
import logging
import queue
import threading
import unittest

import grpc

import ckpt
from ckpt._item_core import Leased, leased_items
from ckpt._program import Attempt
from ckpt.v1 import checkpoint_pb2 as pb
from ckptd_process import CkptdTestCase, run_in_thread

WAIT = 120  # seconds: a hang guard, not a measurement


class Events:
    """Collects a worker's on_event calls; next() waits for the next matching one."""

    def __init__(self):
        self._queue = queue.Queue()

    def __call__(self, kind, info):
        self._queue.put((kind, info))

    def drain(self):
        """Forgets the events so far."""
        while not self._queue.empty():
            self._queue.get_nowait()

    def next(self, kind, **match):
        while True:
            got_kind, info = self._queue.get(timeout=WAIT)
            if got_kind == kind and all(info.get(k) == v for k, v in match.items()):
                return info


class LosesFirstLeaseAnswer(ckpt.Client):
    """A Client whose first LeaseItems is applied by ckptd but its answer lost."""

    lost_one = False

    def _perform(self, op):
        answer = super()._perform(op)
        if isinstance(op, Attempt) and op.method == "LeaseItems" and not self.lost_one:
            self.lost_one = True
            raise ckpt.DeadlineExceededError(grpc.StatusCode.DEADLINE_EXCEEDED,
                                             "answer lost", method=op.method,
                                             maybe_applied=True)
        return answer


class Wire(ckpt.Client):
    """A Client that counts the attempts of each method as sent. It can play a ckptd
    that predates lease_next (the field is dropped before sending, as such a ckptd
    ignores it), or lose the first answer to a CompleteItems with lease_next after
    ckptd applied it. It counts the calls that asked for packed leases, and can play a
    ckptd that predates them (`packed` cleared, as such a ckptd ignores it)."""

    def __init__(self, *args, drop_lease_next=False, lose_first_lease_next=False,
                 drop_packed=False, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls = collections.Counter()
        self.drop_lease_next = drop_lease_next
        self.lose_first_lease_next = lose_first_lease_next
        self.drop_packed = drop_packed
        self._lock = threading.Lock()

    @staticmethod
    def _packed_field(request):
        """The message whose `packed` asks for packed leases, if the request has one."""
        if isinstance(request, pb.LeaseItemsRequest):
            return request
        if isinstance(request, pb.CompleteItemsRequest) and request.HasField("lease_next"):
            return request.lease_next
        return None

    @staticmethod
    def leases_next(op):
        return (isinstance(op, Attempt) and op.method == "CompleteItems"
                and op.request.HasField("lease_next"))

    def _sent(self, op):
        if not isinstance(op, Attempt):
            return op
        asks = self._packed_field(op.request)
        with self._lock:
            self.calls[op.method] += 1
            if asks is not None:
                self.calls["lease asked"] += 1
                if asks.packed and not self.drop_packed:
                    self.calls["packed"] += 1
        if (self.drop_lease_next and self.leases_next(op)) or (self.drop_packed and asks):
            request = type(op.request)()
            request.CopyFrom(op.request)
            if self.drop_lease_next and self.leases_next(op):
                request.ClearField("lease_next")
            elif self.drop_packed:
                self._packed_field(request).packed = False
            op = dataclasses.replace(op, request=request)
        return op

    def _perform(self, op):
        leases_next = self.leases_next(op)
        answer = super()._perform(self._sent(op))
        if leases_next and self.lose_first_lease_next:
            self.lose_first_lease_next = False
            raise ckpt.DeadlineExceededError(grpc.StatusCode.DEADLINE_EXCEEDED,
                                             "answer lost", method=op.method,
                                             maybe_applied=True)
        return answer

    def _start(self, op):
        return super()._start(self._sent(op))


class RecordsRetryPolicies(ckpt.Client):
    """A Client that notes the retry policy each call was given, by method."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.policies = collections.defaultdict(list)
        real_call = self._core.call

        def call(method, request, **options):
            self.policies[method].append(options.get("retry"))
            return real_call(method, request, **options)
        self._core.call = call


class WorkerTest(CkptdTestCase):

    def item(self, job, key):
        return self.client.call("GetItem", job_id=job.job_id, key=ckpt.pb.ItemKey(index=key)).item

    def workers(self, job):
        return self.client.call("ListWorkers", job_id=job.job_id, include_exited=True).workers

    def test_several_workers_process_every_item_exactly_once(self):
        job = self.new_job(items=200)
        seen = []
        lock = threading.Lock()

        def work():
            with job.worker(lease_batch=5, complete_batch=8) as worker:
                for item in worker:
                    with item:
                        with lock:
                            seen.append((item.key, item.attempt))
        joins = [run_in_thread(work) for _ in range(4)]
        for join in joins:
            join()

        self.assertEqual(sorted(key for key, _ in seen), list(range(200)))
        self.assertEqual({attempt for _, attempt in seen}, {1})
        info = job.info()
        self.assertEqual(info.status, pb.JOB_STATUS_COMPLETED)
        self.assertEqual(info.progress.completed, 200)
        workers = self.workers(job)
        self.assertEqual(len(workers), 4)
        self.assertEqual({w.state for w in workers}, {pb.WORKER_STATE_EXITED})
        self.assertEqual(sum(w.completed for w in workers), 200)

    def test_a_raising_body_fails_the_item_with_the_exceptions_text(self):
        job = self.new_job(items=3, max_attempts=2)
        tries = collections.Counter()
        with job.worker() as worker:
            for item in worker:
                with item:
                    tries[item.key] += 1
                    if item.key == 1:
                        raise ValueError("corrupt header in 1")

        # Retryable by default: tried max_attempts times, then FAILED with the text.
        self.assertEqual(tries, {0: 1, 1: 2, 2: 1})
        failed = self.item(job, 1)
        self.assertEqual(failed.state, pb.ITEM_STATE_FAILED)
        self.assertEqual(failed.attempts, 2)
        self.assertEqual(failed.last_error.message, "ValueError: corrupt header in 1")
        self.assertEqual(job.info().status, pb.JOB_STATUS_FAILED)
        self.assertEqual(job.failed_indices, {1: "ValueError: corrupt header in 1"})

    def test_raise_errors_fails_the_item_and_ends_the_loop(self):
        job = self.new_job(items=3)
        with self.assertRaises(KeyError):
            with job.worker(raise_errors=True, retry_failures=False) as worker:
                for item in worker:
                    with item:
                        raise KeyError("missing column")
        self.assertEqual(self.item(job, 0).state, pb.ITEM_STATE_FAILED)
        self.assertEqual(self.item(job, 0).last_error.message, "KeyError: 'missing column'")
        # The worker unregistered: nothing is left leased.
        self.assertEqual(job.info().progress.leased, 0)
        self.assertEqual([w.state for w in self.workers(job)], [pb.WORKER_STATE_EXITED])

    def test_pause_stops_leasing_while_heartbeating_and_resume_finishes(self):
        job = self.new_job(items=4)
        events = Events()
        in_first_item = threading.Event()
        release = threading.Event()
        processed = []

        def work():
            with job.worker(lease_batch=1, heartbeat_interval=0.05, on_event=events) as worker:
                for item in worker:
                    with item:
                        processed.append(item.key)
                        if item.key == 0:
                            in_first_item.set()
                            release.wait(timeout=WAIT)
        join = run_in_thread(work)
        self.assertTrue(in_first_item.wait(timeout=WAIT))
        job.pause("maintenance")
        release.set()  # the item in hand still finishes

        events.next("waiting", reason="paused")
        # Paused: it keeps heartbeating and is told PAUSE, and leases nothing.
        events.next("heartbeat", control="CONTROL_WORD_PAUSE")
        events.next("heartbeat", control="CONTROL_WORD_PAUSE")
        self.assertEqual(processed, [0])
        self.assertTrue(job.is_completed(0))
        self.assertEqual(job.remaining_indices(), [1, 2, 3])
        self.assertEqual(job.info().progress.leased, 0)
        self.assertEqual([w.state for w in self.workers(job)], [pb.WORKER_STATE_ACTIVE])

        job.resume()
        join()
        self.assertEqual(processed, [0, 1, 2, 3])
        self.assertEqual(job.info().status, pb.JOB_STATUS_COMPLETED)

    def test_stop_ends_the_loop_after_the_current_item(self):
        job = self.new_job(items=5)
        processed = []
        with job.worker(lease_batch=1) as worker:
            for item in worker:
                with item:
                    processed.append(item.key)
                    job.stop("enough")
        self.assertEqual(processed, [0])
        self.assertTrue(job.is_completed(0))  # a held lease may finish after STOP
        self.assertEqual(job.remaining_indices(), [1, 2, 3, 4])
        self.assertEqual(job.info().status, pb.JOB_STATUS_STOPPED)

    def test_stop_from_a_heartbeat_leaves_the_rest_of_the_batch(self):
        job = self.new_job(items=5)
        events = Events()
        processed = []
        with job.worker(lease_batch=3, heartbeat_interval=0.05, on_event=events) as worker:
            for item in worker:
                with item:
                    processed.append(item.key)
                    job.stop("enough")
                    events.next("heartbeat", control="CONTROL_WORD_STOP")
        self.assertEqual(processed, [0])
        # Items 1 and 2 were leased but never started: returned, no attempt counted.
        self.assertEqual(job.remaining_indices(), [1, 2, 3, 4])
        self.assertEqual(job.info().progress.leased, 0)
        self.assertEqual(self.item(job, 1).attempts, 0)

    def test_a_lost_lease_is_not_completed(self):
        job = self.new_job(items=1)
        events = Events()
        tries = []
        with job.worker(heartbeat_interval=0.05, on_event=events) as worker:
            for item in worker:
                with item:
                    tries.append(item.lease_token)
                    if len(tries) == 1:
                        job.reset_index(0)  # revokes the lease
                        events.next("lease_lost", key=0)
                        self.assertTrue(item.lost)
        self.assertEqual(len(tries), 2)
        self.assertNotEqual(tries[0], tries[1])
        self.assertEqual(job.info().progress.completed, 1)
        self.assertEqual(sum(w.completed for w in self.workers(job)), 1)

    def test_an_unregistered_worker_registers_again(self):
        job = self.new_job(items=2)
        events = Events()
        processed = collections.Counter()
        first_id = []
        with job.worker(lease_batch=1, heartbeat_interval=0.05, on_event=events) as worker:
            for item in worker:
                with item:
                    processed[item.key] += 1
                    if not first_id:
                        first_id.append(worker.worker_id)
                        # As if ckptd had declared it lost: its calls are refused.
                        self.client.call("UnregisterWorker", job_id=job.job_id,
                                         worker_id=worker.worker_id)
                        # A heartbeat finds out while the body still runs; the loop
                        # registers again at its next lease.
                        events.next("registration_lost", worker_id=first_id[0])
        events.next("reregistered", old=first_id[0])
        self.assertNotEqual(worker.worker_id, first_id[0])
        # The first item's lease was returned by the unregister, so its completion
        # was dropped and the item done again under the new registration.
        self.assertEqual(processed, {0: 2, 1: 1})
        self.assertEqual(job.info().status, pb.JOB_STATUS_COMPLETED)

    def test_leases_granted_with_a_lost_answer_are_returned(self):
        job = self.new_job(items=3)
        client = LosesFirstLeaseAnswer(self.ckptd.address)
        events = Events()
        processed = []
        join = run_in_thread(lambda: processed.extend(
            (item.key, item.attempt)
            for item in ckpt.Worker(client, job.job_id, lease_batch=2, on_event=events)))
        # Items 0 and 1 were leased unseen. Unregistering returned them without
        # counting an attempt, or this worker would wait for them forever.
        reregistered = events.next("reregistered")
        self.assertIn("LeaseItems", reregistered["reason"])
        join()
        self.assertEqual(sorted(processed), [(0, 1), (1, 1), (2, 1)])
        self.assertEqual(job.info().status, pb.JOB_STATUS_COMPLETED)
        client.close()

    def run_worker(self, job, client, **options):
        """Every key the loop body got, in order, with a Worker of `client` on `job`."""
        processed = []
        with ckpt.Worker(client, job.job_id, **options) as worker:
            for item in worker:
                with item:
                    processed.append(item.key)
        return processed

    def test_each_batch_is_leased_with_the_completions_of_the_last(self):
        # Waiting for each call; pipelined; and pipelined with the completions due just
        # before the half of each batch (they carry its lease a little early).
        variants = ({"max_in_flight": 0}, {}, {"complete_batch": 16})
        for n, options in enumerate(variants):
            with self.subTest(**options):
                job = self.client.create_job(f"{self.job_id()}-{n}")
                job.add_items(range(64), seal=True)
                client = Wire(self.ckptd.address)
                self.assertEqual(self.run_worker(job, client, lease_batch=16, **options),
                                 list(range(64)))
                # Only the first batch is leased on its own; the last completions learn
                # that the job is finished.
                self.assertEqual(client.calls["LeaseItems"], 1)
                self.assertEqual(job.info().status, pb.JOB_STATUS_COMPLETED)
                client.close()

    def test_leases_come_packed_and_from_a_ckptd_that_predates_them_unpacked(self):
        for n, drop_packed in enumerate((False, True)):
            with self.subTest(drop_packed=drop_packed):
                job = self.client.create_job(f"{self.job_id()}-{n}")
                job.add_items(range(64), seal=True)
                client = Wire(self.ckptd.address, drop_packed=drop_packed)
                self.assertEqual(self.run_worker(job, client, lease_batch=16), list(range(64)))
                # Every lease was asked for packed (a run per batch), unless cleared.
                self.assertGreater(client.calls["lease asked"], 1)
                self.assertEqual(client.calls["packed"],
                                 0 if drop_packed else client.calls["lease asked"])
                self.assertEqual(job.info().status, pb.JOB_STATUS_COMPLETED)
                client.close()

    def test_leased_items_reads_leases_and_runs_in_hand_out_order(self):
        answer = pb.LeaseItemsResponse()
        lease = answer.leases.add(step="main", lease_token=7, attempt=2, cursor=b"row-3")
        lease.key.name = "a.txt"
        answer.lease_runs.add(step="main", first_index=40, count=3, first_lease_token=9,
                              attempt=1, token_step=2)
        later = answer.leases.add(step="main", lease_token=20, attempt=1)
        later.key.name = "b.txt"  # a name leased after the run: it comes after it
        self.assertEqual(list(leased_items(answer)), [
            Leased("a.txt", "main", 7, 2, b"row-3"),
            Leased(40, "main", 9, 1, b""),
            Leased(41, "main", 11, 1, b""),
            Leased(42, "main", 13, 1, b""),
            Leased("b.txt", "main", 20, 1, b""),
        ])

    def test_against_a_ckptd_without_lease_next_each_batch_is_leased_on_its_own(self):
        job = self.new_job(items=64)
        client = Wire(self.ckptd.address, drop_lease_next=True)
        self.assertEqual(self.run_worker(job, client, lease_batch=16, max_in_flight=0),
                         list(range(64)))
        # The first answer without a lease part turns lease_next off, and the worker
        # leases as before lease_next: four batches, one lease that finds nothing
        # pending while its own completions wait (then sent), one that finds the job
        # finished.
        self.assertEqual(client.calls["LeaseItems"], 6)
        self.assertEqual(job.info().status, pb.JOB_STATUS_COMPLETED)
        client.close()

    def test_a_lost_answer_to_completions_with_a_lease_is_sent_again_safely(self):
        job = self.new_job(items=12)
        client = Wire(self.ckptd.address, lose_first_lease_next=True)
        processed = []
        with ckpt.Worker(client, job.job_id, lease_batch=4, max_in_flight=0) as worker:
            for item in worker:
                with item:
                    processed.append(item.key)
                if len(processed) == 8:
                    # Sent again, it got the same leases back (4-7): nothing else is
                    # leased, in particular no second set held unseen.
                    progress = job.info().progress
                    self.assertEqual((progress.completed, progress.leased), (4, 4))
                    break
        self.assertFalse(client.lose_first_lease_next)
        self.assertEqual(processed, list(range(8)))
        self.assertEqual(job.info().progress.completed, 8)
        self.assertEqual({self.item(job, key).attempts for key in range(12)}, {0})
        self.assertEqual(client.calls["RegisterWorker"], 1)
        self.assertEqual(client.calls["LeaseItems"], 1)
        client.close()

    def test_close_gives_up_unregistering_within_seconds(self):
        # With ckptd gone, close() must not retry UnregisterWorker for the Client's
        # whole policy (a minute): the pipeline is exiting.
        job = self.new_job(items=1)
        client = RecordsRetryPolicies(self.ckptd.address)
        worker = ckpt.Worker(client, job.job_id)
        for item in worker:
            with item:
                pass
        worker.close()
        (policy,) = client.policies["UnregisterWorker"]
        self.assertIsNotNone(policy)
        self.assertLessEqual(policy.total_timeout, 5.0)
        client.close()

    def test_a_saved_cursor_comes_back_with_the_next_try(self):
        job = self.new_job(items=1)
        events = Events()
        seen = []
        with job.worker(heartbeat_interval=0.05, on_event=events) as worker:
            for item in worker:
                with item:
                    seen.append((item.attempt, item.cursor))
                    if item.attempt == 1:
                        item.save_cursor(b"row 41000")
                        events.drain()
                        events.next("heartbeat")  # may have started before the save
                        events.next("heartbeat")  # started after it: carried the cursor
                        raise RuntimeError("node evicted")
        self.assertEqual(seen, [(1, b""), (2, b"row 41000")])


class ItemLogsTest(CkptdTestCase):
    """What the loop body logs inside `with item:` becomes the item's log."""

    def test_records_go_to_the_item_in_hand_even_with_two_workers_at_once(self):
        job = self.new_job(items=6)
        pipeline = logging.getLogger("pipeline")
        old_level = pipeline.level
        pipeline.setLevel(logging.INFO)
        self.addCleanup(pipeline.setLevel, old_level)
        barrier = threading.Barrier(2, timeout=WAIT)

        def work():
            first = True
            with ckpt.Worker(self.client, job.job_id, lease_batch=1) as worker:
                for item in worker:
                    with item:
                        pipeline.info("start %s", item.key)
                        if first:  # both workers hold an item at the same time
                            barrier.wait()
                            first = False
                        if item.key == 3:
                            try:
                                raise ValueError("bad row")
                            except ValueError:
                                pipeline.exception("row %s", item.key)
                        item.log("done", logging.DEBUG, logger="mine")
                    pipeline.warning("outside any item")  # not an item's

        joins = [run_in_thread(work), run_in_thread(work)]
        for join in joins:
            join()
        for key in range(6):
            lines = list(job.logs(key=key))
            messages = [line.entry.message for line in lines]
            self.assertEqual(messages[0], f"start {key}", messages)
            self.assertEqual(messages[-1], "done")
            self.assertTrue(all(line.key.index == key for line in lines))
            self.assertEqual(lines[0].entry.logger, "pipeline")
            self.assertEqual(lines[0].entry.level, pb.LOG_LEVEL_INFO)
            self.assertEqual(lines[-1].entry.level, pb.LOG_LEVEL_DEBUG)
            self.assertTrue(lines[0].worker_id.startswith("w-"))
            if key == 3:
                self.assertEqual(lines[1].entry.level, pb.LOG_LEVEL_ERROR)
                self.assertIn("ValueError: bad row", lines[1].entry.message)
        everything = [line.entry.message for line in job.logs()]
        self.assertNotIn("outside any item", everything)
        self.assertEqual(len(everything), 6 * 2 + 1)
        warnings = list(job.logs(min_level=logging.WARNING))
        self.assertEqual([line.key.index for line in warnings], [3])

    def test_entries_ride_with_a_heartbeat_and_record_mode_writes_its_own(self):
        job = self.new_job(items=1)
        events = Events()
        logged = threading.Event()
        heard = threading.Event()

        def body(worker):
            for item in worker:
                with item:
                    item.log("halfway")
                    logged.set()
                    heard.wait(WAIT)  # the heartbeat carries it before the completion

        with ckpt.Worker(self.client, job.job_id, heartbeat_interval=0.2,
                         on_event=events) as worker:
            join = run_in_thread(lambda: body(worker))
            logged.wait(WAIT)
            events.drain()
            events.next("heartbeat")  # may have been sent before the entry was added;
            events.next("heartbeat")  # this one was not: heartbeats go one at a time
            lines = list(job.logs(key=0))
            heard.set()
            join()
        self.assertEqual([line.entry.message for line in lines], ["halfway"])
        self.assertEqual(job.item(0).state, pb.ITEM_STATE_COMPLETED)

        job.log(0, "checked by hand", level=logging.WARNING, worker_id="ops")
        job.log(None, "run finished")
        newest = next(job.logs(newest_first=True))
        self.assertEqual(newest.entry.message, "run finished")
        self.assertFalse(newest.HasField("key"))
        by_ops = list(job.logs(worker_id="ops"))
        self.assertEqual([line.entry.level for line in by_ops], [pb.LOG_LEVEL_WARNING])


if __name__ == "__main__":
    unittest.main()
