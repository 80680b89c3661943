"""The programs and state behind ckpt.Worker and ckpt.aio.Worker (see ckpt/worker.py for
what the loop does)."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections import deque
from typing import Any, Callable, Iterator, Optional, Union

from google.protobuf.message import Message

from ckpt import _item_logs
from ckpt import convert
from ckpt import errors
from ckpt import retry as retry_lib
from ckpt._calls import ClientCore
from ckpt._batching import (DEFAULT_COMPLETE_BATCH, REFUSED_WHOLE, Ahead, Completions,
                            LeaseSizer, distinct_chunks)
from ckpt._item_core import ItemBase, Leased, leased_items
from ckpt._program import (Done, Hand, Idle, Join, Program, Spawn, StartHeartbeat,
                           StopHeartbeat, response)
from ckpt.v1 import checkpoint_pb2 as pb

_log = logging.getLogger("ckpt")

# Unregistering on close is worth a few seconds of retries, not the Client's whole
# policy: with ckptd gone, a pipeline on its way out would wait that long, and the
# unstarted leases come back when they expire anyway.
UNREGISTER_ON_CLOSE = retry_lib.RetryPolicy(total_timeout=5.0)

# The next batch is leased ahead only for batches at least this big: below, items are
# slow enough (LeaseSizer) that a lease's round trip is nothing next to them, and a
# worker told to stop or pause should not hold a batch it asked for early.
PREFETCH_MIN_BATCH = 8

_END_SHORTFALLS = frozenset({
    pb.LEASE_SHORTFALL_JOB_FINISHED, pb.LEASE_SHORTFALL_JOB_STOPPED,
    pb.LEASE_SHORTFALL_STEP_DRAINED,
})

# on_event(kind, info): see Worker.
OnEvent = Callable[[str, dict[str, Any]], None]


class WorkerOptions:
    """A Worker's arguments; see ckpt.Worker."""

    def __init__(self, *, step: str = "", lease_batch: Optional[int] = None,
                 complete_batch: int = DEFAULT_COMPLETE_BATCH, max_in_flight: int = 2,
                 flush_interval: Optional[float] = None,
                 heartbeat_interval: Optional[float] = None, max_idle_wait: float = 5.0,
                 retry_failures: bool = True, raise_errors: bool = False,
                 hostname: Optional[str] = None, pid: Optional[int] = None,
                 invocation_id: str = "", labels: Optional[dict[str, str]] = None,
                 on_event: Optional[OnEvent] = None, capture_logs: bool = True) -> None:
        if (lease_batch is not None and lease_batch < 1) or complete_batch < 1:
            raise ValueError("lease_batch and complete_batch must be >= 1")
        if max_in_flight < 0:
            raise ValueError("max_in_flight must be >= 0")
        self.step = step
        self.lease_batch = lease_batch
        self.complete_batch = complete_batch
        self.max_in_flight = max_in_flight
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
        self.capture_logs = capture_logs


