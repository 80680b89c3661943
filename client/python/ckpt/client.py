"""ckpt.Client: one connection to ckptd, with deadlines and retries on every call.

    client = ckpt.Client("127.0.0.1:7700")        # or "unix:/path", or "local:./ckpt-data"
    job = client.create_job("curate-2025-12-14", config={"input": "s3://bucket/raw"})
    response = client.call("GetJob", job_id=job.job_id)      # any RPC, by name

Every call has a deadline (`timeout`, seconds, per attempt) and runs under a
RetryPolicy; ckpt/retry.py says which calls are retried and why. Failures raise
ckpt.CkptError subclasses carrying the gRPC code and the server's message. With a
"local:DIR" address the client starts the ckptd of DIR itself when none serves it
(ckpt/local.py).

Thread-safe: one Client can be shared by every thread (and every Worker) of a process.
"""

from __future__ import annotations

import time
from typing import Any, Iterable, Iterator, Optional, Sequence, TypeVar

import grpc
from google.protobuf.message import Message

from ckpt import convert
from ckpt import errors
from ckpt import retry as retry_lib
from ckpt._admin import DeletedJobs, Status, delete_jobs, delete_jobs_request
from ckpt._calls import (DEFAULT_ADDRESS, DEFAULT_TIMEOUT, ClientCore, OnRetry,
                         channel_options, make_request)
from ckpt._jobs import CreateJobOptions, create_job_request
from ckpt._program import (Attempt, Done, HealthCheck, Join, Op, Program, Revive, Sleep,
                           Spawn, Step)
from ckpt._security import Security, TokenInterceptor
from ckpt.job import Job
from ckpt.local import LocalOptions
from ckpt.v1 import checkpoint_pb2 as pb
from ckpt.v1 import checkpoint_pb2_grpc as pb_grpc

__all__ = ["Client", "DEFAULT_ADDRESS", "DEFAULT_TIMEOUT"]

T = TypeVar("T")
# grpc.health.v1.HealthCheckResponse{status: SERVING}, encoded: field 1, varint 1.
SERVING = b"\x08\x01"
HEALTH_CHECK = "/grpc.health.v1.Health/Check"


def make_channel(core: ClientCore) -> grpc.Channel:
    """The channel of a Client that was given none (the one place a sync channel is
    made): TLS if the Client's security asks for it, with its token on every call."""
    security = core.security
    channel = (grpc.secure_channel(core.target, security.channel_credentials(),
                                   options=channel_options(core))
               if security.uses_tls else
               grpc.insecure_channel(core.target, options=channel_options(core)))
    token = security.metadata()
    return grpc.intercept_channel(channel, TokenInterceptor(token)) if token else channel


