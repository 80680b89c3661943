"""What the loop body logs, routed to the item it is processing.

Inside `with item:` (or `async with item:`) the item is the *current item* of that thread
or asyncio task (a contextvars.ContextVar). While a Worker runs, a handler on the root
logger turns every record that reaches it into a ckpt.v1 LogEntry of the current item,
if there is one; the Worker sends an item's entries with its next heartbeat, its
completion or its failure, and ckptd keeps them under the item (ckpt logs JOB --item K).

Records of the "ckpt" logger itself are left out. Which records reach the handler is
the standard logging module's business: a logger's level (logging.basicConfig(level=
logging.INFO) for info records) decides, as it does for every other handler.
"""

from __future__ import annotations

import collections
import contextvars
import logging
import threading
from typing import Iterable, Optional

from ckpt import convert
from ckpt.v1 import checkpoint_pb2 as pb

# ckptd's defaults: --max_log_message_bytes, and --max_log_entries_per_item (entries an
# item keeps; more waiting to be sent would be dropped there anyway).
MAX_MESSAGE_BYTES = 8192
MAX_BUFFERED_ENTRIES = 1000


def level_of(levelno: int) -> pb.LogLevel.ValueType:
    """The LogLevel of a logging level number (Python's 10, 20, 30, 40, 50)."""
    if levelno < logging.INFO:
        return pb.LOG_LEVEL_DEBUG
    if levelno < logging.WARNING:
        return pb.LOG_LEVEL_INFO
    if levelno < logging.ERROR:
        return pb.LOG_LEVEL_WARNING
    if levelno < logging.CRITICAL:
        return pb.LOG_LEVEL_ERROR
    return pb.LOG_LEVEL_CRITICAL


def entry(message: str, *, levelno: int = logging.INFO, logger: str = "",
          created: Optional[float] = None) -> pb.LogEntry:
    """A LogEntry, its message cut to what ckptd accepts (never empty)."""
    encoded = (message or "-").encode("utf-8")
    if len(encoded) > MAX_MESSAGE_BYTES:
        message = encoded[:MAX_MESSAGE_BYTES - 3].decode("utf-8", errors="ignore") + "..."
    result = pb.LogEntry(level=level_of(levelno), logger=logger[:256], message=message or "-")
    if created is not None:
        result.time.CopyFrom(convert.timestamp(created))
    return result


class ItemLogs:
    """The entries of one leased item not sent yet, the oldest dropped past
    MAX_BUFFERED_ENTRIES. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: collections.deque[pb.LogEntry] = collections.deque(
            maxlen=MAX_BUFFERED_ENTRIES)

    def add(self, log_entry: pb.LogEntry) -> None:
        with self._lock:
            self._entries.append(log_entry)

    def take(self) -> list[pb.LogEntry]:
        """The entries waiting, oldest first; the buffer is emptied."""
        if not self._entries:  # most items log nothing: no lock for them
            return []
        with self._lock:
            taken = list(self._entries)
            self._entries.clear()
            return taken

    def put_back(self, entries: Iterable[pb.LogEntry]) -> None:
        """Entries taken for a call that failed go back in front of newer ones."""
        with self._lock:
            newer = list(self._entries)
            self._entries.clear()
            self._entries.extend(entries)
            self._entries.extend(newer)


_current: contextvars.ContextVar[Optional[ItemLogs]] = contextvars.ContextVar(
    "ckpt_current_item_logs", default=None)


def enter(logs: ItemLogs) -> contextvars.Token[Optional[ItemLogs]]:
    """Makes `logs` the current item's (for `with item:`); returns the token for leave."""
    return _current.set(logs)


def leave(token: contextvars.Token[Optional[ItemLogs]]) -> None:
    _current.reset(token)


class _Handler(logging.Handler):
    """Adds each record to the current item's entries, if there is a current item."""

    def emit(self, record: logging.LogRecord) -> None:
        logs = _current.get()
        if logs is None or record.name == "ckpt" or record.name.startswith("ckpt."):
            return
        try:
            message = record.getMessage()
            if record.exc_info:
                message = f"{message}\n{self.formatter_for_exceptions.formatException(record.exc_info)}"
            logs.add(entry(message, levelno=record.levelno, logger=record.name,
                           created=record.created))
        except Exception:  # a logging handler must not raise into the caller
            self.handleError(record)

    formatter_for_exceptions = logging.Formatter()


_handler = _Handler()
_install_lock = threading.Lock()
_installed = 0  # Workers running


def install() -> None:
    """Adds the handler to the root logger (once, however many Workers run)."""
    global _installed
    with _install_lock:
        _installed += 1
        if _installed == 1:
            logging.getLogger().addHandler(_handler)


def uninstall() -> None:
    """Removes it when the last Worker that installed it stops."""
    global _installed
    with _install_lock:
        _installed -= 1
        if _installed == 0:
            logging.getLogger().removeHandler(_handler)
