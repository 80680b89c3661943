"""ckpt.aio against a real ckptd: the same semantics as the blocking API (errors,
record mode, track, the worker loop), and items processed concurrently."""

import asyncio
import collections
import unittest

import grpc

import ckpt
import ckpt.aio
from ckpt.v1 import checkpoint_pb2 as pb
from ckptd_process import Ckptd, CkptdTestCase, new_data_dir

WAIT = 120  # seconds: a hang guard, not a measurement


class AsyncTestCase(CkptdTestCase, unittest.IsolatedAsyncioTestCase):
    """A ckptd per class (CkptdTestCase) and an asyncio Client per test."""

    async def asyncSetUp(self):
        self.aclient = ckpt.aio.Client(self.ckptd.address)

    async def asyncTearDown(self):
        await self.aclient.close()

    async def new_async_job(self, items=0, seal=True, **options):
        job = await self.aclient.create_job(self.job_id(), **options)
        if items:
            await job.add_items(range(items), seal=seal)
        return job


class ClientTest(AsyncTestCase):

    async def test_errors_carry_the_code_and_the_servers_message(self):
        with self.assertRaises(ckpt.NotFoundError) as raised:
            await self.aclient.call("GetJob", job_id="no-such-job")
        self.assertEqual(raised.exception.code, grpc.StatusCode.NOT_FOUND)
        self.assertEqual(raised.exception.message, 'job "no-such-job" not found')
        with self.assertRaises(ckpt.InvalidArgumentError):
            await self.aclient.create_job("not a valid id!")

    async def test_create_job_resumes_and_watch_streams_to_the_end(self):
        job = await self.new_async_job(items=2)
        self.assertTrue(job.created)
        self.assertTrue((await self.aclient.create_job(self.job_id())).resumed)
        stream = self.aclient.watch_job(job.job_id)
        first = await stream.__anext__()
        self.assertEqual(first.status, pb.JOB_STATUS_RUNNING)
        await job.mark_completed(0)
        await job.mark_completed(1)
        snapshots = [snapshot async for snapshot in stream]
        self.assertEqual(snapshots[-1].status, pb.JOB_STATUS_COMPLETED)


class DeleteJobsTest(AsyncTestCase):
    """A ckptd of its own (per class): delete_jobs meets only this class's jobs."""

    async def test_retention_and_delete_jobs_match_the_blocking_api(self):
        job = await self.new_async_job(retention=7200)
        self.assertEqual((await job.info()).retention.seconds, 7200)
        self.assertEqual((await job.set_retention(60)).retention.seconds, 60)
        await job.finish(failed=True)
        unfinished = await self.aclient.create_job(self.job_id() + "-running")
        listed = await self.aclient.delete_jobs(dry_run=True)
        self.assertEqual(listed.matched, 1)
        self.assertEqual(listed.jobs[0].status, pb.JOB_STATUS_FAILED)
        deleted = await self.aclient.delete_jobs(statuses=[pb.JOB_STATUS_FAILED])
        self.assertEqual([j.job_id for j in deleted.jobs], [job.job_id])
        with self.assertRaises(ckpt.NotFoundError):
            await job.info()
        self.assertEqual((await unfinished.info()).status, pb.JOB_STATUS_RUNNING)


class RecordModeTest(AsyncTestCase):

    async def test_completed_items_by_completion_time(self):
        job = await self.new_async_job(items=4)
        for i in (2, 0, 3):
            await job.mark_completed(i)
        newest = [item.key.index async for item in job.completed_items(newest_first=True)]
        self.assertEqual(newest, [3, 0, 2])
        since = (await job.item(0)).update_time
        self.assertEqual([item.key.index async for item in job.completed_items(after=since)], [3])

    async def test_marks_and_queries_match_the_blocking_api(self):
        job = await self.new_async_job(items=5)
        self.assertTrue(await job.mark_in_progress(0))
        self.assertTrue(await job.mark_completed(0, output_paths=["/out/0"], wall_time=1.5))
        self.assertFalse(await job.mark_completed(0))
        await job.mark_failed(3, ValueError("corrupt header"))
        self.assertEqual(await job.completed_indices(), {0})
        self.assertEqual(await job.failed_indices(), {3: "ValueError: corrupt header"})
        self.assertEqual(await job.remaining_indices(), [1, 2, 4])
        summary = await job.summary()
        # The same dict as the blocking API's.
        self.assertEqual(summary, self.client.job(job.job_id).summary() | {
            "elapsed": summary["elapsed"], "rate": summary["rate"], "eta": summary["eta"]})
        self.assertEqual(summary["errors"], {"ValueError: corrupt header": 1})
        self.assertEqual(await job.reset_failed(), 1)

    async def test_track_skips_what_is_done_over_an_async_iterable(self):
        job = await self.new_async_job()

        async def documents():
            for name in ["a", "b", "c", "d"]:
                yield name
        seen = []
        async with ckpt.aio.track(documents(), job=job, key=str) as tracker:
            async for name in tracker:
                seen.append(name)
                if name == "b":
                    break  # as a crash: "b" is not recorded, "a" is
        self.assertEqual(seen, ["a", "b"])
        tracker = ckpt.aio.track(documents(), job=job, key=str, seal=True)
        again = []
        async for name in tracker:
            again.append(name)
            if name == "c":
                await tracker.fail("no text layer")
        self.assertEqual(again, ["b", "c", "d"])
        self.assertEqual(await job.completed_keys(), {"a", "b", "d"})
        self.assertEqual(await job.failed_keys(), {"c": "no text layer"})


