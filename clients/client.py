"""The synchronous Python SDK: `Client`, the calls of clients/calls.py run over a blocking gRPC channel."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar

import grpc

from . import calls
from .errors import from_rpc_error
from .steps import Call, Session, Sleep, Step, Steps, Stream, Watch
from .streams import RequestStream, failure
from .transport import (
    CHANNEL_OPTIONS,
    DEFAULT_TARGET,
    MAX_MESSAGE_BYTES,
    Transport,
    as_method,
    open_channel,
    step_result,
    watch_item,
)

__all__ = ["CHANNEL_OPTIONS", "DEFAULT_TARGET", "MAX_MESSAGE_BYTES", "Client", "SyncTransport", "TaskWatch"]

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")
S = TypeVar("S", bound="SyncTransport")


class TaskWatch(Generic[T]):
    """An iterator over a watch's events; `cancel()` ends it from any thread."""

    def __init__(self, call: grpc.Future, parse: Callable[[Any], T]) -> None:
        self._call = call
        self._parse = parse

    def __iter__(self) -> Iterator[T]:
        try:
            for message in self._call:  # type: ignore[attr-defined]
                yield self._parse(message)
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.CANCELLED:
                raise from_rpc_error(e) from e

    def cancel(self) -> None:
        self._call.cancel()


class SyncTransport(Transport):
    """Runs calls' steps on a blocking channel; a failed RPC raises its munet_serve.errors class in the call."""

    def __init__(self, target: str = DEFAULT_TARGET, *, timeout: float | None = None, token: str | None = None,
                 tls_ca: str | Path | None = None, tls_cert: str | Path | None = None,
                 tls_key: str | Path | None = None) -> None:
        """`token`: the bearer token every call carries (default: $MUNET_SERVE_TOKEN, if set). `tls_ca`: connect
        with TLS, trusting this CA file (default: $MUNET_SERVE_TLS_CA, if set); `tls_cert` and `tls_key`: the
        client certificate a server with mutual TLS asks for."""
        super().__init__(open_channel(grpc, target, tls_ca, tls_cert, tls_key), target, timeout, token)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self: S) -> S:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self, steps: Steps[R]) -> R:
        try:
            step = next(steps)
            while True:
                try:
                    result = self._take(step)
                except BaseException as error:  # raised in the call, which may handle it
                    step = steps.throw(error)
                else:
                    step = steps.send(result)
        except StopIteration as done:
            return done.value

    def _take(self, step: Step) -> Any:
        if isinstance(step, Call):
            stream = RequestStream(step.request) if isinstance(step.request, Iterator) else None
            try:
                return self._method(step.stub, step.method)(
                    step.request if stream is None else stream, timeout=self._deadline(step.timeout)
                )
            except grpc.RpcError as e:
                raise failure(e, stream) from e
        if isinstance(step, Stream):
            call = self._method(step.stub, step.method)(step.request, timeout=self._deadline(step.timeout))
            try:
                for message in call:
                    if step.receive(message):
                        break
            except grpc.RpcError as e:
                raise from_rpc_error(e) from e
            finally:
                call.cancel()
            return None
        if isinstance(step, Sleep):
            time.sleep(step.seconds)
            return None
        raise TypeError(f"not a step: {step!r}")

    def _watch(self, watch: Watch[T]) -> TaskWatch[T]:
        call = self._method(watch.stub, watch.method)(watch.request)
        call.initial_metadata()  # the server sends it after subscribing
        return TaskWatch(call, watch.parse)


def sync(call: Callable[Concatenate[Session, P], Steps[R]]) -> Callable[Concatenate[SyncTransport, P], R]:
    """The method running `call` to its result."""

    def method(self: SyncTransport, /, *args: P.args, **kwargs: P.kwargs) -> R:
        return self._run(call(self, *args, **kwargs))

    return as_method(method, call, step_result)


def sync_watch(
    call: Callable[Concatenate[Session, P], Watch[T]],
) -> Callable[Concatenate[SyncTransport, P], TaskWatch[T]]:
    """The method opening `call`'s watch as a TaskWatch."""

    def method(self: SyncTransport, /, *args: P.args, **kwargs: P.kwargs) -> TaskWatch[T]:
        return self._watch(call(self, *args, **kwargs))

    return as_method(method, call, lambda watch_type: TaskWatch[watch_item(watch_type)])  # type: ignore[misc]


class Client(SyncTransport):
    """Talks to a munet-serve server: predictions, tasks, versions, and the evolver's calls.

    `Client(target, timeout=...)`: `timeout` is every call's deadline in seconds (None: none). Every failed call
    raises a `munet_serve.clients.errors.MunetError` subclass carrying the server's message. `AsyncClient` has the
    same calls as coroutines (clients/calls.py describes each once).
    """

    wait_ready = sync(calls.wait_ready)
    predict = sync(calls.predict)
    predict_batch = sync(calls.predict_batch)
    serving_info = sync(calls.serving_info)
    register_task = sync(calls.register_task)
    register = sync(calls.register)
    list_tasks = sync(calls.list_tasks)
    system_stats = sync(calls.system_stats)
    list_tasks_with_stats = sync(calls.list_tasks_with_stats)
    get_task = sync(calls.get_task)
    delete_task = sync(calls.delete_task)
    watch_tasks = sync_watch(calls.watch_tasks)
    wait_for_version = sync(calls.wait_for_version)
    list_versions = sync(calls.list_versions)
    rollback = sync(calls.rollback)
    get_root = sync(calls.get_root)
    set_root = sync(calls.set_root)
    upload_components = sync(calls.upload_components)
    list_components = sync(calls.list_components)
    get_component = sync(calls.get_component)
    download_dataset = sync(calls.download_dataset)
    publish_path = sync(calls.publish_path)
    report_status = sync(calls.report_status)
