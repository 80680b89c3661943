"""One SDK worker of the fault suite, in a process of its own: a ckpt.Worker that
completes every item it leases with a payload naming the lease holder, and appends one
line per acknowledged completion to its ack log:

    INDEX WORKER_ID LEASE_TOKEN COMPLETED_AT ACKED_AT

(the times are time.monotonic(), the same clock in every process of the machine). The
suite reads the logs while the job runs (the time from a fault to the next completion)
and at the end (every acknowledged completion must be in the store, byte for byte).

The worker ends when the job does: exit code 0 once its loop ended because the job is
finished, 1 on any error the SDK raised (the suite then fails: no human helps it).
"""

from __future__ import annotations

import hashlib
import logging
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Optional, TextIO

import ckpt
from ckpt import retry as retry_lib

log = logging.getLogger("fault_worker")

# Outages last a PostgreSQL failover or a lease: the SDK keeps retrying through them.
PATIENT = retry_lib.RetryPolicy(max_attempts=1_000_000, max_backoff=1.0, total_timeout=900.0)


def payload_of(job_id: str, index: int, worker_id: str, lease_token: int) -> bytes:
    """The result a lease holder records for an item: unique to the holder and token."""
    head = f"{job_id}/{index}/{worker_id}/{lease_token}/".encode()
    return head + hashlib.sha256(head).hexdigest().encode()


@dataclass(frozen=True)
class Ack:
    """One acknowledged completion, as logged."""
    index: int
    worker_id: str
    lease_token: int
    completed_at: float  # when the loop body completed the item
    acked_at: float      # when ckptd's answer recorded it

    def line(self) -> str:
        return (f"{self.index} {self.worker_id} {self.lease_token} "
                f"{self.completed_at:.6f} {self.acked_at:.6f}\n")

    @staticmethod
    def parse(line: str) -> Ack:
        index, worker_id, token, completed_at, acked_at = line.split()
        return Ack(int(index), worker_id, int(token), float(completed_at), float(acked_at))


class AckLog:
    """Remembers each completion until ckptd acknowledges it, then logs it. Thread-safe
    (the Worker reports acknowledgements from its loop and its heartbeat thread)."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._lock = threading.Lock()
        self._waiting: dict[int, tuple[str, int, float]] = {}
        self.acked = 0

    def completing(self, index: int, worker_id: str, lease_token: int) -> None:
        with self._lock:
            self._waiting[index] = (worker_id, lease_token, time.monotonic())

    def on_event(self, kind: str, info: dict[str, Any]) -> None:
        if kind != "acknowledged":
            if kind not in ("waiting", "heartbeat"):
                log.info("event %s %s", kind, info)
            return
        now = time.monotonic()
        with self._lock:
            for key in info["keys"]:
                # An acknowledgement of nothing this worker completed is logged as such,
                # and the suite's check fails on it.
                worker_id, token, completed_at = self._waiting.pop(key, ("unknown", 0, now))
                self._out.write(Ack(int(key), worker_id, token, completed_at, now).line())
                self.acked += 1
            self._out.flush()


def run(target: str, job_id: str, ack_path: str, name: str) -> int:
    """Works `job_id` through `target` until the job is finished."""
    client = ckpt.Client(target, retry=PATIENT)
    with open(ack_path, "a", encoding="ascii") as out:
        acks = AckLog(out)
        with ckpt.Worker(client, job_id, max_idle_wait=0.2, capture_logs=False,
                         on_event=acks.on_event, hostname=name) as worker:
            for item in worker:
                assert isinstance(item.key, int)
                acks.completing(item.key, item.worker_id, item.lease_token)
                item.complete(payload=payload_of(job_id, item.key, item.worker_id,
                                                 item.lease_token))
        log.info("%s: job %s finished; %d completions acknowledged", name, job_id, acks.acked)
    return 0


def main(argv: Optional[list[str]] = None) -> int:
    """fault_worker TARGET JOB_ID ACK_LOG NAME"""
    args = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    target, job_id, ack_path, name = args
    try:
        return run(target, job_id, ack_path, name)
    except Exception:  # any SDK error ends the worker: the suite counts that a failure
        log.exception("%s: the worker failed", name)
        return 1


if __name__ == "__main__":
    sys.exit(main())
