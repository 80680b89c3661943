"""ckpt: the Python client of the ckpt checkpoint service.

    import ckpt

    client = ckpt.Client("127.0.0.1:7700")     # or "local:./ckpt-data": no server to start
    job = client.create_job("curate-2025-12-14")
    job.add_items(range(80), seal=True)

    for item in job.worker():          # leases, heartbeats, honours PAUSE and STOP
        with item:
            process(item.index)

    for i in ckpt.track(range(80), job=job):   # or record mode: skip what is done
        process(i)

ckpt.aio has the same API for asyncio. See client/python/README.md. The generated
messages and stubs are ckpt.v1.checkpoint_pb2 and ckpt.v1.checkpoint_pb2_grpc (also as
ckpt.pb).
"""

from ckpt._admin import DeletedJobs
from ckpt._jobs import AddResult, Summary
from ckpt.client import DEFAULT_ADDRESS, Client
from ckpt.errors import (AbortedError, CkptError, DataLossError, DeadlineExceededError,
                         FailedPreconditionError, InternalError, InvalidArgumentError,
                         NotFoundError, PermissionDeniedError, ResourceExhaustedError,
                         UnauthenticatedError, UnavailableError)
from ckpt.item import Item
from ckpt.job import Job
from ckpt.local import LocalOptions
from ckpt.retry import NO_RETRY, RetryPolicy
from ckpt.track import Tracker, track
from ckpt.v1 import checkpoint_pb2 as pb
from ckpt.worker import Worker

__version__ = "0.3.0"

__all__ = [
    "AbortedError", "AddResult", "CkptError", "Client", "DEFAULT_ADDRESS", "DataLossError",
    "DeletedJobs",
    "DeadlineExceededError", "FailedPreconditionError", "InternalError",
    "InvalidArgumentError", "Item", "Job", "LocalOptions", "NO_RETRY", "NotFoundError",
    "PermissionDeniedError", "ResourceExhaustedError", "RetryPolicy", "Summary", "Tracker",
    "UnauthenticatedError", "UnavailableError", "Worker", "pb", "track",
]
