"""What the fault suite asserts once the job is finished, each check a list of problems
(empty: it holds):

- no item was acknowledged to two lease holders (two worker ids or tokens);
- every acknowledged completion is in the store, COMPLETED, with the exact payload its
  holder sent, and no item is COMPLETED without an acknowledgement;
- the job's counters (GetJob) equal a recount of its items (ListItems, every page).
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field
from pathlib import Path

import ckpt
from ckpt import pb
from fault_worker import Ack, payload_of

PAGE = 5000  # items per ListItems page (ckptd's --max_batch is 8192)
MAX_LISTED = 20  # problems of one kind spelled out; the rest are counted


def read_acks(paths: list[Path]) -> list[Ack]:
    """Every acknowledgement the workers logged."""
    acks: list[Ack] = []
    for path in paths:
        with open(path, encoding="ascii") as log:
            acks.extend(Ack.parse(line) for line in log if line.endswith("\n"))
    return acks


def single_holders(acks: list[Ack]) -> tuple[dict[int, Ack], list[str]]:
    """The one acknowledgement of each item, and a problem for each item acknowledged
    to two lease holders (or with no completion behind it)."""
    holders: dict[int, set[tuple[str, int]]] = collections.defaultdict(set)
    first: dict[int, Ack] = {}
    problems = []
    for ack in acks:
        if ack.worker_id == "unknown":
            problems.append(f"item {ack.index}: acknowledged but never completed by its worker")
        holders[ack.index].add((ack.worker_id, ack.lease_token))
        first.setdefault(ack.index, ack)
    for index, seen in sorted(holders.items()):
        if len(seen) > 1:
            problems.append(f"item {index}: completed by {len(seen)} lease holders: "
                            f"{sorted(seen)}")
    return first, problems


@dataclass
class Recount:
    """The job's items, counted by state from ListItems."""
    by_state: collections.Counter = field(default_factory=collections.Counter)
    items: dict[int, pb.Item] = field(default_factory=dict)


def recount(client: ckpt.Client, job_id: str) -> Recount:
    """Every item of the job's (first) step, page by page."""
    counted = Recount()
    token = ""
    while True:
        page = client.call("ListItems", job_id=job_id, limit=PAGE, page_token=token)
        for item in page.items:
            counted.items[item.key.index] = item
            counted.by_state[item.state] += 1
        token = page.next_page_token
        if not token:
            return counted


def stored_as_acknowledged(job_id: str, acked: dict[int, Ack], counted: Recount) -> list[str]:
    """Problems: an acknowledged item missing, not COMPLETED or with other bytes; a
    COMPLETED item nobody was told was recorded."""
    problems = []
    for index, ack in sorted(acked.items()):
        item = counted.items.get(index)
        if item is None:
            problems.append(f"item {index}: acknowledged to {ack.worker_id}, not in the store")
        elif item.state != pb.ITEM_STATE_COMPLETED:
            problems.append(f"item {index}: acknowledged to {ack.worker_id}, stored "
                            f"{pb.ItemState.Name(item.state)}")
        elif item.result.payload != payload_of(job_id, index, ack.worker_id, ack.lease_token):
            problems.append(f"item {index}: acknowledged to {ack.worker_id} token "
                            f"{ack.lease_token}, stored {item.result.payload[:80]!r}")
        elif item.worker_id != ack.worker_id:
            problems.append(f"item {index}: acknowledged to {ack.worker_id}, stored as "
                            f"completed by {item.worker_id}")
    for index, item in sorted(counted.items.items()):
        if item.state == pb.ITEM_STATE_COMPLETED and index not in acked:
            problems.append(f"item {index}: COMPLETED but never acknowledged to a worker")
    return problems


def counters_match(client: ckpt.Client, job_id: str, counted: Recount) -> list[str]:
    """Problems: a counter of GetJob (the job's and its step's) that the recount does
    not give."""
    job = client.call("GetJob", job_id=job_id).job
    expected = {
        "total": len(counted.items),
        "pending": counted.by_state[pb.ITEM_STATE_PENDING],
        "leased": counted.by_state[pb.ITEM_STATE_LEASED],
        "completed": counted.by_state[pb.ITEM_STATE_COMPLETED],
        "failed": counted.by_state[pb.ITEM_STATE_FAILED],
    }
    expected["remaining"] = expected["pending"] + expected["leased"]
    problems = []
    progresses = [("job", job.progress)] + [(f"step {s.step!r}", s.progress) for s in job.step_progress]
    for where, progress in progresses:
        for name, value in expected.items():
            if getattr(progress, name) != value:
                problems.append(f"{where}: {name} is {getattr(progress, name)}, "
                                f"the items say {value}")
    return problems


def summarize(problems: list[str]) -> list[str]:
    """At most MAX_LISTED problems, and how many more."""
    if len(problems) <= MAX_LISTED:
        return problems
    return problems[:MAX_LISTED] + [f"... and {len(problems) - MAX_LISTED} more"]
