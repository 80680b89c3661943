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
one or more calls to ckptd, nothing is cached. The item methods work on one step (the
handle's; empty: the job's first step). Record-mode writes register an item that is
not registered yet (AddItems), so they work on a job created empty.

Thread-safe as the Client is.
"""

import itertools

from ckpt import convert
from ckpt import errors
from ckpt.v1 import checkpoint_pb2 as pb

_PAGE = 1000  # items per ListItems page (ckptd allows up to --max_batch, 8192)
_ADD_BATCH = 4096  # entries per AddItems (ckptd allows up to --max_batch)


class Job:
    """A handle on the job `job_id`; see the module comment.

    Attributes:
      job_id, step: what the handle names.
      created, resumed, fingerprint_reset: how Client.create_job found the job (else
        None): new, existing with the same fingerprint, or reset for a new one.
    """

    def __init__(self, client, job_id, step=""):
        self.client = client
        self.job_id = job_id
        self.step = step
        self.created = self.resumed = self.fingerprint_reset = None

    def __repr__(self):
        step = f", step={self.step!r}" if self.step else ""
        return f"ckpt.Job({self.job_id!r}{step})"

    # ------------------------------------------------------------------ the job

    def info(self):
        """Returns the job (a ckpt.v1 Job message, with progress)."""
        return self.client.call("GetJob", job_id=self.job_id).job

    def progress(self):
        """Returns the Progress of the handle's step, or of the whole job if the
        handle names no step."""
        job = self.info()
        if self.step:
            for step in job.step_progress:
                if step.step == self.step:
                    return step.progress
        return job.progress

    def add_items(self, items=(), *, seal=False):
        """Registers items: a range (stored as one entry however long), or an iterable
        of int indices and str names. Already registered items are left as they are.
        `seal`: then seal the job (no more items; it completes once all are done).
        Returns (added, duplicates).
        """
        added = duplicates = 0
        # The last request seals in the same call (one step behind the generator, so
        # huge iterables still stream). A retry of it is safe: re-adding registered
        # items is allowed on a sealed job.
        previous = None
        for request in itertools.chain(self._add_requests(items), [None]):
            if previous is not None:
                previous.seal = seal and request is None
                response = self.client.call("AddItems", previous)
                added += response.added
                duplicates += response.duplicates
            elif request is None and seal:
                self.seal()  # nothing to add
            previous = request
        return added, duplicates

    def seal(self):
        """No more items will be added; the job completes once every item is done."""
        return self.client.call("UpdateJob", job_id=self.job_id, seal=True).job

    def set_stage(self, stage):
        return self.client.call("UpdateJob", job_id=self.job_id, stage=stage).job

    def pause(self, reason=""):
        """RUNNING -> PAUSED: workers lease nothing more; leased items may finish."""
        return self.client.call("PauseJob", job_id=self.job_id, reason=reason).job

    def resume(self):
        """PAUSED or FAILED -> RUNNING, keeping everything: results, failed items (still
        FAILED until reset), state blobs. Raises FailedPreconditionError for a job over
        its failure budget (reset_failed() or set_failure_budget() first) or sealed with
        nothing left but failures."""
        return self.client.call("ResumeJob", job_id=self.job_id).job

    def set_failure_budget(self, *, max_failed_items: int = 0,
                           max_failed_fraction: float = 0.0):
        """Replaces the job's failure budget (0: no limit for that measure). Raising it
        does not resume a job the budget failed: resume() does. Returns the job."""
        budget = pb.FailureBudget(max_failed_items=max_failed_items,
                                  max_failed_fraction=max_failed_fraction)
        return self.client.call("UpdateJob", job_id=self.job_id, failure_budget=budget).job

    def stop(self, reason=""):
        """Stops the job for good; leased items may still finish."""
        return self.client.call("StopJob", job_id=self.job_id, reason=reason).job

    def finish(self, *, failed=False, reason=""):
        status = pb.JOB_STATUS_FAILED if failed else pb.JOB_STATUS_COMPLETED
        return self.client.call("FinishJob", job_id=self.job_id, status=status,
                                reason=reason).job

    def delete(self):
        self.client.call("DeleteJob", job_id=self.job_id)

    # ------------------------------------------------------------------ queries

    @property
    def completed_indices(self):
        """The set of completed item indices of the step (one listing of them)."""
        return {key for key, _ in self._list(pb.ITEM_STATE_COMPLETED) if isinstance(key, int)}

    @property
    def failed_indices(self):
        """{index: last error message} of the step's FAILED items."""
        return {key: item.last_error.message
                for key, item in self._list(pb.ITEM_STATE_FAILED, keys_only=False)
                if isinstance(key, int)}

    def completed_keys(self):
        """The set of completed keys of the step: int indices and str names."""
        return {key for key, _ in self._list(pb.ITEM_STATE_COMPLETED)}

    def failed_keys(self):
        """{key: last error message} of the step's FAILED items, indices and names."""
        return {key: item.last_error.message
                for key, item in self._list(pb.ITEM_STATE_FAILED, keys_only=False)}

    def remaining_indices(self):
        """Sorted list of the step's indices still to do (PENDING or LEASED)."""
        keys = {key for state in (pb.ITEM_STATE_PENDING, pb.ITEM_STATE_LEASED)
                for key, _ in self._list(state)}
        return sorted(key for key in keys if isinstance(key, int))

    @property
    def active_workers(self):
        """Workers of the job that heartbeated within the lease timeout."""
        return self.info().progress.active_workers

    def summary(self):
        """A dict of the job's progress, from counters (O(1) on the server):

        total, completed, failed, remaining (pending + leased): item counts of the
          handle's step, or of the whole job if it names no step;
        errors: {message: count} of failed items, the 100 largest groups (all steps);
        avg_time_ms: average item wall time (ItemMetrics.wall_time), milliseconds;
        elapsed: seconds since the job was created or reset;
        workers: active workers;
        and percent, rate (completions/s over the last minute), eta (seconds, or None),
        status ("RUNNING", "PAUSED", ...).
        """
        job = self.info()
        progress = job.progress
        if self.step:
            progress = next((s.progress for s in job.step_progress if s.step == self.step),
                            progress)
        groups = self.client.call("ListItems", job_id=self.job_id, step=self.step,
                                  state=pb.ITEM_STATE_FAILED, limit=1, keys_only=True,
                                  error_groups=100).error_groups
        return {
            "total": progress.total,
            "completed": progress.completed,
            "failed": progress.failed,
            "remaining": progress.remaining,
            "errors": {group.message: group.count for group in groups},
            "avg_time_ms": convert.seconds(progress.item_time_avg) * 1000.0,
            "elapsed": convert.seconds(progress.elapsed),
            "workers": job.progress.active_workers,
            "percent": progress.percent,
            "rate": progress.recent_rate,
            "eta": convert.seconds(progress.eta) if progress.HasField("eta") else None,
            "status": pb.JobStatus.Name(job.status).replace("JOB_STATUS_", ""),
        }

    # ------------------------------------------------------------------ resets

    def reset(self):
        """Clears all progress: every item back to PENDING, leases revoked, state
        blobs deleted (ResetJob keeping the items). Returns the job."""
        return self.client.call("ResetJob", job_id=self.job_id).job

    def reset_index(self, key):
        """Returns one item (index or name) to PENDING as new. Returns how many items
        were reset: 0 if it was never tried."""
        return self.client.call("ResetItems", job_id=self.job_id, step=self._step_name(),
                                keys=[convert.item_key(key)]).matched

    def reset_failed(self):
        """Returns the step's FAILED items to PENDING (all steps if the handle names
        none). Returns how many."""
        return self.client.call("ResetItems", job_id=self.job_id, step=self.step,
                                state=pb.ITEM_STATE_FAILED).matched

    # ------------------------------------------------------------------ record mode

    def item(self, key):
        """The item (a ckpt.v1 Item message): state, attempts, result, last error, and
        worker_id, who holds it (LEASED) or who last completed or failed it."""
        return self.client.call("GetItem", job_id=self.job_id, step=self.step,
                                key=convert.item_key(key)).item

    def is_completed(self, key):
        """True if the item (index or name) is COMPLETED. An item never registered is
        not completed; an unknown job raises NotFoundError."""
        try:
            item = self.client.call("GetItem", job_id=self.job_id, step=self.step,
                                    key=convert.item_key(key)).item
        except errors.NotFoundError:
            self.info()  # raises NotFoundError if the job itself is missing
            return False
        return item.state == pb.ITEM_STATE_COMPLETED

    def mark_in_progress(self, key):
        """Claims the item ("in progress") until it is marked, or for one lease timeout.

        Returns True if claimed; False if it is already LEASED or COMPLETED, or the job
        is not RUNNING (nothing recorded). Marking it completed or failed later does
        not need the claim.
        """
        request = pb.LeaseItemsRequest(job_id=self.job_id, step=self.step,
                                       keys=[convert.item_key(key)])
        try:
            response = self._write_registering("LeaseItems", request, [key])
        except errors.FailedPreconditionError:
            return False
        return len(response.leases) > 0

    def mark_completed(self, key, *, output_paths=(), payload=b"", wall_time=None,
                       metrics=None, worker_id: str = ""):
        """Records the item completed. `wall_time` (seconds) feeds the job's item-time
        statistics; `metrics` may be an ItemMetrics for more; `worker_id` (e.g.
        "host:pid") is recorded as who did it (Item.worker_id). Returns True if this call
        completed it, False if it already was (the first result stands)."""
        result = _result(output_paths, payload, wall_time, metrics)
        request = pb.CompleteItemsRequest(job_id=self.job_id, step=self.step,
                                          worker_id=worker_id, items=[
            pb.Completion(key=convert.item_key(key), result=result)])
        response = self._write_registering("CompleteItems", request, [key])
        return response.outcomes[0] == pb.COMPLETION_OUTCOME_COMPLETED

    def mark_failed(self, key, error, *, worker_id: str = ""):
        """Records the item FAILED with `error` (a message, or an exception: its type
        and text), by `worker_id` if given. A later run can list and retry exactly the
        failed items.

        Not retried after an ambiguous failure (it would count an attempt twice): such
        an error is raised with maybe_applied=True.
        """
        request = pb.FailItemsRequest(job_id=self.job_id, step=self.step, worker_id=worker_id,
                                      items=[
            pb.Failure(key=convert.item_key(key), error=pb.ItemError(message=error_text(error)))])
        self._write_registering("FailItems", request, [key])

    def complete_many(self, completions):
        """Records several items completed in one call (record mode).

        `completions`: (key, wall_time_seconds or None) pairs. Unregistered items are
        registered first. Returns the number newly completed.
        """
        completions = list(completions)
        if not completions:
            return 0
        request = pb.CompleteItemsRequest(job_id=self.job_id, step=self.step, items=[
            pb.Completion(key=convert.item_key(key), result=_result((), b"", wall_time, None))
            for key, wall_time in completions])
        response = self._write_registering("CompleteItems", request,
                                           [key for key, _ in completions])
        return sum(1 for o in response.outcomes if o == pb.COMPLETION_OUTCOME_COMPLETED)

    # ------------------------------------------------------------------ workers

    def worker(self, **options):
        """Returns a ckpt.Worker on this job and step; see ckpt.Worker for options."""
        from ckpt.worker import Worker
        return Worker(self.client, self.job_id, step=self.step, **options)

    def track(self, iterable, **options):
        """ckpt.track(iterable, job=self, **options)."""
        from ckpt.track import track
        return track(iterable, job=self, **options)

    # ------------------------------------------------------------------ internals

    def _step_name(self):
        return self.step or self.info().steps[0]

    def _list(self, state, keys_only=True):
        """Yields (key, Item) for the step's items in `state`, page by page."""
        token = ""
        while True:
            response = self.client.call("ListItems", job_id=self.job_id, step=self.step,
                                        state=state, limit=_PAGE, page_token=token,
                                        keys_only=keys_only)
            for item in response.items:
                yield convert.key_value(item.key), item
            token = response.next_page_token
            if not token:
                return

    def _add_requests(self, items):
        if isinstance(items, range) and items.step == 1:
            if len(items) > 0:
                yield pb.AddItemsRequest(job_id=self.job_id, step=self.step, ranges=[
                    pb.IndexRange(begin=items.start, end=items.stop)])
            return
        request = pb.AddItemsRequest(job_id=self.job_id, step=self.step)
        for key in items:
            convert.item_key(key)  # type check
            (request.names if isinstance(key, str) else request.indices).append(key)
            if len(request.names) + len(request.indices) >= _ADD_BATCH:
                yield request
                request = pb.AddItemsRequest(job_id=self.job_id, step=self.step)
        if request.names or request.indices:
            yield request

    def _write_registering(self, method, request, keys):
        """Calls `method`; if an item is not registered (NOT_FOUND while the job
        exists), registers `keys` and calls once more."""
        try:
            return self.client.call(method, request)
        except errors.NotFoundError:
            self.add_items(keys)  # raises NotFoundError if the job is missing
            return self.client.call(method, request)


def error_text(error):
    """The message ckpt records for a failure: the string itself, or an exception's
    "Type: text"; cut to ckptd's 4096-byte limit and never empty."""
    if isinstance(error, BaseException):
        text = str(error)
        text = f"{type(error).__name__}: {text}" if text else type(error).__name__
    else:
        text = str(error) or "failed"
    encoded = text.encode("utf-8")
    if len(encoded) > 4096:
        text = encoded[:4093].decode("utf-8", errors="ignore") + "..."
    return text


def _result(output_paths, payload, wall_time, metrics):
    result = pb.ItemResult(output_paths=list(output_paths), payload=payload)
    if metrics is not None:
        result.metrics.CopyFrom(metrics)
    if wall_time is not None:
        result.metrics.wall_time.CopyFrom(convert.duration(wall_time))
    return result
