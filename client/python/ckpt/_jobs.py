"""The programs behind ckpt.Job and ckpt.aio.Job: physicsnemo-curator's checkpoint API
(record mode, queries, resets) as calls to ckptd. See ckpt/job.py for what each means."""

from __future__ import annotations

import itertools
import json
from typing import Any, Iterable, Iterator, NamedTuple, Optional, Sequence, Tuple, TypedDict, \
    Union

from google.protobuf.message import Message

from ckpt import convert
from ckpt import errors
from ckpt._calls import ClientCore
from ckpt._program import Program, response
from ckpt.v1 import checkpoint_pb2 as pb

Key = Union[int, str]
_PAGE = 1000  # items per ListItems page (ckptd allows up to --max_batch, 8192)
_ADD_BATCH = 4096  # entries per AddItems (ckptd allows up to --max_batch)
_MAX_ERROR_BYTES = 4096  # ckptd's limit on ItemError.message (docs/api.md, Limits)


class AddResult(NamedTuple):
    """What add_items did: items newly registered, and items that already were."""
    added: int
    duplicates: int


class Summary(TypedDict):
    """Job.summary(): physicsnemo-curator's keys, with the same meanings.

    total, completed, failed, remaining (pending + leased): item counts of the handle's
      step, or of the whole job if it names no step;
    errors: {message: count} of failed items, the 100 largest groups (all steps);
    avg_time_ms: average item wall time (ItemMetrics.wall_time), milliseconds;
    elapsed: seconds since the job was created or reset;
    workers: active workers;
    percent: 100 * (completed + failed) / total;
    rate: completions per second over the last minute;
    eta: seconds to go at that rate, or None;
    status: "RUNNING", "PAUSED", "STOPPED", "COMPLETED" or "FAILED".
    """
    total: int
    completed: int
    failed: int
    remaining: int
    errors: dict[str, int]
    avg_time_ms: float
    elapsed: float
    workers: int
    percent: float
    rate: float
    eta: Optional[float]
    status: str


class CreateJobOptions(NamedTuple):
    """Client.create_job's arguments (see its docstring)."""
    job_id: str = ""
    config: Any = None
    fingerprint: str = ""
    display_name: str = ""
    labels: Optional[dict[str, str]] = None
    params: Optional[dict[str, str]] = None
    steps: Sequence[str] = ()
    lease_timeout: Optional[convert.Seconds] = None
    max_attempts: int = 0
    max_run_time: Optional[convert.Seconds] = None
    max_failed_items: int = 0
    max_failed_fraction: float = 0.0
    reset_on_fingerprint_change: bool = False
    retention: Optional[convert.Seconds] = None


def create_job_request(o: CreateJobOptions) -> pb.CreateJobRequest:
    """The CreateJobRequest; a non-str config is JSON with sorted keys, so the same
    config always gives the same fingerprint."""
    config = o.config
    if config is not None and not isinstance(config, str):
        config = json.dumps(config, sort_keys=True, separators=(",", ":"))
    request = pb.CreateJobRequest(
        job_id=o.job_id, display_name=o.display_name, config=config or "",
        fingerprint=o.fingerprint, labels=o.labels or {}, params=o.params or {},
        steps=list(o.steps), max_attempts=o.max_attempts,
        reset_on_fingerprint_change=o.reset_on_fingerprint_change)
    if o.lease_timeout is not None:
        request.lease_timeout.CopyFrom(convert.duration(o.lease_timeout))
    if o.max_run_time is not None:
        request.max_run_time.CopyFrom(convert.duration(o.max_run_time))
    if o.retention is not None:
        request.retention.CopyFrom(convert.duration(o.retention))
    if o.max_failed_items or o.max_failed_fraction:
        request.failure_budget.max_failed_items = o.max_failed_items
        request.failure_budget.max_failed_fraction = o.max_failed_fraction
    return request


