"""The programs and state behind ckpt.Worker and ckpt.aio.Worker (see ckpt/worker.py for
what the loop does), and the state an Item shares with its worker."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from typing import Any, Callable, Iterator, Optional, Union

from ckpt import convert
from ckpt import errors
from ckpt import retry as retry_lib
from ckpt._calls import ClientCore
from ckpt._jobs import error_text
from ckpt._program import Hand, Idle, Program, StartHeartbeat, StopHeartbeat, response
from ckpt.v1 import checkpoint_pb2 as pb

_log = logging.getLogger("ckpt")

# Unregistering on close is worth a few seconds of retries, not the Client's whole
# policy: with ckptd gone, a pipeline on its way out would wait that long, and the
# unstarted leases come back when they expire anyway.
UNREGISTER_ON_CLOSE = retry_lib.RetryPolicy(total_timeout=5.0)

_END_SHORTFALLS = frozenset({
    pb.LEASE_SHORTFALL_JOB_FINISHED, pb.LEASE_SHORTFALL_JOB_STOPPED,
    pb.LEASE_SHORTFALL_STEP_DRAINED,
})

# on_event(kind, info): see Worker.
OnEvent = Callable[[str, dict[str, Any]], None]


class ItemBase:
    """One leased item; ckpt.Item and ckpt.aio.Item add fail() and the context manager.

    Attributes: key (int index or str name), step, lease_token, attempt (1 for the
    first try), cursor (bytes saved by an earlier try, or b""), worker_id (the
    registration holding the lease). Thread-safe.
    """

    def __init__(self, worker: WorkerCore, lease: pb.Lease, worker_id: str) -> None:
        self.key: Union[int, str] = convert.key_value(lease.key)
        self.step = lease.step
        self.lease_token = lease.lease_token
        self.attempt = lease.attempt
        self.cursor = lease.cursor
        self.worker_id = worker_id
        self._worker = worker
        self._lost = threading.Event()
        self._lock = threading.Lock()
        self._resolved = False
        self._started: Optional[float] = None  # time.monotonic() when handed out
        self._new_cursor: Optional[bytes] = None  # not yet sent by a heartbeat

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
        return self._lost.is_set()

    @property
    def resolved(self) -> bool:
        """True once completed or failed (or dropped as lost)."""
        with self._lock:
            return self._resolved

    def save_cursor(self, cursor: bytes) -> None:
        """Saves `cursor` (bytes, <= 64 KiB) with the item at the next heartbeat; if
        this try ends without completing, the next lease of the item hands it back."""
        with self._lock:
            self._new_cursor = bytes(cursor)

    def complete(self, *, output_paths: Any = (), payload: bytes = b"",
                 metrics: Optional[pb.ItemMetrics] = None,
                 wall_time: Optional[convert.Seconds] = None) -> None:
        """Records the item completed (sent with the Worker's next batch, so this never
        blocks). wall_time defaults to the time since the item was handed out.
        Raises RuntimeError if the item was already completed or failed."""
        if wall_time is None and self._started is not None:
            wall_time = time.monotonic() - self._started
        from ckpt._jobs import item_result
        result = item_result(output_paths, payload, wall_time, metrics)
        if self._resolve():
            self._worker.buffer_completion(self, result)

    def _fail(self, error: Union[str, BaseException],
              retryable: Optional[bool]) -> Program[None]:
        """The program of fail(): records a failure now."""
        if self._resolve():
            yield from self._worker.fail(self, error_text(error), retryable)

    def _exit_fails(self, exc_type: Optional[type[BaseException]],
                    exc: Optional[BaseException]) -> bool:
        """For __exit__: completes the item on success; True if it must be failed with
        `exc` (the body raised an Exception and the item is unresolved)."""
        if exc_type is None:
            if not self.resolved:
                self.complete()
            return False
        if not issubclass(exc_type, Exception) or self.resolved:
            return False  # KeyboardInterrupt, SystemExit: the lease is released at close
        _log.warning("ckpt: item %r failed: %s", self.key, error_text(exc or exc_type()),
                     exc_info=exc)
        return True

    def _suppress(self, exc_type: Optional[type[BaseException]]) -> bool:
        """For __exit__: whether to swallow the body's exception."""
        return (exc_type is not None and issubclass(exc_type, Exception)
                and not self._worker.raise_errors)

    # ---------------------------------------------------------------- for the worker

    def _resolve(self) -> bool:
        """Marks the item resolved; False (and nothing to send) if its lease is lost."""
        with self._lock:
            if self._resolved:
                raise RuntimeError(f"item {self.key!r} was already completed or failed")
            self._resolved = True
        if self.lost:
            _log.info("ckpt: item %r: lease lost, not recorded", self.key)
            self._worker.drop(self)
            return False
        return True

    def _drop_if_unresolved(self) -> bool:
        """Resolves a lost item that was never recorded; True if it was unresolved."""
        with self._lock:
            if self._resolved:
                return False
            self._resolved = True
            return True

    def _held_lease(self) -> pb.HeldLease:
        """The HeldLease a heartbeat sends for this item, with a cursor not yet sent."""
        held = pb.HeldLease(step=self.step, key=convert.item_key(self.key),
                            lease_token=self.lease_token)
        with self._lock:
            if self._new_cursor is not None:
                held.cursor = self._new_cursor
        return held

    def _cursor_sent(self, held: pb.HeldLease) -> None:
        """After a heartbeat that carried `held` succeeded: its cursor is saved."""
        with self._lock:
            if held.HasField("cursor") and self._new_cursor == held.cursor:
                self._new_cursor = None


