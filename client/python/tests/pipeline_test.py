"""The Worker's pipeline against a real ckptd, blocking and asyncio: completions sent
while the loop goes on and acknowledged only once answered, a lease lost while its
completion was on its way, PAUSE and STOP with a batch leased ahead, and kill -9 with
completions in flight.

CompleteItems calls are held back here (not sent until the test releases them), so what
is in flight at each step is known, not raced; a CompleteItems that also leases the next
batch (lease_next) is not held: it is the loop's lease. Every wait is on an event, a
queue or a process's end; the timeouts only keep a broken build from hanging.
"""

import asyncio
import os
import queue
import signal
import subprocess
import sys
import threading
import unittest

import ckpt
import ckpt.aio
from ckpt._program import Attempt
from ckpt.v1 import checkpoint_pb2 as pb
from ckptd_process import CkptdTestCase, run_in_thread

WAIT = 120  # seconds: a hang guard, not a measurement


class HeldCall:
    """A grpc.Future stand-in for a CompleteItems attempt that is sent only when the
    test releases it."""

    def __init__(self, start):
        self._start = start
        self._released = threading.Event()
        self._future = None

    def release(self):
        self._future = self._start()
        self._released.set()

    def done(self):
        return self._released.is_set() and self._future.done()

    def result(self, timeout=None):
        self._released.wait(timeout=WAIT)
        return self._future.result()


def held_back(op):
    """Whether a test holds `op` back: a CompleteItems that leases nothing."""
    return (isinstance(op, Attempt) and op.method == "CompleteItems"
            and not op.request.HasField("lease_next"))


class HoldsCompletions(ckpt.Client):
    """A Client whose CompleteItems attempts sent without waiting are held (`held`),
    until release_all() lets them and every later one go."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.held = queue.Queue()
        self._lock = threading.Lock()
        self._holding = True

    def _start(self, op):
        with self._lock:
            if self._holding and held_back(op):
                call = HeldCall(lambda: super(HoldsCompletions, self)._start(op))
                self.held.put(call)
                return call
        return super()._start(op)

    def release_next(self):
        self.held.get(timeout=WAIT).release()

    def release_all(self):
        with self._lock:
            self._holding = False
        while not self.held.empty():
            self.held.get_nowait().release()


class Recorder:
    """The events a worker reports, and its loop body's progress, for another thread."""

    def __init__(self):
        self.events = queue.Queue()
        self.acknowledged = []
        self.processed = []
        self._lock = threading.Lock()
        self._reached = {}

    def __call__(self, kind, info):
        if kind == "acknowledged":
            with self._lock:
                self.acknowledged.extend(info["keys"])
        self.events.put((kind, info))

    def next(self, kind, **match):
        while True:
            got_kind, info = self.events.get(timeout=WAIT)
            if got_kind == kind and all(info.get(k) == v for k, v in match.items()):
                return info

    def body(self, key):
        with self._lock:
            self.processed.append(key)
            reached = self._reached.get(len(self.processed))
        if reached is not None:
            reached.set()

    def when_processed(self, count):
        """An Event set once the loop body has run `count` times."""
        with self._lock:
            return self._reached.setdefault(count, threading.Event())

    def acked(self):
        with self._lock:
            return list(self.acknowledged)


