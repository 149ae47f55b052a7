"""The KServe v2 HTTP/REST endpoint (`--http-port`, conventionally 8000): the same calls as the gRPC service over
HTTP, with JSON bodies and the binary tensor data extension, plus Prometheus metrics at /metrics.

Starlette routes the requests and uvicorn serves them, in a thread of the server process: both are small, widely
used and maintained ASGI parts, Starlette reads a raw body as easily as JSON (the binary extension needs both), and
prometheus-client mounts on it as an ASGI app. The calls themselves run in Starlette's thread pool, since a
prediction waits on the batcher.

The binary tensor data extension: a request whose JSON header is followed by binary data says the header's length
in `Inference-Header-Content-Length`; each input with `"parameters": {"binary_data_size": n}` takes the next n
bytes. An output asked for with `"binary_data": true` (or, for those that do not say, a request with
`"binary_data_output": true`) is answered the same way.
"""

from __future__ import annotations

import json
import logging
import socket
import ssl
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import uvicorn
from prometheus_client import make_asgi_app
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from munet_serve.errors import InvalidArgumentError, MunetError, UnimplementedError

from ..auth import Authenticator, http_role
from ..config import ServerConfig
from ..metrics import ServerMetrics
from . import tensors
from .models import InferRequest, InferResponse, InputTensor, KServeModels, RequestedOutput

logger = logging.getLogger(__name__)

HEADER_LENGTH = "Inference-Header-Content-Length"
HTTP_STATUS = {  # a MunetError's gRPC code as an HTTP status
    "NOT_FOUND": 404, "INVALID_ARGUMENT": 400, "UNAVAILABLE": 503, "UNIMPLEMENTED": 501, "ALREADY_EXISTS": 409,
    "FAILED_PRECONDITION": 400, "RESOURCE_EXHAUSTED": 400, "DEADLINE_EXCEEDED": 504, "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403,
}

Handler = Callable[[Request], Awaitable[Response]]


def error_response(error: MunetError) -> JSONResponse:
    return JSONResponse({"error": error.details}, status_code=HTTP_STATUS.get(error.code.name, 500))


def _mapped(handler: Handler) -> Handler:
    """The one place this endpoint maps errors: a MunetError to its status with {"error": message}, anything else
    to 500 (logged)."""

    async def handle(request: Request) -> Response:
        try:
            return await handler(request)
        except MunetError as e:
            return error_response(e)
        except Exception as e:  # noqa: BLE001 - the mapping point
            logger.exception("unexpected error in %s %s", request.method, request.url.path)
            return JSONResponse({"error": f"internal error ({type(e).__name__}); details are in the server log"},
                                status_code=500)

    return handle


def _ok(flag: bool) -> Response:
    return Response(status_code=200 if flag else 503)


def _version(request: Request) -> str:
    return request.path_params.get("version", "")


async def _json(request: Request) -> dict[str, Any]:
    body = await request.body()
    if not body:
        return {}
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise InvalidArgumentError(f"the request body is not JSON: {e}") from e
    except RecursionError as e:
        raise InvalidArgumentError("the request body nests too deeply to be read") from e
    if not isinstance(value, dict):
        raise InvalidArgumentError("the request body must be a JSON object")
    return value