class WorkerOptions:
    """A Worker's arguments; see ckpt.Worker."""

    def __init__(self, *, step: str = "", lease_batch: int = 16, complete_batch: int = 64,
                 flush_interval: Optional[float] = None,
                 heartbeat_interval: Optional[float] = None, max_idle_wait: float = 5.0,
                 retry_failures: bool = True, raise_errors: bool = False,
                 hostname: Optional[str] = None, pid: Optional[int] = None,
                 invocation_id: str = "", labels: Optional[dict[str, str]] = None,
                 on_event: Optional[OnEvent] = None) -> None:
        if lease_batch < 1 or complete_batch < 1:
            raise ValueError("lease_batch and complete_batch must be >= 1")
        self.step = step
        self.lease_batch = lease_batch
        self.complete_batch = complete_batch
        self.flush_interval = flush_interval
        self.heartbeat_interval = heartbeat_interval
        self.max_idle_wait = max_idle_wait
        self.retry_failures = retry_failures
        self.raise_errors = raise_errors
        self.hostname = hostname if hostname is not None else socket.gethostname()
        self.pid = pid if pid is not None else os.getpid()
        self.invocation_id = invocation_id
        self.labels = labels or {}
        self.on_event = on_event


class WorkerCore:
    """A worker's state and programs. The iterating program (run) is driven from one
    thread or task; heartbeat() from another; items may be resolved from any thread."""

    def __init__(self, client: ClientCore, job_id: str, options: WorkerOptions,
                 make_item: Callable[[WorkerCore, pb.Lease, str], ItemBase]) -> None:
        self.client = client
        self.job_id = job_id
        self.options = options
        self.raise_errors = options.raise_errors
        self._make_item = make_item
        self._registration = pb.RegisterWorkerRequest(
            job_id=job_id, hostname=options.hostname, pid=options.pid,
            invocation_id=options.invocation_id, labels=options.labels)
        self._heartbeat_interval = options.heartbeat_interval
        self._lock = threading.Lock()
        self._worker_id: Optional[str] = None
        self._registration_lost: Optional[str] = None  # the id a heartbeat found lost
        self._held: dict[tuple[str, int], ItemBase] = {}  # leased, not yet resolved
        self._completions: list[tuple[ItemBase, pb.ItemResult]] = []  # waiting to be sent
        self._oldest_completion: Optional[float] = None
        self._control: int = pb.CONTROL_WORD_RUN
        self._batch: list[ItemBase] = []  # leased, not yet handed out (iterating side)
        self.control_changed: Callable[[], None] = lambda: None  # set by the driver
        self._closed = False

    @property
    def worker_id(self) -> Optional[str]:
        with self._lock:
            return self._worker_id

    # ---------------------------------------------------------------- the loop

    def run(self, per_batch: bool) -> Program[None]:
        """Registers, then leases and hands out items (Hand) until the job or step ends
        or STOP: one item per Hand, or each leased batch whole if `per_batch`."""
        yield from self._register()
        yield StartHeartbeat(self._heartbeat_interval or 1.0)
        idle = 0
        while True:
            items = self._take(per_batch)
            if not items:
                outcome = yield from self._lease()
                if outcome == "done":
                    return
                idle = idle + 1 if outcome == "wait" else 0
                if outcome == "wait":
                    yield Idle(self._idle_wait(idle - 1))
                continue
            if self._control == pb.CONTROL_WORD_STOP:
                self.emit("finished", reason="STOP")
                return
            if self._control == pb.CONTROL_WORD_PAUSE:
                self._batch[:0] = items
                yield from self.flush()
                self.emit("waiting", reason="paused")
                yield Idle(self._idle_wait(idle))
                idle += 1
                continue
            idle = 0
            now = time.monotonic()
            for item in items:
                item._started = now
            yield Hand(items)
            yield from self._after_body(items)

    def _take(self, per_batch: bool) -> list[ItemBase]:
        live = [item for item in self._batch if not item.lost]
        taken = live if per_batch else live[:1]
        self._batch = live[len(taken):]
        return taken

    def _idle_wait(self, idle: int) -> float:
        return float(min(self.options.max_idle_wait, 0.1 * (2 ** min(idle, 16))))

    def _after_body(self, items: list[ItemBase]) -> Program[None]:
        for item in items:
            if item.lost:
                if item._drop_if_unresolved():
                    self.drop(item)
            elif not item.resolved:
                item.complete()
        with self._lock:
            waiting = len(self._completions)
            oldest = self._oldest_completion
        if waiting >= self.options.complete_batch or (
                oldest is not None and time.monotonic() - oldest >= self._flush_after()):
            yield from self.flush()

    def _lease(self) -> Program[str]:
        """Leases a batch. Returns "got" (items, or ask again now), "wait" or "done"."""
        worker_id = self.worker_id
        if self._registration_lost is not None and self._registration_lost == worker_id:
            yield from self._reregister(worker_id, "a heartbeat found it lost",
                                        unregister=False)
            return "got"
        request = pb.LeaseItemsRequest(job_id=self.job_id, step=self.options.step,
                                       worker_id=worker_id or "",
                                       max_items=self.options.lease_batch)
        try:
            answer = yield from self.client.call("LeaseItems", request)
        except errors.FailedPreconditionError as e:  # unregistered, or declared lost
            yield from self._reregister(worker_id, e.message, unregister=False)
            return "got"
        except errors.CkptError as e:
            if not e.maybe_applied:
                raise
            # Leases may have been granted unseen: return them (no attempt counted).
            yield from self.flush()
            yield from self._reregister(worker_id, f"answer to LeaseItems lost ({e})",
                                        unregister=True)
            return "got"
        leased = response(answer, pb.LeaseItemsResponse)
        self.set_control(leased.control)
        if leased.leases:
            with self._lock:
                for lease in leased.leases:
                    item = self._make_item(self, lease, worker_id or "")
                    self._held[(item.step, item.lease_token)] = item
                    self._batch.append(item)
            return "got"
        if leased.shortfall in _END_SHORTFALLS:
            yield from self.flush()
            self.emit("finished", reason=pb.LeaseShortfall.Name(leased.shortfall))
            return "done"
        with self._lock:
            have_completions = bool(self._completions)
        if have_completions:
            yield from self.flush()  # our own buffered items may be all that keeps it open
            return "got"
        paused = leased.shortfall == pb.LEASE_SHORTFALL_JOB_PAUSED
        self.emit("waiting", reason="paused" if paused else "none_pending")
        return "wait"

    # ---------------------------------------------------------------- registration

    def _register(self) -> Program[None]:
        # Safe to repeat after a lost answer: a stray registration holds nothing and
        # stops counting as active after one lease timeout.
        answer = yield from self.client.call("RegisterWorker", self._registration,
                                             idempotent=True)
        registered = response(answer, pb.RegisterWorkerResponse)
        with self._lock:
            self._worker_id = registered.worker_id
            if self._heartbeat_interval is None:
                self._heartbeat_interval = convert.seconds(registered.heartbeat_interval)
        self.emit("registered", worker_id=registered.worker_id)

    def _reregister(self, old_id: Optional[str], reason: str,
                    unregister: bool) -> Program[None]:
        """Registers again (the iterating side only, so never twice at once)."""
        if unregister and old_id is not None:
            yield from self._unregister(old_id)
        _log.warning("ckpt: worker %s registers again: %s", old_id, reason)
        yield from self._register()
        self.emit("reregistered", old=old_id, new=self.worker_id, reason=reason)

    def _unregister(self, worker_id: str,
                    retry: Optional[retry_lib.RetryPolicy] = None) -> Program[None]:
        try:
            yield from self.client.call("UnregisterWorker", pb.UnregisterWorkerRequest(
                job_id=self.job_id, worker_id=worker_id), retry=retry)
        except errors.CkptError as e:
            _log.warning("ckpt: could not unregister worker %s: %s", worker_id, e)

    # ---------------------------------------------------------------- heartbeat

    @property
    def heartbeat_interval(self) -> float:
        return self._heartbeat_interval or 1.0

    def heartbeat(self) -> Program[None]:
        """One heartbeat: the leases held by the current registration and their new
        cursors; marks the leases it reports lost, and takes the control word."""
        with self._lock:
            worker_id = self._worker_id
            if worker_id is None or worker_id == self._registration_lost:
                return  # the iterating side registers again at its next lease
            # Only leases of the current registration: a new one cannot vouch for old.
            held = [item for item in self._held.values() if item.worker_id == worker_id]
        leases = [item._held_lease() for item in held]
        # One heartbeat may retry for about an interval (at least a second, however
        # short the interval) before the next one takes over.
        budget = max(self.heartbeat_interval, 1.0)
        policy = retry_lib.RetryPolicy(total_timeout=budget, max_backoff=budget / 4)
        try:
            answer = yield from self.client.call(
                "Heartbeat", pb.HeartbeatRequest(job_id=self.job_id, worker_id=worker_id,
                                                 leases=leases),
                timeout=min(self.client.timeout, budget), retry=policy)
        except errors.FailedPreconditionError as e:
            _log.warning("ckpt: worker %s: %s", worker_id, e.message)
            with self._lock:
                self._registration_lost = worker_id
            self.emit("registration_lost", worker_id=worker_id, reason=e.message)
            self.control_changed()  # an idle loop registers again now
            return
        except errors.CkptError as e:
            _log.warning("ckpt: heartbeat of worker %s: %s", worker_id, e)
            return
        beat = response(answer, pb.HeartbeatResponse)
        for item, sent in zip(held, leases):
            item._cursor_sent(sent)
        by_token = {(item.step, item.lease_token): item for item in held}
        for lost in beat.lost:
            lost_item = by_token.get((lost.step, lost.lease_token))
            if lost_item is not None:
                self.mark_lost(lost_item, lost.reason)
        self.set_control(beat.control)
        self.emit("heartbeat", control=pb.ControlWord.Name(beat.control), lost=len(beat.lost))

    def set_control(self, control: int) -> None:
        if control == pb.CONTROL_WORD_UNSPECIFIED:
            return
        with self._lock:
            changed = control != self._control
            self._control = control
        if changed:
            self.control_changed()

    def mark_lost(self, item: ItemBase, reason: str) -> None:
        item._lost.set()
        with self._lock:
            self._held.pop((item.step, item.lease_token), None)
        _log.warning("ckpt: lease of item %r lost: %s", item.key, reason)
        self.emit("lease_lost", key=item.key, reason=reason)

    # ---------------------------------------------------------------- recording

    def buffer_completion(self, item: ItemBase, result: pb.ItemResult) -> None:
        with self._lock:
            self._held.pop((item.step, item.lease_token), None)
            self._completions.append((item, result))
            if self._oldest_completion is None:
                self._oldest_completion = time.monotonic()

    def fail(self, item: ItemBase, message: str, retryable: Optional[bool]) -> Program[None]:
        with self._lock:
            self._held.pop((item.step, item.lease_token), None)
            worker_id = self._worker_id
        if retryable is None:
            retryable = self.options.retry_failures
        failure = pb.Failure(key=convert.item_key(item.key), lease_token=item.lease_token,
                             error=pb.ItemError(message=message, retryable=retryable))
        try:
            yield from self.client.call("FailItems", pb.FailItemsRequest(
                job_id=self.job_id, step=item.step, worker_id=worker_id or "",
                items=[failure]))
        except errors.FailedPreconditionError as e:  # lease lost: drop the item
            self.mark_lost(item, e.message)

    def drop(self, item: ItemBase) -> None:
        with self._lock:
            self._held.pop((item.step, item.lease_token), None)

    def flush(self) -> Program[None]:
        """Sends the buffered completions, complete_batch per call."""
        with self._lock:
            waiting, self._completions = self._completions, []
            self._oldest_completion = None
            worker_id = self._worker_id
        for chunk in _distinct_chunks(waiting, self.options.complete_batch):
            answer = yield from self.client.call("CompleteItems", pb.CompleteItemsRequest(
                job_id=self.job_id, step=chunk[0][0].step, worker_id=worker_id or "",
                skip_lost_leases=True,
                items=[pb.Completion(key=convert.item_key(item.key),
                                     lease_token=item.lease_token, result=result)
                       for item, result in chunk]))
            outcomes = response(answer, pb.CompleteItemsResponse).outcomes
            for (item, _), outcome in zip(chunk, outcomes):
                if outcome == pb.COMPLETION_OUTCOME_LEASE_LOST:
                    self.mark_lost(item, "lease lost before its completion was sent")

    def _flush_after(self) -> float:
        if self.options.flush_interval is not None:
            return self.options.flush_interval
        return self.heartbeat_interval

    def close(self, raise_errors: bool) -> Program[None]:
        """Stops heartbeating, sends buffered completions and unregisters (unfinished
        leases go back to PENDING without counting an attempt). Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        yield StopHeartbeat()
        try:
            try:
                yield from self.flush()
            except errors.CkptError as e:
                if raise_errors:
                    raise
                _log.warning("ckpt: completions not sent (their items will be redone): %s", e)
        finally:
            worker_id = self.worker_id
            if worker_id is not None:
                yield from self._unregister(worker_id, retry=UNREGISTER_ON_CLOSE)

    def emit(self, kind: str, **info: Any) -> None:
        if self.options.on_event is None:
            return
        try:
            self.options.on_event(kind, info)
        except Exception:
            _log.exception("ckpt: on_event(%r) raised", kind)


def _distinct_chunks(completions: list[tuple[ItemBase, pb.ItemResult]],
                     size: int) -> Iterator[list[tuple[ItemBase, pb.ItemResult]]]:
    """Splits (Item, result) pairs into runs of at most `size` with distinct keys (a
    CompleteItems batch must not repeat a key; an item lost and leased again can be
    buffered twice, and its older try must go first)."""
    chunk: list[tuple[ItemBase, pb.ItemResult]] = []
    keys: set[Union[int, str]] = set()
    for completion in completions:
        key = completion[0].key
        if len(chunk) == size or key in keys:
            yield chunk
            chunk, keys = [], set()
        chunk.append(completion)
        keys.add(key)
    if chunk:
        yield chunk
