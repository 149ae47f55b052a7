"""The client's side of the error mapping: a failed gRPC call becomes the munet_serve.errors class of its status.

The classes are munet_serve.errors' (the server raises the same ones); they are re-exported here for callers that
import them from the client package.
"""

from __future__ import annotations

import grpc

from munet_serve.errors import (
    AlreadyExistsError,
    DataLossError,
    DeadlineExceededError,
    FailedPreconditionError,
    InternalError,
    InvalidArgumentError,
    MunetError,
    NotFoundError,
    PermissionDeniedError,
    ResourceExhaustedError,
    UnauthenticatedError,
    UnavailableError,
    UnimplementedError,
    from_status,
)

__all__ = [
    "AlreadyExistsError",
    "DataLossError",
    "DeadlineExceededError",
    "FailedPreconditionError",
    "InternalError",
    "InvalidArgumentError",
    "MunetError",
    "NotFoundError",
    "PermissionDeniedError",
    "ResourceExhaustedError",
    "UnauthenticatedError",
    "UnavailableError",
    "UnimplementedError",
    "from_rpc_error",
]


def from_rpc_error(error: grpc.RpcError) -> MunetError:
    """Turns a grpc.RpcError (sync or aio) into the matching MunetError subclass."""
    code = error.code() if callable(getattr(error, "code", None)) else grpc.StatusCode.UNKNOWN
    details = error.details() if callable(getattr(error, "details", None)) else str(error)
    return from_status(code, details or "")
