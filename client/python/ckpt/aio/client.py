"""ckpt.aio.Client: ckpt.Client for asyncio, on grpc.aio.

    async with ckpt.aio.Client("local:./ckpt-data") as client:
        job = await client.create_job("enrich-2025-12-14")
        answer = await client.call("GetJob", job_id=job.job_id)

Same arguments, retries, errors and semantics as ckpt.Client: both run the same programs
(ckpt/_calls.py, ckpt/_jobs.py); this one performs their calls with awaits. Make it
inside the event loop that uses it (a grpc.aio channel belongs to one loop).
"""

from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator, Iterable, Optional, Sequence, TypeVar

import grpc
import grpc.aio
from google.protobuf.message import Message

from ckpt import convert
from ckpt import errors
from ckpt import retry as retry_lib
from ckpt._admin import DeletedJobs, Status, delete_jobs, delete_jobs_request
from ckpt._calls import DEFAULT_TIMEOUT, ClientCore, OnRetry, channel_options, make_request
from ckpt._jobs import CreateJobOptions, create_job_request
from ckpt._program import (Attempt, Done, HealthCheck, Join, Op, Program, Revive, Sleep,
                           Spawn, Step)
from ckpt._security import Security, aio_token_interceptors
from ckpt.aio.job import Job
from ckpt.client import HEALTH_CHECK, SERVING
from ckpt.local import LocalOptions
from ckpt.v1 import checkpoint_pb2 as pb
from ckpt.v1 import checkpoint_pb2_grpc as pb_grpc

__all__ = ["Client"]

T = TypeVar("T")


def make_channel(core: ClientCore) -> grpc.aio.Channel:
    """The channel of a Client that was given none (the one place an asyncio channel is
    made): TLS if the Client's security asks for it, with its token on every call."""
    security = core.security
    token = security.metadata()
    interceptors = aio_token_interceptors(token) if token else None
    if security.uses_tls:
        return grpc.aio.secure_channel(core.target, security.channel_credentials(),
                                       options=channel_options(core), interceptors=interceptors)
    return grpc.aio.insecure_channel(core.target, options=channel_options(core),
                                     interceptors=interceptors)