class WorkerTest(AsyncTestCase):

    async def test_several_workers_process_every_item_exactly_once(self):
        job = await self.new_async_job(items=60)
        processed = collections.Counter()

        async def work():
            async with job.worker(lease_batch=5, complete_batch=8) as worker:
                async for item in worker:
                    async with item:
                        processed[item.key] += 1
                        await asyncio.sleep(0)  # let the other workers in
        await asyncio.wait_for(asyncio.gather(*(work() for _ in range(3))), WAIT)
        self.assertEqual(processed, {i: 1 for i in range(60)})
        info = await job.info()
        self.assertEqual((info.status, info.progress.completed),
                         (pb.JOB_STATUS_COMPLETED, 60))

    async def test_a_batch_runs_concurrently_with_gather(self):
        job = await self.new_async_job(items=24)
        gate = asyncio.Event()
        running = []
        overlapped = []

        async def handle(item):
            async with item:
                running.append(item.key)
                if len(running) == 8:
                    gate.set()  # all of the batch are in flight at once
                await asyncio.wait_for(gate.wait(), WAIT)
                overlapped.append(len(running))
                if item.key == 5:
                    raise ValueError("bad page")

        async with job.worker(lease_batch=8, retry_failures=False) as worker:
            async for items in worker.batches():
                self.assertLessEqual(len(items), 8)
                running.clear()
                gate.clear()
                await asyncio.gather(*(handle(item) for item in items))
        self.assertIn(8, overlapped)
        self.assertEqual(await job.failed_indices(), {5: "ValueError: bad page"})
        self.assertEqual((await job.progress()).completed, 23)

    async def test_stop_ends_the_loop_after_the_current_item(self):
        job = await self.new_async_job(items=5)
        processed = []
        async with job.worker(lease_batch=1) as worker:
            async for item in worker:
                async with item:
                    processed.append(item.key)
                    await job.stop("enough")
        self.assertEqual(processed, [0])
        self.assertEqual((await job.info()).status, pb.JOB_STATUS_STOPPED)

    async def test_a_raising_body_fails_the_item_and_raise_errors_ends_the_loop(self):
        job = await self.new_async_job(items=3)
        with self.assertRaises(KeyError):
            async with job.worker(raise_errors=True, retry_failures=False) as worker:
                async for item in worker:
                    async with item:
                        raise KeyError("missing column")
        self.assertEqual(await job.failed_indices(), {0: "KeyError: 'missing column'"})
        self.assertEqual((await job.info()).progress.leased, 0)  # the rest returned


class RestartTest(unittest.IsolatedAsyncioTestCase):
    """A write that must not repeat waits for ckptd, as the blocking API's does."""

    async def test_register_waits_for_a_restarted_ckptd(self):
        server = Ckptd(new_data_dir())
        server.start()
        waits = asyncio.Queue()
        client = ckpt.aio.Client(server.address, on_retry=lambda m, e, attempt, d:
                                 waits.put_nowait((m, attempt)))
        await client.create_job("restart")
        server.stop()
        call = asyncio.create_task(client.call("RegisterWorker", job_id="restart"))
        self.assertEqual(await asyncio.wait_for(waits.get(), WAIT), ("RegisterWorker", 0))
        server.start(listen=server.address)
        answer = await asyncio.wait_for(call, WAIT)
        workers = (await client.call("ListWorkers", job_id="restart")).workers
        self.assertEqual([w.worker_id for w in workers], [answer.worker_id])
        await client.close()
        server.stop()


if __name__ == "__main__":
    unittest.main()