def build_app(models: KServeModels, metrics: ServerMetrics, auth: Authenticator | None = None) -> Starlette:
    """The ASGI app of the endpoint; with `auth`, every request's bearer token is checked (server/auth.py)."""

    async def live(request: Request) -> Response:
        return _ok(True)

    async def ready(request: Request) -> Response:
        return _ok(models.server_ready())

    async def server_metadata(request: Request) -> Response:
        return JSONResponse(models.server_metadata())

    async def model_metadata(request: Request) -> Response:
        return JSONResponse(await run_in_threadpool(models.model_metadata, request.path_params["model"],
                                                    _version(request)))

    async def model_ready(request: Request) -> Response:
        return _ok(await run_in_threadpool(models.model_ready, request.path_params["model"], _version(request)))

    async def model_config(request: Request) -> Response:
        return JSONResponse(await run_in_threadpool(models.model_config, request.path_params["model"],
                                                    _version(request)))

    async def statistics(request: Request) -> Response:
        return JSONResponse(await run_in_threadpool(models.statistics, request.path_params.get("model", ""),
                                                    _version(request)))

    async def index(request: Request) -> Response:
        body = await _json(request)
        return JSONResponse(await run_in_threadpool(models.index, bool(body.get("ready", False))))

    async def load(request: Request) -> Response:
        body = await _json(request)
        if parameters := body.get("parameters"):
            got = sorted(parameters) if isinstance(parameters, dict) else parameters  # any JSON value may come
            raise InvalidArgumentError(f"repository load takes no parameters here (got {tensors.brief(got)}): a "
                                       f"task's configuration and files come from its published versions")
        await run_in_threadpool(models.load, request.path_params["model"])
        return Response(status_code=200)

    async def unload(request: Request) -> Response:
        await run_in_threadpool(models.unload, request.path_params["model"])
        return Response(status_code=200)

    async def infer(request: Request) -> Response:
        body = await request.body()
        decoded = infer_request(request.path_params["model"], _version(request), body,
                                request.headers.get(HEADER_LENGTH))
        return infer_response(await run_in_threadpool(models.infer, decoded.request), decoded.binary_output)

    async def not_served(request: Request) -> Response:
        raise UnimplementedError(f"{request.url.path}: munet-serve does not serve shared memory, traces or log "
                                 f"settings; tensors travel in the inference requests themselves")

    model = "/v2/models/{model}"
    versioned = "/v2/models/{model}/versions/{version}"
    routes = [
        Route("/v2/health/live", _mapped(live)),
        Route("/v2/health/ready", _mapped(ready)),
        Route("/v2", _mapped(server_metadata)),
        Route("/v2/models/stats", _mapped(statistics)),
        Route("/v2/repository/index", _mapped(index), methods=["POST"]),
        Route("/v2/repository/models/{model}/load", _mapped(load), methods=["POST"]),
        Route("/v2/repository/models/{model}/unload", _mapped(unload), methods=["POST"]),
        Route("/v2/systemsharedmemory{rest:path}", _mapped(not_served), methods=["GET", "POST"]),
        Route("/v2/cudasharedmemory{rest:path}", _mapped(not_served), methods=["GET", "POST"]),
        Route("/v2/trace/setting", _mapped(not_served), methods=["GET", "POST"]),
        Route("/v2/models/{model}/trace/setting", _mapped(not_served), methods=["GET", "POST"]),
        Route("/v2/logging", _mapped(not_served), methods=["GET", "POST"]),
        Mount("/metrics", app=make_asgi_app(registry=metrics.registry)),
    ]
    for prefix in (versioned, model):
        routes += [
            Route(prefix, _mapped(model_metadata)),
            Route(f"{prefix}/ready", _mapped(model_ready)),
            Route(f"{prefix}/config", _mapped(model_config)),
            Route(f"{prefix}/stats", _mapped(statistics)),
            Route(f"{prefix}/infer", _mapped(infer), methods=["POST"]),
        ]

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return JSONResponse({"error": f"{request.method} {request.url.path}: {exc.detail}"},
                            status_code=exc.status_code)

    middleware = []
    if auth is not None and auth.enabled:
        async def authenticate(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
            try:
                auth.check(http_role(request.method, request.url.path), request.headers.get("authorization"),
                           f"{request.method} {request.url.path}")
            except MunetError as e:
                return error_response(e)
            return await call_next(request)

        middleware.append(Middleware(BaseHTTPMiddleware, dispatch=authenticate))
    return Starlette(routes=routes, exception_handlers={HTTPException: http_error}, middleware=middleware)


# --- infer bodies -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DecodedInfer:
    request: InferRequest
    binary_output: bool  # the request's default for outputs that do not say


def infer_request(model: str, version: str, body: bytes, header_length: str | None) -> DecodedInfer:
    """An infer body (JSON, or JSON followed by binary tensor data) as the records of models.py."""
    if header_length is not None:
        try:
            size = int(header_length)
        except ValueError as e:
            raise InvalidArgumentError(f"{HEADER_LENGTH} must be a byte count, got {header_length!r}") from e
        if not 0 <= size <= len(body):
            raise InvalidArgumentError(f"{HEADER_LENGTH} is {size}, but the body has {len(body)} bytes")
        header, binary = body[:size], body[size:]
    else:
        header, binary = body, b""
    try:
        document = json.loads(header)
    except (ValueError, UnicodeDecodeError) as e:
        raise InvalidArgumentError(f"the inference request's header is not JSON: {e}") from e
    except RecursionError as e:
        raise InvalidArgumentError("the inference request's header nests too deeply to be read") from e
    if not isinstance(document, dict):
        raise InvalidArgumentError("the inference request must be a JSON object")
    parameters = _object(document.get("parameters"), "parameters")
    inputs, offset = [], 0
    for i, tensor in enumerate(_list(document.get("inputs"), "inputs")):
        tensor = _object(tensor, f"inputs[{i}]")
        name = _text(tensor.get("name", ""), f"inputs[{i}] name")
        datatype = _text(tensor.get("datatype", ""), f"inputs[{i}] datatype")
        shape = _shape(tensor.get("shape"), name)
        span = _object(tensor.get("parameters"), f"input {name!r} parameters").get("binary_data_size")
        if span is not None:
            if not isinstance(span, int) or isinstance(span, bool) or span < 0 or offset + span > len(binary):
                raise InvalidArgumentError(f"input {name!r}: binary_data_size {tensors.brief(span)} does not fit the "
                                           f"{len(binary) - offset} binary bytes left in the body")
            data = tensors.from_raw(name, datatype, shape, binary[offset:offset + span])
            offset += span
        elif "data" in tensor:
            data = tensors.from_values(name, datatype, shape, _list(tensor["data"], f"input {name!r} data"))
        else:
            raise InvalidArgumentError(f"input {name!r} has neither data nor binary_data_size")
        inputs.append(InputTensor(name, datatype, shape, data))
    if offset != len(binary):
        raise InvalidArgumentError(f"{len(binary) - offset} binary bytes follow the inputs' data unread")
    outputs = []
    for i, output in enumerate(_list(document.get("outputs", []), "outputs")):
        output = _object(output, f"outputs[{i}]")
        options = _object(output.get("parameters"), f"outputs[{i}] parameters")
        count = options.get("classification", 0)
        if not isinstance(count, int) or isinstance(count, bool):
            raise InvalidArgumentError(f"output {tensors.brief(output.get('name'))}: classification must be an "
                                       f"integer class count, got {tensors.brief(count)}")
        binary_flag = options.get("binary_data")
        outputs.append(RequestedOutput(_text(output.get("name", ""), f"outputs[{i}] name"), count,
                                       None if binary_flag is None else bool(binary_flag)))
    request = InferRequest(model, version, _text(document.get("id", ""), "the request id"), inputs, outputs)
    return DecodedInfer(request, bool(parameters.get("binary_data_output", False)))


def infer_response(response: InferResponse, binary_default: bool) -> Response:
    header: dict[str, Any] = {"model_name": response.model, "model_version": response.version}
    if response.id:
        header["id"] = response.id
    outputs, chunks = [], []
    for output in response.outputs:
        entry: dict[str, Any] = {"name": output.name, "datatype": output.datatype, "shape": list(output.shape)}
        if binary_default if output.binary is None else output.binary:
            raw = tensors.to_raw(output.data)
            entry["parameters"] = {"binary_data_size": len(raw)}
            chunks.append(raw)
        elif isinstance(output.data, np.ndarray):
            entry["data"] = output.data.reshape(-1).tolist()
        else:
            entry["data"] = [e.decode("utf-8", errors="replace") for e in output.data]
        outputs.append(entry)
    header["outputs"] = outputs
    text = json.dumps(header, separators=(",", ":")).encode()
    if not chunks:
        return Response(text, media_type="application/json")
    return Response(b"".join([text, *chunks]), media_type="application/octet-stream",
                    headers={HEADER_LENGTH: str(len(text))})


def _object(value: Any, what: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidArgumentError(f"{what} must be a JSON object")
    return value


def _list(value: Any, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise InvalidArgumentError(f"{what} must be a JSON list")
    return value


def _shape(value: Any, name: str) -> tuple[int, ...]:
    if not isinstance(value, list) or not all(isinstance(d, int) and not isinstance(d, bool) for d in value):
        raise InvalidArgumentError(f"input {name!r}: shape must be a list of integers, got {tensors.brief(value)}")
    return tuple(value)


def _text(value: Any, what: str) -> str:
    """A name, datatype or id: a string, or a number's text; an object or a list is refused (the protocol wants a
    string, and its text could be as large and as deep as the JSON it came in)."""
    if isinstance(value, dict | list):
        raise InvalidArgumentError(f"{what} must be a string, got {tensors.brief(value)}")
    return str(value)


# --- serving ----------------------------------------------------------------------------------------------------------


@dataclass
class RestServer:
    """The endpoint running in a thread; `port` is the bound one (useful with port 0)."""

    server: uvicorn.Server
    thread: threading.Thread
    port: int

    def stop(self, grace: float = 5.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=grace + 5)


def start_rest(models: KServeModels, metrics: ServerMetrics, auth: Authenticator | None,
               server_config: ServerConfig) -> RestServer:
    """Binds the config's host and http_port (OSError if it cannot) and serves the endpoint there from a thread of
    its own, with TLS (and client certificates) as the config says."""
    host, port = server_config.host, server_config.http_port or 0
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(128)
    except OSError as e:
        sock.close()
        raise OSError(f"could not bind the HTTP endpoint to {host}:{port}: {e}") from e
    tls: dict[str, Any] = {}
    if server_config.tls:
        tls = {"ssl_certfile": str(server_config.tls_cert), "ssl_keyfile": str(server_config.tls_key)}
        if server_config.tls_client_ca is not None:
            tls |= {"ssl_ca_certs": str(server_config.tls_client_ca), "ssl_cert_reqs": ssl.CERT_REQUIRED}
    config = uvicorn.Config(build_app(models, metrics, auth), log_level="warning", access_log=False, lifespan="off",
                            timeout_graceful_shutdown=5, **tls)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="munet-http", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise OSError(f"the HTTP endpoint on {host}:{port} did not start")
        time.sleep(0.01)
    bound = sock.getsockname()[1]
    logger.info("KServe v2 HTTP/REST on %s:%d", host, bound)
    return RestServer(server, thread, bound)