class Client:
    """A connection to one ckptd.

    Args:
      address: "host:port", "unix:PATH", or "local:DIR" (a ckptd for DIR that the
        client starts when none serves it; see ckpt/local.py); default $CKPT_SERVER,
        else 127.0.0.1:7700.
      timeout: deadline of each attempt of a call, seconds (a call may override it).
      retry: the RetryPolicy for every call (a call may override it).
      on_retry: optional callable(method, error, attempt, delay), told before each wait:
        attempt >= 1 with the CkptError that will be retried after `delay` seconds, or
        attempt 0 (delay None) when a write that must not be re-sent is waiting for a
        connection to ckptd before it is sent. For logging and progress displays.
      channel: a grpc.Channel to use instead of making one (then the TLS arguments and
        the token are not used). The Client then does not close it.
      local: how a local: address starts ckptd (ckpt.LocalOptions).
      tls_ca: PEM file of the CA that signed ckptd's certificate: the channel uses TLS.
        Default $CKPT_TLS_CA. `tls=True` uses TLS with the system's CAs instead.
      tls_cert, tls_key: PEM files of this client's certificate and key, for mutual TLS.
        Default $CKPT_TLS_CERT and $CKPT_TLS_KEY.
      token: a bearer token of ckptd's auth file, sent with every call as
        "authorization: Bearer TOKEN". Default $CKPT_TOKEN. Never logged.
    Raises:
      ValueError for half a client certificate or a token with a character a header
      cannot carry; OSError for a TLS file that cannot be read.
    """

    def __init__(self, address: Optional[str] = None, *, timeout: float = DEFAULT_TIMEOUT,
                 retry: Optional[retry_lib.RetryPolicy] = None,
                 on_retry: Optional[OnRetry] = None, channel: Optional[grpc.Channel] = None,
                 local: Optional[LocalOptions] = None, tls: bool = False,
                 tls_ca: Optional[str] = None, tls_cert: Optional[str] = None,
                 tls_key: Optional[str] = None, token: Optional[str] = None) -> None:
        security = Security.resolve(tls=tls, tls_ca=tls_ca, tls_cert=tls_cert, tls_key=tls_key,
                                    token=token)
        self._core = ClientCore(address, timeout=timeout, retry=retry, on_retry=on_retry,
                                local=local, security=security)
        self._owns_channel = channel is None
        self._channel = channel if channel is not None else make_channel(self._core)
        stub = pb_grpc.CheckpointStub(self._channel)
        self._rpcs = {name: getattr(stub, name)
                      for name in pb.DESCRIPTOR.services_by_name["Checkpoint"].methods_by_name}
        # grpc.health.v1.Health/Check with an empty request (service ""); the answer's
        # bytes are compared whole, so no health stubs are needed.
        self._health_check = self._channel.unary_unary(
            HEALTH_CHECK, request_serializer=bytes, response_deserializer=bytes)
        self._connected = False  # local: whether the channel is READY, as gRPC last said
        if self._core.local is not None:
            self._channel.subscribe(self._on_connectivity, try_to_connect=False)

    def _on_connectivity(self, state: grpc.ChannelConnectivity) -> None:
        self._connected = state == grpc.ChannelConnectivity.READY

    @property
    def address(self) -> str:
        """The address as given ("host:port", "unix:PATH" or "local:DIR")."""
        return self._core.address

    @property
    def timeout(self) -> float:
        """The deadline of each attempt, seconds."""
        return self._core.timeout

    @property
    def retry(self) -> retry_lib.RetryPolicy:
        """The RetryPolicy of every call."""
        return self._core.retry

    @property
    def channel(self) -> grpc.Channel:
        """The grpc.Channel (e.g. for grpc.channel_ready_future or other services)."""
        return self._channel

    def close(self) -> None:
        """Closes the channel (if the Client opened it). Calls in flight are cancelled."""
        if self._core.local is not None:
            self._channel.unsubscribe(self._on_connectivity)
        if self._owns_channel:
            self._channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ------------------------------------------------------------------ any RPC

    def call(self, method: str, request: Optional[Message] = None, *,
             timeout: Optional[float] = None, retry: Optional[retry_lib.RetryPolicy] = None,
             idempotent: Optional[bool] = None, **fields: Any) -> Any:
        """Calls the unary RPC `method` of ckpt.v1.Checkpoint and returns its response
        (the ckpt.v1 message `<method>Response`).

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
        return self.run(self._core.call(method, make_request(method, request, fields),
                                        timeout=timeout, retry=retry, idempotent=idempotent))

    def watch_job(self, job_id: str, *,
                  min_interval: Optional[convert.Seconds] = None) -> Iterator[pb.Job]:
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
            stream = self._rpcs["WatchJob"](request, wait_for_ready=self._core.wait_for_ready)
            try:
                for answer in stream:
                    retries = 0
                    yield answer.job
                return
            except grpc.RpcError as rpc_error:
                error = errors.from_rpc_error(rpc_error, "WatchJob", is_write=False)
            finally:
                stream.cancel()
            retries += 1
            delay = self._core.watch_retry(error, retries)
            if delay is None:
                raise error
            self._perform(Revive())
            time.sleep(delay)

    # ------------------------------------------------------------------ jobs

    def job(self, job_id: str, step: str = "") -> Job:
        """Returns a handle on an existing job (no call is made). `step`: the step its
        item methods use; empty means the job's first step."""
        return Job(self, job_id, step=step)

    def create_job(self, job_id: str = "", *, config: Any = None, fingerprint: str = "",
                   display_name: str = "", labels: Optional[dict[str, str]] = None,
                   params: Optional[dict[str, str]] = None, steps: Sequence[str] = (),
                   lease_timeout: Optional[convert.Seconds] = None, max_attempts: int = 0,
                   max_run_time: Optional[convert.Seconds] = None, max_failed_items: int = 0,
                   max_failed_fraction: float = 0.0,
                   reset_on_fingerprint_change: bool = False,
                   retention: Optional[convert.Seconds] = None) -> Job:
        """Creates the job, or resumes it if it exists with the same fingerprint, and
        returns a ckpt.Job handle whose .created / .resumed / .fingerprint_reset
        say which.

        `config` is JSON text, or any JSON-serialisable value (written with sorted
        keys, so the same config always gives the same fingerprint). Durations are
        seconds. Defaults and limits are the proto's (CreateJobRequest).
        `retention`: how long ckptd keeps the job once it has finished (COMPLETED,
        FAILED or STOPPED), then deletes it; None: ckptd's --default_retention (none
        unless set); 0: kept until deleted, whatever the default.
        With an empty job_id the server generates one; such a call is never re-sent
        after an ambiguous failure (it could create a second job).
        Raises FailedPreconditionError naming both fingerprints on a mismatch, unless
        reset_on_fingerprint_change.
        """
        request = create_job_request(CreateJobOptions(
            job_id, config, fingerprint, display_name, labels, params, steps, lease_timeout,
            max_attempts, max_run_time, max_failed_items, max_failed_fraction,
            reset_on_fingerprint_change, retention))
        answer: pb.CreateJobResponse = self.call("CreateJob", request)
        handle = self.job(answer.job.job_id)
        handle.created, handle.resumed, handle.fingerprint_reset = (
            answer.created, answer.resumed, answer.reset)
        return handle

    # ------------------------------------------------------------------ administration

    def backup_store(self, dir: str, *, timeout: Optional[float] = None) -> pb.BackupStoreResponse:
        """Copies the whole store, consistently, into `dir`, a new absolute path on
        ckptd's machine (its parent must exist), while writes go on; returns the
        BackupStoreResponse (dir, files, bytes). `ckptd --data_dir=DIR` serves the copy.

        Needs the admin role (unconfined). Never re-sent after an ambiguous failure: the
        first call's copy would make it FAILED_PRECONDITION. A copy to another
        filesystem than the data dir copies every file: pass a longer `timeout`.
        Raises FailedPreconditionError when `dir` exists, another backup runs, or the
        store is PostgreSQL's; InvalidArgumentError for a relative path.
        """
        answer: pb.BackupStoreResponse = self.call("BackupStore", pb.BackupStoreRequest(dir=dir),
                                                   timeout=timeout)
        return answer

    def delete_jobs(self, *, statuses: Iterable[Status] = (),
                    finished_before: Optional[convert.Time] = None,
                    labels: Optional[dict[str, str]] = None, job_id_prefix: str = "",
                    include_unfinished: bool = False, dry_run: bool = False,
                    page_size: int = 0) -> DeletedJobs:
        """Deletes every job that matches, as delete() does, or with `dry_run` only lists
        them; returns DeletedJobs(jobs, matched), oldest finish first.

        Only COMPLETED, FAILED and STOPPED jobs, unless `include_unfinished` and
        `statuses` names RUNNING or PAUSED. `statuses`: JobStatus values or names
        ("completed"); `finished_before`: a time (epoch seconds, or a datetime: naive
        means UTC, so not datetime.now()); `labels`: every pair must match;
        `job_id_prefix`: ids that start with it. ckptd deletes a
        page (`page_size`, 0: 100, at most 1000) per call, a few jobs per write group;
        this calls again until no page is left. Needs the admin role; a principal
        confined to a prefix reaches only its own jobs. A failed call raises, the jobs
        of the pages before it staying deleted; it is not re-sent after an ambiguous
        failure (it would delete jobs that finished since) unless `dry_run`.
        """
        request = delete_jobs_request(
            statuses=statuses, finished_before=finished_before, labels=labels,
            job_id_prefix=job_id_prefix, include_unfinished=include_unfinished,
            dry_run=dry_run, page_size=page_size)
        return self.run(delete_jobs(self._core, request))

    # ------------------------------------------------------------------ programs

    def run(self, program: Program[T]) -> T:
        """Runs one of the SDK's programs (ckpt/_program.py) with blocking calls."""
        step = Step(program)
        while step.next():
            try:
                step.result = self._perform(step.op)
            except errors.CkptError as error:
                step.error = error
        result: T = step.value
        return result

    def _perform(self, op: Op) -> Any:
        if self._core.local is not None and not self._connected and isinstance(
                op, (Attempt, HealthCheck)):
            self._perform(Revive())  # a local: ckptd may be gone; remote: nothing to do
        if isinstance(op, Attempt):
            try:
                return self._rpcs[op.method](op.request, timeout=op.timeout,
                                             wait_for_ready=self._core.wait_for_ready)
            except grpc.RpcError as rpc_error:
                raise errors.from_rpc_error(rpc_error, op.method, op.is_write) from None
        if isinstance(op, HealthCheck):
            try:
                return self._health_check(b"", timeout=op.timeout,
                                          wait_for_ready=self._core.wait_for_ready) == SERVING
            except grpc.RpcError as rpc_error:
                raise errors.from_rpc_error(rpc_error, "Check", is_write=False) from None
        if isinstance(op, Sleep):
            time.sleep(op.seconds)
            return None
        if isinstance(op, Revive):
            if self._core.local is not None:
                self._core.local.ensure()
            return None
        if isinstance(op, Spawn):
            return Task(self, op.program)
        if isinstance(op, Join):
            return op.task.join()
        if isinstance(op, Done):
            return op.task.advance(block=False)
        raise TypeError(f"a Client does not perform {op!r}")

    def _start(self, op: Attempt | HealthCheck) -> grpc.Future[Any]:
        """Sends `op` without waiting: a future of its answer (a grpc.Call too)."""
        if self._core.local is not None and not self._connected:
            self._perform(Revive())
        if isinstance(op, Attempt):
            future: grpc.Future[Any] = self._rpcs[op.method].future(
                op.request, timeout=op.timeout, wait_for_ready=self._core.wait_for_ready)
        else:
            future = self._health_check.future(b"", timeout=op.timeout,
                                               wait_for_ready=self._core.wait_for_ready)
        return future


