"""What a Client does around each call, shared by ckpt.Client and ckpt.aio.Client: the
retry loop of retry.py, waiting for ckptd before a write that must not repeat, building
requests, and the address ("host:port", "unix:PATH" or "local:DIR")."""

from __future__ import annotations

import logging
import os
import time
from typing import Any, Callable, Optional

import grpc
from google.protobuf.message import Message

from ckpt import errors
from ckpt import retry as retry_lib
from ckpt._program import Attempt, HealthCheck, Program, Revive, Sleep
from ckpt._security import Security
from ckpt.local import LocalServer, LocalOptions
from ckpt.v1 import checkpoint_pb2 as pb

DEFAULT_ADDRESS = "127.0.0.1:7700"
DEFAULT_TIMEOUT = 10.0  # seconds per attempt
LOCAL_PREFIX = "local:"
# A caller that handles a lost answer itself may skip the health check before a call
# that must not be repeated when ckptd answered this client less than this many seconds
# ago (retry.py, rule 1).
ANSWERED_LATELY = 1.0

_log = logging.getLogger("ckpt")
_SERVICE = pb.DESCRIPTOR.services_by_name["Checkpoint"]

# on_retry(method, error, attempt, delay): see Client.
OnRetry = Callable[[str, errors.CkptError, int, Optional[float]], None]


def resolve_address(address: Optional[str]) -> str:
    """The address a Client uses: `address`, else $CKPT_SERVER, else 127.0.0.1:7700."""
    return address or os.environ.get("CKPT_SERVER") or DEFAULT_ADDRESS


def channel_options(core: ClientCore) -> list[tuple[str, Any]]:
    """gRPC channel arguments for ckptd, for the sync and the asyncio channel alike."""
    # Reconnect to a restarted ckptd on the retry policy's scale rather than gRPC's
    # default (up to 120 s between attempts); to a local one at once, since this client
    # restarts it and its calls fail fast meanwhile (a Unix socket connects cheaply).
    max_backoff = 0.25 if core.local is not None else core.retry.max_backoff
    return [
        # ckptd allows 16 MiB messages (--max_message_bytes); gRPC's client default
        # would refuse answers over 4 MiB. The server enforces its own limit.
        ("grpc.max_receive_message_length", -1),
        ("grpc.max_send_message_length", -1),
        ("grpc.initial_reconnect_backoff_ms", 100),
        ("grpc.min_reconnect_backoff_ms", 100),
        ("grpc.max_reconnect_backoff_ms", int(max_backoff * 1000)),
    ]


def make_request(method: str, request: Optional[Message], fields: dict[str, Any]) -> Message:
    """The request of `method`: `request` checked for its type, or one made of `fields`.
    ValueError for an unknown or streaming method, TypeError for a wrong request."""
    descriptor = _SERVICE.methods_by_name.get(method)
    if descriptor is None or descriptor.server_streaming:
        raise ValueError(f"{method!r} is not a unary RPC of ckpt.v1.Checkpoint")
    request_class: type[Message] = getattr(pb, descriptor.input_type.name)
    if request is None:
        return request_class(**fields)
    if fields:
        raise TypeError("pass either a request message or its fields, not both")
    if not isinstance(request, request_class):
        raise TypeError(f"{method} takes a {request_class.__name__}, "
                        f"not a {type(request).__name__}")
    return request


