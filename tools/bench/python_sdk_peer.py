"""The Python SDK as Python pipelines drive it, N processes against one ckptd: the
Worker loop, ckpt.track(), and physicsnemo-curator's one mark_completed per item, each
blocking or on asyncio. ckpt_bench's Python rows (docs/performance.md).

Prints, like sqlite_peer.py:  RESULT <items> <seconds> <p50_us> <p99_us> <max_us>
(latency: one call for record; one item's turn through the loop for worker and track).

Usage: python_sdk_peer.py --address=HOST:PORT --threads=N --items=N
         --mode=worker|track|record|aio_worker|aio_track|aio_record [--lease_batch=N]
"""

import argparse
import asyncio
import multiprocessing
import os
import time

import ckpt
import ckpt.aio


def share(items, processes, p):
    per = items // processes
    begin = per * p
    return begin, items if p == processes - 1 else begin + per


def run_sync(mode, address, job_id, begin, end, lease_batch):
    latencies = []
    with ckpt.Client(address) as client:
        job = client.job(job_id)
        if mode == "worker":
            options = {} if lease_batch == 0 else {"lease_batch": lease_batch}
            last = time.perf_counter()
            for item in job.worker(**options):
                with item:
                    pass
                now = time.perf_counter()
                latencies.append((now - last) * 1e6)
                last = now
        elif mode == "track":
            last = time.perf_counter()
            for _ in ckpt.track(range(begin, end), job=job, key=lambda i: i):
                now = time.perf_counter()
                latencies.append((now - last) * 1e6)
                last = now
        else:
            for i in range(begin, end):
                t0 = time.perf_counter()
                job.mark_completed(i, output_paths=[f"/data/out/item-{i:08d}.parquet"],
                                   wall_time=1.0)
                latencies.append((time.perf_counter() - t0) * 1e6)
    return latencies


async def run_async(mode, address, job_id, begin, end, lease_batch):
    latencies = []
    async with ckpt.aio.Client(address) as client:
        job = client.job(job_id)
        if mode == "worker":
            options = {} if lease_batch == 0 else {"lease_batch": lease_batch}
            last = time.perf_counter()
            async with job.worker(**options) as worker:
                async for item in worker:
                    async with item:
                        pass
                    now = time.perf_counter()
                    latencies.append((now - last) * 1e6)
                    last = now
        elif mode == "track":
            last = time.perf_counter()
            async with ckpt.aio.track(range(begin, end), job=job, key=lambda i: i) as tracker:
                async for _ in tracker:
                    now = time.perf_counter()
                    latencies.append((now - last) * 1e6)
                    last = now
        else:
            for i in range(begin, end):
                t0 = time.perf_counter()
                await job.mark_completed(i, output_paths=[f"/data/out/item-{i:08d}.parquet"],
                                         wall_time=1.0)
                latencies.append((time.perf_counter() - t0) * 1e6)
    return latencies


def work(args, p, ready, out):
    begin, end = share(args.items, args.threads, p)
    ready.wait()
    mode = args.mode.replace("aio_", "")
    if args.mode.startswith("aio_"):
        latencies = asyncio.run(run_async(mode, args.address, args.job, begin, end,
                                          args.lease_batch))
    else:
        latencies = run_sync(mode, args.address, args.job, begin, end, args.lease_batch)
    out.put((end - begin, time.perf_counter(), latencies))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--address", required=True)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--items", type=int, required=True)
    parser.add_argument("--mode", required=True)
    parser.add_argument("--lease_batch", type=int, default=0, help="0: the Worker's default")
    parser.add_argument("--job", default="")
    args = parser.parse_args()
    args.job = args.job or f"python-{args.mode}-{os.getpid()}"
    with ckpt.Client(args.address) as client:
        client.create_job(args.job).add_items(range(args.items), seal=True)
    context = multiprocessing.get_context("spawn")
    ready = context.Barrier(args.threads + 1)
    out = context.Queue()
    processes = [context.Process(target=work, args=(args, p, ready, out))
                 for p in range(args.threads)]
    for process in processes:
        process.start()
    ready.wait()
    start = time.perf_counter()
    end, latencies = start, []
    for _ in processes:
        _, t, lat = out.get()
        end = max(end, t)
        latencies += lat
    for process in processes:
        process.join()
    with ckpt.Client(args.address) as client:
        done = client.job(args.job).progress().completed
    latencies.sort()
    q = lambda f: latencies[round(f * (len(latencies) - 1))] if latencies else 0
    print("RESULT %d %.6f %.1f %.1f %.1f" % (done, end - start, q(0.5), q(0.99), q(1.0)))


if __name__ == "__main__":
    main()