class WorkerCore:
    """A worker's state and programs. The iterating program (run) is driven from one
    thread or task, and so are the calls it spawns; heartbeat() runs from another;
    items may be resolved from any thread.

    Pipelining: while the loop body works, the next batch is leased (once half of the
    batch in hand is handed out, for batches of PREFETCH_MIN_BATCH or more) and
    completions are sent without waiting for their answers, at most max_in_flight
    CompleteItems calls at a time. What an answer means is decided here when it is
    joined, on the iterating side, as if the call had just been made.

    The next batch is asked for with the completions waiting at that moment, in one
    CompleteItems (lease_next: one call and one synced commit instead of two), unless
    none wait or ckptd has answered without a lease part (it predates lease_next); then
    with LeaseItems, as is a batch whose CompleteItems was refused."""

    def __init__(self, client: ClientCore, job_id: str, options: WorkerOptions,
                 make_item: Callable[[WorkerCore, Leased, str], ItemBase]) -> None:
        self.client = client
        self.job_id = job_id
        self.options = options
        self.raise_errors = options.raise_errors
        self._make_item = make_item
        self._registration = pb.RegisterWorkerRequest(
            job_id=job_id, hostname=options.hostname, pid=options.pid,
            invocation_id=options.invocation_id, labels=options.labels)
        self._heartbeat_interval = options.heartbeat_interval
        self._lock = threading.Lock()  # guards the fields below and every item's state
        self._worker_id: Optional[str] = None
        self._registration_lost: Optional[str] = None  # the id a heartbeat found lost
        self._held: dict[tuple[str, int], ItemBase] = {}  # leased, not yet resolved
        self._completions: list[tuple[ItemBase, pb.ItemResult]] = []  # waiting to be sent
        self._oldest_completion: Optional[float] = None
        self._control: int = pb.CONTROL_WORD_RUN
        self.control_changed: Callable[[], None] = lambda: None  # set by the driver
        self._closed = False
        self._capturing = False  # the logging handler is installed for this worker
        # The iterating side's own (no lock):
        self._batch: deque[ItemBase] = deque()  # leased, not yet handed out
        self._sizer = LeaseSizer(options.lease_batch)
        self._prefetch: Optional[Ahead] = None  # the next batch, asked for ahead
        self._leasing_freely = False  # the last lease got all it asked for
        self._lease_next = True  # until ckptd answers a lease_next without its lease part
        self._sending: deque[tuple[Any, Completions]] = deque()

    @property
    def worker_id(self) -> Optional[str]:
        with self._lock:
            return self._worker_id

    # ---------------------------------------------------------------- the loop

    def run(self, per_batch: bool) -> Program[None]:
        """Registers, then leases and hands out items (Hand) until the job or step ends
        or STOP: one item per Hand, or each leased batch whole if `per_batch`."""
        if self.options.capture_logs and not self._capturing:
            _item_logs.install()
            self._capturing = True
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
                    self._sizer.paused()
                    yield Idle(self._idle_wait(idle - 1))
                continue
            if self._control == pb.CONTROL_WORD_STOP:
                self.emit("finished", reason="STOP")
                return
            if self._control == pb.CONTROL_WORD_PAUSE:
                self._batch.extendleft(reversed(items))
                yield from self.flush()
                self.emit("waiting", reason="paused")
                self._sizer.paused()
                yield Idle(self._idle_wait(idle))
                idle += 1
                continue
            idle = 0
            if self._should_prefetch():
                self._prefetch = yield from self._ask()
            self._sizer.handed(len(items))
            now = time.monotonic()
            for item in items:
                item._started = now
            yield Hand(items)
            yield from self._after_body(items)

    def _take(self, per_batch: bool) -> list[ItemBase]:
        batch = self._batch
        while batch and batch[0]._lost:
            batch.popleft()
        if not batch:
            return []
        if not per_batch:
            return [batch.popleft()]
        taken = [item for item in batch if not item._lost]
        batch.clear()
        return taken

    def _idle_wait(self, idle: int) -> float:
        return float(min(self.options.max_idle_wait, 0.1 * (2 ** min(idle, 16))))

    def _should_prefetch(self, sending: bool = False) -> bool:
        """Whether to ask for the next batch now: once half of the batch in hand is
        handed out, or a quarter if completions are being sent anyway (`sending`), so
        that they carry the lease (with complete_batch equal to the batch size, the
        completions fall due just before the half point, every batch)."""
        size = self._sizer.size
        handed_enough = len(self._batch) <= (size * 3 // 4 if sending else size // 2)
        return (self.options.max_in_flight > 0 and self._prefetch is None
                and self._leasing_freely and self._control == pb.CONTROL_WORD_RUN
                and size >= PREFETCH_MIN_BATCH and handed_enough
                and self._registration_lost is None)

    def _after_body(self, items: list[ItemBase]) -> Program[None]:
        for item in items:
            if item._resolved:
                continue
            if item._lost:
                self._drop_unresolved(item)
            else:
                item.complete()
        with self._lock:
            waiting = len(self._completions)
            oldest = self._oldest_completion
        if waiting >= self.options.complete_batch or (
                oldest is not None and time.monotonic() - oldest >= self._flush_after()):
            if self._should_prefetch(sending=True):
                self._prefetch = yield from self._ask()
            else:
                yield from self._send()

    # ---------------------------------------------------------------- leasing

    def _lease_call(self, worker_id: str, size: int) -> Program[Message]:
        """LeaseItems itself (spawned ahead, or joined at once)."""
        request = pb.LeaseItemsRequest(job_id=self.job_id, step=self.options.step,
                                       worker_id=worker_id, max_items=size, packed=True)
        answer: Message = yield from self.client.call("LeaseItems", request,
                                                      probe_unless_answered=True)
        return answer

    def _ask(self) -> Program[Ahead]:
        """Spawns the call that leases the next batch: the waiting completions with
        lease_next, or LeaseItems."""
        worker_id = self.worker_id or ""
        size = self._sizer.next_size()
        combined = yield from self._take_with_lease(worker_id, size)
        if combined is None:
            return Ahead((yield Spawn(self._lease_call(worker_id, size))), worker_id)
        request, chunk = combined
        task = yield Spawn(self.client.call("CompleteItems", request))
        return Ahead(task, worker_id, request, chunk)

    def _take_with_lease(self, worker_id: str, size: int
                         ) -> Program[Optional[tuple[pb.CompleteItemsRequest, Completions]]]:
        """Takes the waiting completions for a CompleteItems that also leases `size`
        items: its request and its chunk (chunks before it are sent as usual); None if
        none wait, or ckptd predates lease_next."""
        if not self._lease_next:
            return None
        with self._lock:
            waiting, self._completions = self._completions, []
            self._oldest_completion = None
        if not waiting:
            return None
        chunks = list(distinct_chunks(waiting, self.options.complete_batch))
        for chunk in chunks[:-1]:
            yield from self._send_request(self._completion_request(chunk, worker_id), chunk)
        request = self._completion_request(chunks[-1], worker_id)
        request.lease_next.max_items = size
        request.lease_next.packed = True
        return request, chunks[-1]

    def _resolve(self, ahead: Ahead) -> Program[Optional[pb.LeaseItemsResponse]]:
        """A CompleteItems with lease_next answered (joined, or called now if it was not
        spawned): its completions recorded, and the lease part, or None if there is
        none (refused whole: its completions are sent again alone; or ckptd predates
        lease_next). Once per call; then the same."""
        if ahead.resolved or ahead.request is None:
            return ahead.leased
        ahead.resolved = True
        try:
            if ahead.task is None:
                answer = yield from self.client.call("CompleteItems", ahead.request)
            else:
                answer = yield Join(ahead.task)
        except REFUSED_WHOLE as e:
            if e.maybe_applied:
                raise
            _log.info("ckpt: completions with the next lease refused (%s); sent alone", e)
            ahead.request.ClearField("lease_next")
            yield from self._send_request(ahead.request, ahead.chunk)
            return None
        answered = response(answer, pb.CompleteItemsResponse)
        self._recorded(ahead.chunk, answered)
        if answered.HasField("leased"):
            ahead.leased = answered.leased
        else:
            self._lease_next = False
        return ahead.leased

    def _lease(self) -> Program[str]:
        """Takes the batch asked for ahead, or asks for one now (with the waiting
        completions, or LeaseItems). Returns "got" (items, or ask again now), "wait" or
        "done"."""
        ahead, self._prefetch = self._prefetch, None
        worker_id = ahead.worker_id if ahead is not None else (self.worker_id or "")
        if (ahead is None and self._registration_lost is not None
                and self._registration_lost == worker_id):
            yield from self._reregister(worker_id, "a heartbeat found it lost",
                                        unregister=False)
            return "got"
        if ahead is None:
            combined = yield from self._take_with_lease(worker_id, self._sizer.next_size())
            if combined is not None:
                ahead = Ahead(None, worker_id, *combined)
        if ahead is not None and ahead.request is not None:
            leased = yield from self._resolve(ahead)
            if leased is not None:
                return (yield from self._leased(leased, worker_id))
            ahead, worker_id = None, self.worker_id or ""
        try:
            if ahead is not None:
                answer = yield Join(ahead.task)
            else:
                answer = yield from self._lease_call(worker_id, self._sizer.next_size())
        except errors.FailedPreconditionError as e:  # unregistered, or declared lost
            yield from self._reregister(worker_id, e.message, unregister=False)
            return "got"
        except errors.CkptError as e:
            if not e.maybe_applied:
                raise
            # Leases may have been granted unseen: return them (no attempt counted).
            # Every item handed out is resolved by now: their completions go first.
            yield from self.flush()
            yield from self._reregister(worker_id, f"answer to LeaseItems lost ({e})",
                                        unregister=True)
            return "got"
        return (yield from self._leased(response(answer, pb.LeaseItemsResponse), worker_id))

    def _leased(self, leased: pb.LeaseItemsResponse, worker_id: str) -> Program[str]:
        self.set_control(leased.control)
        got = bool(leased.leases) or bool(leased.lease_runs)
        self._leasing_freely = got and leased.shortfall == pb.LEASE_SHORTFALL_UNSPECIFIED
        if got:
            with self._lock:
                for lease in leased_items(leased):
                    item = self._make_item(self, lease, worker_id)
                    self._held[(item.step, item.lease_token)] = item
                    self._batch.append(item)
            return "got"
        if leased.shortfall in _END_SHORTFALLS:
            yield from self.flush()
            self.emit("finished", reason=pb.LeaseShortfall.Name(leased.shortfall))
            return "done"
        with self._lock:
            have_completions = bool(self._completions)
        if have_completions and self._lease_next:
            return "got"  # the next lease goes with them: they may be all that keeps it open
        if have_completions or self._sending:
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
        if unregister and old_id:
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
            self._logs_unsent(held, leases)
            with self._lock:
                self._registration_lost = worker_id
            self.emit("registration_lost", worker_id=worker_id, reason=e.message)
            self.control_changed()  # an idle loop registers again now
            return
        except errors.CkptError as e:
            _log.warning("ckpt: heartbeat of worker %s: %s", worker_id, e)
            self._logs_unsent(held, leases)
            return
        beat = response(answer, pb.HeartbeatResponse)
        with self._lock:
            for item, sent in zip(held, leases):
                item._cursor_sent(sent)
        by_token = {(item.step, item.lease_token): item for item in held}
        for lost in beat.lost:
            lost_item = by_token.get((lost.step, lost.lease_token))
            if lost_item is not None:
                self.mark_lost(lost_item, lost.reason)
        self.set_control(beat.control)
        self.emit("heartbeat", control=pb.ControlWord.Name(beat.control), lost=len(beat.lost))

    @staticmethod
    def _logs_unsent(held: list[ItemBase], leases: list[pb.HeldLease]) -> None:
        """After a heartbeat that failed: its items' entries wait for the next call."""
        for item, sent in zip(held, leases):
            item.logs.put_back(sent.logs)

    def set_control(self, control: int) -> None:
        if control == pb.CONTROL_WORD_UNSPECIFIED:
            return
        with self._lock:
            changed = control != self._control
            self._control = control
        if changed:
            self.control_changed()

    def mark_lost(self, item: ItemBase, reason: str) -> None:
        item._lost = True
        with self._lock:
            self._held.pop((item.step, item.lease_token), None)
        _log.warning("ckpt: lease of item %r lost: %s", item.key, reason)
        self.emit("lease_lost", key=item.key, reason=reason)

    # ---------------------------------------------------------------- recording

    def resolve(self, item: ItemBase) -> bool:
        """Marks `item` resolved (it leaves the held leases); False, and nothing to
        send, if its lease is lost. RuntimeError if it already was resolved."""
        with self._lock:
            if item._resolved:
                raise RuntimeError(f"item {item.key!r} was already completed or failed")
            item._resolved = True
            self._held.pop((item.step, item.lease_token), None)
            if not item._lost:
                return True
        _log.info("ckpt: item %r: lease lost, not recorded", item.key)
        return False

    def buffer_completion(self, item: ItemBase, result: pb.ItemResult) -> None:
        """Resolves `item` and buffers its completion (unless its lease is lost)."""
        with self._lock:
            if item._resolved:
                raise RuntimeError(f"item {item.key!r} was already completed or failed")
            item._resolved = True
            self._held.pop((item.step, item.lease_token), None)
            if not item._lost:
                self._completions.append((item, result))
                if self._oldest_completion is None:
                    self._oldest_completion = time.monotonic()
                return
        _log.info("ckpt: item %r: lease lost, not recorded", item.key)

    def fail(self, item: ItemBase, message: str, retryable: Optional[bool]) -> Program[None]:
        with self._lock:
            worker_id = self._worker_id
        if retryable is None:
            retryable = self.options.retry_failures
        failure = pb.Failure(key=convert.item_key(item.key), lease_token=item.lease_token,
                             error=pb.ItemError(message=message, retryable=retryable),
                             logs=item.logs.take())
        try:
            yield from self.client.call("FailItems", pb.FailItemsRequest(
                job_id=self.job_id, step=item.step, worker_id=worker_id or "",
                items=[failure]))
        except errors.FailedPreconditionError as e:  # lease lost: drop the item
            self.mark_lost(item, e.message)

    def _drop_unresolved(self, item: ItemBase) -> None:
        """A lost item the body left unresolved: resolved, with nothing to send."""
        with self._lock:
            item._resolved = True
            self._held.pop((item.step, item.lease_token), None)

    def flush(self) -> Program[None]:
        """Sends the buffered completions and waits until every CompleteItems call in
        flight has been answered (raising the first failure once all were); a batch
        asked for with completions is kept for the loop to take."""
        failure: Optional[errors.CkptError] = None
        if self._prefetch is not None:
            try:
                yield from self._resolve(self._prefetch)
            except errors.CkptError as e:
                self._prefetch, failure = None, e
        yield from self._send()
        while self._sending:
            try:
                yield from self._join_oldest()
            except errors.CkptError as e:
                failure = failure or e
        if failure is not None:
            raise failure

    def _send(self) -> Program[None]:
        """Sends the buffered completions, complete_batch per call."""
        with self._lock:
            waiting, self._completions = self._completions, []
            self._oldest_completion = None
            worker_id = self._worker_id or ""
        for chunk in distinct_chunks(waiting, self.options.complete_batch):
            yield from self._send_request(self._completion_request(chunk, worker_id), chunk)

    def _completion_request(self, chunk: Completions,
                            worker_id: str) -> pb.CompleteItemsRequest:
        """The CompleteItems of `chunk`, with its items' waiting log entries."""
        request = pb.CompleteItemsRequest(job_id=self.job_id, step=chunk[0][0].step,
                                          worker_id=worker_id, skip_lost_leases=True)
        items = request.items
        for item, result in chunk:
            completion = items.add(key=convert.item_key(item.key),
                                   lease_token=item.lease_token)
            completion.result.CopyFrom(result)
            entries = item.logs.take()
            if entries:
                completion.logs.extend(entries)
        return request

    def _send_request(self, request: pb.CompleteItemsRequest,
                      chunk: Completions) -> Program[None]:
        """Sends one CompleteItems without waiting for its answer while fewer than
        max_in_flight calls are unanswered."""
        call = self.client.call("CompleteItems", request)
        if self.options.max_in_flight == 0:
            self._recorded(chunk, (yield from call))
            return
        while self._sending and (len(self._sending) >= self.options.max_in_flight
                                 or (yield Done(self._sending[0][0]))):
            yield from self._join_oldest()
        self._sending.append(((yield Spawn(call)), chunk))

    def _join_oldest(self) -> Program[None]:
        task, chunk = self._sending.popleft()
        self._recorded(chunk, (yield Join(task)))

    def _recorded(self, chunk: Completions, answer: Any) -> None:
        """CompleteItems of `chunk` answered OK: its items are acknowledged, but for the
        ones whose lease was lost."""
        outcomes = response(answer, pb.CompleteItemsResponse).outcomes
        acknowledged = []
        for (item, _), outcome in zip(chunk, outcomes):
            if outcome == pb.COMPLETION_OUTCOME_LEASE_LOST:
                self.mark_lost(item, "lease lost before its completion was sent")
            else:
                acknowledged.append(item.key)
        if acknowledged and self.options.on_event is not None:
            self.emit("acknowledged", keys=acknowledged, step=chunk[0][0].step)

    def _flush_after(self) -> float:
        if self.options.flush_interval is not None:
            return self.options.flush_interval
        return self.heartbeat_interval

    def close(self, raise_errors: bool) -> Program[None]:
        """Stops heartbeating, sends buffered completions, waits for those in flight and
        unregisters (unfinished leases, the batch leased ahead too, go back to PENDING
        without counting an attempt). Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        if self._capturing:
            _item_logs.uninstall()
            self._capturing = False
        yield StopHeartbeat()
        try:
            yield from self._drop_prefetch()
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

    def _drop_prefetch(self) -> Program[None]:
        """Waits for a LeaseItems asked ahead, whose items unregistering then returns
        (flush() takes in a CompleteItems asked ahead: it carries completions)."""
        prefetch = self._prefetch
        if prefetch is None or prefetch.request is not None:
            return
        self._prefetch = None
        try:
            yield Join(prefetch.task)
        except errors.CkptError as e:
            _log.info("ckpt: lease asked ahead: %s", e)

    def emit(self, kind: str, **info: Any) -> None:
        if self.options.on_event is None:
            return
        try:
            self.options.on_event(kind, info)
        except Exception:
            _log.exception("ckpt: on_event(%r) raised", kind)
