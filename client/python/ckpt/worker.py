"""ckpt.Worker: lease items of a job and hand them out as an iterator.

    worker = ckpt.Worker(client, "curate-2025-12-14")
    for item in worker:
        with item:
            process(item.index)

What the loop does, following the server's answers (docs/api.md):
- It registers a worker, then leases items and yields them one by one (or a batch at
  a time: `for items in worker.batches()`). By default a lease asks for about a
  second's worth of items at the loop's pace so far (1 at first, at most 256; fast
  items come in big batches, slow ones one or two at a time); `lease_batch=N` fixes it.
  Leaving the loop body completes the item (unless it was completed, failed, or its
  lease was lost); `with item:` also fails it with the exception's text.
- Completions are buffered and sent in batches (CompleteItems, skipping lost leases):
  when `complete_batch` are waiting, when the oldest has waited `flush_interval`, and
  before the loop waits or ends. They are sent without waiting for the answer: up to
  `max_in_flight` calls are unanswered while the loop goes on (0: each is waited for).
  An item is **acknowledged**, i.e. recorded by ckptd for good, once its call's answer
  is back: the "acknowledged" event lists them. flush() sends what is buffered and
  waits for every answer; so do the loop's end, close(), PAUSE and every wait. A
  completion that fails (after the retries of retry.py) raises from the loop at the
  next flush; if the process dies, items sent but not acknowledged are either
  recorded or leased again once their lease expires: nothing acknowledged is lost.
- With batches of 8 or more, the next batch is leased while the loop body works on the
  second half of this one (max_in_flight=0 turns that off too), so the loop rarely
  waits for ckptd. Its answer is taken, and acted on (a lost registration, a lost
  answer, the control word), when the loop reaches it.
- A background thread heartbeats every `heartbeat_interval` (default: the server's
  suggestion, a third of the lease timeout), listing the leases held and any cursor
  saved. Leases it reports lost are marked (item.lost) and never recorded.
- Control: on PAUSE the loop finishes the current item, then waits (still heartbeating)
  until RUN; on STOP it finishes the current item and ends, and the items it leased
  but did not start (the batch leased ahead too) go back to PENDING without counting
  an attempt. The loop learns of either at a lease or a heartbeat. LeaseItems says the same
  with its shortfall: JOB_PAUSED waits; JOB_FINISHED, JOB_STOPPED and STEP_DRAINED end
  the loop; NONE_PENDING waits with backoff (up to `max_idle_wait`) and asks again, so a
  job that is never sealed keeps its workers waiting for more items.
- A worker that ckptd declared lost (or that was unregistered) gets FAILED_PRECONDITION
  and registers again under a new id at its next lease. Items it still holds keep their
  tokens until their leases expire.
- LeaseItems is not safe to repeat (retry.py). If its answer is lost, the worker
  unregisters, which returns any lease it was granted unseen without counting an
  attempt, and registers again; it holds nothing else at that point.
- At the end (or on break, an exception, close()), buffered completions are sent and
  the worker unregisters, returning unfinished leases to PENDING without counting an
  attempt.

The loop is ckpt/_worker_core.py, shared with ckpt.aio.Worker; this class performs it
with blocking calls and a heartbeat thread.

Thread-safety: iterate a Worker from one thread, once (flush() from that thread too).
Its Items may be completed or failed from any thread. For parallelism, run one Worker per thread (or process); they
may share one Client.
"""

from __future__ import annotations

import logging
import threading
from types import TracebackType
from typing import Any, Iterator, Optional

from ckpt import errors
from ckpt._batching import DEFAULT_COMPLETE_BATCH
from ckpt._item_core import Leased
from ckpt._program import Hand, Idle, Program, StartHeartbeat, StopHeartbeat, Step
from ckpt._worker_core import OnEvent, WorkerCore, WorkerOptions
from ckpt.client import Client
from ckpt.item import Item

__all__ = ["Worker"]

_log = logging.getLogger("ckpt")