class PipelineTest(CkptdTestCase):

    def item(self, job, key):
        return self.client.call("GetItem", job_id=job.job_id,
                                key=ckpt.pb.ItemKey(index=key)).item

    def states(self, job, keys):
        return {key: self.item(job, key).state for key in keys}

    def start_worker(self, job, client, recorder, **options):
        def work():
            with ckpt.Worker(client, job.job_id, on_event=recorder, **options) as worker:
                for item in worker:
                    with item:
                        recorder.body(item.key)
        return run_in_thread(work)

    # The worker of the two tests below, 4 completions per call and 2 calls in flight,
    # leasing 8 at a time: the completions due once a batch is a quarter handed out, or
    # waiting at its half, go with the next batch's lease (not held back); the others
    # are plain calls, held back. Batch 0-7: 0-2 go with the lease of 8-15 (asked at
    # item 3), 3-6 are held. Batch 8-15: 7-10 go with the lease of 16-23, 11-14 are
    # held. Batch 16-23: 15-18 go with a lease that finds nothing left (its answer is
    # taken once the batch is done); at item 22 the loop has 19-22 to send and two calls
    # unanswered, and waits.
    PIPELINE = {"lease_batch": 8, "complete_batch": 4, "max_in_flight": 2}

    def test_the_loop_goes_on_while_completions_are_unanswered(self):
        job = self.new_job(items=24)
        client = HoldsCompletions(self.ckptd.address)
        recorder = Recorder()
        waits = recorder.when_processed(23)
        join = self.start_worker(job, client, recorder, **self.PIPELINE)
        self.assertTrue(waits.wait(timeout=WAIT))
        self.assertEqual(client.held.qsize(), 2)
        self.assertEqual(sorted(recorder.acked()), [0, 1, 2, 7, 8, 9, 10])
        unanswered = [3, 4, 5, 6, 11, 12, 13, 14, 19, 20, 21, 22, 23]
        self.assertEqual(set(self.states(job, unanswered).values()), {pb.ITEM_STATE_LEASED})

        client.release_next()
        recorder.next("acknowledged", keys=[3, 4, 5, 6])
        self.assertEqual(set(self.states(job, range(7)).values()), {pb.ITEM_STATE_COMPLETED})
        self.assertEqual(self.item(job, 11).state, pb.ITEM_STATE_LEASED)  # still held back
        client.release_all()
        join()
        self.assertEqual(recorder.processed, list(range(24)))
        self.assertEqual(sorted(recorder.acked()), list(range(24)))
        self.assertEqual(job.info().status, pb.JOB_STATUS_COMPLETED)
        client.close()

    def test_a_lease_lost_while_its_completion_was_held_is_dropped_and_redone(self):
        job = self.new_job(items=16)
        client = HoldsCompletions(self.ckptd.address)
        recorder = Recorder()
        four = recorder.when_processed(4)
        # Two completions per call: 0 and 1 are due before a quarter of the batch is
        # handed out, so they are a plain call, held back (2 and 3 go with a lease).
        join = self.start_worker(job, client, recorder, lease_batch=16, complete_batch=2)
        self.assertTrue(four.wait(timeout=WAIT))
        job.reset_index(1)  # revokes the lease before the completion reaches ckptd
        client.release_next()
        self.assertEqual(recorder.next("lease_lost", key=1)["reason"],
                         "lease lost before its completion was sent")
        self.assertEqual(recorder.next("acknowledged")["keys"], [0])
        client.release_all()
        join()
        # Item 1 was leased again and done once more; each item is recorded once.
        self.assertEqual(sorted(recorder.processed), sorted(list(range(16)) + [1]))
        self.assertEqual(sorted(recorder.acked()), list(range(16)))
        self.assertEqual(self.item(job, 1).state, pb.ITEM_STATE_COMPLETED)
        self.assertEqual(job.info().progress.completed, 16)
        client.close()

    def test_stop_returns_the_batch_leased_ahead(self):
        job = self.new_job(items=64)
        recorder = Recorder()
        with job.worker(lease_batch=16, heartbeat_interval=0.05,
                        on_event=recorder) as worker:
            for item in worker:
                with item:
                    recorder.body(item.key)
                    if item.key == 10:  # the next batch was asked for at item 8
                        job.stop("enough")
                        recorder.next("heartbeat", control="CONTROL_WORD_STOP")
        self.assertEqual(recorder.processed, list(range(11)))
        self.assertEqual(sorted(recorder.acked()), list(range(11)))
        self.assertEqual(job.remaining_indices(), list(range(11, 64)))
        self.assertEqual(job.info().progress.leased, 0)
        # Leased (in hand, or ahead) but never started: returned without an attempt.
        self.assertEqual({self.item(job, key).attempts for key in (11, 20, 31)}, {0})

    def test_pause_waits_for_every_answer_and_keeps_the_batch_leased_ahead(self):
        job = self.new_job(items=64)
        recorder = Recorder()
        paused = threading.Event()
        release = threading.Event()

        def work():
            with job.worker(lease_batch=16, heartbeat_interval=0.05,
                            on_event=recorder) as worker:
                for item in worker:
                    with item:
                        recorder.body(item.key)
                        if item.key == 10:
                            job.pause("maintenance")
                            paused.set()
                            release.wait(timeout=WAIT)
        join = run_in_thread(work)
        self.assertTrue(paused.wait(timeout=WAIT))
        recorder.next("heartbeat", control="CONTROL_WORD_PAUSE")
        release.set()
        recorder.next("waiting", reason="paused")
        # Paused: what was done is acknowledged and recorded; nothing more is started.
        self.assertEqual(recorder.processed, list(range(11)))
        self.assertEqual(sorted(recorder.acked()), list(range(11)))
        self.assertEqual(job.remaining_indices(), list(range(11, 64)))
        recorder.next("heartbeat", control="CONTROL_WORD_PAUSE")
        self.assertEqual(recorder.processed, list(range(11)))
        job.resume()
        join()
        self.assertEqual(recorder.processed, list(range(64)))
        self.assertEqual(job.info().status, pb.JOB_STATUS_COMPLETED)

    def test_flush_acknowledges_everything_completed_before_it(self):
        job = self.new_job(items=40)
        recorder = Recorder()
        with job.worker(lease_batch=16, on_event=recorder) as worker:
            for item in worker:
                with item:
                    recorder.body(item.key)
                if item.key == 20:
                    worker.flush()
                    self.assertEqual(sorted(recorder.acked()), list(range(21)))
                    self.assertEqual(set(self.states(job, range(21)).values()),
                                     {pb.ITEM_STATE_COMPLETED})
        self.assertEqual(sorted(recorder.acked()), list(range(40)))