class Client:
    """A connection to one ckptd, for asyncio; arguments as ckpt.Client's (`channel`: a
    grpc.aio.Channel). Safe to share between the tasks of its event loop."""

    def __init__(self, address: Optional[str] = None, *, timeout: float = DEFAULT_TIMEOUT,
                 retry: Optional[retry_lib.RetryPolicy] = None,
                 on_retry: Optional[OnRetry] = None,
                 channel: Optional[grpc.aio.Channel] = None,
                 local: Optional[LocalOptions] = None, tls: bool = False,
                 tls_ca: Optional[str] = None, tls_cert: Optional[str] = None,
                 tls_key: Optional[str] = None, token: Optional[str] = None) -> None:
        security = Security.resolve(tls=tls, tls_ca=tls_ca, tls_cert=tls_cert, tls_key=tls_key,
                                    token=token)
        self._core = ClientCore(address, timeout=timeout, retry=retry, on_retry=on_retry,
                                local=local, security=security)
        self._owns_channel = channel is None
        self._channel = channel if channel is not None else make_channel(self._core)
        # The generated stub takes a grpc.aio channel too; its stub types name only grpc's.
        stub = pb_grpc.CheckpointStub(self._channel)  # type: ignore[arg-type]
        self._rpcs = {name: getattr(stub, name)
                      for name in pb.DESCRIPTOR.services_by_name["Checkpoint"].methods_by_name}
        self._health_check = self._channel.unary_unary(
            HEALTH_CHECK, request_serializer=bytes, response_deserializer=bytes)

    @property
    def address(self) -> str:
        return self._core.address

    @property
    def timeout(self) -> float:
        return self._core.timeout

    @property
    def retry(self) -> retry_lib.RetryPolicy:
        return self._core.retry

    @property
    def channel(self) -> grpc.aio.Channel:
        return self._channel

    async def close(self) -> None:
        """Closes the channel (if the Client opened it). Calls in flight are cancelled."""
        if self._owns_channel:
            await self._channel.close()

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def call(self, method: str, request: Optional[Message] = None, *,
                   timeout: Optional[float] = None,
                   retry: Optional[retry_lib.RetryPolicy] = None,
                   idempotent: Optional[bool] = None, **fields: Any) -> Any:
        """As ckpt.Client.call, awaited."""
        return await self.run(self._core.call(
            method, make_request(method, request, fields), timeout=timeout, retry=retry,
            idempotent=idempotent))

    async def watch_job(self, job_id: str, *, min_interval: Optional[convert.Seconds] = None
                        ) -> AsyncIterator[pb.Job]:
        """As ckpt.Client.watch_job: the job now and after each change, until it ends."""
        request = pb.WatchJobRequest(job_id=job_id)
        if min_interval is not None:
            request.min_interval.CopyFrom(convert.duration(min_interval))
        retries = 0
        while True:
            stream = self._rpcs["WatchJob"](request, wait_for_ready=self._core.wait_for_ready)
            try:
                async for answer in stream:
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
            await self._perform(Revive())
            await asyncio.sleep(delay)

    def job(self, job_id: str, step: str = "") -> Job:
        """A handle on an existing job (no call is made)."""
        return Job(self, job_id, step=step)

    async def create_job(self, job_id: str = "", *, config: Any = None, fingerprint: str = "",
                         display_name: str = "", labels: Optional[dict[str, str]] = None,
                         params: Optional[dict[str, str]] = None, steps: Sequence[str] = (),
                         lease_timeout: Optional[convert.Seconds] = None,
                         max_attempts: int = 0,
                         max_run_time: Optional[convert.Seconds] = None,
                         max_failed_items: int = 0, max_failed_fraction: float = 0.0,
                         reset_on_fingerprint_change: bool = False,
                         retention: Optional[convert.Seconds] = None) -> Job:
        """As ckpt.Client.create_job."""
        request = create_job_request(CreateJobOptions(
            job_id, config, fingerprint, display_name, labels, params, steps, lease_timeout,
            max_attempts, max_run_time, max_failed_items, max_failed_fraction,
            reset_on_fingerprint_change, retention))
        answer: pb.CreateJobResponse = await self.call("CreateJob", request)
        handle = self.job(answer.job.job_id)
        handle.created, handle.resumed, handle.fingerprint_reset = (
            answer.created, answer.resumed, answer.reset)
        return handle

    async def delete_jobs(self, *, statuses: Iterable[Status] = (),
                          finished_before: Optional[convert.Time] = None,
                          labels: Optional[dict[str, str]] = None, job_id_prefix: str = "",
                          include_unfinished: bool = False, dry_run: bool = False,
                          page_size: int = 0) -> DeletedJobs:
        """As ckpt.Client.delete_jobs: every page, awaited."""
        request = delete_jobs_request(
            statuses=statuses, finished_before=finished_before, labels=labels,
            job_id_prefix=job_id_prefix, include_unfinished=include_unfinished,
            dry_run=dry_run, page_size=page_size)
        return await self.run(delete_jobs(self._core, request))

    async def run(self, program: Program[T]) -> T:
        """Runs one of the SDK's programs (ckpt/_program.py) with awaits."""
        step = Step(program)
        while step.next():
            try:
                step.result = await self._perform(step.op)
            except errors.CkptError as error:
                step.error = error
        result: T = step.value
        return result

    async def _perform(self, op: Op) -> Any:
        if (isinstance(op, (Attempt, HealthCheck)) and self._core.local is not None
                and self._channel.get_state() != grpc.ChannelConnectivity.READY):
            await self._perform(Revive())  # the local ckptd may be gone
        if isinstance(op, Attempt):
            try:
                return await self._rpcs[op.method](op.request, timeout=op.timeout,
                                                   wait_for_ready=self._core.wait_for_ready)
            except grpc.RpcError as rpc_error:
                raise errors.from_rpc_error(rpc_error, op.method, op.is_write) from None
        if isinstance(op, HealthCheck):
            try:
                answer = await self._health_check(b"", timeout=op.timeout,
                                                  wait_for_ready=self._core.wait_for_ready)
            except grpc.RpcError as rpc_error:
                raise errors.from_rpc_error(rpc_error, "Check", is_write=False) from None
            return answer == SERVING
        if isinstance(op, Sleep):
            await asyncio.sleep(op.seconds)
            return None
        if isinstance(op, Revive):
            if self._core.local is not None:
                await asyncio.to_thread(self._core.local.ensure)  # file locks, a process
            return None
        if isinstance(op, Spawn):
            return asyncio.ensure_future(self.run(op.program))
        if isinstance(op, Join):
            return await op.task
        if isinstance(op, Done):
            return op.task.done()
        raise TypeError(f"a Client does not perform {op!r}")
