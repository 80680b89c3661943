"""ckpt.Client: one connection to ckptd, with deadlines and retries on every call.

    client = ckpt.Client("127.0.0.1:7700")
    job = client.create_job("curate-2025-12-14", config={"input": "s3://bucket/raw"})
    response = client.call("GetJob", job_id=job.job_id)      # any RPC, by name

Every call has a deadline (`timeout`, seconds, per attempt) and runs under a
RetryPolicy; ckpt/retry.py says which calls are retried and why. Failures raise
ckpt.CkptError subclasses carrying the gRPC code and the server's message.

Thread-safe: one Client can be shared by every thread (and every Worker) of a process.
"""

import json
import logging
import os
import time

import grpc

from ckpt import convert
from ckpt import errors
from ckpt import retry as retry_lib
from ckpt.v1 import checkpoint_pb2 as pb
from ckpt.v1 import checkpoint_pb2_grpc as pb_grpc

DEFAULT_ADDRESS = "127.0.0.1:7700"
DEFAULT_TIMEOUT = 10.0  # seconds per attempt

_log = logging.getLogger("ckpt")
_SERVICE = pb.DESCRIPTOR.services_by_name["Checkpoint"]
# grpc.health.v1.HealthCheckResponse{status: SERVING}, encoded: field 1, varint 1.
_SERVING = b"\x08\x01"