class Worker:
    """Leases and hands out the items of one step of a job; see the module comment.

    Args:
      client: a ckpt.Client.
      job_id: the job; step: its step (empty: the first).
      lease_batch: items leased per LeaseItems call; None (default): adaptive, about a
        second of the loop's pace, 1 to 256.
      complete_batch: completions sent per CompleteItems call (at most).
      max_in_flight: CompleteItems calls that may be unanswered while the loop goes on;
        0: every call is waited for, and no batch is leased ahead.
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
        "paused" | "none_pending"}, "lease_lost" {key, reason}, "registration_lost"
        {worker_id, reason} (a heartbeat was refused), "reregistered" {old, new,
        reason}, "acknowledged" {keys, step} (ckptd recorded these items completed),
        "finished" {reason}. Called from the iterating or heartbeat thread;
        exceptions it raises are logged.
      capture_logs: while the worker runs, what the standard logging module records
        inside `with item:` (in that thread or task) goes to that item's log in ckptd,
        sent with its heartbeats, completion or failure (ckpt logs JOB --item KEY).
    """

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
        self._wake = threading.Event()
        self._core.control_changed = self._wake.set
        self._stop = threading.Event()
        self._heartbeat_thread: Optional[threading.Thread] = None
        self._iterated = False

    @property
    def worker_id(self) -> Optional[str]:
        """The current registration's id ("w-<n>"), or None before iterating."""
        return self._core.worker_id

    @property
    def step(self) -> str:
        return self._core.options.step

    @property
    def raise_errors(self) -> bool:
        return self._core.raise_errors

    def __iter__(self) -> Iterator[Item]:
        """The items, one at a time."""
        for items in self._run(per_batch=False):
            yield items[0]

    def batches(self) -> Iterator[list[Item]]:
        """The items as leased, a list (up to lease_batch) at a time; leaving the loop
        body completes every item of the list that is not yet resolved."""
        return self._run(per_batch=True)

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, exc_type: Optional[type[BaseException]], exc: Optional[BaseException],
                 traceback: Optional[TracebackType]) -> None:
        # Leaving on an exception: report nothing over it (failures are logged).
        self._close(raise_errors=exc_type is None)

    def close(self) -> None:
        """Sends buffered completions, waits for their answers, stops heartbeating and
        unregisters (unfinished leases go back to PENDING without counting an
        attempt). Idempotent."""
        self._close(raise_errors=True)

    def flush(self) -> None:
        """Sends the buffered completions and waits until ckptd has answered every one
        sent so far: each item completed before this call is acknowledged when it
        returns (or had its lease lost). From the iterating thread (e.g. the loop body).
        Raises CkptError if a completion could not be sent."""
        self._drive(self._core.flush())

    # ------------------------------------------------------------------ driving

    def _make_item(self, core: WorkerCore, lease: Leased, worker_id: str) -> Item:
        return Item(core, lease, worker_id, self.client)

    def _run(self, per_batch: bool) -> Iterator[list[Item]]:
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
                    self._perform(step, op)
            abandoned = False
        finally:
            step.close()
            # On break or an exception in the loop body, nothing may be raised here
            # over the caller's own exception; failures are logged.
            self._close(raise_errors=not abandoned)

    def _perform(self, step: Step, op: Any) -> None:
        if isinstance(op, Idle):
            if self._wake.wait(op.seconds):
                self._wake.clear()
        elif isinstance(op, StartHeartbeat):
            self._heartbeat_thread = threading.Thread(
                target=self._heartbeat_loop, args=(op.interval,),
                name=f"ckpt-heartbeat-{self.job_id}", daemon=True)
            self._heartbeat_thread.start()
        elif isinstance(op, StopHeartbeat):
            self._stop.set()
            if self._heartbeat_thread is not None:
                self._heartbeat_thread.join()
        else:
            try:
                step.result = self.client._perform(op)
            except errors.CkptError as error:
                step.error = error

    def _heartbeat_loop(self, interval: float) -> None:
        while not self._stop.wait(self._core.heartbeat_interval):
            try:
                self.client.run(self._core.heartbeat())
            except Exception:  # the thread must outlive any one failure
                _log.exception("ckpt: heartbeat of worker %s failed", self.worker_id)

    def _close(self, raise_errors: bool) -> None:
        self._drive(self._core.close(raise_errors))

    def _drive(self, program: Program[None]) -> None:
        step = Step(program)
        while step.next():
            self._perform(step, step.op)
