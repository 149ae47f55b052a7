"""The errors a caller sees, one hierarchy for both sides of the wire.

The server raises them where a request is wrong or cannot be served; its gRPC transport sends each as its status
code with its details (server/errors.py), and the clients turn the status back into the same class
(`from_status`). Each class names its gRPC status code: that is the one place the two are tied.
"""

from __future__ import annotations

import grpc

__all__ = [
    "AlreadyExistsError",
    "DeadlineExceededError",
    "FailedPreconditionError",
    "InternalError",
    "InvalidArgumentError",
    "MunetError",
    "NotFoundError",
    "ResourceExhaustedError",
    "UnavailableError",
    "UnauthenticatedError",
    "UnimplementedError",
    "PermissionDeniedError",
    "from_status",
    "task_not_found",
]


class MunetError(Exception):
    """A request failed; `details` says what was wrong and `code` is the gRPC status it travels as.

    `str()` gives the details alone (the server's messages embed one another); `describe()` prefixes the code, as
    the command line prints it.
    """

    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(self, details: str = "", code: grpc.StatusCode | None = None) -> None:
        super().__init__(details)
        self.details = details
        if code is not None:
            self.code = code

    def describe(self) -> str:
        return f"{self.code.name}: {self.details}"


class NotFoundError(MunetError):
    code = grpc.StatusCode.NOT_FOUND


class InvalidArgumentError(MunetError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class AlreadyExistsError(MunetError):
    code = grpc.StatusCode.ALREADY_EXISTS


class FailedPreconditionError(MunetError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class ResourceExhaustedError(MunetError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class UnavailableError(MunetError):
    code = grpc.StatusCode.UNAVAILABLE


class DeadlineExceededError(MunetError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


class UnauthenticatedError(MunetError):
    """No token, or one the server does not know (the message never echoes it)."""

    code = grpc.StatusCode.UNAUTHENTICATED


class PermissionDeniedError(MunetError):
    """A known token whose roles do not allow the call."""

    code = grpc.StatusCode.PERMISSION_DENIED


class UnimplementedError(MunetError):
    """The call is part of a protocol munet-serve speaks but is not one it serves (KServe v2 shared memory, ...)."""

    code = grpc.StatusCode.UNIMPLEMENTED


class DataLossError(MunetError):
    """A stored file does not match its content address (corrupted or missing): what needs it refuses to load."""

    code = grpc.StatusCode.DATA_LOSS


class InternalError(MunetError):
    """The server failed where the request was fine (an inference that raised, a bug); details are in its log."""

    code = grpc.StatusCode.INTERNAL


_BY_CODE: dict[grpc.StatusCode, type[MunetError]] = {
    cls.code: cls
    for cls in (
        NotFoundError,
        InvalidArgumentError,
        AlreadyExistsError,
        FailedPreconditionError,
        ResourceExhaustedError,
        UnavailableError,
        DeadlineExceededError,
        UnimplementedError,
        UnauthenticatedError,
        PermissionDeniedError,
        DataLossError,
        InternalError,
    )
}


def from_status(code: grpc.StatusCode, details: str) -> MunetError:
    """The error a status stands for: its class where the code has one, else MunetError with that code."""
    return _BY_CODE.get(code, MunetError)(details, code)


def task_not_found(name: str) -> NotFoundError:
    return NotFoundError(f"task {name!r} not found")
