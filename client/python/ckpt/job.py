"""ckpt.Job: a handle on one job, with physicsnemo-curator's checkpoint API.

    job = client.create_job("curate-2025-12-14")
    job.add_items(range(80), seal=True)

    # Record mode: the pipeline iterates, ckpt records.
    for i in range(80):
        if job.is_completed(i):
            continue
        job.mark_in_progress(i)
        try:
            out = process(i)
        except Exception as e:
            job.mark_failed(i, e)
        else:
            job.mark_completed(i, output_paths=[out])

    # Queries.
    job.completed_indices      # {0, 1, ...}
    job.failed_indices         # {42: "ValueError: corrupt header"}
    job.remaining_indices()    # [2, 3, ...]
    job.summary()              # {"total": 80, "completed": ..., ...}

A handle holds only the job id, a step and the Client: every property and method is
one or more calls to ckptd, nothing is cached (the properties keep curator's names, and
each makes RPCs). The item methods work on one step (the handle's; empty: the job's
first step). Record-mode writes register an item that is not registered yet
(AddItems), so they work on a job created empty.

Thread-safe as the Client is.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Optional, Sequence, Tuple, Union

from ckpt import _item_logs
from ckpt import convert
from ckpt._jobs import AddResult, JobCore, Key, Summary, error_text, item_result
from ckpt.v1 import checkpoint_pb2 as pb

if TYPE_CHECKING:
    from ckpt.client import Client
    from ckpt.track import Tracker
    from ckpt.worker import Worker

__all__ = ["AddResult", "Job", "Key", "Summary", "error_text"]


class Job:
    """A handle on the job `job_id`; see the module comment.

    Attributes:
      job_id, step: what the handle names.
      created, resumed, fingerprint_reset: how Client.create_job found the job (else
        None): new, existing with the same fingerprint, or reset for a new one.
    """

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
        return f"ckpt.Job({self.job_id!r}{step})"

    # ------------------------------------------------------------------ the job

    def info(self) -> pb.Job:
        """Returns the job (a ckpt.v1 Job message, with progress)."""
        return self.client.run(self._core.info())

    def progress(self) -> pb.Progress:
        """Returns the Progress of the handle's step, or of the whole job if the
        handle names no step."""
        return self.client.run(self._core.progress())

    def add_items(self, items: Iterable[Key] = (), *, seal: bool = False) -> AddResult:
        """Registers items: a range (stored as one entry however long), or an iterable
        of int indices and str names. Already registered items are left as they are.
        `seal`: then seal the job (no more items; it completes once all are done).
        Returns (added, duplicates).
        """
        return self.client.run(self._core.add_items(items, seal))

    def seal(self) -> pb.Job:
        """No more items will be added; the job completes once every item is done."""
        return self.client.run(self._core.update(seal=True))

    def set_stage(self, stage: str) -> pb.Job:
        """Sets the job's free-form stage (shown by `ckpt status`)."""
        return self.client.run(self._core.update(stage=stage))

    def pause(self, reason: str = "") -> pb.Job:
        """RUNNING -> PAUSED: workers lease nothing more; leased items may finish."""
        return self.client.run(self._core.transition("PauseJob", reason=reason))

    def resume(self) -> pb.Job:
        """PAUSED or FAILED -> RUNNING, keeping everything: results, failed items (still
        FAILED until reset), state blobs. Raises FailedPreconditionError for a job over
        its failure budget (reset_failed() or set_failure_budget() first) or sealed with
        nothing left but failures."""
        return self.client.run(self._core.transition("ResumeJob"))

    def set_retention(self, retention: Optional[convert.Seconds]) -> pb.Job:
        """How long ckptd keeps the job once it has finished, then deletes it; None or 0:
        kept until deleted. A finished job whose new retention has run out already is
        deleted by ckptd's next sweep. Returns the job."""
        return self.client.run(self._core.update(retention=convert.duration(retention or 0)))

    def set_failure_budget(self, *, max_failed_items: int = 0,
                           max_failed_fraction: float = 0.0) -> pb.Job:
        """Replaces the job's failure budget (0: no limit for that measure). Raising it
        does not resume a job the budget failed: resume() does. Returns the job."""
        return self.client.run(self._core.update(failure_budget=pb.FailureBudget(
            max_failed_items=max_failed_items, max_failed_fraction=max_failed_fraction)))

    def stop(self, reason: str = "") -> pb.Job:
        """Stops the job for good; leased items may still finish."""
        return self.client.run(self._core.transition("StopJob", reason=reason))

    def finish(self, *, failed: bool = False, reason: str = "") -> pb.Job:
        """Ends the job as COMPLETED (or FAILED) with `reason`."""
        status = pb.JOB_STATUS_FAILED if failed else pb.JOB_STATUS_COMPLETED
        return self.client.run(self._core.transition("FinishJob", status=status,
                                                     reason=reason))

    def delete(self) -> None:
        """Deletes the job and everything in it. Not re-sent after a lost answer (a
        repeat could delete a job created again meanwhile): such an error says
        maybe_applied=True."""
        self.client.run(self._core.delete())

    # ------------------------------------------------------------------ queries

    @property
    def completed_indices(self) -> set[int]:
        """The set of completed item indices of the step (RPCs: one listing of them)."""
        return {key for key in self.completed_keys() if isinstance(key, int)}

    @property
    def failed_indices(self) -> dict[int, str]:
        """{index: last error message} of the step's FAILED items (RPCs: a listing)."""
        return {key: message for key, message in self.failed_keys().items()
                if isinstance(key, int)}

    def completed_items(self, *, after: Optional[convert.Time] = None, newest_first: bool = False,
                        keys_only: bool = True) -> Iterator[pb.Item]:
        """Yields the step's COMPLETED items (ckpt.v1 Item messages; update_time is when
        each completed) by completion time: oldest first, or `newest_first`. `after`:
        only items completed strictly after it (seconds, a datetime or a Timestamp, such
        as the update_time of the last item seen): what a monitor has not seen yet,
        across ckptd restarts. One call per page, O(page) on the server."""
        token = ""
        while True:
            items, token = self.client.run(self._core.completed_page(
                after=after, newest_first=newest_first, keys_only=keys_only, page_token=token))
            yield from items
            if not token:
                return

    def log(self, key: Optional[Key], message: str, *, level: int = logging.INFO,
            logger: str = "", worker_id: str = "") -> None:
        """Adds an entry to item `key`'s log (None: the job's own), as record mode's
        pipelines log what they do; `level` is a logging level (logging.WARNING)."""
        entry = _item_logs.entry(message, levelno=level, logger=logger, created=time.time())
        self.client.run(self._core.write_logs(key, [entry], worker_id))

    def logs(self, *, key: Optional[Key] = None, worker_id: str = "",
             min_level: int = logging.NOTSET, newest_first: bool = False) -> Iterator[pb.LogLine]:
        """Yields the job's log entries (ckpt.v1 LogLine: entry, step, key, worker_id,
        sequence) in the order they were written, or `newest_first`: of item `key` of
        the handle's step if given, from `worker_id` if given, at `min_level` (a logging
        level) or above. One call per page."""
        token = ""
        while True:
            page = self.client.run(self._core.logs_page(
                key=key, worker_id=worker_id,
                min_level=(_item_logs.level_of(min_level) if min_level
                           else pb.LOG_LEVEL_UNSPECIFIED),
                newest_first=newest_first, page_token=token))
            yield from page.entries
            token = page.next_page_token
            if not token:
                return

    def completed_keys(self) -> set[Key]:
        """The set of completed keys of the step: int indices and str names."""
        return self.client.run(self._core.completed_keys())

    def failed_keys(self) -> dict[Key, str]:
        """{key: last error message} of the step's FAILED items, indices and names."""
        return self.client.run(self._core.failed_keys())

    def remaining_indices(self) -> list[int]:
        """Sorted list of the step's indices still to do (PENDING or LEASED)."""
        keys = self.client.run(self._core.remaining_keys())
        return sorted(key for key in keys if isinstance(key, int))

    @property
    def active_workers(self) -> int:
        """Workers of the job that heartbeated within the lease timeout (an RPC)."""
        return self.info().progress.active_workers

    def summary(self) -> Summary:
        """The job's progress as physicsnemo-curator's dict (ckpt.Summary lists the
        keys), from counters: O(1) on the server, two calls."""
        return self.client.run(self._core.summary())

    # ------------------------------------------------------------------ resets

    def reset(self) -> pb.Job:
        """Clears all progress: every item back to PENDING, leases revoked, state
        blobs deleted (ResetJob keeping the items). Returns the job. Not re-sent after
        a lost answer (a repeat would clear work done since)."""
        return self.client.run(self._core.transition("ResetJob"))

    def reset_index(self, key: Key) -> int:
        """Returns one item (index or name) to PENDING as new. Returns how many items
        were reset: 0 if it was never tried."""
        return self.client.run(self._core.reset_key(key))

    def reset_failed(self) -> int:
        """Returns the step's FAILED items to PENDING (all steps if the handle names
        none). Returns how many."""
        return self.client.run(self._core.reset_items(pb.ResetItemsRequest(
            job_id=self.job_id, step=self.step, state=pb.ITEM_STATE_FAILED)))

    # ------------------------------------------------------------------ record mode

    def item(self, key: Key) -> pb.Item:
        """The item (a ckpt.v1 Item message): state, attempts, result, last error, and
        worker_id, who holds it (LEASED) or who last completed or failed it."""
        return self.client.run(self._core.item(key))

    def is_completed(self, key: Key) -> bool:
        """True if the item (index or name) is COMPLETED. An item never registered is
        not completed; an unknown job raises NotFoundError."""
        return self.client.run(self._core.is_completed(key))

    def mark_in_progress(self, key: Key) -> bool:
        """Claims the item ("in progress") until it is marked, or for one lease timeout.

        Returns True if claimed; False if it is already LEASED or COMPLETED, or the job
        is not RUNNING (nothing recorded). Marking it completed or failed later does
        not need the claim.
        """
        return self.client.run(self._core.mark_in_progress(key))

    def mark_completed(self, key: Key, *, output_paths: Sequence[str] = (),
                       payload: bytes = b"", wall_time: Optional[convert.Seconds] = None,
                       metrics: Optional[pb.ItemMetrics] = None, worker_id: str = "") -> bool:
        """Records the item completed. `wall_time` (seconds) feeds the job's item-time
        statistics; `metrics` may be an ItemMetrics for more; `worker_id` (e.g.
        "host:pid") is recorded as who did it (Item.worker_id). Returns True if this call
        completed it, False if it already was (the first result stands)."""
        result = item_result(output_paths, payload, wall_time, metrics)
        outcomes = self.client.run(self._core.complete([(key, result)], worker_id))
        return outcomes[0] == pb.COMPLETION_OUTCOME_COMPLETED

    def mark_failed(self, key: Key, error: Union[str, BaseException], *,
                    worker_id: str = "") -> None:
        """Records the item FAILED with `error` (a message, or an exception: its type
        and text), by `worker_id` if given. A later run can list and retry exactly the
        failed items.

        Not re-sent after a lost answer (it would count an attempt twice): such an error
        is raised with maybe_applied=True.
        """
        self.client.run(self._core.mark_failed(key, error, worker_id))

    def complete_many(self, completions: Iterable[Tuple[Key, Optional[float]]]) -> int:
        """Records several items completed in one call (record mode).

        `completions`: (key, wall_time_seconds or None) pairs. Unregistered items are
        registered first. Returns the number newly completed.
        """
        pairs = [(key, item_result(wall_time=wall_time)) for key, wall_time in completions]
        if not pairs:
            return 0
        outcomes = self.client.run(self._core.complete(pairs))
        return sum(1 for o in outcomes if o == pb.COMPLETION_OUTCOME_COMPLETED)

    # ------------------------------------------------------------------ workers

    def worker(self, **options: Any) -> Worker:
        """Returns a ckpt.Worker on this job and step; see ckpt.Worker for options."""
        from ckpt.worker import Worker
        return Worker(self.client, self.job_id, step=self.step, **options)

    def track(self, iterable: Iterable[Any], **options: Any) -> Tracker[Any]:
        """ckpt.track(iterable, job=self, **options)."""
        from ckpt.track import track
        return track(iterable, job=self, **options)
