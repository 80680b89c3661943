"""ckpt.aio.Worker and ckpt.aio.Item: ckpt.Worker for asyncio.

    async with job.worker(lease_batch=8) as worker:
        async for item in worker:                    # one at a time
            async with item:
                await enrich(item.key)

    async with job.worker(lease_batch=8) as worker:
        async for items in worker.batches():         # or concurrently, a batch at a time
            await asyncio.gather(*(handle(item) for item in items))

The loop is ckpt/_worker_core.py, shared with ckpt.Worker (same leasing, PAUSE and STOP,
lost leases, re-registration, batching and pipelining of completions, acknowledgements);
heartbeats run as a task, and the calls sent ahead as tasks of the loop. Use
`async with` (or close()): an abandoned `async for` is only finalised later by asyncio.
"""

from __future__ import annotations

import asyncio
import logging
from types import TracebackType
from typing import AsyncIterator, Optional, Union

from ckpt import errors
from ckpt._batching import DEFAULT_COMPLETE_BATCH
from ckpt._program import Hand, Idle, Op, Program, StartHeartbeat, StopHeartbeat, Step
from ckpt._item_core import ItemBase, Leased
from ckpt._worker_core import OnEvent, WorkerCore, WorkerOptions
from ckpt.aio.client import Client

__all__ = ["Item", "Worker"]

_log = logging.getLogger("ckpt")


class Item(ItemBase):
    """One leased item (see ckpt.Item): `async with item:`, `await item.fail(...)`;
    complete() and save_cursor() never block."""

    def __init__(self, worker: WorkerCore, lease: Leased, worker_id: str,
                 client: Client) -> None:
        super().__init__(worker, lease, worker_id)
        self._client = client

    async def fail(self, error: Union[str, BaseException], *,
                   retryable: Optional[bool] = None) -> None:
        """As ckpt.Item.fail, awaited."""
        await self._client.run(self._fail(error, retryable))

    async def __aenter__(self) -> Item:
        self._enter_body()
        return self

    async def __aexit__(self, exc_type: Optional[type[BaseException]],
                        exc: Optional[BaseException],
                        traceback: Optional[TracebackType]) -> bool:
        if self._exit_fails(exc_type, exc):
            await self.fail(exc if exc is not None else "failed")
        return self._suppress(exc_type)


class Worker:
    """Leases and hands out the items of one step of a job; arguments as ckpt.Worker's.
    Iterate it once, from one task; its Items may be resolved from any task."""

    def __init__(self, client: Client, job_id: str, *, step: str = "",
                 lease_batch: Optional[int] = None,
                 complete_batch: int = DEFAULT_COMPLETE_BATCH, max_in_flight: int = 2,
                 flush_interval: Optional[float] = None,
                 heartbeat_interval: Optional[float] = None, max_idle_wait: float = 5.0,
                 retry_failures: bool = True, raise_errors: bool = False,
                 hostname: Optional[str] = None, pid: Optional[int] = None,
                 invocation_id: str = "", labels: Optional[dict[str, str]] = None,
                 on_event: Optional[OnEvent] = None, capture_logs: bool = True) -> None:
        self.client = client
        self.job_id = job_id
        options = WorkerOptions(
            step=step, lease_batch=lease_batch, complete_batch=complete_batch,
            max_in_flight=max_in_flight, flush_interval=flush_interval, heartbeat_interval=heartbeat_interval,
            max_idle_wait=max_idle_wait, retry_failures=retry_failures,
            raise_errors=raise_errors, hostname=hostname, pid=pid,
            invocation_id=invocation_id, labels=labels, on_event=on_event,
            capture_logs=capture_logs)
        self._core = WorkerCore(client._core, job_id, options, self._make_item)
        self._wake = asyncio.Event()
        self._core.control_changed = self._wake.set
        self._heartbeats: Optional[asyncio.Task[None]] = None
        self._iterated = False

    @property
    def worker_id(self) -> Optional[str]:
        return self._core.worker_id

    def __aiter__(self) -> AsyncIterator[Item]:
        """The items, one at a time."""
        return self._items()

    async def _items(self) -> AsyncIterator[Item]:
        async for items in self._run(per_batch=False):
            yield items[0]

    def batches(self) -> AsyncIterator[list[Item]]:
        """The items as leased, a list (up to lease_batch) at a time; leaving the loop
        body completes every item of the list that is not yet resolved."""
        return self._run(per_batch=True)

    async def __aenter__(self) -> Worker:
        return self

    async def __aexit__(self, exc_type: Optional[type[BaseException]],
                        exc: Optional[BaseException],
                        traceback: Optional[TracebackType]) -> None:
        await self._close(raise_errors=exc_type is None)

    async def close(self) -> None:
        """As ckpt.Worker.close. Idempotent."""
        await self._close(raise_errors=True)

    async def flush(self) -> None:
        """As ckpt.Worker.flush: every completion so far sent and answered. From the
        iterating task."""
        await self._drive(self._core.flush())

    def _make_item(self, core: WorkerCore, lease: Leased, worker_id: str) -> Item:
        return Item(core, lease, worker_id, self.client)

    async def _run(self, per_batch: bool) -> AsyncIterator[list[Item]]:
        if self._iterated:
            raise RuntimeError("a Worker is iterated once; create another")
        self._iterated = True
        abandoned = True
        step = Step(self._core.run(per_batch))
        try:
            while step.next():
                op = step.op
                if isinstance(op, Hand):
                    yield op.items
                else:
                    await self._perform(step, op)
            abandoned = False
        finally:
            step.close()
            await self._close(raise_errors=not abandoned)

    async def _perform(self, step: Step, op: Op) -> None:
        if isinstance(op, Idle):
            try:
                await asyncio.wait_for(self._wake.wait(), op.seconds)
                self._wake.clear()
            except asyncio.TimeoutError:
                pass
        elif isinstance(op, StartHeartbeat):
            self._heartbeats = asyncio.create_task(self._heartbeat_loop())
        elif isinstance(op, StopHeartbeat):
            if self._heartbeats is not None:
                self._heartbeats.cancel()
                try:
                    await self._heartbeats
                except asyncio.CancelledError:
                    pass
        else:
            try:
                step.result = await self.client._perform(op)
            except errors.CkptError as error:
                step.error = error

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self._core.heartbeat_interval)
            try:
                await self.client.run(self._core.heartbeat())
            except Exception:  # the task must outlive any one failure
                _log.exception("ckpt: heartbeat of worker %s failed", self.worker_id)

    async def _close(self, raise_errors: bool) -> None:
        await self._drive(self._core.close(raise_errors))

    async def _drive(self, program: Program[None]) -> None:
        step = Step(program)
        while step.next():
            await self._perform(step, step.op)
