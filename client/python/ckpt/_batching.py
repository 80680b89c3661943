"""How a Worker batches its calls: how many items it leases at once (LeaseSizer), how
its completions are split into CompleteItems calls (distinct_chunks), and the next
batch asked for ahead (Ahead)."""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Iterator, Optional, TypeVar, Union

from ckpt import errors
from ckpt._item_core import ItemBase
from ckpt.v1 import checkpoint_pb2 as pb

# lease_batch=None: lease about this many seconds of the loop's pace at a time, up to
# MAX_ADAPTIVE_LEASE items (LeaseSizer).
ADAPTIVE_LEASE_SECONDS = 1.0
MAX_ADAPTIVE_LEASE = 256
DEFAULT_COMPLETE_BATCH = 256

C = TypeVar("C", bound=tuple[Any, ...])


class LeaseSizer:
    """How many items a Worker leases at once. A fixed `lease_batch`, or (None) enough
    for about ADAPTIVE_LEASE_SECONDS of the loop's pace so far: 1 to start with, growing
    at most 4x per lease, up to MAX_ADAPTIVE_LEASE. Fast items are leased in big
    batches (few calls), slow ones one or two at a time (a worker holds little that
    others could be doing). Not thread-safe: the iterating side owns it."""

    def __init__(self, fixed: Optional[int]) -> None:
        self._fixed = fixed
        self.size = fixed or 1
        self._since: Optional[float] = None  # when the items counted below began
        self._handed = 0

    def handed(self, count: int) -> None:
        """The loop hands out `count` items now."""
        if self._since is None:
            self._since = time.monotonic()
        self._handed += count

    def paused(self) -> None:
        """The loop waits (idle or paused): that time is not the items' pace."""
        self._since, self._handed = None, 0

    def next_size(self) -> int:
        """The size of the lease about to be asked for."""
        if self._fixed is None and self._since is not None and self._handed > 0:
            per_item = max(time.monotonic() - self._since, 1e-6) / self._handed
            target = int(ADAPTIVE_LEASE_SECONDS / per_item)
            self.size = max(1, min(target, 4 * self.size, MAX_ADAPTIVE_LEASE))
            self._since, self._handed = time.monotonic(), 0
        return self.size


def distinct_chunks(completions: list[C], size: int) -> Iterator[list[C]]:
    """Splits (Item, result) pairs into runs of at most `size` with distinct keys (a
    CompleteItems batch must not repeat a key; an item lost and leased again can be
    buffered twice, and its older try must go first)."""
    chunk: list[C] = []
    keys: set[Union[int, str]] = set()
    for completion in completions:
        key = completion[0].key
        if len(chunk) == size or key in keys:
            yield chunk
            chunk, keys = [], set()
        chunk.append(completion)
        keys.add(key)
    if chunk:
        yield chunk


# A CompleteItems that also leased the next batch and was refused whole (nothing
# applied): its completions are sent again alone, and the batch leased with LeaseItems.
REFUSED_WHOLE = (errors.FailedPreconditionError, errors.InvalidArgumentError, errors.NotFoundError)

# Completed items with their results, waiting to be sent or on their way.
Completions = list[tuple[ItemBase, pb.ItemResult]]


@dataclasses.dataclass
class Ahead:
    """The next batch, asked for by a spawned call: a LeaseItems, or (`request` set) a
    CompleteItems of `chunk` with lease_next, whose answer `resolve` takes in once."""
    task: Any
    worker_id: str
    request: Optional[pb.CompleteItemsRequest] = None
    chunk: Completions = dataclasses.field(default_factory=list)
    resolved: bool = False
    leased: Optional[pb.LeaseItemsResponse] = None
