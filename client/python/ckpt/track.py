"""ckpt.track: checkpoint any loop in one line (record mode).

    for path in ckpt.track(paths, job="curate-2025-12-14"):
        convert(path)

Each element's key is its position in the iterable (an index), or `key(element)` (an
int index or a str name). Elements whose key is already COMPLETED in ckptd are skipped;
an element is recorded as completed, with its wall time, once the loop body has
finished with it, i.e. when the loop asks for the next one. So a run that crashes or
is interrupted redoes only the element it was in, and the ones whose completion was
still buffered (at most `flush_every`, or `flush_interval` seconds' worth).

An exception in the loop body is not recorded as a failure: it ends the loop (the
pipeline crashed), and the element is redone next run. A pipeline that catches its own
failures records them with tracker.fail(error): the element is then FAILED, with the
message, instead of completed. break ends the loop like an exception: the element
being processed is not recorded.

A sized iterable with positional keys is registered up front as one range, so the
job's total, percent and ETA are right from the start; other elements are registered
as they complete.
"""

from __future__ import annotations

from collections.abc import Sized
from typing import Callable, Generic, Iterable, Iterator, Optional, TypeVar, Union

from ckpt._jobs import Key
from ckpt._track_core import TrackerCore
from ckpt.client import Client
from ckpt.job import Job

__all__ = ["Tracker", "track"]

E = TypeVar("E")


def track(iterable: Iterable[E], job: Union[Job, str], *,
          key: Optional[Callable[[E], Key]] = None, client: Optional[Client] = None,
          flush_every: int = 64, flush_interval: float = 5.0,
          seal: bool = False) -> Tracker[E]:
    """Returns a Tracker: iterate it for the elements of `iterable` not yet completed in
    `job`; see the module comment.

    Args:
      iterable: what the loop goes over.
      job: a ckpt.Job, or a job id (then the job is created, or resumed, through
        `client`, default ckpt.Client() on $CKPT_SERVER or 127.0.0.1:7700).
      key: element -> int index or str name; default: the element's position.
      flush_every: completions sent per call.
      flush_interval: seconds a completion may wait before it is sent.
      seal: seal the job once the iterable is exhausted (it then completes when every
        item is done; a sealed job takes no new items).
    """
    return Tracker(iterable, job, key=key, client=client, flush_every=flush_every,
                   flush_interval=flush_interval, seal=seal)


class Tracker(Generic[E]):
    """The loop of ckpt.track. Iterate it once, from one thread.

        tracker = ckpt.track(paths, job=job)
        for path in tracker:
            try:
                convert(path)
            except BadInput as e:
                tracker.fail(e)   # recorded FAILED (not completed); retried next run
    """

    def __init__(self, iterable: Iterable[E], job: Union[Job, str], *,
                 key: Optional[Callable[[E], Key]], client: Optional[Client],
                 flush_every: int, flush_interval: float, seal: bool) -> None:
        self._iterable = iterable
        self._job = job
        self._client = client
        self._handle: Optional[Job] = None
        self._core = TrackerCore(key, flush_every, flush_interval, seal)

    @property
    def job(self) -> Optional[Job]:
        """The ckpt.Job (once iteration has started)."""
        return self._handle

    def fail(self, error: Union[str, BaseException]) -> None:
        """Records the element in the loop body FAILED with `error` (a message or an
        exception) instead of completed. It is done again by the next run."""
        if self._handle is None:
            raise RuntimeError("fail() is for the element in the loop body, once")
        self._handle.client.run(self._core.fail(error))

    def __iter__(self) -> Iterator[E]:
        if self._handle is not None:
            raise RuntimeError("a Tracker is iterated once; call ckpt.track again")
        if isinstance(self._job, str):
            self._handle = (self._client or Client()).create_job(self._job)
        else:
            self._handle = self._job
        return self._elements(self._handle)

    def _elements(self, handle: Job) -> Iterator[E]:
        run = handle.client.run
        size = len(self._iterable) if isinstance(self._iterable, Sized) else None
        run(self._core.begin(handle._core, size))
        finished = False
        try:
            for position, element in enumerate(self._iterable):
                if not self._core.enter(position, element):
                    continue
                yield element
                if self._core.leave():
                    run(self._core.flush())
            finished = True
        finally:
            run(self._core.end(finished))
