"""ckpt.Item: one leased item, as a Worker hands it out.

    for item in worker:
        with item:                 # completes on success; fails with the exception's text
            process(item.index, resume_from=item.cursor)
            item.save_cursor(b"row 41000")   # kept with the item if this try ends early

An item is resolved once: completed (buffered by its Worker and sent in batches) or
failed (sent at once). An item whose lease was lost (the heartbeat says so: expired,
reset, or leased again) must not be recorded: `lost` turns True and completing it does
nothing. Long bodies may check `item.lost` to stop early.

Thread-safe: complete(), fail(), save_cursor() and the properties may be called from
any thread.
"""

import logging
import threading
import time

from ckpt import convert
from ckpt.job import error_text
from ckpt.v1 import checkpoint_pb2 as pb

_log = logging.getLogger("ckpt")


class Item:
    """One leased item. Attributes: key (int index or str name), step, lease_token,
    attempt (1 for the first try), cursor (bytes saved by an earlier try, or b"")."""

    def __init__(self, worker, lease, worker_id):
        self.key = convert.key_value(lease.key)
        self.step = lease.step
        self.lease_token = lease.lease_token
        self.attempt = lease.attempt
        self.cursor = lease.cursor
        self.worker_id = worker_id  # the registration holding the lease
        self._worker = worker
        self._lost = threading.Event()
        self._lock = threading.Lock()
        self._resolved = False
        self._started = None  # time.monotonic() when handed out
        self._new_cursor = None  # not yet sent by a heartbeat

    def __repr__(self):
        return f"ckpt.Item({self.key!r}, step={self.step!r}, attempt={self.attempt})"

    @property
    def index(self):
        """The item's index, or None for a named item."""
        return self.key if isinstance(self.key, int) else None

    @property
    def name(self):
        """The item's name, or None for an indexed item."""
        return self.key if isinstance(self.key, str) else None

    @property
    def lost(self):
        """True once the lease is known lost: the item must not be recorded."""
        return self._lost.is_set()

    @property
    def resolved(self):
        """True once completed or failed (or dropped as lost)."""
        with self._lock:
            return self._resolved

    def save_cursor(self, cursor):
        """Saves `cursor` (bytes, <= 64 KiB) with the item at the next heartbeat; if
        this try ends without completing, the next lease of the item hands it back."""
        with self._lock:
            self._new_cursor = bytes(cursor)

    def complete(self, *, output_paths=(), payload=b"", metrics=None, wall_time=None):
        """Records the item completed (sent with the Worker's next batch). wall_time
        defaults to the time since the item was handed out.
        Raises RuntimeError if the item was already completed or failed."""
        if wall_time is None and self._started is not None:
            wall_time = time.monotonic() - self._started
        result = pb.ItemResult(output_paths=list(output_paths), payload=payload)
        if metrics is not None:
            result.metrics.CopyFrom(metrics)
        if wall_time is not None and not result.metrics.HasField("wall_time"):
            result.metrics.wall_time.CopyFrom(convert.duration(wall_time))
        if self._resolve():
            self._worker._complete(self, result)

    def fail(self, error, *, retryable=None):
        """Records a failure now: `error` is a message or an exception (its type and
        text are recorded). retryable (default: the Worker's retry_failures) returns the
        item to PENDING while attempts remain; otherwise it becomes FAILED.
        Raises RuntimeError if the item was already completed or failed."""
        if self._resolve():
            self._worker._fail(self, error_text(error), retryable)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, traceback):
        if exc_type is None:
            if not self.resolved:
                self.complete()
            return False
        if not issubclass(exc_type, Exception):
            return False  # KeyboardInterrupt, SystemExit: the lease is released at close
        if not self.resolved:
            _log.warning("ckpt: item %r failed: %s", self.key, error_text(exc),
                         exc_info=(exc_type, exc, traceback))
            self.fail(exc)
        return not self._worker.raise_errors

    # ---------------------------------------------------------------- for the Worker

    def _resolve(self):
        """Marks the item resolved; False (and nothing to send) if its lease is lost."""
        with self._lock:
            if self._resolved:
                raise RuntimeError(f"item {self.key!r} was already completed or failed")
            self._resolved = True
        if self.lost:
            _log.info("ckpt: item %r: lease lost, not recorded", self.key)
            self._worker._drop(self)
            return False
        return True

    def _drop_if_unresolved(self):
        """Resolves a lost item that was never recorded; True if it was unresolved."""
        with self._lock:
            if self._resolved:
                return False
            self._resolved = True
            return True

    def _held_lease(self):
        """The HeldLease a heartbeat sends for this item, with a cursor not yet sent."""
        held = pb.HeldLease(step=self.step, key=convert.item_key(self.key),
                            lease_token=self.lease_token)
        with self._lock:
            if self._new_cursor is not None:
                held.cursor = self._new_cursor
        return held

    def _cursor_sent(self, held):
        """After a heartbeat that carried `held` succeeded: its cursor is saved."""
        with self._lock:
            if held.HasField("cursor") and self._new_cursor == held.cursor:
                self._new_cursor = None
