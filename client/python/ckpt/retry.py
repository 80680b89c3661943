"""When the SDK sends a call again, and how long it waits in between.

The table below is docs/api.md's "Retrying a write", RPC by RPC; client_test.py checks
that the two agree, and the C++ SDK's client/retry_table.cc is checked against the same
doc, so the SDKs cannot drift apart.

1. Waiting for a connection is always safe. A call that must not be repeated is sent
   only once ckptd answers a health check (up to the policy's total_timeout), so
   "ckptd is down or restarting" never costs such a write: nothing has been sent yet.
   Then it is sent once. The Worker's LeaseItems, whose lost answer the Worker handles
   itself, skips the check while ckptd has answered this client within the last second
   with no call losing its connection since (a Worker leasing back to back does not pay
   a round trip per lease for it).
2. After a request has been sent, UNAVAILABLE and DEADLINE_EXCEEDED are ambiguous: the
   write may have been applied and only its answer lost (a connection cut mid-call, or
   a deadline that expired while ckptd worked). Such a call is sent again only when the
   table says a repeat does no harm; otherwise the error is raised with
   maybe_applied=True and the caller decides.
3. RESOURCE_EXHAUSTED with a retry hint (trailing metadata "ckpt-retry-after-ms",
   CkptError.retry_after) is ckptd's write queue being full: the call was not applied,
   so it is sent again, whatever the RPC, after at least the hinted wait.
4. No other code is retried: the server answered, and asking again gets the same answer
   (ABORTED and other RESOURCE_EXHAUSTED need the caller to change something first).
"""

from __future__ import annotations

import dataclasses
import random
from typing import Callable, Mapping, Protocol, Union

import grpc
from google.protobuf.message import Message

# Codes that are worth retrying at all (rule 2).
RETRYABLE_CODES = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})


class _Random(Protocol):
    def uniform(self, a: float, b: float) -> float: ...


_Resend = Union[bool, Callable[[Message], bool]]


def _all_items_leased(request: Message) -> bool:
    return all(failure.lease_token != 0 for failure in getattr(request, "items"))


# Whether a call may be sent again after its answer was lost: docs/api.md's table, by RPC
# and, where the doc's rows split an RPC, by request. Every RPC of ckpt.v1.Checkpoint is
# here (client_test.py checks that too).
RESEND_AFTER_LOST_ANSWER: Mapping[str, _Resend] = {
    # Reads change nothing.
    "GetJob": True, "ListJobs": True, "GetItem": True, "ListItems": True,
    "FindOutput": True, "ListWorkers": True, "GetState": True, "ListStates": True,
    "WatchJob": True, "ListLogs": True,
    # A repeat is answered as the first was, or with "already so", and changes nothing.
    "UpdateJob": True, "PauseJob": True, "ResumeJob": True, "StopJob": True,
    "FinishJob": True, "Heartbeat": True, "UnregisterWorker": True,
    # ALREADY_COMPLETED (and its items' log entries not stored again); with lease_next,
    # the first call's leases again, not a second set.
    "CompleteItems": True,
    "WriteLogs": True,  # the entries stored again: a duplicate in a log beats a lost line
    "AddItems": True,  # duplicates, even on the job it sealed
    # With a job_id: resumed. Without: a second job.
    "CreateJob": lambda request: bool(getattr(request, "job_id")),
    # With tokens: lease lost (the first applied). With a token-0 item: attempts +1 again.
    "FailItems": _all_items_leased,
    "LeaseItems": False,  # a second set of leases
    "RegisterWorker": False,  # a second worker
    "ResetItems": lambda request: bool(getattr(request, "dry_run")),  # resets work done since
    "ResetJob": False,  # clears work done since
    "DeleteJob": False,  # NOT_FOUND, or deletes a job created again since
    "BackupStore": False,  # FAILED_PRECONDITION: the first call's copy is there
    # Deletes what matches by then (jobs finished since included), unless it only counts.
    "DeleteJobs": lambda request: bool(getattr(request, "dry_run")),
    # Unconditional: written again. With expected_version: ABORTED.
    "PutState": lambda request: not request.HasField("expected_version"),
}

_READS = frozenset({
    "GetJob", "ListJobs", "GetItem", "ListItems", "FindOutput", "ListWorkers",
    "GetState", "ListStates", "WatchJob", "ListLogs",
})


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter, bounded by attempts and by total time.

    Attributes:
      max_attempts: sends of one call, the first included (>= 1).
      initial_backoff: seconds before the first retry (before jitter).
      max_backoff: the longest wait between two attempts, seconds.
      multiplier: growth of the wait per retry.
      total_timeout: seconds one call may take overall, waiting for a connection and
        every attempt included. Each attempt also has its own deadline (the call's
        timeout), cut short to what is left of this.
    """
    max_attempts: int = 10
    initial_backoff: float = 0.1
    max_backoff: float = 5.0
    multiplier: float = 2.0
    total_timeout: float = 60.0

    def backoff(self, retry: int, rng: _Random = random) -> float:
        """Seconds to wait before retry number `retry` (0 for the first retry).

        Half of the exponential step is fixed and half random ("equal jitter"), so
        clients that failed together spread out but none retries at once.
        """
        step = min(self.max_backoff, self.initial_backoff * (self.multiplier ** retry))
        return step / 2 + rng.uniform(0, step / 2)


NO_RETRY = RetryPolicy(max_attempts=1)


def is_read(method: str) -> bool:
    """True for the RPCs that change nothing."""
    return method in _READS


def is_idempotent(method: str, request: Message) -> bool:
    """True if `request` to `method` ("LeaseItems") may be sent again after its answer
    was lost: the table above. Unknown methods may not."""
    rule = RESEND_AFTER_LOST_ANSWER.get(method, False)
    return rule if isinstance(rule, bool) else rule(request)
