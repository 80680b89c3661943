"""ckpt.Worker: lease items of a job and hand them out as an iterator.

    worker = ckpt.Worker(client, "curate-2025-12-14", lease_batch=4)
    for item in worker:
        with item:
            process(item.index)

What the loop does, following the server's answers (docs/api.md):
- It registers a worker, then leases up to `lease_batch` items at a time and yields
  them one by one. Leaving the loop body completes the item (unless it was completed,
  failed, or its lease was lost); `with item:` also fails it with the exception's text.
  Completions are buffered and sent in batches (CompleteItems, skipping lost leases):
  when `complete_batch` are waiting, when the oldest has waited `flush_interval`, and
  before the loop waits or ends.
- A background thread heartbeats every `heartbeat_interval` (default: the server's
  suggestion, a third of the lease timeout), listing the leases held and any cursor
  saved. Leases it reports lost are marked (item.lost) and never recorded.
- Control: on PAUSE the loop finishes the current item, then waits (still heartbeating)
  until RUN; on STOP it finishes the current item and ends. LeaseItems says the same
  with its shortfall: JOB_PAUSED waits; JOB_FINISHED, JOB_STOPPED and STEP_DRAINED end
  the loop; NONE_PENDING waits with backoff (up to `max_idle_wait`) and asks again, so a
  job that is never sealed keeps its workers waiting for more items.
- A worker that ckptd declared lost (or that was unregistered) gets FAILED_PRECONDITION
  and registers again under a new id. Items it still holds keep their tokens until
  their leases expire.
- LeaseItems is not safe to repeat (retry.py). If its answer is lost, the worker
  unregisters, which returns any lease it was granted unseen without counting an
  attempt, and registers again; it holds nothing else at that point.
- At the end (or on break, an exception, close()), buffered completions are sent and
  the worker unregisters, returning unfinished leases to PENDING without counting an
  attempt.

Thread-safety: iterate a Worker from one thread, once. Its Items may be completed or
failed from any thread. For parallelism, run one Worker per thread (or process); they
may share one Client.
"""

import collections
import logging
import os
import socket
import threading
import time

from ckpt import convert
from ckpt import errors
from ckpt import retry as retry_lib
from ckpt.item import Item
from ckpt.v1 import checkpoint_pb2 as pb

_log = logging.getLogger("ckpt")

# Unregistering on close is worth a few seconds of retries, not the Client's whole
# policy: with ckptd gone, a pipeline on its way out would wait that long, and the
# unstarted leases come back when they expire anyway.
_UNREGISTER_ON_CLOSE = retry_lib.RetryPolicy(total_timeout=5.0)

_END_SHORTFALLS = frozenset({
    pb.LEASE_SHORTFALL_JOB_FINISHED, pb.LEASE_SHORTFALL_JOB_STOPPED,
    pb.LEASE_SHORTFALL_STEP_DRAINED,
})