# Runs a Worker over JOB at ADDRESS, printing the keys of each acknowledgement; at its
# 1000th item it says "blocked" and waits for stdin (which never comes).
CHILD = """
import sys, ckpt
address, job_id = sys.argv[1], sys.argv[2]
def on_event(kind, info):
    if kind == "acknowledged":
        print(" ".join(map(str, info["keys"])), flush=True)
with ckpt.Client(address) as client:
    count = 0
    for item in ckpt.Worker(client, job_id, lease_batch=64, complete_batch=16,
                            on_event=on_event):
        with item:
            count += 1
            if count == 1000:
                print("blocked", flush=True)
                sys.stdin.readline()
"""


class KilledWorkerTest(CkptdTestCase):

    def test_nothing_acknowledged_is_lost_when_the_worker_dies_mid_pipeline(self):
        items = 2000
        job = self.client.create_job(self.job_id(), lease_timeout=1)
        job.add_items(range(items), seal=True)
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
        child = subprocess.Popen([sys.executable, "-c", CHILD, self.ckptd.address, job.job_id],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                 env=env)
        acknowledged = set()
        for line in child.stdout:
            if line.strip() == "blocked":
                break
            acknowledged.update(int(key) for key in line.split())
        # Killed in its 1000th item's body, with the completions of the items before it
        # acknowledged, answered but not yet taken, sent, or still buffered.
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=WAIT)
        acknowledged.update(int(key) for key in child.stdout.read().split())
        child.stdout.close()
        child.stdin.close()
        self.assertGreater(len(acknowledged), 0)

        # Every acknowledged item is complete. A completion still on the wire when the
        # worker died may land later, so this is a lower bound, not the final set.
        self.assertLessEqual(acknowledged, set(job.completed_keys()))

        # The rest is done by another worker once the dead one's leases expire.
        redone = []
        with job.worker(max_idle_wait=0.2) as worker:
            for item in worker:
                with item:
                    redone.append(item.key)
        self.assertEqual(len(redone), len(set(redone)))
        self.assertFalse(acknowledged & set(redone))
        self.assertEqual(job.info().progress.completed, items)
        # What the new worker did not redo, the dead one completed: only items whose
        # bodies had finished (it died in its 1000th).
        completed_by_the_dead = set(range(items)) - set(redone)
        self.assertLessEqual(acknowledged, completed_by_the_dead)
        self.assertLess(len(completed_by_the_dead), 1000)