def error_text(error: Union[str, BaseException]) -> str:
    """The message ckpt records for a failure: the string itself, or an exception's
    "Type: text"; cut to ckptd's 4096-byte limit and never empty."""
    if isinstance(error, BaseException):
        text = str(error)
        text = f"{type(error).__name__}: {text}" if text else type(error).__name__
    else:
        text = str(error) or "failed"
    encoded = text.encode("utf-8")
    if len(encoded) > _MAX_ERROR_BYTES:
        text = encoded[:_MAX_ERROR_BYTES - 3].decode("utf-8", errors="ignore") + "..."
    return text


def item_result(output_paths: Iterable[str] = (), payload: bytes = b"",
                wall_time: Optional[convert.Seconds] = None,
                metrics: Optional[pb.ItemMetrics] = None) -> pb.ItemResult:
    """An ItemResult; `wall_time` fills metrics.wall_time unless `metrics` has one."""
    result = pb.ItemResult(output_paths=list(output_paths), payload=payload)
    if metrics is not None:
        result.metrics.CopyFrom(metrics)
    if wall_time is not None and not result.metrics.HasField("wall_time"):
        result.metrics.wall_time.CopyFrom(convert.duration(wall_time))
    return result


class JobCore:
    """A job id, a step and the ClientCore: every method is a program of calls.
    Immutable; thread-safe."""

    def __init__(self, client: ClientCore, job_id: str, step: str) -> None:
        self.client = client
        self.job_id = job_id
        self.step = step

    def _call(self, method: str, request: Message) -> Program[Message]:
        return self.client.call(method, request)

    # ---------------------------------------------------------------- the job

    def info(self) -> Program[pb.Job]:
        answer = yield from self._call("GetJob", pb.GetJobRequest(job_id=self.job_id))
        return response(answer, pb.GetJobResponse).job

    def progress(self) -> Program[pb.Progress]:
        job = yield from self.info()
        return self._step_progress(job)

    def _step_progress(self, job: pb.Job) -> pb.Progress:
        if self.step:
            for step in job.step_progress:
                if step.step == self.step:
                    return step.progress
        return job.progress

    def add_items(self, items: Iterable[Key], seal: bool) -> Program[AddResult]:
        added = duplicates = 0
        # The last request seals in the same call (one step behind the generator, so
        # huge iterables still stream). Re-sending it is safe: re-adding registered
        # items is allowed even on the job it sealed.
        previous: Optional[pb.AddItemsRequest] = None
        for request in itertools.chain(self._add_requests(items), [None]):
            if previous is not None:
                previous.seal = seal and request is None
                answer = yield from self._call("AddItems", previous)
                counts = response(answer, pb.AddItemsResponse)
                added += counts.added
                duplicates += counts.duplicates
            elif request is None and seal:
                yield from self.update(seal=True)  # nothing to add
            previous = request
        return AddResult(added, duplicates)

    def _add_requests(self, items: Iterable[Key]) -> Iterator[pb.AddItemsRequest]:
        if isinstance(items, range) and items.step == 1:
            if len(items) > 0:
                yield pb.AddItemsRequest(job_id=self.job_id, step=self.step, ranges=[
                    pb.IndexRange(begin=items.start, end=items.stop)])
            return
        request = pb.AddItemsRequest(job_id=self.job_id, step=self.step)
        for key in items:
            convert.item_key(key)  # type check
            if isinstance(key, str):
                request.names.append(key)
            else:
                request.indices.append(key)
            if len(request.names) + len(request.indices) >= _ADD_BATCH:
                yield request
                request = pb.AddItemsRequest(job_id=self.job_id, step=self.step)
        if request.names or request.indices:
            yield request

    def update(self, **fields: Any) -> Program[pb.Job]:
        answer = yield from self._call("UpdateJob",
                                       pb.UpdateJobRequest(job_id=self.job_id, **fields))
        return response(answer, pb.UpdateJobResponse).job

    def transition(self, method: str, **fields: Any) -> Program[pb.Job]:
        """PauseJob, ResumeJob, StopJob, FinishJob or ResetJob: each answers the job."""
        request = make_request_for(method, job_id=self.job_id, **fields)
        answer = yield from self._call(method, request)
        job: pb.Job = getattr(answer, "job")
        return job

    def delete(self) -> Program[None]:
        yield from self._call("DeleteJob", pb.DeleteJobRequest(job_id=self.job_id))

    # ---------------------------------------------------------------- queries

    def list_items(self, state: pb.ItemState.ValueType,
                   keys_only: bool = True) -> Program[list[pb.Item]]:
        """The step's items in `state`, every page."""
        items: list[pb.Item] = []
        token = ""
        while True:
            answer = yield from self._call("ListItems", pb.ListItemsRequest(
                job_id=self.job_id, step=self.step, state=state, limit=_PAGE,
                page_token=token, keys_only=keys_only))
            page = response(answer, pb.ListItemsResponse)
            items.extend(page.items)
            token = page.next_page_token
            if not token:
                return items

    def completed_keys(self) -> Program[set[Key]]:
        items = yield from self.list_items(pb.ITEM_STATE_COMPLETED)
        return {convert.key_value(item.key) for item in items}

    def failed_keys(self) -> Program[dict[Key, str]]:
        items = yield from self.list_items(pb.ITEM_STATE_FAILED, keys_only=False)
        return {convert.key_value(item.key): item.last_error.message for item in items}

    def completed_page(self, *, after: Optional[convert.Time], newest_first: bool,
                       keys_only: bool, page_token: str) -> Program[tuple[list[pb.Item], str]]:
        """One page of the step's COMPLETED items by completion time, and the next page's
        token ("" at the end)."""
        request = pb.ListItemsRequest(
            job_id=self.job_id, step=self.step, limit=_PAGE, keys_only=keys_only,
            page_token=page_token,
            order=(pb.ITEM_ORDER_COMPLETED_NEWEST_FIRST if newest_first
                   else pb.ITEM_ORDER_COMPLETED_OLDEST_FIRST))
        if after is not None:
            request.completed_after.CopyFrom(convert.timestamp(after))
        answer = yield from self._call("ListItems", request)
        page = response(answer, pb.ListItemsResponse)
        return list(page.items), page.next_page_token

    def logs_page(self, *, key: Optional[Key], worker_id: str, min_level: pb.LogLevel.ValueType,
                  newest_first: bool, page_token: str) -> Program[pb.ListLogsResponse]:
        """One page of the job's log (of the item `key` of the handle's step, if given)."""
        request = pb.ListLogsRequest(job_id=self.job_id, step=self.step, worker_id=worker_id,
                                     min_level=min_level, limit=1000, page_token=page_token,
                                     newest_first=newest_first)
        if key is not None:
            request.key.CopyFrom(convert.item_key(key))
        answer = yield from self._call("ListLogs", request)
        return response(answer, pb.ListLogsResponse)

    def write_logs(self, key: Optional[Key], entries: Sequence[pb.LogEntry],
                   worker_id: str) -> Program[int]:
        """Adds `entries` to the log of item `key` (None: the job's own); how many were
        kept."""
        item = pb.ItemLogs(step=self.step if key is not None else "", entries=entries)
        if key is not None:
            item.key.CopyFrom(convert.item_key(key))
        answer = yield from self._call("WriteLogs", pb.WriteLogsRequest(
            job_id=self.job_id, worker_id=worker_id, items=[item]))
        return response(answer, pb.WriteLogsResponse).written

    def remaining_keys(self) -> Program[set[Key]]:
        keys: set[Key] = set()
        for state in (pb.ITEM_STATE_PENDING, pb.ITEM_STATE_LEASED):
            items = yield from self.list_items(state)
            keys.update(convert.key_value(item.key) for item in items)
        return keys

    def summary(self) -> Program[Summary]:
        job = yield from self.info()
        progress = self._step_progress(job)
        answer = yield from self._call("ListItems", pb.ListItemsRequest(
            job_id=self.job_id, step=self.step, state=pb.ITEM_STATE_FAILED, limit=1,
            keys_only=True, error_groups=100))
        groups = response(answer, pb.ListItemsResponse).error_groups
        return Summary(
            total=progress.total, completed=progress.completed, failed=progress.failed,
            remaining=progress.remaining,
            errors={group.message: group.count for group in groups},
            avg_time_ms=convert.seconds(progress.item_time_avg) * 1000.0,
            elapsed=convert.seconds(progress.elapsed),
            workers=job.progress.active_workers, percent=progress.percent,
            rate=progress.recent_rate,
            eta=convert.seconds(progress.eta) if progress.HasField("eta") else None,
            status=pb.JobStatus.Name(job.status).replace("JOB_STATUS_", ""))

    # ---------------------------------------------------------------- resets

    def reset_items(self, request: pb.ResetItemsRequest) -> Program[int]:
        answer = yield from self._call("ResetItems", request)
        return response(answer, pb.ResetItemsResponse).matched

    def reset_key(self, key: Key) -> Program[int]:
        step = self.step
        if not step:
            job = yield from self.info()
            step = job.steps[0]
        matched = yield from self.reset_items(pb.ResetItemsRequest(
            job_id=self.job_id, step=step, keys=[convert.item_key(key)]))
        return matched

    # ---------------------------------------------------------------- record mode

    def is_completed(self, key: Key) -> Program[bool]:
        try:
            answer = yield from self._call("GetItem", pb.GetItemRequest(
                job_id=self.job_id, step=self.step, key=convert.item_key(key)))
        except errors.NotFoundError:
            yield from self.info()  # raises NotFoundError if the job itself is missing
            return False
        return response(answer, pb.GetItemResponse).item.state == pb.ITEM_STATE_COMPLETED

    def mark_in_progress(self, key: Key) -> Program[bool]:
        request = pb.LeaseItemsRequest(job_id=self.job_id, step=self.step,
                                       keys=[convert.item_key(key)])
        try:
            answer = yield from self._write_registering("LeaseItems", request, [key])
        except errors.FailedPreconditionError:
            return False
        return len(response(answer, pb.LeaseItemsResponse).leases) > 0

    def item(self, key: Key) -> Program[pb.Item]:
        answer = yield from self._call("GetItem", pb.GetItemRequest(
            job_id=self.job_id, step=self.step, key=convert.item_key(key)))
        return response(answer, pb.GetItemResponse).item

    def complete(self, completions: Sequence[Tuple[Key, pb.ItemResult]],
                 worker_id: str = "") -> Program[list[int]]:
        """Records each (key, result) completed in one call, by `worker_id` if given;
        returns the outcomes."""
        request = pb.CompleteItemsRequest(job_id=self.job_id, step=self.step,
                                          worker_id=worker_id, items=[
            pb.Completion(key=convert.item_key(key), result=result)
            for key, result in completions])
        answer = yield from self._write_registering("CompleteItems", request,
                                                    [key for key, _ in completions])
        return list(response(answer, pb.CompleteItemsResponse).outcomes)

    def mark_failed(self, key: Key, error: Union[str, BaseException],
                    worker_id: str = "") -> Program[None]:
        request = pb.FailItemsRequest(job_id=self.job_id, step=self.step, worker_id=worker_id,
                                      items=[
            pb.Failure(key=convert.item_key(key),
                       error=pb.ItemError(message=error_text(error)))])
        yield from self._write_registering("FailItems", request, [key])

    def _write_registering(self, method: str, request: Message,
                           keys: Sequence[Key]) -> Program[Message]:
        """Calls `method`; if an item is not registered (NOT_FOUND while the job
        exists), registers `keys` and calls once more."""
        try:
            answer = yield from self._call(method, request)
        except errors.NotFoundError:
            yield from self.add_items(keys, seal=False)  # NotFoundError if no job
            answer = yield from self._call(method, request)
        return answer


def make_request_for(method: str, **fields: Any) -> Message:
    """The request message of `method`, from its fields."""
    request_class: type[Message] = getattr(pb, f"{method}Request")
    return request_class(**fields)