class Task:
    """A spawned program (ckpt/_program.py's Spawn), run by the blocking driver next to
    the program that spawned it: its calls are gRPC futures and its sleeps deadlines, so
    it needs no thread. It advances whenever its spawner asks (Done, Join), and its
    calls' answers arrive meanwhile. Not thread-safe: the spawning driver's thread only.
    """

    def __init__(self, client: Client, program: Program[Any]) -> None:
        self._client = client
        self._step = Step(program)
        self._op: Optional[Attempt | HealthCheck] = None  # the call in flight
        self._future: Optional[grpc.Future[Any]] = None
        self._wake: Optional[float] = None  # time.monotonic() a Sleep ends
        self._done = False
        self._error: Optional[BaseException] = None
        self.advance(block=False)  # its first call goes out now

    def join(self) -> Any:
        """Runs the program to its end: its value, or raises its exception."""
        self.advance(block=True)
        if self._error is not None:
            raise self._error
        return self._step.value

    def advance(self, block: bool) -> bool:
        """Takes the program as far as it goes (without waiting unless `block`); True
        once it has ended."""
        while not self._done:
            if not self._wait(block):
                return False
            try:
                more = self._step.next()
            except BaseException as error:  # the program's own: handed to join()
                self._error, self._done = error, True
                break
            if not more:
                self._done = True
                break
            op = self._step.op
            if isinstance(op, Sleep):
                self._wake = time.monotonic() + op.seconds
            elif isinstance(op, (Attempt, HealthCheck)):
                self._op, self._future = op, self._client._start(op)
            else:
                try:
                    self._step.result = self._client._perform(op)
                except errors.CkptError as error:
                    self._step.error = error
        return True

    def _wait(self, block: bool) -> bool:
        """Takes the answer of the call in flight, or ends the sleep, into the step;
        False if that would need waiting and `block` is not set."""
        if self._future is not None and self._op is not None:
            if not block and not self._future.done():
                return False
            op, future, self._op, self._future = self._op, self._future, None, None
            try:
                answer = future.result()
                self._step.result = answer == SERVING if isinstance(op, HealthCheck) else answer
            except grpc.RpcError as rpc_error:
                method, is_write = ((op.method, op.is_write) if isinstance(op, Attempt)
                                    else ("Check", False))
                self._step.error = errors.from_rpc_error(rpc_error, method, is_write)
        elif self._wake is not None:
            delay = self._wake - time.monotonic()
            if delay > 0:
                if not block:
                    return False
                time.sleep(delay)
            self._wake = None
        return True
