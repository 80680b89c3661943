"""The decisions behind ckpt.track and ckpt.aio.track (see ckpt/track.py): which
elements to skip, when to send completions, and the calls around the loop."""

from __future__ import annotations

import logging
import time
from typing import Any, Callable, Optional

from ckpt import errors
from ckpt._jobs import JobCore, Key, item_result
from ckpt._program import Program
from ckpt.v1 import checkpoint_pb2 as pb

_log = logging.getLogger("ckpt")


class TrackerCore:
    """One tracked loop's state. Not thread-safe: the iterating side owns it."""

    def __init__(self, key: Optional[Callable[[Any], Key]], flush_every: int,
                 flush_interval: float, seal: bool) -> None:
        self._key = key
        self._flush_every = flush_every
        self._flush_interval = flush_interval
        self._seal = seal
        self.job: Optional[JobCore] = None
        self._done: set[Key] = set()
        self._waiting: list[tuple[Key, pb.ItemResult]] = []
        self._last_flush = time.monotonic()
        self.current: Optional[Key] = None  # the key of the element in the loop body
        self.failed_current = False
        self._started = 0.0

    def begin(self, job: JobCore, size: Optional[int]) -> Program[None]:
        """Reads what is done; registers positions [0, size) up front when known."""
        self.job = job
        self._done = yield from job.completed_keys()
        if self._key is None and size:
            try:
                yield from job.add_items(range(size), seal=False)
            except errors.FailedPreconditionError:
                pass  # sealed, or finished: nothing may be added, and the items are known

    def enter(self, position: int, element: Any) -> bool:
        """Whether the element at `position` goes to the loop body (not done yet)."""
        key = position if self._key is None else self._key(element)
        if key in self._done:
            return False
        self.current, self.failed_current = key, False
        self._started = time.monotonic()
        return True

    def leave(self) -> bool:
        """The loop body finished with the current element: buffers its completion
        (unless it failed). True when the buffer is due to be sent."""
        key, self.current = self.current, None
        if key is not None and not self.failed_current:
            self._waiting.append((key, item_result(wall_time=time.monotonic() - self._started)))
        return (len(self._waiting) >= self._flush_every
                or time.monotonic() - self._last_flush >= self._flush_interval)

    def fail(self, error: Any) -> Program[None]:
        if self.current is None or self.failed_current or self.job is None:
            raise RuntimeError("fail() is for the element in the loop body, once")
        yield from self.job.mark_failed(self.current, error)
        self.failed_current = True

    def flush(self) -> Program[None]:
        waiting, self._waiting = self._waiting, []
        self._last_flush = time.monotonic()
        if waiting and self.job is not None:
            yield from self.job.complete(waiting)

    def end(self, finished: bool) -> Program[None]:
        """After the loop: sends what is buffered; seals if asked and the iterable was
        exhausted. After an exception or break (not `finished`), a failure to send is
        logged rather than raised over the caller's own exception."""
        count = len(self._waiting)
        try:
            yield from self.flush()
        except errors.CkptError as e:
            if finished:
                raise
            _log.warning("ckpt: %d completions not recorded (redone next run): %s", count, e)
        if finished and self._seal and self.job is not None:
            yield from self.job.update(seal=True)
