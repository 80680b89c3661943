"""When the SDK retries a call, and how long it waits in between.

The rule (docs/api.md, "Retrying a write", is the source for each RPC):

1. Waiting for a connection is always safe. Before sending a write that is not safe to
   repeat, the client waits until the channel to ckptd is READY (up to the policy's
   total_timeout), so "ckptd is down or restarting" never costs such a write: nothing
   has been sent yet. Only then is the request sent, once.
2. After a request has been sent, UNAVAILABLE and DEADLINE_EXCEEDED are ambiguous: the
   write may have been applied and only its answer lost (a connection cut mid-call, or
   a deadline that expired while ckptd worked). Such a call is retried only when a
   duplicate cannot do harm (is_idempotent below). Otherwise the error is raised with
   maybe_applied=True and the caller decides.
3. No other code is retried: the server answered, and asking again gets the same answer
   (ABORTED and RESOURCE_EXHAUSTED need the caller to change something first).

Not safe to repeat, so never re-sent after an ambiguous failure:
- LeaseItems: a second set of leases (the Worker recovers by unregistering, which
  returns any stray lease without counting an attempt, and registering again).
- RegisterWorker: a second worker (the Worker opts in: the stray one holds nothing).
- CreateJob without job_id: a second job.
- FailItems with any record-mode item (lease_token 0): attempts counted twice.
- ResetJob, ResetItems (not dry_run): a repeat would also undo work done in between.
- DeleteJob: a repeat answers NOT_FOUND, hiding that the delete worked.
- PutState with expected_version: a repeat answers ABORTED.
- AddItems that adds items and seals: a repeat is refused (the job is sealed).
Everything else is a read, or a write whose repeat is answered as the doc's table says
(resumed, duplicates, ALREADY_COMPLETED, no change).
"""

import dataclasses
import random

import grpc

# Codes that are worth retrying at all (rule 2).
RETRYABLE_CODES = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})

_READS = frozenset({
    "GetJob", "ListJobs", "GetItem", "ListItems", "FindOutput", "ListWorkers",
    "GetState", "ListStates", "WatchJob",
})

# Writes whose repeat after a lost answer changes nothing more.
_REPEATABLE_WRITES = frozenset({
    "UpdateJob", "PauseJob", "ResumeJob", "StopJob", "FinishJob", "UnregisterWorker",
    "Heartbeat", "CompleteItems",
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

    def backoff(self, retry, rng=random):
        """Seconds to wait before retry number `retry` (0 for the first retry).

        Half of the exponential step is fixed and half random ("equal jitter"), so
        clients that failed together spread out but none retries at once.
        """
        step = min(self.max_backoff, self.initial_backoff * (self.multiplier ** retry))
        return step / 2 + rng.uniform(0, step / 2)


NO_RETRY = RetryPolicy(max_attempts=1)


def is_read(method):
    """True for the RPCs that change nothing."""
    return method in _READS


def is_idempotent(method, request):
    """True if sending `request` to `method` twice has the effect of sending it once.

    `method` is the RPC's name ("LeaseItems"); `request` its request message. Unknown
    methods are not idempotent.
    """
    if method in _READS or method in _REPEATABLE_WRITES:
        return True
    if method == "CreateJob":
        return bool(request.job_id)
    if method == "AddItems":
        adds = bool(request.names) or bool(request.indices) or bool(request.ranges)
        return not (adds and request.seal)
    if method == "FailItems":
        return all(failure.lease_token != 0 for failure in request.items)
    if method == "ResetItems":
        return request.dry_run
    if method == "PutState":
        return not request.HasField("expected_version")
    return False  # LeaseItems, RegisterWorker, ResetJob, DeleteJob, anything new
