"""Exceptions raised by the ckpt SDK: one per gRPC status code, each carrying the code
and the server's message.

Every failed call raises a CkptError (or a subclass named after the code), so a caller
can catch broadly or by meaning:

    try:
        client.call("GetJob", job_id="nightly")
    except ckpt.NotFoundError as e:
        print(e.code, e.message)   # StatusCode.NOT_FOUND  job "nightly" not found

Which code means what, and who should retry, is docs/api.md ("Status codes").
"""

from __future__ import annotations

from typing import Optional

import grpc

# Codes after which a write may or may not have been applied: the request may have
# reached ckptd before the answer was lost (docs/api.md, "Retrying a write").
_AMBIGUOUS_CODES = frozenset({
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.CANCELLED,
    grpc.StatusCode.UNKNOWN,
})


class CkptError(Exception):
    """A ckpt call failed.

    Attributes:
      code: the grpc.StatusCode.
      message: the server's message (for a server answer), else gRPC's description.
      method: the RPC, e.g. "GetJob" ("" when not from an RPC).
      maybe_applied: True when the call was a write whose request may have reached ckptd
        although no answer came back (a lost answer); False when it certainly was not
        applied (the server refused it, or it was never sent).
      retry_after: seconds ckptd asked the caller to wait before sending the call again
        (a RESOURCE_EXHAUSTED for a full write queue: not applied), else None.
    """

    def __init__(self, code: grpc.StatusCode, message: str, method: str = "",
                 maybe_applied: bool = False, retry_after: Optional[float] = None) -> None:
        self.code = code
        self.message = message
        self.method = method
        self.maybe_applied = maybe_applied
        self.retry_after = retry_after
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f" ({self.method})" if self.method else ""
        return f"{self.code.name}: {self.message}{where}"


class InvalidArgumentError(CkptError):
    """A field breaks a rule; the message starts with the field path."""


class NotFoundError(CkptError):
    """Unknown job, item, worker, state or output."""


class FailedPreconditionError(CkptError):
    """The job's or item's state forbids the call (a lost lease included)."""


class AbortedError(CkptError):
    """A stale expected_version in PutState: re-read, then retry."""


class ResourceExhaustedError(CkptError):
    """Disk full, or a message over --max_message_bytes."""


class UnavailableError(CkptError):
    """ckptd is unreachable or shutting down."""


class DeadlineExceededError(CkptError):
    """No answer within the call's deadline."""


class DataLossError(CkptError):
    """A corrupt record in ckptd's store."""


class InternalError(CkptError):
    """A storage error or an unparsable request."""


class UnauthenticatedError(CkptError):
    """ckptd has an auth file and the call's token or certificate names no principal
    (or there was none): set `token` / $CKPT_TOKEN."""


class PermissionDeniedError(CkptError):
    """The principal's role, or its job-id prefix, does not allow the call; the message
    names the RPC and the role it needs."""


_CLASS_BY_CODE: dict[grpc.StatusCode, type[CkptError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgumentError,
    grpc.StatusCode.NOT_FOUND: NotFoundError,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPreconditionError,
    grpc.StatusCode.ABORTED: AbortedError,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhaustedError,
    grpc.StatusCode.UNAVAILABLE: UnavailableError,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceededError,
    grpc.StatusCode.DATA_LOSS: DataLossError,
    grpc.StatusCode.INTERNAL: InternalError,
    grpc.StatusCode.UNAUTHENTICATED: UnauthenticatedError,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDeniedError,
}


def error_for(code: grpc.StatusCode, message: str, method: str = "",
              maybe_applied: bool = False) -> CkptError:
    """Returns the CkptError subclass instance for `code`."""
    cls = _CLASS_BY_CODE.get(code, CkptError)
    return cls(code, message, method=method, maybe_applied=maybe_applied)


def from_rpc_error(error: grpc.RpcError, method: str, is_write: bool) -> CkptError:
    """Converts a grpc.RpcError raised by a stub (sync or grpc.aio) into a CkptError.

    `is_write` says whether the call changes state, which decides maybe_applied.
    """
    code_of = getattr(error, "code", None)
    details_of = getattr(error, "details", None)
    code: grpc.StatusCode = code_of() if code_of is not None else grpc.StatusCode.UNKNOWN
    details: Optional[str] = details_of() if details_of is not None else str(error)
    error_out = error_for(code, details or code.name, method=method,
                          maybe_applied=is_write and code in _AMBIGUOUS_CODES)
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        error_out.retry_after = _retry_after(error)
    return error_out


# Trailing metadata of a RESOURCE_EXHAUSTED that may be sent again as it is (ckptd's
# write queue was full; the write was not applied): milliseconds to wait first.
RETRY_AFTER_KEY = "ckpt-retry-after-ms"


def _retry_after(error: grpc.RpcError) -> Optional[float]:
    """The RETRY_AFTER_KEY hint of `error` in seconds, or None."""
    trailing_of = getattr(error, "trailing_metadata", None)
    for key, value in (trailing_of() if trailing_of is not None else None) or ():
        if key == RETRY_AFTER_KEY:
            try:
                return max(int(value), 0) / 1000.0
            except ValueError:
                return None
    return None