class AsyncRecorder(Recorder):
    """A Recorder whose events an asyncio test awaits (on_event runs in the loop)."""

    def __init__(self):
        super().__init__()
        self.async_events = asyncio.Queue()

    def __call__(self, kind, info):
        super().__call__(kind, info)
        self.async_events.put_nowait((kind, info))

    async def next_async(self, kind, **match):
        while True:
            got_kind, info = await asyncio.wait_for(self.async_events.get(), WAIT)
            if got_kind == kind and all(info.get(k) == v for k, v in match.items()):
                return info


class HoldsAsyncCompletions(ckpt.aio.Client):
    """An asyncio Client whose CompleteItems attempts each wait for a release(), until
    release_all() lets them and every later one go."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.held = asyncio.Queue()  # one future per held attempt
        self._holding = True

    async def _perform(self, op):
        if self._holding and held_back(op):
            release = asyncio.get_running_loop().create_future()
            self.held.put_nowait(release)
            await release
        return await super()._perform(op)

    async def release_next(self):
        (await asyncio.wait_for(self.held.get(), WAIT)).set_result(None)

    def release_all(self):
        self._holding = False
        while not self.held.empty():
            self.held.get_nowait().set_result(None)


class AsyncPipelineTest(CkptdTestCase, unittest.IsolatedAsyncioTestCase):

    def item_state(self, job, key):
        return self.client.call("GetItem", job_id=job.job_id,
                                key=ckpt.pb.ItemKey(index=key)).item.state

    async def test_the_loop_goes_on_while_completions_are_unanswered(self):
        # The same worker as PipelineTest's: see there for what is held back.
        job = self.new_job(items=24)
        client = HoldsAsyncCompletions(self.ckptd.address)
        recorder = AsyncRecorder()
        window_full = asyncio.Event()

        async def work():
            async with ckpt.aio.Worker(client, job.job_id, on_event=recorder,
                                       **PipelineTest.PIPELINE) as worker:
                async for item in worker:
                    async with item:
                        recorder.body(item.key)
                        if item.key == 22:  # two calls held, the third one's items done
                            window_full.set()
        task = asyncio.ensure_future(work())
        await asyncio.wait_for(window_full.wait(), WAIT)
        await client.release_next()
        await recorder.next_async("acknowledged", keys=[3, 4, 5, 6])
        self.assertEqual(self.item_state(job, 6), pb.ITEM_STATE_COMPLETED)
        self.assertEqual(self.item_state(job, 11), pb.ITEM_STATE_LEASED)  # still held
        client.release_all()
        await asyncio.wait_for(task, WAIT)
        self.assertEqual(recorder.processed, list(range(24)))
        self.assertEqual(sorted(recorder.acked()), list(range(24)))
        await client.close()

    async def test_stop_returns_the_batch_leased_ahead(self):
        job = self.new_job(items=64)
        recorder = AsyncRecorder()
        async with ckpt.aio.Client(self.ckptd.address) as client:
            async with ckpt.aio.Worker(client, job.job_id, lease_batch=16,
                                       heartbeat_interval=0.05, on_event=recorder) as worker:
                async for item in worker:
                    async with item:
                        recorder.body(item.key)
                        if item.key == 10:  # the next batch was asked for at item 8
                            await client.call("StopJob", job_id=job.job_id, reason="enough")
                            await recorder.next_async("heartbeat", control="CONTROL_WORD_STOP")
        self.assertEqual(recorder.processed, list(range(11)))
        self.assertEqual(sorted(recorder.acked()), list(range(11)))
        self.assertEqual(job.info().progress.leased, 0)
        self.assertEqual(self.item_state(job, 20), pb.ITEM_STATE_PENDING)


if __name__ == "__main__":
    unittest.main()
