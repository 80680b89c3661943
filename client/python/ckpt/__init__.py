"""ckpt: the Python client of the ckpt checkpoint service.

See client/python/README.md. The generated messages and stubs are ckpt.v1.checkpoint_pb2
and ckpt.v1.checkpoint_pb2_grpc (also as ckpt.pb).
"""

from ckpt.client import Client, DEFAULT_ADDRESS
from ckpt.errors import (AbortedError, CkptError, DataLossError, DeadlineExceededError,
                         FailedPreconditionError, InternalError, InvalidArgumentError,
                         NotFoundError, ResourceExhaustedError, UnavailableError)
from ckpt.job import Job
from ckpt.retry import NO_RETRY, RetryPolicy
from ckpt.track import track
from ckpt.v1 import checkpoint_pb2 as pb
