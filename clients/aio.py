"""The asyncio Python SDK: `AsyncClient`, the calls of clients/calls.py as coroutines over a grpc.aio channel."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

import grpc

from . import calls
from .errors import from_rpc_error
from .steps import Call, Session, Sleep, Step, Steps, Stream, Watch
from .streams import RequestStream, failure
from .transport import (
    DEFAULT_TARGET,
    Transport,
    as_method,
    open_channel,
    step_result,
    watch_item,
)

__all__ = ["AsyncClient", "AsyncTransport"]

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")
A = TypeVar("A", bound="AsyncTransport")


class AsyncTransport(Transport):
    """Runs calls' steps on a grpc.aio channel; a failed RPC raises its munet_serve.errors class in the call."""

    def __init__(self, target: str = DEFAULT_TARGET, *, timeout: float | None = None, token: str | None = None,
                 tls_ca: str | Path | None = None, tls_cert: str | Path | None = None,
                 tls_key: str | Path | None = None) -> None:
        """`token`: the bearer token every call carries (default: $MUNET_SERVE_TOKEN, if set). `tls_ca`: connect
        with TLS, trusting this CA file (default: $MUNET_SERVE_TLS_CA, if set); `tls_cert` and `tls_key`: the
        client certificate a server with mutual TLS asks for."""
        super().__init__(open_channel(grpc.aio, target, tls_ca, tls_cert, tls_key), target, timeout, token)

    async def close(self) -> None:
        await self._channel.close()

    async def __aenter__(self: A) -> A:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _run(self, steps: Steps[R]) -> R:
        try:
            step = next(steps)
            while True:
                try:
                    result = await self._take(step)
                except BaseException as error:  # raised in the call, which may handle it
                    step = steps.throw(error)
                else:
                    step = steps.send(result)
        except StopIteration as done:
            return done.value

    async def _take(self, step: Step) -> Any:
        if isinstance(step, Call):
            stream = RequestStream(step.request) if isinstance(step.request, Iterator) else None
            try:
                return await self._method(step.stub, step.method)(
                    step.request if stream is None else stream, timeout=self._deadline(step.timeout)
                )
            except grpc.RpcError as e:
                raise failure(e, stream) from e
            except asyncio.CancelledError:  # grpc.aio cancels the call when building a request raises
                if stream is not None and stream.error is not None:
                    raise stream.error from None
                raise
        if isinstance(step, Stream):
            call = self._method(step.stub, step.method)(step.request, timeout=self._deadline(step.timeout))
            try:
                async for message in call:
                    if step.receive(message):
                        break
            except grpc.RpcError as e:
                raise from_rpc_error(e) from e
            finally:
                call.cancel()
            return None
        if isinstance(step, Sleep):
            await asyncio.sleep(step.seconds)
            return None
        raise TypeError(f"not a step: {step!r}")

    async def _watch(self, watch: Watch[T]) -> AsyncGenerator[T, None]:
        call = self._method(watch.stub, watch.method)(watch.request)
        try:
            async for message in call:
                yield watch.parse(message)
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.CANCELLED:
                raise from_rpc_error(e) from e
        finally:
            call.cancel()


def coroutine(
    call: Callable[Concatenate[Session, P], Steps[R]],
) -> Callable[Concatenate[AsyncTransport, P], Coroutine[Any, Any, R]]:
    """The coroutine method running `call` to its result."""

    async def method(self: AsyncTransport, /, *args: P.args, **kwargs: P.kwargs) -> R:
        return await self._run(call(self, *args, **kwargs))

    return as_method(method, call, step_result)


def async_watch(
    call: Callable[Concatenate[Session, P], Watch[T]],
) -> Callable[Concatenate[AsyncTransport, P], AsyncIterator[T]]:
    """The async generator method iterating `call`'s watch."""

    async def method(self: AsyncTransport, /, *args: P.args, **kwargs: P.kwargs) -> AsyncIterator[T]:
        async with contextlib.aclosing(self._watch(call(self, *args, **kwargs))) as items:  # closed: call cancelled
            async for item in items:
                yield item

    return as_method(method, call, lambda watch_type: AsyncIterator[watch_item(watch_type)])  # type: ignore[misc]


class AsyncClient(AsyncTransport):
    """asyncio twin of `Client`, with the same calls as coroutines; use `async with AsyncClient(target) as client:`.

    `watch_tasks` is an async iterator (`async for event in client.watch_tasks(...)`).
    """

    wait_ready = coroutine(calls.wait_ready)
    predict = coroutine(calls.predict)
    predict_batch = coroutine(calls.predict_batch)
    serving_info = coroutine(calls.serving_info)
    register_task = coroutine(calls.register_task)
    register = coroutine(calls.register)
    list_tasks = coroutine(calls.list_tasks)
    system_stats = coroutine(calls.system_stats)
    list_tasks_with_stats = coroutine(calls.list_tasks_with_stats)
    get_task = coroutine(calls.get_task)
    delete_task = coroutine(calls.delete_task)
    watch_tasks = async_watch(calls.watch_tasks)
    wait_for_version = coroutine(calls.wait_for_version)
    list_versions = coroutine(calls.list_versions)
    rollback = coroutine(calls.rollback)
    get_root = coroutine(calls.get_root)
    set_root = coroutine(calls.set_root)
    upload_components = coroutine(calls.upload_components)
    list_components = coroutine(calls.list_components)
    get_component = coroutine(calls.get_component)
    download_dataset = coroutine(calls.download_dataset)
    publish_path = coroutine(calls.publish_path)
    report_status = coroutine(calls.report_status)
