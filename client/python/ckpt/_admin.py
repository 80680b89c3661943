"""The programs behind the administration calls of ckpt.Client and ckpt.aio.Client:
deleting jobs by filter (DeleteJobs), page after page."""

from __future__ import annotations

from typing import Iterable, NamedTuple, Optional, Union

from ckpt import convert
from ckpt._calls import ClientCore
from ckpt._program import Program, response
from ckpt.v1 import checkpoint_pb2 as pb

# A job status: a JobStatus value, or its name without the prefix ("completed").
Status = Union[str, "pb.JobStatus.ValueType"]


class DeletedJobs(NamedTuple):
    """What delete_jobs deleted (or, with dry_run, would delete).

    jobs: each job's id, status and finish time, oldest finish first;
    matched: the jobs the filter matched when the first call began.
    """
    jobs: list[pb.DeletedJob]
    matched: int


def job_status(status: Status) -> pb.JobStatus.ValueType:
    """`status` as a JobStatus value; "completed" is JOB_STATUS_COMPLETED. Raises
    ValueError for a name that is not a status."""
    if isinstance(status, str):
        name = status.upper()
        if not name.startswith("JOB_STATUS_"):
            name = "JOB_STATUS_" + name
        try:
            return pb.JobStatus.Value(name)
        except ValueError:
            raise ValueError(f"{status!r} is not a job status (completed, failed, stopped, "
                             "running, paused)") from None
    return status


def delete_jobs_request(*, statuses: Iterable[Status] = (),
                        finished_before: Optional[convert.Time] = None,
                        labels: Optional[dict[str, str]] = None, job_id_prefix: str = "",
                        include_unfinished: bool = False, dry_run: bool = False,
                        page_size: int = 0) -> pb.DeleteJobsRequest:
    """The first DeleteJobsRequest of Client.delete_jobs (see its docstring)."""
    request = pb.DeleteJobsRequest(
        statuses=[job_status(status) for status in statuses], labels=labels or {},
        job_id_prefix=job_id_prefix, include_unfinished=include_unfinished, dry_run=dry_run,
        limit=page_size)
    if finished_before is not None:
        request.finished_before.CopyFrom(convert.timestamp(finished_before))
    return request


def delete_jobs(client: ClientCore, request: pb.DeleteJobsRequest) -> Program[DeletedJobs]:
    """DeleteJobs until no page is left; `request` is the first page's."""
    jobs: list[pb.DeletedJob] = []
    matched: Optional[int] = None
    while True:
        answer = response((yield from client.call("DeleteJobs", request)), pb.DeleteJobsResponse)
        if matched is None:
            matched = answer.matched
        jobs.extend(answer.jobs)
        if not answer.next_page_token:
            return DeletedJobs(jobs, matched)
        request.page_token = answer.next_page_token
