"""The server's side of the error mapping: a MunetError raised by the domain leaves as its status code with its
details; anything else is logged and leaves as INTERNAL. A request message that cannot be parsed is the client's
error: it leaves as INVALID_ARGUMENT (gRPC itself would answer INTERNAL "Exception deserializing request!")."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import grpc

from munet_serve.errors import InvalidArgumentError, MunetError

logger = logging.getLogger(__name__)


class _Unparsable:
    """Stands for a request message whose bytes did not parse; the handler refuses it before the servicer runs."""

    __slots__ = ("details",)

    def __init__(self, details: str) -> None:
        self.details = details


def _tolerant(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    """The deserializer, returning an _Unparsable instead of raising (gRPC would log it and answer INTERNAL)."""
    if deserializer is None:
        return None

    def deserialize(data: bytes) -> Any:
        try:
            return deserializer(data)
        except Exception as e:  # noqa: BLE001 - DecodeError, or whatever a deserializer raises on bad bytes
            return _Unparsable(f"the request message cannot be parsed: {e}")

    return deserialize


def _parsed(request: Any) -> Any:
    if isinstance(request, _Unparsable):
        raise InvalidArgumentError(request.details)
    return request


def _parsed_stream(requests: Iterator[Any]) -> Iterator[Any]:
    for request in requests:
        yield _parsed(request)


def _checked(request: Any, streamed: bool) -> Any:
    """The request (or, for a client stream, the stream of them), each raising INVALID_ARGUMENT if unparsable."""
    return _parsed_stream(request) if streamed else _parsed(request)


def _abort(context: grpc.ServicerContext, error: BaseException) -> None:
    if isinstance(error, MunetError):
        context.abort(error.code, error.details)
    if isinstance(error, grpc.RpcError) and not context.is_active():  # the client cancelled while it streamed
        logger.info("a call was cancelled by its client while its requests streamed in")
        context.abort(grpc.StatusCode.CANCELLED, "cancelled by the client")
    logger.exception("unexpected error in %s", type(error).__name__, exc_info=error)
    context.abort(grpc.StatusCode.INTERNAL, f"internal error ({type(error).__name__}); details are in the server log")


def _unary(behavior: Callable[[Any, grpc.ServicerContext], Any],
           streamed: bool = False) -> Callable[[Any, grpc.ServicerContext], Any]:
    def handle(request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return behavior(_checked(request, streamed), context)
        except Exception as e:  # noqa: BLE001 - the mapping point; servicers never call context.abort themselves
            _abort(context, e)

    return handle


def _streaming(behavior: Callable[[Any, grpc.ServicerContext], Iterator[Any]],
               streamed: bool = False) -> Callable[..., Iterator[Any]]:
    def handle(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        try:
            yield from behavior(_checked(request, streamed), context)
        except Exception as e:  # noqa: BLE001 - the mapping point; servicers never call context.abort themselves
            _abort(context, e)

    return handle


class ErrorMappingInterceptor(grpc.ServerInterceptor):
    """Turns a MunetError into its status code with its message, an unparsable request message into
    INVALID_ARGUMENT, anything else into INTERNAL (logged)."""

    def intercept_service(self, continuation, handler_call_details):  # noqa: ANN001, ANN201
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        kwargs = dict(
            request_deserializer=_tolerant(handler.request_deserializer),
            response_serializer=handler.response_serializer,
        )
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(_unary(handler.unary_unary), **kwargs)
        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(_unary(handler.stream_unary, streamed=True), **kwargs)
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(_streaming(handler.unary_stream), **kwargs)
        return grpc.stream_stream_rpc_method_handler(_streaming(handler.stream_stream, streamed=True), **kwargs)
