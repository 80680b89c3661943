"""The state an Item shares with its Worker (ckpt/_worker_core.py): ckpt.Item and
ckpt.aio.Item add how a failure is sent (blocking or awaited)."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any, Iterator, NamedTuple, Optional, Union

from ckpt import _item_logs
from ckpt import convert
from ckpt._jobs import error_text, item_result
from ckpt._program import Program
from ckpt.v1 import checkpoint_pb2 as pb

if TYPE_CHECKING:
    from ckpt._worker_core import WorkerCore

_log = logging.getLogger("ckpt")


class Leased(NamedTuple):
    """What a lease says of its item: from a Lease, or from one index of a LeaseRun."""

    key: Union[int, str]
    step: str
    lease_token: int
    attempt: int
    cursor: bytes


def leased_items(answer: pb.LeaseItemsResponse) -> Iterator[Leased]:
    """The leases of a LeaseItems answer, its Leases and each index of its runs (packed
    leases, docs/api.md, without a Lease message per index), in the order they were
    handed out: retries first, then key order, which is the tokens' order."""
    leases = [Leased(convert.key_value(lease.key), lease.step, lease.lease_token,
                     lease.attempt, lease.cursor) for lease in answer.leases]
    if not answer.lease_runs:
        yield from leases
        return
    runs: list[Leased] = []
    for run in answer.lease_runs:
        step, first, token, attempt = run.step, run.first_index, run.first_lease_token, run.attempt
        token_step = run.token_step or 1
        runs.extend(Leased(first + i, step, token + i * token_step, attempt, b"")
                    for i in range(run.count))
    if leases:  # a retry, or a name leased after the run: back in hand-out order
        runs = sorted(leases + runs, key=lambda lease: lease.lease_token)
    yield from runs


class ItemBase:
    """One leased item; ckpt.Item and ckpt.aio.Item add fail() and the context manager.

    Attributes: key (int index or str name), step, lease_token, attempt (1 for the
    first try), cursor (bytes saved by an earlier try, or b""), worker_id (the
    registration holding the lease). Thread-safe: its mutable state is guarded by its
    worker's lock (one lock per worker, not per item: items are made by the thousand).

    What the body logs inside `with item:` becomes the item's log (ckpt/_item_logs.py),
    sent with its next heartbeat, its completion or its failure.
    """

    def __init__(self, worker: WorkerCore, lease: Leased, worker_id: str) -> None:
        self.key: Union[int, str] = lease.key
        self.step = lease.step
        self.lease_token = lease.lease_token
        self.attempt = lease.attempt
        self.cursor = lease.cursor
        self.worker_id = worker_id
        self._worker = worker
        self._lost = False  # set once, by the worker
        self._resolved = False  # guarded by the worker's lock
        self._started: Optional[float] = None  # time.monotonic() when handed out
        self._new_cursor: Optional[bytes] = None  # not yet sent by a heartbeat
        self.logs = _item_logs.ItemLogs()  # entries not yet sent
        self._log_token: Optional[Any] = None  # while the body runs: `with item:`

    def __repr__(self) -> str:
        return f"ckpt.Item({self.key!r}, step={self.step!r}, attempt={self.attempt})"

    @property
    def index(self) -> Optional[int]:
        """The item's index, or None for a named item."""
        return self.key if isinstance(self.key, int) else None

    @property
    def name(self) -> Optional[str]:
        """The item's name, or None for an indexed item."""
        return self.key if isinstance(self.key, str) else None

    @property
    def lost(self) -> bool:
        """True once the lease is known lost: the item must not be recorded."""
        return self._lost

    @property
    def resolved(self) -> bool:
        """True once completed or failed (or dropped as lost)."""
        return self._resolved

    def log(self, message: str, level: int = logging.INFO, logger: str = "") -> None:
        """Adds an entry to the item's log (what logging records inside `with item:`
        do by themselves); sent with the next heartbeat, completion or failure."""
        self.logs.add(_item_logs.entry(message, levelno=level, logger=logger,
                                       created=time.time()))

    def save_cursor(self, cursor: bytes) -> None:
        """Saves `cursor` (bytes, <= 64 KiB) with the item at the next heartbeat; if
        this try ends without completing, the next lease of the item hands it back."""
        with self._worker._lock:
            self._new_cursor = bytes(cursor)

    def complete(self, *, output_paths: Any = (), payload: bytes = b"",
                 metrics: Optional[pb.ItemMetrics] = None,
                 wall_time: Optional[convert.Seconds] = None) -> None:
        """Records the item completed: sent with the Worker's next batch of completions,
        so this never blocks (the "acknowledged" event says when ckptd has recorded it).
        wall_time defaults to the time since the item was handed out.
        Raises RuntimeError if the item was already completed or failed."""
        if wall_time is None and self._started is not None:
            wall_time = time.monotonic() - self._started
        self._worker.buffer_completion(self, item_result(output_paths, payload, wall_time,
                                                         metrics))

    def _fail(self, error: Union[str, BaseException],
              retryable: Optional[bool]) -> Program[None]:
        """The program of fail(): records a failure now."""
        if self._worker.resolve(self):
            yield from self._worker.fail(self, error_text(error), retryable)

    def _enter_body(self) -> None:
        """For __enter__: log records of this thread or task go to this item."""
        self._log_token = _item_logs.enter(self.logs)

    def _exit_fails(self, exc_type: Optional[type[BaseException]],
                    exc: Optional[BaseException]) -> bool:
        """For __exit__: completes the item on success; True if it must be failed with
        `exc` (the body raised an Exception and the item is unresolved)."""
        if self._log_token is not None:
            _item_logs.leave(self._log_token)
            self._log_token = None
        if exc_type is None:
            if not self._resolved:
                self.complete()
            return False
        if not issubclass(exc_type, Exception) or self._resolved:
            return False  # KeyboardInterrupt, SystemExit: the lease is released at close
        _log.warning("ckpt: item %r failed: %s", self.key, error_text(exc or exc_type()),
                     exc_info=exc)
        return True

    def _suppress(self, exc_type: Optional[type[BaseException]]) -> bool:
        """For __exit__: whether to swallow the body's exception."""
        return (exc_type is not None and issubclass(exc_type, Exception)
                and not self._worker.raise_errors)

    # ---------------------------------------------------------------- for the worker

    def _held_lease(self) -> pb.HeldLease:
        """The HeldLease a heartbeat sends for this item, with a cursor not yet sent
        (the caller holds the worker's lock)."""
        held = pb.HeldLease(step=self.step, key=convert.item_key(self.key),
                            lease_token=self.lease_token, logs=self.logs.take())
        if self._new_cursor is not None:
            held.cursor = self._new_cursor
        return held

    def _cursor_sent(self, held: pb.HeldLease) -> None:
        """After a heartbeat that carried `held` succeeded: its cursor is saved (the
        caller holds the worker's lock)."""
        if held.HasField("cursor") and self._new_cursor == held.cursor:
            self._new_cursor = None
