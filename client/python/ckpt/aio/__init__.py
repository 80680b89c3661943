"""ckpt.aio: the ckpt SDK for asyncio, on grpc.aio.

    import asyncio, ckpt.aio

    async def main():
        async with ckpt.aio.Client("local:./ckpt-data") as client:
            job = await client.create_job("enrich-2025-12-14")
            await job.add_items(range(1000), seal=True)
            async with job.worker(lease_batch=16) as worker:
                async for items in worker.batches():
                    await asyncio.gather(*(enrich(item) for item in items))

Same classes, arguments, retries and errors as the blocking API (ckpt.Client, ckpt.Job,
ckpt.Worker, ckpt.track); both run one implementation (ckpt/_program.py).
"""

from ckpt.aio.client import Client
from ckpt.aio.job import Job
from ckpt.aio.track import Tracker, track
from ckpt.aio.worker import Item, Worker

__all__ = ["Client", "Item", "Job", "Tracker", "Worker", "track"]