class Client:
    """A connection to one ckptd.

    Args:
      address: "host:port"; default $CKPT_SERVER, else 127.0.0.1:7700.
      timeout: deadline of each attempt of a call, seconds (a call may override it).
      retry: the RetryPolicy for every call (a call may override it).
      on_retry: optional callable(method, error, attempt, delay), told before each wait:
        attempt >= 1 with the CkptError that will be retried after `delay` seconds, or
        attempt 0 (delay None) when a write that must not be re-sent is waiting for a
        connection to ckptd before it is sent. For logging and progress displays.
      channel: a grpc.Channel to use instead of a new insecure one (TLS, interceptors).
        The Client then does not close it.
    """

    def __init__(self, address=None, *, timeout=DEFAULT_TIMEOUT, retry=None, on_retry=None,
                 channel=None):
        self.address = address or os.environ.get("CKPT_SERVER") or DEFAULT_ADDRESS
        self.timeout = timeout
        self.retry = retry or retry_lib.RetryPolicy()
        self._on_retry = on_retry
        self._owns_channel = channel is None
        if channel is None:
            channel = grpc.insecure_channel(self.address, options=[
                # ckptd allows 16 MiB messages (--max_message_bytes); gRPC's client
                # default would refuse answers over 4 MiB. The server enforces its own.
                ("grpc.max_receive_message_length", -1),
                ("grpc.max_send_message_length", -1),
                # Reconnect to a restarted ckptd on the retry policy's scale rather
                # than gRPC's default (up to 120 s between attempts).
                ("grpc.initial_reconnect_backoff_ms", 100),
                ("grpc.min_reconnect_backoff_ms", 100),
                ("grpc.max_reconnect_backoff_ms", int(self.retry.max_backoff * 1000)),
            ])
        self._channel = channel
        self._stub = pb_grpc.CheckpointStub(channel)
        # grpc.health.v1.Health/Check with an empty request (service ""); the answer's
        # bytes are not read, so no health stubs are needed.
        self._health_check = channel.unary_unary(
            "/grpc.health.v1.Health/Check", request_serializer=bytes,
            response_deserializer=bytes)

    @property
    def channel(self):
        """The grpc.Channel (e.g. for grpc.channel_ready_future or other services)."""
        return self._channel

    def close(self):
        """Closes the channel (if the Client opened it). Calls in flight are cancelled."""
        if self._owns_channel:
            self._channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    # ------------------------------------------------------------------ any RPC

    def call(self, method, request=None, *, timeout=None, retry=None, idempotent=None,
             **fields):
        """Calls the unary RPC `method` of ckpt.v1.Checkpoint and returns its response.

        Args:
          method: the RPC's name, e.g. "GetJob".
          request: its request message; or leave it out and pass the request's fields
            as keyword arguments (`job_id="x"`; nested messages as dicts or messages).
          timeout: deadline of each attempt, seconds (default: the Client's).
          retry: a RetryPolicy for this call (ckpt.NO_RETRY: a single attempt).
          idempotent: override the rule of ckpt/retry.py for this call: True lets an
            ambiguous failure be retried (the caller accepts a duplicate).
        Raises:
          CkptError (a subclass by code) with the code and the server's message.
          ValueError for an unknown method; TypeError for a request of the wrong type.
        """
        descriptor = _SERVICE.methods_by_name.get(method)
        if descriptor is None or descriptor.server_streaming:
            raise ValueError(f"{method!r} is not a unary RPC of ckpt.v1.Checkpoint")
        request = _make_request(descriptor, request, fields)
        policy = retry or self.retry
        safe = retry_lib.is_idempotent(method, request) if idempotent is None else idempotent
        is_write = not retry_lib.is_read(method)
        rpc = getattr(self._stub, method)
        per_attempt = self.timeout if timeout is None else timeout
        started = time.monotonic()
        deadline = started + policy.total_timeout
        attempt = 0
        while True:
            if not safe:
                self._await_connection(method, deadline)
            remaining = max(deadline - time.monotonic(), 0.001)
            try:
                return rpc(request, timeout=min(per_attempt, remaining), wait_for_ready=True)
            except grpc.RpcError as rpc_error:
                error = errors.from_rpc_error(rpc_error, method, is_write)
            attempt += 1
            if error.code not in retry_lib.RETRYABLE_CODES or not safe:
                raise error
            delay = policy.backoff(attempt - 1)
            if attempt >= policy.max_attempts or time.monotonic() + delay >= deadline:
                raise errors.error_for(
                    error.code, f"{error.message} (ckptd at {self.address}; {attempt} "
                    f"attempts in {time.monotonic() - started:.1f}s)",
                    method=method, maybe_applied=error.maybe_applied)
            self._notify(method, error, attempt, delay)
            time.sleep(delay)

    def watch_job(self, job_id, *, min_interval=None):
        """Yields the job (a ckpt.v1 Job message) now and after each change, until it
        ends (COMPLETED, FAILED or STOPPED) or the caller stops iterating.

        A stream cut by UNAVAILABLE (ckptd restarting) is opened again with backoff,
        which sends the current state at once; other errors raise CkptError.
        """
        request = pb.WatchJobRequest(job_id=job_id)
        if min_interval is not None:
            request.min_interval.CopyFrom(convert.duration(min_interval))
        retries = 0
        while True:
            stream = self._stub.WatchJob(request, wait_for_ready=True)
            try:
                for response in stream:
                    retries = 0
                    yield response.job
                return
            except grpc.RpcError as rpc_error:
                error = errors.from_rpc_error(rpc_error, "WatchJob", is_write=False)
                if (error.code != grpc.StatusCode.UNAVAILABLE
                        or retries + 1 >= self.retry.max_attempts):
                    raise error from None
            finally:
                stream.cancel()
            delay = self.retry.backoff(retries)
            retries += 1
            self._notify("WatchJob", error, retries, delay)
            time.sleep(delay)

    # ------------------------------------------------------------------ jobs

    def job(self, job_id, step=""):
        """Returns a handle on an existing job (no call is made). `step`: the step its
        item methods use; empty means the job's first step."""
        from ckpt.job import Job  # job.py imports this module
        return Job(self, job_id, step=step)

    def create_job(self, job_id="", *, config=None, fingerprint="", display_name="",
                   labels=None, params=None, steps=(), lease_timeout=None, max_attempts=0,
                   max_run_time=None, max_failed_items=0, max_failed_fraction=0.0,
                   reset_on_fingerprint_change=False):
        """Creates the job, or resumes it if it exists with the same fingerprint, and
        returns a ckpt.Job handle whose .created / .resumed / .fingerprint_reset
        say which.

        `config` is JSON text, or any JSON-serialisable value (written with sorted
        keys, so the same config always gives the same fingerprint). Durations are
        seconds. Defaults and limits are the proto's (CreateJobRequest).
        With an empty job_id the server generates one; such a call is never re-sent
        after an ambiguous failure (it could create a second job).
        Raises FailedPreconditionError naming both fingerprints on a mismatch, unless
        reset_on_fingerprint_change.
        """
        if config is not None and not isinstance(config, str):
            config = json.dumps(config, sort_keys=True, separators=(",", ":"))
        request = pb.CreateJobRequest(
            job_id=job_id, display_name=display_name, config=config or "",
            fingerprint=fingerprint, labels=labels or {}, params=params or {},
            steps=list(steps), max_attempts=max_attempts,
            reset_on_fingerprint_change=reset_on_fingerprint_change)
        if lease_timeout is not None:
            request.lease_timeout.CopyFrom(convert.duration(lease_timeout))
        if max_run_time is not None:
            request.max_run_time.CopyFrom(convert.duration(max_run_time))
        if max_failed_items or max_failed_fraction:
            request.failure_budget.max_failed_items = max_failed_items
            request.failure_budget.max_failed_fraction = max_failed_fraction
        response = self.call("CreateJob", request)
        handle = self.job(response.job.job_id)
        handle.created, handle.resumed, handle.fingerprint_reset = (
            response.created, response.resumed, response.reset)
        return handle

    # ------------------------------------------------------------------ internals

    def _await_connection(self, method, deadline):
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
                if self._health_check(b"", timeout=wait, wait_for_ready=True) == _SERVING:
                    return
            except grpc.RpcError as rpc_error:
                if rpc_error.code() not in retry_lib.RETRYABLE_CODES:
                    return  # it answered, so it is there (e.g. without a health service)
            if probes == 0:
                self._notify(method, errors.UnavailableError(
                    grpc.StatusCode.UNAVAILABLE,
                    f"waiting for ckptd at {self.address} before sending", method=method),
                    0, None)
            probes += 1
            time.sleep(max(0.0, min(self.retry.backoff(probes - 1),
                                    deadline - time.monotonic())))

    def _notify(self, method, error, attempt, delay):
        if attempt == 0:
            _log.info("ckpt: %s: %s", method, error.message)
        else:
            _log.info("ckpt: %s failed (%s); retry %d in %.2fs", method, error, attempt, delay)
        if self._on_retry is not None:
            self._on_retry(method, error, attempt, delay)


def _make_request(descriptor, request, fields):
    request_class = getattr(pb, descriptor.input_type.name)
    if request is None:
        return request_class(**fields)
    if fields:
        raise TypeError("pass either a request message or its fields, not both")
    if not isinstance(request, request_class):
        raise TypeError(f"{descriptor.name} takes a {request_class.__name__}, "
                        f"not a {type(request).__name__}")
    return request
