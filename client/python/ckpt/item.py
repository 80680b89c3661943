"""ckpt.Item: one leased item, as a Worker hands it out.

    for item in worker:
        with item:                 # completes on success; fails with the exception's text
            process(item.index, resume_from=item.cursor)
            item.save_cursor(b"row 41000")   # kept with the item if this try ends early

An item is resolved once: completed (buffered by its Worker and sent in batches) or
failed (sent at once). An item whose lease was lost (the heartbeat says so: expired,
reset, or leased again) must not be recorded: `lost` turns True and completing it does
nothing. Long bodies may check `item.lost` to stop early.

Thread-safe: complete(), fail(), save_cursor() and the properties may be called from
any thread.
"""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING, Optional, Union

from ckpt._item_core import ItemBase, Leased
from ckpt._worker_core import WorkerCore

if TYPE_CHECKING:
    from ckpt.client import Client

__all__ = ["Item"]


class Item(ItemBase):
    """One leased item (see the module comment and ItemBase for its attributes)."""

    def __init__(self, worker: WorkerCore, lease: Leased, worker_id: str,
                 client: Client) -> None:
        super().__init__(worker, lease, worker_id)
        self._client = client

    def fail(self, error: Union[str, BaseException], *,
             retryable: Optional[bool] = None) -> None:
        """Records a failure now: `error` is a message or an exception (its type and
        text are recorded). retryable (default: the Worker's retry_failures) returns the
        item to PENDING while attempts remain; otherwise it becomes FAILED.
        Raises RuntimeError if the item was already completed or failed."""
        self._client.run(self._fail(error, retryable))

    def __enter__(self) -> Item:
        self._enter_body()
        return self

    def __exit__(self, exc_type: Optional[type[BaseException]],
                 exc: Optional[BaseException], traceback: Optional[TracebackType]) -> bool:
        if self._exit_fails(exc_type, exc):
            self.fail(exc if exc is not None else "failed")
        return self._suppress(exc_type)