class Worker:
    """Leases and hands out the items of one step of a job; see the module comment.

    Args:
      client: a ckpt.Client.
      job_id: the job; step: its step (empty: the first).
      lease_batch: items leased per LeaseItems call.
      complete_batch: completions sent per CompleteItems call (at most).
      flush_interval: seconds a completion may wait to be sent (default: the heartbeat
        interval).
      heartbeat_interval: seconds (default: the server's suggestion).
      max_idle_wait: longest wait, seconds, between two lease attempts when nothing is
        pending or the job is paused.
      retry_failures: whether failures (`with item:`, item.fail()) are retryable: the
        item returns to PENDING until the job's max_attempts. Else it becomes FAILED.
      raise_errors: whether `with item:` re-raises the exception after failing the item
        (default: it is logged and the loop goes on).
      hostname, pid, invocation_id, labels: recorded with the worker (ListWorkers).
      on_event: optional callable(kind, info dict) for observability; kinds:
        "registered" {worker_id}, "heartbeat" {control, lost}, "waiting" {reason:
        "paused" | "none_pending"}, "lease_lost" {key, reason}, "reregistered" {old,
        new, reason}, "finished" {reason}. Called from the iterating or heartbeat
        thread; exceptions it raises are logged.
    """

    def __init__(self, client, job_id, *, step="", lease_batch=1, complete_batch=64,
                 flush_interval=None, heartbeat_interval=None, max_idle_wait=5.0,
                 retry_failures=True, raise_errors=False, hostname=None, pid=None,
                 invocation_id="", labels=None, on_event=None):
        if lease_batch < 1 or complete_batch < 1:
            raise ValueError("lease_batch and complete_batch must be >= 1")
        self.client = client
        self.job_id = job_id
        self.step = step
        self.lease_batch = lease_batch
        self.complete_batch = complete_batch
        self.max_idle_wait = max_idle_wait
        self.retry_failures = retry_failures
        self.raise_errors = raise_errors
        self._flush_interval = flush_interval
        self._heartbeat_interval = heartbeat_interval
        self._registration = pb.RegisterWorkerRequest(
            job_id=job_id, hostname=hostname if hostname is not None else socket.gethostname(),
            pid=pid if pid is not None else os.getpid(), invocation_id=invocation_id,
            labels=labels or {})
        self._on_event = on_event

        self._lock = threading.Lock()
        self._register_lock = threading.Lock()  # one (re-)registration at a time
        self._worker_id = None
        self._held = {}  # (step, token) -> Item: leased, not yet resolved
        self._completions = []  # (Item, ItemResult) waiting to be sent
        self._oldest_completion = None  # time.monotonic() of the first waiting one
        self._control = pb.CONTROL_WORD_RUN
        self._batch = collections.deque()  # leased, not yet handed out (iterating thread)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._heartbeat_thread = None
        self._iterated = False
        self._closed = False

    @property
    def worker_id(self):
        """The current registration's id ("w-<n>"), or None before iterating."""
        with self._lock:
            return self._worker_id

    def __iter__(self):
        if self._iterated:
            raise RuntimeError("a Worker is iterated once; create another")
        self._iterated = True
        return self._items()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, traceback):
        # Leaving on an exception: report nothing over it (failures are logged).
        self._close(raise_errors=exc_type is None)

    def close(self):
        """Sends buffered completions, stops heartbeating and unregisters (unfinished
        leases go back to PENDING without counting an attempt). Idempotent."""
        self._close(raise_errors=True)

    # ------------------------------------------------------------------ the loop

    def _items(self):
        abandoned = True
        try:
            self._register()
            self._start_heartbeat()
            idle = 0
            while True:
                item = self._next_from_batch()
                if item is None:
                    outcome = self._lease()
                    if outcome == "done":
                        break
                    if outcome == "wait":
                        self._idle_wait(idle)
                        idle += 1
                    else:
                        idle = 0
                    continue
                if self._control == pb.CONTROL_WORD_STOP:
                    self._emit("finished", reason="STOP")
                    break
                if self._control == pb.CONTROL_WORD_PAUSE:
                    self._batch.appendleft(item)
                    self._flush()
                    self._emit("waiting", reason="paused")
                    self._idle_wait(idle)
                    idle += 1
                    continue
                idle = 0
                item._started = time.monotonic()
                yield item
                self._after_body(item)
            abandoned = False
        finally:
            # On break or an exception in the loop body, nothing may be raised here
            # over the caller's own exception; failures are logged.
            self._close(raise_errors=not abandoned)

    def _next_from_batch(self):
        while self._batch:
            item = self._batch.popleft()
            if not item.lost:
                return item
        return None

    def _after_body(self, item):
        if item.lost:
            if item._drop_if_unresolved():
                self._drop(item)
        elif not item.resolved:
            item.complete()
        with self._lock:
            waiting = len(self._completions)
            oldest = self._oldest_completion
        if waiting >= self.complete_batch or (
                oldest is not None and time.monotonic() - oldest >= self._flush_after()):
            self._flush()

    def _lease(self):
        """Leases a batch. Returns "got" (items, or ask again now), "wait" or "done"."""
        worker_id = self.worker_id
        request = pb.LeaseItemsRequest(job_id=self.job_id, step=self.step,
                                       worker_id=worker_id, max_items=self.lease_batch)
        try:
            response = self.client.call("LeaseItems", request)
        except errors.FailedPreconditionError as e:  # unregistered, or declared lost
            self._reregister(worker_id, e.message, unregister=False)
            return "got"
        except errors.CkptError as e:
            if not e.maybe_applied:
                raise
            # Leases may have been granted unseen: return them (no attempt counted).
            self._flush()
            self._reregister(worker_id, f"answer to LeaseItems lost ({e})", unregister=True)
            return "got"
        self._set_control(response.control)
        if response.leases:
            with self._lock:
                for lease in response.leases:
                    item = Item(self, lease, worker_id)
                    self._held[(item.step, item.lease_token)] = item
                    self._batch.append(item)
            return "got"
        if response.shortfall in _END_SHORTFALLS:
            self._flush()
            self._emit("finished", reason=pb.LeaseShortfall.Name(response.shortfall))
            return "done"
        with self._lock:
            have_completions = bool(self._completions)
        if have_completions:
            self._flush()  # our own buffered items may be all that keeps the step open
            return "got"
        paused = response.shortfall == pb.LEASE_SHORTFALL_JOB_PAUSED
        self._emit("waiting", reason="paused" if paused else "none_pending")
        return "wait"

    def _idle_wait(self, idle):
        timeout = min(self.max_idle_wait, 0.1 * (2 ** min(idle, 16)))
        if self._wake.wait(timeout):
            self._wake.clear()

    # ------------------------------------------------------------------ registration

    def _register(self):
        # Safe to repeat after a lost answer: a stray registration holds nothing and
        # stops counting as active after one lease timeout.
        response = self.client.call("RegisterWorker", self._registration, idempotent=True)
        with self._lock:
            self._worker_id = response.worker_id
            if self._heartbeat_interval is None:
                self._heartbeat_interval = convert.seconds(response.heartbeat_interval)
        self._emit("registered", worker_id=response.worker_id)

    def _reregister(self, old_id, reason, unregister):
        with self._register_lock:
            if self.worker_id != old_id:
                return  # the other thread did it already
            if unregister:
                self._unregister(old_id)
            _log.warning("ckpt: worker %s registers again: %s", old_id, reason)
            self._register()
            self._emit("reregistered", old=old_id, new=self.worker_id, reason=reason)

    def _unregister(self, worker_id, retry=None):
        try:
            self.client.call("UnregisterWorker", job_id=self.job_id, worker_id=worker_id,
                             retry=retry)
        except errors.CkptError as e:
            _log.warning("ckpt: could not unregister worker %s: %s", worker_id, e)

    # ------------------------------------------------------------------ heartbeat

    def _start_heartbeat(self):
        self._heartbeat_thread = threading.Thread(
            target=self._heartbeat_loop, name=f"ckpt-heartbeat-{self.job_id}", daemon=True)
        self._heartbeat_thread.start()

    def _heartbeat_loop(self):
        while not self._stop.wait(self._heartbeat_interval):
            try:
                self._heartbeat()
            except Exception:  # the thread must outlive any one failure
                _log.exception("ckpt: heartbeat of worker %s failed", self.worker_id)

    def _heartbeat(self):
        with self._lock:
            worker_id = self._worker_id
            # Only leases of the current registration: a new one cannot vouch for old.
            held = [item for item in self._held.values() if item.worker_id == worker_id]
        leases = [item._held_lease() for item in held]
        # One heartbeat may retry for about an interval (at least a second, however
        # short the interval) before the next one takes over.
        budget = max(self._heartbeat_interval, 1.0)
        policy = retry_lib.RetryPolicy(total_timeout=budget, max_backoff=budget / 4)
        try:
            response = self.client.call(
                "Heartbeat", pb.HeartbeatRequest(job_id=self.job_id, worker_id=worker_id,
                                                 leases=leases),
                timeout=min(self.client.timeout, budget), retry=policy)
        except errors.FailedPreconditionError as e:
            self._reregister(worker_id, e.message, unregister=False)
            return
        except errors.CkptError as e:
            _log.warning("ckpt: heartbeat of worker %s: %s", worker_id, e)
            return
        for item, sent in zip(held, leases):
            item._cursor_sent(sent)
        by_token = {(item.step, item.lease_token): item for item in held}
        for lost in response.lost:
            item = by_token.get((lost.step, lost.lease_token))
            if item is not None:
                self._mark_lost(item, lost.reason)
        self._set_control(response.control)
        self._emit("heartbeat", control=pb.ControlWord.Name(response.control),
                   lost=len(response.lost))

    def _set_control(self, control):
        if control == pb.CONTROL_WORD_UNSPECIFIED:
            return
        with self._lock:
            changed = control != self._control
            self._control = control
        if changed:
            self._wake.set()

    def _mark_lost(self, item, reason):
        item._lost.set()
        with self._lock:
            self._held.pop((item.step, item.lease_token), None)
        _log.warning("ckpt: lease of item %r lost: %s", item.key, reason)
        self._emit("lease_lost", key=item.key, reason=reason)

    # ------------------------------------------------------------------ recording

    def _complete(self, item, result):
        with self._lock:
            self._held.pop((item.step, item.lease_token), None)
            self._completions.append((item, result))
            if self._oldest_completion is None:
                self._oldest_completion = time.monotonic()

    def _fail(self, item, message, retryable):
        with self._lock:
            self._held.pop((item.step, item.lease_token), None)
            worker_id = self._worker_id
        if retryable is None:
            retryable = self.retry_failures
        failure = pb.Failure(key=convert.item_key(item.key), lease_token=item.lease_token,
                             error=pb.ItemError(message=message, retryable=retryable))
        try:
            self.client.call("FailItems", job_id=self.job_id, step=item.step,
                             worker_id=worker_id, items=[failure])
        except errors.FailedPreconditionError as e:  # lease lost: drop the item
            self._mark_lost(item, e.message)

    def _drop(self, item):
        with self._lock:
            self._held.pop((item.step, item.lease_token), None)

    def _flush(self):
        """Sends the buffered completions, complete_batch per call."""
        with self._lock:
            waiting, self._completions = self._completions, []
            self._oldest_completion = None
            worker_id = self._worker_id
        for chunk in _distinct_chunks(waiting, self.complete_batch):
            response = self.client.call(
                "CompleteItems", job_id=self.job_id, step=chunk[0][0].step,
                worker_id=worker_id, skip_lost_leases=True,
                items=[pb.Completion(key=convert.item_key(item.key),
                                     lease_token=item.lease_token, result=result)
                       for item, result in chunk])
            for (item, _), outcome in zip(chunk, response.outcomes):
                if outcome == pb.COMPLETION_OUTCOME_LEASE_LOST:
                    self._mark_lost(item, "lease lost before its completion was sent")

    def _flush_after(self):
        if self._flush_interval is not None:
            return self._flush_interval
        return self._heartbeat_interval or 1.0

    def _close(self, raise_errors):
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._stop.set()
        if self._heartbeat_thread is not None:
            self._heartbeat_thread.join()
        try:
            try:
                self._flush()
            except errors.CkptError as e:
                if raise_errors:
                    raise
                _log.warning("ckpt: completions not sent (their items will be redone): %s", e)
        finally:
            worker_id = self.worker_id
            if worker_id is not None:
                self._unregister(worker_id, retry=_UNREGISTER_ON_CLOSE)

    def _emit(self, kind, **info):
        if self._on_event is None:
            return
        try:
            self._on_event(kind, info)
        except Exception:
            _log.exception("ckpt: on_event(%r) raised", kind)


def _distinct_chunks(completions, size):
    """Splits (Item, result) pairs into runs of at most `size` with distinct keys (a
    CompleteItems batch must not repeat a key; an item lost and leased again can be
    buffered twice, and its older try must go first)."""
    chunk, keys = [], set()
    for completion in completions:
        key = completion[0].key
        if len(chunk) == size or key in keys:
            yield chunk
            chunk, keys = [], set()
        chunk.append(completion)
        keys.add(key)
    if chunk:
        yield chunk
