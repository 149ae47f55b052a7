"""What a call of the SDK asks its transport to do, with no I/O of its own.

Each call (clients/calls.py) is a generator: it yields steps and receives their results, and the sync transport
(clients/client.py) or the asyncio one (clients/aio.py) carries them out. A step that fails is raised inside the
call at its `yield`, as the munet_serve.errors class of its status, so a call handles errors like plain code.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from google.protobuf.message import Message

T = TypeVar("T")
R = TypeVar("R")


class ClientTimeout(enum.Enum):
    """A step's deadline when it names none: the client's `timeout`."""

    CLIENT = "client"


Timeout = float | ClientTimeout | None  # seconds, the client's, or no deadline


@dataclass(frozen=True)
class Call:
    """One RPC with one reply: `request` is a message, or an iterator of them for a client-streaming RPC (the
    exception building one raises is the call's error). Its result is the reply message."""

    stub: type  # a generated stub class, e.g. tasks_pb2_grpc.TasksStub
    method: str  # its method, e.g. "GetTask"
    request: Message | Iterator[Message]
    timeout: Timeout = ClientTimeout.CLIENT


@dataclass(frozen=True)
class Stream:
    """A server-streaming RPC read to its end: each message goes to `receive`, which returns True when it needs no
    more (the stream is then cancelled). Its result is None; `receive` keeps what it read."""

    stub: type
    method: str
    request: Message
    receive: Callable[[Any], bool]
    timeout: Timeout = ClientTimeout.CLIENT


@dataclass(frozen=True)
class Sleep:
    seconds: float


Step = Call | Stream | Sleep
Steps = Generator[Step, Any, R]  # a call: yields steps, receives their results, returns its own


@dataclass(frozen=True)
class Watch(Generic[T]):
    """A server stream handed to the caller, each message parsed, until the caller stops (no deadline): the sync
    transport returns a TaskWatch, the asyncio one an async iterator. Not a step: it outlives the call."""

    stub: type
    method: str
    request: Message
    parse: Callable[[Any], T]


class Session(Protocol):
    """What a call may read of the client running it (each call's first argument, like `self`)."""

    target: str
    timeout: float | None
