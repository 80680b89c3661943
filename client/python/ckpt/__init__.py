"""ckpt: the Python client of the ckpt checkpoint service.

    import ckpt

    client = ckpt.Client("127.0.0.1:7700")
    job = client.create_job("curate-2025-12-14")
    job.add_items(range(80), seal=True)

    for item in job.worker():          # leases, heartbeats, honours PAUSE and STOP
        with item:
            process(item.index)

    for i in ckpt.track(range(80), job=job):   # or record mode: skip what is done
        process(i)

See client/python/README.md. The generated messages and stubs are ckpt.v1.checkpoint_pb2
and ckpt.v1.checkpoint_pb2_grpc (also as ckpt.pb).
"""

from ckpt.client import Client, DEFAULT_ADDRESS
from ckpt.errors import (AbortedError, CkptError, DataLossError, DeadlineExceededError,
                         FailedPreconditionError, InternalError, InvalidArgumentError,
                         NotFoundError, ResourceExhaustedError, UnavailableError)
from ckpt.item import Item
from ckpt.job import Job
from ckpt.retry import NO_RETRY, RetryPolicy
from ckpt.track import Tracker, track
from ckpt.v1 import checkpoint_pb2 as pb
from ckpt.worker import Worker

__all__ = [
    "AbortedError", "CkptError", "Client", "DEFAULT_ADDRESS", "DataLossError",
    "DeadlineExceededError", "FailedPreconditionError", "InternalError",
    "InvalidArgumentError", "Item", "Job", "NO_RETRY", "NotFoundError",
    "ResourceExhaustedError", "RetryPolicy", "Tracker", "UnavailableError", "Worker", "pb", "track",
]
