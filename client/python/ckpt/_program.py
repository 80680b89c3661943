"""The SDK's logic, written once for the blocking API and for ckpt.aio ("sans I/O").

Everything that talks to ckptd (a call with its retries, a job query, the worker's
lease loop) is a *program*: a generator that yields operations and receives their
results. ckpt.Client performs them with blocking gRPC calls, ckpt.aio.Client with
grpc.aio awaits; neither decides anything. A failed operation is thrown into the
program as a CkptError.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Generator, List, TypeVar, Union

from google.protobuf.message import Message

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class Attempt:
    """Send `request` to the unary RPC `method` once. Result: the response message.

    Throws a CkptError for a failure (maybe_applied when `is_write` and the answer may
    have been lost)."""
    method: str
    request: Message
    timeout: float
    is_write: bool


@dataclasses.dataclass(frozen=True)
class HealthCheck:
    """Ask ckptd's health service once. Result: True if it answers SERVING."""
    timeout: float


@dataclasses.dataclass(frozen=True)
class Sleep:
    """Wait `seconds`. Result: None."""
    seconds: float


@dataclasses.dataclass(frozen=True)
class Revive:
    """The address names a ckptd this client starts itself (local: mode): make sure one
    serves, starting it if none does. Result: None; throws CkptError if it cannot."""


@dataclasses.dataclass(frozen=True)
class Idle:
    """A Worker has nothing to do: wait up to `seconds`, less if its control word changes.
    Result: None."""
    seconds: float


@dataclasses.dataclass(frozen=True)
class Hand:
    """A Worker hands `items` to the loop body. Result: None, once the body is done."""
    items: List[Any]


@dataclasses.dataclass(frozen=True)
class StartHeartbeat:
    """A Worker has registered: heartbeat every `interval` seconds until StopHeartbeat."""
    interval: float


@dataclasses.dataclass(frozen=True)
class StopHeartbeat:
    """Stop heartbeating, and wait for a heartbeat in flight. Result: None."""


@dataclasses.dataclass(frozen=True, eq=False)
class Spawn:
    """Start `program` next to the caller's, without waiting for it (its calls go out at
    once). Result: a handle for Join and Done. The spawned program only calls ckptd and
    returns an answer: what the answer means is decided by the program that joins it."""
    program: Program[Any]


@dataclasses.dataclass(frozen=True, eq=False)
class Join:
    """Wait for a spawned program to end. Result: its value; its exception is thrown in."""
    task: Any


@dataclasses.dataclass(frozen=True, eq=False)
class Done:
    """Whether a spawned program has ended, without waiting. Result: bool."""
    task: Any


Op = Union[Attempt, HealthCheck, Sleep, Revive, Idle, Hand, StartHeartbeat, StopHeartbeat,
           Spawn, Join, Done]

# A program that returns a T.
Program = Generator[Op, Any, T]


def response(value: Any, response_type: type[T]) -> T:
    """`value` (an Attempt's result) as `response_type`; TypeError if it is not one."""
    if not isinstance(value, response_type):
        raise TypeError(f"expected a {response_type.__name__}, got {type(value).__name__}")
    return value


class Step:
    """Advances a program by one operation: the drivers' shared loop.

        step = Step(program)
        while step.next():
            step.result = perform(step.op)    # or step.error = the CkptError
        return step.value
    """

    def __init__(self, program: Program[T]) -> None:
        self._program: Program[Any] = program
        self.op: Op = StopHeartbeat()  # replaced by next()
        self.result: Any = None
        self.error: BaseException | None = None
        self.value: Any = None

    def next(self) -> bool:
        """Sends the last result (or throws the last error) in; False once the program
        returned (its value is in .value). Exceptions the program raises propagate."""
        try:
            if self.error is not None:
                error, self.error = self.error, None
                self.op = self._program.throw(error)
            else:
                result, self.result = self.result, None
                self.op = self._program.send(result)
        except StopIteration as stop:
            self.value = stop.value
            return False
        return True

    def close(self) -> None:
        self._program.close()