class ClientCore:
    """The I/O-free part of a Client. Thread-safe (immutable after construction but for
    the time of ckptd's last answer)."""

    def __init__(self, address: Optional[str], *, timeout: float,
                 retry: Optional[retry_lib.RetryPolicy], on_retry: Optional[OnRetry],
                 local: Optional[LocalOptions], security: Security = Security()) -> None:
        self.address = resolve_address(address)
        # A local: ckptd this client starts serves plaintext and has no auth file.
        self.security = security if not self.address.startswith(LOCAL_PREFIX) else Security()
        self.timeout = timeout
        self.retry = retry or retry_lib.RetryPolicy()
        self._on_retry = on_retry
        self.local: Optional[LocalServer] = None
        if self.address.startswith(LOCAL_PREFIX):
            self.local = LocalServer(self.address[len(LOCAL_PREFIX):], local or LocalOptions())
        # The gRPC target. Calls wait for a connection (a restarted ckptd is waited
        # for); a client of a local: ckptd makes sure it runs whenever its channel is
        # not connected (ckpt.Client._perform).
        self.target = self.local.target if self.local is not None else self.address
        self.wait_for_ready = True
        # time.monotonic() of ckptd's last answer to this client, None once a call
        # found no connection since (one float, assigned whole: safe between threads).
        self._last_answer: Optional[float] = None

    def _answered_lately(self) -> bool:
        """True if ckptd answered this client within ANSWERED_LATELY seconds and no call
        has lost its connection since: as good a sign that it serves as a health check
        (which is itself only a moment's), without the round trip."""
        last = self._last_answer
        return last is not None and time.monotonic() - last < ANSWERED_LATELY

    def call(self, method: str, request: Message, *, timeout: Optional[float] = None,
             retry: Optional[retry_lib.RetryPolicy] = None,
             idempotent: Optional[bool] = None,
             probe_unless_answered: bool = False) -> Program[Message]:
        """The program of one call under the retry policy: see Client.call.

        `probe_unless_answered`: a call that must not be repeated skips its health check
        if ckptd answered this client lately (for a caller that recovers from a lost
        answer by itself: the Worker's LeaseItems)."""
        policy = retry or self.retry
        safe = retry_lib.is_idempotent(method, request) if idempotent is None else idempotent
        is_write = not retry_lib.is_read(method)
        per_attempt = self.timeout if timeout is None else timeout
        started = time.monotonic()
        deadline = started + policy.total_timeout
        attempt = 0
        while True:
            if not safe and not (probe_unless_answered and self._answered_lately()):
                yield from self._await_serving(method, deadline)
            remaining = max(deadline - time.monotonic(), 0.001)
            try:
                answer: Message = (yield Attempt(method, request, min(per_attempt, remaining),
                                                 is_write))
                self._last_answer = time.monotonic()
                return answer
            except errors.CkptError as failure:
                error = failure
            if error.code in retry_lib.RETRYABLE_CODES:
                self._last_answer = None
            else:
                self._last_answer = time.monotonic()  # an answer all the same
            attempt += 1
            not_applied = error.retry_after is not None  # a full queue: rule 3
            if not not_applied and (error.code not in retry_lib.RETRYABLE_CODES or not safe):
                raise error
            delay = policy.backoff(attempt - 1)
            if error.retry_after is not None:
                delay = max(delay, error.retry_after)
            if attempt >= policy.max_attempts or time.monotonic() + delay >= deadline:
                raise errors.error_for(
                    error.code, f"{error.message} (ckptd at {self.address}; {attempt} "
                    f"attempts in {time.monotonic() - started:.1f}s)",
                    method=method, maybe_applied=error.maybe_applied)
            self.notify(method, error, attempt, delay)
            if self.local is not None:
                yield Revive()
            yield Sleep(delay)

    def _await_serving(self, method: str, deadline: float) -> Program[None]:
        """Returns once ckptd says it is serving; raises UnavailableError (nothing was
        sent) if it does not by `deadline` (time.monotonic()).

        A health check rather than the channel's connectivity state: that can still
        say READY for a moment after ckptd died, and a ckptd shutting down answers
        NOT_SERVING while it refuses writes.
        """
        probes = 0
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise errors.UnavailableError(
                    grpc.StatusCode.UNAVAILABLE,
                    f"no connection to ckptd at {self.address}; nothing was sent",
                    method=method)
            wait = min(self.retry.initial_backoff, remaining) if probes == 0 else remaining
            try:
                if (yield HealthCheck(wait)):
                    return
            except errors.CkptError as error:
                if error.code not in retry_lib.RETRYABLE_CODES:
                    return  # it answered, so it is there (e.g. without a health service)
            if probes == 0:
                self.notify(method, errors.UnavailableError(
                    grpc.StatusCode.UNAVAILABLE,
                    f"waiting for ckptd at {self.address} before sending", method=method),
                    0, None)
            probes += 1
            if self.local is not None:
                yield Revive()
            yield Sleep(max(0.0, min(self.retry.backoff(probes - 1),
                                     deadline - time.monotonic())))

    def watch_retry(self, error: errors.CkptError, retries: int) -> Optional[float]:
        """After WatchJob's stream failed with `error` (its `retries`-th failure in a row,
        from 1): the seconds to wait before opening it again, or None to give up."""
        if error.code != grpc.StatusCode.UNAVAILABLE or retries >= self.retry.max_attempts:
            return None
        delay = self.retry.backoff(retries - 1)
        self.notify("WatchJob", error, retries, delay)
        return delay

    def notify(self, method: str, error: errors.CkptError, attempt: int,
               delay: Optional[float]) -> None:
        """Logs a retry (attempt >= 1) or a wait for a connection (attempt 0), and tells
        on_retry."""
        if attempt == 0:
            _log.info("ckpt: %s: %s", method, error.message)
        else:
            _log.info("ckpt: %s failed (%s); retry %d in %.2fs", method, error, attempt,
                      delay or 0.0)
        if self._on_retry is not None:
            self._on_retry(method, error, attempt, delay)
