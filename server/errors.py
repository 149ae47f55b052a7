"""Domain errors and the one place that maps them to gRPC status codes."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import grpc

logger = logging.getLogger(__name__)


class ServeError(Exception):
    """Base of the errors a client should see; the message says what was wrong."""

    code = grpc.StatusCode.INTERNAL


class NotFound(ServeError):
    code = grpc.StatusCode.NOT_FOUND


class InvalidArgument(ServeError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class AlreadyExists(ServeError):
    code = grpc.StatusCode.ALREADY_EXISTS


class FailedPrecondition(ServeError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class ResourceExhausted(ServeError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class Unavailable(ServeError):
    code = grpc.StatusCode.UNAVAILABLE


def task_not_found(name: str) -> NotFound:
    return NotFound(f"task {name!r} not found")


def _abort(context: grpc.ServicerContext, error: BaseException) -> None:
    if isinstance(error, ServeError):
        context.abort(error.code, str(error))
    if isinstance(error, grpc.RpcError) and not context.is_active():  # the client cancelled while it streamed
        logger.info("a call was cancelled by its client while its requests streamed in")
        context.abort(grpc.StatusCode.CANCELLED, "cancelled by the client")
    logger.exception("unexpected error in %s", type(error).__name__, exc_info=error)
    context.abort(grpc.StatusCode.INTERNAL, f"internal error ({type(error).__name__}); details are in the server log")


def _unary(behavior: Callable[[Any, grpc.ServicerContext], Any]) -> Callable[[Any, grpc.ServicerContext], Any]:
    def handle(request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return behavior(request, context)
        except Exception as e:  # noqa: BLE001 - the mapping point; servicers never call context.abort themselves
            _abort(context, e)

    return handle


def _streaming(behavior: Callable[[Any, grpc.ServicerContext], Iterator[Any]]) -> Callable[..., Iterator[Any]]:
    def handle(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        try:
            yield from behavior(request, context)
        except Exception as e:  # noqa: BLE001 - the mapping point; servicers never call context.abort themselves
            _abort(context, e)

    return handle


class ErrorMappingInterceptor(grpc.ServerInterceptor):
    """Turns ServeError into its status code with its message, anything else into INTERNAL (logged)."""

    def intercept_service(self, continuation, handler_call_details):  # noqa: ANN001, ANN201
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        kwargs = dict(
            request_deserializer=handler.request_deserializer, response_serializer=handler.response_serializer
        )
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(_unary(handler.unary_unary), **kwargs)
        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(_unary(handler.stream_unary), **kwargs)
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(_streaming(handler.unary_stream), **kwargs)
        return grpc.stream_stream_rpc_method_handler(_streaming(handler.stream_stream), **kwargs)
