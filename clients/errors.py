"""Typed exceptions for the gRPC status codes the server answers with."""

from __future__ import annotations

import grpc


class MunetError(Exception):
    """A call to the server failed; `code` is the gRPC status code and `details` the server's message."""

    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(self, details: str, code: grpc.StatusCode | None = None) -> None:
        super().__init__(details)
        self.details = details
        if code is not None:
            self.code = code

    def __str__(self) -> str:
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
    )
}


def from_rpc_error(error: grpc.RpcError) -> MunetError:
    """Turns a grpc.RpcError (sync or aio) into the matching MunetError subclass."""
    code = error.code() if callable(getattr(error, "code", None)) else grpc.StatusCode.UNKNOWN
    details = error.details() if callable(getattr(error, "details", None)) else str(error)
    return _BY_CODE.get(code, MunetError)(details or "", code)
