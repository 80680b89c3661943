"""ckpt.aio.track: ckpt.track for asyncio, over an iterable or an async iterable.

    async with ckpt.aio.track(documents, job=job) as tracker:
        async for doc in tracker:
            await summarise(doc)

Same semantics as ckpt.track (ckpt/_track_core.py is shared): done elements are
skipped, each is recorded once the loop body finished with it, in batches. `async with`
sends what is buffered when the loop is left by break or an exception (asyncio closes an
abandoned `async for` only later); a loop that runs to its end needs no `async with`.
"""

from __future__ import annotations

from collections.abc import Sized
from typing import (AsyncGenerator, AsyncIterable, AsyncIterator, Callable, Generic, Iterable,
                    Optional, TypeVar, Union)

from ckpt._jobs import Key
from ckpt._track_core import TrackerCore
from ckpt.aio.client import Client
from ckpt.aio.job import Job

__all__ = ["Tracker", "track"]

E = TypeVar("E")


def track(iterable: Union[Iterable[E], AsyncIterable[E]], job: Union[Job, str], *,
          key: Optional[Callable[[E], Key]] = None, client: Optional[Client] = None,
          flush_every: int = 64, flush_interval: float = 5.0,
          seal: bool = False) -> Tracker[E]:
    """As ckpt.track; `iterable` may also be an async iterable."""
    return Tracker(iterable, job, key=key, client=client, flush_every=flush_every,
                   flush_interval=flush_interval, seal=seal)


class Tracker(Generic[E]):
    """The loop of ckpt.aio.track. Iterate it once, from one task."""

    def __init__(self, iterable: Union[Iterable[E], AsyncIterable[E]], job: Union[Job, str],
                 *, key: Optional[Callable[[E], Key]], client: Optional[Client],
                 flush_every: int, flush_interval: float, seal: bool) -> None:
        self._iterable = iterable
        self._job = job
        self._client = client
        self._handle: Optional[Job] = None
        self._iterator: Optional[AsyncGenerator[E, None]] = None
        self._core = TrackerCore(key, flush_every, flush_interval, seal)

    @property
    def job(self) -> Optional[Job]:
        return self._handle

    async def fail(self, error: Union[str, BaseException]) -> None:
        """Records the element in the loop body FAILED instead of completed."""
        if self._handle is None:
            raise RuntimeError("fail() is for the element in the loop body, once")
        await self._handle.client.run(self._core.fail(error))

    def __aiter__(self) -> AsyncIterator[E]:
        if self._iterator is not None:
            raise RuntimeError("a Tracker is iterated once; call ckpt.aio.track again")
        self._iterator = self._elements()
        return self._iterator

    async def __aenter__(self) -> Tracker[E]:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._iterator is not None:
            await self._iterator.aclose()

    async def _elements(self) -> AsyncGenerator[E, None]:
        if isinstance(self._job, str):
            self._handle = await (self._client or Client()).create_job(self._job)
        else:
            self._handle = self._job
        run = self._handle.client.run
        size = len(self._iterable) if isinstance(self._iterable, Sized) else None
        await run(self._core.begin(self._handle._core, size))
        finished = False
        try:
            async for position, element in _enumerate(self._iterable):
                if not self._core.enter(position, element):
                    continue
                yield element
                if self._core.leave():
                    await run(self._core.flush())
            finished = True
        finally:
            await run(self._core.end(finished))


async def _enumerate(iterable: Union[Iterable[E], AsyncIterable[E]]
                     ) -> AsyncIterator[tuple[int, E]]:
    position = 0
    if isinstance(iterable, AsyncIterable):
        async for element in iterable:
            yield position, element
            position += 1
    else:
        for element in iterable:
            yield position, element
            position += 1
