"""ckpt.aio.Job: ckpt.Job for asyncio. The same methods, awaited; curator's query
properties (completed_indices, failed_indices, active_workers) are methods here, since
each makes calls. The logic is ckpt/_jobs.py, shared with ckpt.Job."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any, AsyncIterable, AsyncIterator, Iterable, Optional, Sequence, \
    Tuple, Union

from ckpt import _item_logs
from ckpt import convert
from ckpt._jobs import AddResult, JobCore, Key, Summary, item_result
from ckpt.v1 import checkpoint_pb2 as pb

if TYPE_CHECKING:
    from ckpt.aio.client import Client
    from ckpt.aio.track import Tracker
    from ckpt.aio.worker import Worker

__all__ = ["Job"]


class Job:
    """A handle on the job `job_id` for asyncio; see ckpt.Job for each method."""

    def __init__(self, client: Client, job_id: str, step: str = "") -> None:
        self.client = client
        self.created: Optional[bool] = None
        self.resumed: Optional[bool] = None
        self.fingerprint_reset: Optional[bool] = None
        self._core = JobCore(client._core, job_id, step)

    @property
    def job_id(self) -> str:
        return self._core.job_id

    @property
    def step(self) -> str:
        return self._core.step

    def __repr__(self) -> str:
        step = f", step={self.step!r}" if self.step else ""
        return f"ckpt.aio.Job({self.job_id!r}{step})"

    async def info(self) -> pb.Job:
        return await self.client.run(self._core.info())

    async def progress(self) -> pb.Progress:
        return await self.client.run(self._core.progress())

    async def add_items(self, items: Iterable[Key] = (), *, seal: bool = False) -> AddResult:
        return await self.client.run(self._core.add_items(items, seal))

    async def seal(self) -> pb.Job:
        return await self.client.run(self._core.update(seal=True))

    async def set_stage(self, stage: str) -> pb.Job:
        return await self.client.run(self._core.update(stage=stage))

    async def pause(self, reason: str = "") -> pb.Job:
        return await self.client.run(self._core.transition("PauseJob", reason=reason))

    async def resume(self) -> pb.Job:
        return await self.client.run(self._core.transition("ResumeJob"))

    async def set_retention(self, retention: Optional[convert.Seconds]) -> pb.Job:
        return await self.client.run(
            self._core.update(retention=convert.duration(retention or 0)))

    async def set_failure_budget(self, *, max_failed_items: int = 0,
                                 max_failed_fraction: float = 0.0) -> pb.Job:
        return await self.client.run(self._core.update(failure_budget=pb.FailureBudget(
            max_failed_items=max_failed_items, max_failed_fraction=max_failed_fraction)))

    async def stop(self, reason: str = "") -> pb.Job:
        return await self.client.run(self._core.transition("StopJob", reason=reason))

    async def finish(self, *, failed: bool = False, reason: str = "") -> pb.Job:
        status = pb.JOB_STATUS_FAILED if failed else pb.JOB_STATUS_COMPLETED
        return await self.client.run(self._core.transition("FinishJob", status=status,
                                                           reason=reason))

    async def delete(self) -> None:
        await self.client.run(self._core.delete())

    async def completed_indices(self) -> set[int]:
        return {key for key in await self.completed_keys() if isinstance(key, int)}

    async def failed_indices(self) -> dict[int, str]:
        return {key: message for key, message in (await self.failed_keys()).items()
                if isinstance(key, int)}

    async def completed_items(self, *, after: Optional[convert.Time] = None,
                              newest_first: bool = False,
                              keys_only: bool = True) -> AsyncIterator[pb.Item]:
        """ckpt.Job.completed_items, as an async generator."""
        token = ""
        while True:
            items, token = await self.client.run(self._core.completed_page(
                after=after, newest_first=newest_first, keys_only=keys_only, page_token=token))
            for item in items:
                yield item
            if not token:
                return

    async def log(self, key: Optional[Key], message: str, *, level: int = logging.INFO,
                  logger: str = "", worker_id: str = "") -> None:
        """As ckpt.Job.log, awaited."""
        entry = _item_logs.entry(message, levelno=level, logger=logger, created=time.time())
        await self.client.run(self._core.write_logs(key, [entry], worker_id))

    async def logs(self, *, key: Optional[Key] = None, worker_id: str = "",
                   min_level: int = logging.NOTSET,
                   newest_first: bool = False) -> AsyncIterator[pb.LogLine]:
        """ckpt.Job.logs, as an async generator."""
        token = ""
        while True:
            page = await self.client.run(self._core.logs_page(
                key=key, worker_id=worker_id,
                min_level=(_item_logs.level_of(min_level) if min_level
                           else pb.LOG_LEVEL_UNSPECIFIED),
                newest_first=newest_first, page_token=token))
            for line in page.entries:
                yield line
            token = page.next_page_token
            if not token:
                return

    async def completed_keys(self) -> set[Key]:
        return await self.client.run(self._core.completed_keys())

    async def failed_keys(self) -> dict[Key, str]:
        return await self.client.run(self._core.failed_keys())

    async def remaining_indices(self) -> list[int]:
        keys = await self.client.run(self._core.remaining_keys())
        return sorted(key for key in keys if isinstance(key, int))

    async def active_workers(self) -> int:
        return (await self.info()).progress.active_workers

    async def summary(self) -> Summary:
        return await self.client.run(self._core.summary())

    async def reset(self) -> pb.Job:
        return await self.client.run(self._core.transition("ResetJob"))

    async def reset_index(self, key: Key) -> int:
        return await self.client.run(self._core.reset_key(key))

    async def reset_failed(self) -> int:
        return await self.client.run(self._core.reset_items(pb.ResetItemsRequest(
            job_id=self.job_id, step=self.step, state=pb.ITEM_STATE_FAILED)))

    async def item(self, key: Key) -> pb.Item:
        return await self.client.run(self._core.item(key))

    async def is_completed(self, key: Key) -> bool:
        return await self.client.run(self._core.is_completed(key))

    async def mark_in_progress(self, key: Key) -> bool:
        return await self.client.run(self._core.mark_in_progress(key))

    async def mark_completed(self, key: Key, *, output_paths: Sequence[str] = (),
                             payload: bytes = b"",
                             wall_time: Optional[convert.Seconds] = None,
                             metrics: Optional[pb.ItemMetrics] = None,
                             worker_id: str = "") -> bool:
        result = item_result(output_paths, payload, wall_time, metrics)
        outcomes = await self.client.run(self._core.complete([(key, result)], worker_id))
        return outcomes[0] == pb.COMPLETION_OUTCOME_COMPLETED

    async def mark_failed(self, key: Key, error: Union[str, BaseException], *,
                          worker_id: str = "") -> None:
        await self.client.run(self._core.mark_failed(key, error, worker_id))

    async def complete_many(self, completions: Iterable[Tuple[Key, Optional[float]]]) -> int:
        pairs = [(key, item_result(wall_time=wall_time)) for key, wall_time in completions]
        if not pairs:
            return 0
        outcomes = await self.client.run(self._core.complete(pairs))
        return sum(1 for o in outcomes if o == pb.COMPLETION_OUTCOME_COMPLETED)

    def worker(self, **options: Any) -> Worker:
        """A ckpt.aio.Worker on this job and step."""
        from ckpt.aio.worker import Worker
        return Worker(self.client, self.job_id, step=self.step, **options)

    def track(self, iterable: Union[Iterable[Any], AsyncIterable[Any]],
              **options: Any) -> Tracker[Any]:
        """ckpt.aio.track(iterable, job=self, **options)."""
        from ckpt.aio.track import track
        return track(iterable, job=self, **options)
