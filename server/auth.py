"""Who may call what: bearer tokens with roles, read from a tokens file that holds a hash of each token, never the
token itself.

The roles:
- `predict`: predictions (native Predict, KServe v2 ModelInfer and ModelStreamInfer);
- `manage`: registering and deleting tasks, rolling back, loading and unloading;
- `evolver`: the root, components, datasets, publishing and status (the Evolution service);
- `admin`: everything.
Reading metadata (tasks, versions, serving info, KServe v2 metadata, configuration, statistics, the index) needs a
token of any role. Health checks (gRPC health, KServe v2 ServerLive and ServerReady) stay open; reflection needs a
token of any role. A call the table does not name needs `admin`.

A client sends `authorization: Bearer <token>` (gRPC metadata, or the HTTP header). A missing or unknown token is
UNAUTHENTICATED, a token without the role PERMISSION_DENIED; neither message echoes the token. The presented token's
hash is compared with every entry's in constant time. `reload` (the server calls it on SIGHUP) rereads the file.
"""

from __future__ import annotations

import hmac
import logging
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import grpc

from munet_serve.errors import PermissionDeniedError, UnauthenticatedError
from munet_serve.tokens import ADMIN, EVOLVER, MANAGE, PREDICT, TokenEntry, TokensFile, hash_token

logger = logging.getLogger(__name__)

OPEN, ANY = "open", "any"  # no token needed; a token of any role

_NATIVE = "munet_serve.v1"
_KSERVE = "inference.GRPCInferenceService"
GRPC_METHODS: dict[str, str] = {
    **{f"/grpc.health.v1.Health/{m}": OPEN for m in ("Check", "Watch")},
    **{f"/{_KSERVE}/{m}": OPEN for m in ("ServerLive", "ServerReady")},
    f"/{_NATIVE}.Inference/Predict": PREDICT,
    **{f"/{_KSERVE}/{m}": PREDICT for m in ("ModelInfer", "ModelStreamInfer")},
    f"/{_NATIVE}.Inference/GetServingInfo": ANY,
    **{f"/{_NATIVE}.Tasks/{m}": ANY for m in ("ListTasks", "GetTask", "WatchTasks")},
    f"/{_NATIVE}.Versions/ListVersions": ANY,
    **{f"/{_KSERVE}/{m}": ANY for m in ("ModelReady", "ServerMetadata", "ModelMetadata", "ModelConfig",
                                        "ModelStatistics", "RepositoryIndex")},
    **{f"/grpc.reflection.v1alpha.ServerReflection/{m}": ANY for m in ("ServerReflectionInfo",)},
    **{f"/{_NATIVE}.Tasks/{m}": MANAGE for m in ("RegisterTask", "DeleteTask")},
    f"/{_NATIVE}.Versions/Rollback": MANAGE,
    **{f"/{_KSERVE}/{m}": MANAGE for m in ("RepositoryModelLoad", "RepositoryModelUnload")},
    **{f"/{_NATIVE}.Evolution/{m}": EVOLVER for m in ("GetRoot", "SetRoot", "UploadComponents", "ListComponents",
                                                      "GetComponent", "GetDataset", "PublishPath", "ReportStatus")},
}


class Authenticator:
    """Checks a call's bearer token against the tokens file (None: auth off, every call allowed)."""

    def __init__(self, path: Path | None) -> None:
        self._file = TokensFile(path) if path is not None else None
        self._entries: list[TokenEntry] = []
        self._lock = threading.Lock()
        self.reload()

    @property
    def enabled(self) -> bool:
        return self._file is not None

    def reload(self) -> None:
        """Rereads the tokens file; a file that cannot be read keeps the tokens read before (and is logged)."""
        if self._file is None:
            return
        try:
            entries = self._file.read()
        except (OSError, ValueError) as e:
            if self._entries:
                logger.error("tokens file not reloaded, the previous tokens stay: %s", e)
                return
            raise
        with self._lock:
            self._entries = entries
        logger.info("tokens: %d read from %s", len(entries), self._file.path)

    def check(self, required: str, authorization: str | None, what: str) -> str | None:
        """Raises UNAUTHENTICATED or PERMISSION_DENIED unless the header's token allows `required` (a role, ANY or
        OPEN); returns the token's name (None when auth is off or the call is open)."""
        if self._file is None or required == OPEN:
            return None
        if not authorization:
            raise UnauthenticatedError(f"{what} needs a token: send 'authorization: Bearer <token>'")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise UnauthenticatedError(f"{what}: the authorization must be 'Bearer <token>'")
        presented = hash_token(token.strip())
        found: TokenEntry | None = None
        with self._lock:
            for entry in self._entries:  # every entry compared, in constant time each
                if hmac.compare_digest(presented, entry.sha256):
                    found = entry
        if found is None:
            raise UnauthenticatedError(f"{what}: the token is not valid (unknown or revoked)")
        if required == ANY or ADMIN in found.roles or required in found.roles:
            return found.name
        raise PermissionDeniedError(f"{what} needs the role {required!r}; token {found.name!r} has "
                                    f"{', '.join(found.roles)}")


def grpc_role(method: str) -> str:
    """The role a gRPC method (its full path) needs."""
    return GRPC_METHODS.get(method, ADMIN)


def http_role(method: str, path: str) -> str:
    """The role a KServe v2 HTTP request needs."""
    if path.startswith("/v2/health/"):
        return OPEN
    if method == "POST" and path.endswith("/infer"):
        return PREDICT
    if method == "POST" and path.startswith("/v2/repository/models/"):
        return MANAGE
    if path.startswith(("/v2/systemsharedmemory", "/v2/cudasharedmemory", "/v2/trace", "/v2/logging")):
        return ADMIN
    return ANY


class AuthInterceptor(grpc.ServerInterceptor):
    """Checks each call's token before its handler runs; a refused call's handler raises the error, which the
    ErrorMappingInterceptor (placed before this one) sends as its status."""

    def __init__(self, authenticator: Authenticator) -> None:
        self.authenticator = authenticator

    def intercept_service(self, continuation, handler_call_details):  # noqa: ANN001, ANN201
        handler = continuation(handler_call_details)
        if handler is None or not self.authenticator.enabled:
            return handler
        method = handler_call_details.method
        metadata: Mapping[str, str] = {k: v for k, v in handler_call_details.invocation_metadata or ()
                                       if isinstance(v, str)}
        try:
            self.authenticator.check(grpc_role(method), metadata.get("authorization"), method.rsplit("/", 1)[-1])
            return handler
        except (UnauthenticatedError, PermissionDeniedError) as error:
            return _refusing(handler, error)


def _refusing(handler: grpc.RpcMethodHandler, error: Exception) -> grpc.RpcMethodHandler:
    def refuse(request: Any, context: grpc.ServicerContext) -> Any:
        raise error

    kwargs = dict(request_deserializer=handler.request_deserializer, response_serializer=handler.response_serializer)
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(refuse, **kwargs)
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(refuse, **kwargs)

    def refuse_stream(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        raise error
        yield  # a generator, as a streaming handler is

    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(refuse_stream, **kwargs)
    return grpc.stream_stream_rpc_method_handler(refuse_stream, **kwargs)
