"""The server's side of the error mapping: a MunetError raised by the domain leaves as its status code with its
details; anything else is logged and leaves as INTERNAL."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import grpc

from munet_serve.errors import MunetError

logger = logging.getLogger(__name__)


def _abort(context: grpc.ServicerContext, error: BaseException) -> None:
    if isinstance(error, MunetError):
        context.abort(error.code, error.details)
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
    """Turns a MunetError into its status code with its message, anything else into INTERNAL (logged)."""

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
