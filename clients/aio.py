"""The asyncio Python SDK: `AsyncClient`, the same calls as `Client` as coroutines."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator, Sequence

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc

from munet_serve.imaging import InputSpec
from munet_serve.proto.v1 import (
    evolution_pb2,
    evolution_pb2_grpc,
    inference_pb2,
    inference_pb2_grpc,
    tasks_pb2,
    tasks_pb2_grpc,
)

from . import convert
from .client import CHANNEL_OPTIONS, DEFAULT_TARGET
from .errors import NotFoundError, UnavailableError, from_rpc_error
from .streams import (
    ComponentAssembler,
    Progress,
    RequestStream,
    TaskUpload,
    component_parts,
    failure,
    publish_requests,
    register_requests,
)
from .types import (
    ComponentArtifact,
    ComponentInfo,
    EvolutionStatus,
    Metrics,
    PathComponent,
    PathRef,
    PathVersion,
    PredictResult,
    RootInfo,
    ServingInfo,
    SystemStats,
    TaskEvent,
    TaskInfo,
)


class AsyncClient:
    """asyncio twin of `Client`; use `async with AsyncClient(target) as client:`."""

    def __init__(self, target: str = DEFAULT_TARGET, *, timeout: float | None = None) -> None:
        self.target = target
        self.timeout = timeout
        self._channel = grpc.aio.insecure_channel(target, options=CHANNEL_OPTIONS)
        self._inference = inference_pb2_grpc.InferenceStub(self._channel)
        self._tasks = tasks_pb2_grpc.TasksStub(self._channel)
        self._versions = tasks_pb2_grpc.VersionsStub(self._channel)
        self._evolution = evolution_pb2_grpc.EvolutionStub(self._channel)
        self._health = health_pb2_grpc.HealthStub(self._channel)

    async def close(self) -> None:
        await self._channel.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _call(self, method, request):  # noqa: ANN001, ANN202
        stream = RequestStream(request) if isinstance(request, Iterator) else None
        try:
            return await method(stream or request, timeout=self.timeout)
        except grpc.RpcError as e:
            raise failure(e, stream) from e
        except asyncio.CancelledError:  # grpc.aio cancels the call when building a request raises
            if stream is not None and stream.error is not None:
                raise stream.error from None
            raise

    async def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                reply = await self._health.Check(health_pb2.HealthCheckRequest(service=""), timeout=1.0)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            if time.monotonic() > deadline:
                raise UnavailableError(f"server at {self.target} not ready after {timeout:.0f} s")
            await asyncio.sleep(0.1)

    async def predict(
        self, task: str, images: Sequence[convert.ImageInput], *, top_k: int = 5, include_logits: bool = False
    ) -> PredictResult:
        request = convert.predict_request(task, images, None, top_k, include_logits)
        return convert.predict_result_from_pb(await self._call(self._inference.Predict, request))

    async def predict_batch(
        self, task: str, batch: np.ndarray, *, top_k: int = 5, include_logits: bool = False
    ) -> PredictResult:
        request = convert.predict_request(task, None, batch, top_k, include_logits)
        return convert.predict_result_from_pb(await self._call(self._inference.Predict, request))

    async def serving_info(self) -> ServingInfo:
        reply = await self._call(self._inference.GetServingInfo, inference_pb2.GetServingInfoRequest())
        return convert.serving_info_from_pb(reply)

    async def register(self, upload: TaskUpload, progress: Progress | None = None) -> TaskInfo:
        reply = await self._call(self._tasks.RegisterTask, register_requests(upload, progress))
        return convert.task_from_pb(reply)

    async def list_tasks(self) -> list[TaskInfo]:
        return (await self.list_tasks_with_stats())[0]

    async def system_stats(self) -> SystemStats:
        """Parameters of the system: serving tasks, distinct parameters, parameters per task, root parameters."""
        return (await self.list_tasks_with_stats())[1]

    async def list_tasks_with_stats(self) -> tuple[list[TaskInfo], SystemStats]:
        """Every task and the system's parameter figures, from one ListTasks call (one server state)."""
        return convert.task_list_from_pb(await self._call(self._tasks.ListTasks, tasks_pb2.ListTasksRequest()))

    async def get_task(self, name: str) -> TaskInfo:
        return convert.task_from_pb(await self._call(self._tasks.GetTask, tasks_pb2.GetTaskRequest(name=name)))

    async def delete_task(self, name: str) -> None:
        await self._call(self._tasks.DeleteTask, tasks_pb2.DeleteTaskRequest(name=name))

    async def watch_tasks(self, task: str = "", send_initial: bool = False) -> AsyncIterator[TaskEvent]:
        call = self._tasks.WatchTasks(tasks_pb2.WatchTasksRequest(task=task, send_initial=send_initial))
        try:
            async for event in call:
                yield convert.event_from_pb(event)
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.CANCELLED:
                raise from_rpc_error(e) from e
        finally:
            call.cancel()

    async def list_versions(self, task: str) -> list[PathVersion]:
        reply = await self._call(self._versions.ListVersions, tasks_pb2.ListVersionsRequest(task=task))
        return [convert.path_version_from_pb(v) for v in reply.versions]

    async def rollback(self, task: str, version: int) -> TaskInfo:
        reply = await self._call(self._versions.Rollback, tasks_pb2.RollbackRequest(task=task, version=version))
        return convert.task_from_pb(reply)

    async def get_root(self) -> RootInfo | None:
        try:
            return convert.root_from_pb(await self._call(self._evolution.GetRoot, evolution_pb2.GetRootRequest()))
        except NotFoundError:
            return None

    async def set_root(self, root: RootInfo) -> RootInfo:
        return convert.root_from_pb(await self._call(self._evolution.SetRoot, convert.root_to_pb(root)))

    async def upload_components(self, artifacts: Sequence[ComponentArtifact]) -> tuple[list[str], list[str]]:
        reply = await self._call(self._evolution.UploadComponents, component_parts(artifacts))
        return list(reply.stored), list(reply.existing)

    async def list_components(self, ids: Sequence[str] = ()) -> list[ComponentInfo]:
        reply = await self._call(self._evolution.ListComponents, evolution_pb2.ListComponentsRequest(ids=list(ids)))
        return [convert.component_info_from_pb(c) for c in reply.components]

    async def get_component(self, id: str, include_onnx: bool = False) -> ComponentArtifact:
        assembler = ComponentAssembler()
        request = evolution_pb2.GetComponentRequest(id=id, include_onnx=include_onnx)
        try:
            async for part in self._evolution.GetComponent(request, timeout=self.timeout):
                assembler.add(part)
        except grpc.RpcError as e:
            raise from_rpc_error(e) from e
        return assembler.result()

    async def publish_path(
        self,
        task: str,
        components: Sequence[PathComponent],
        *,
        hparams: dict,
        metrics: Metrics,
        input: InputSpec,
        parent: PathRef | None,
        new_components: Sequence[ComponentArtifact] = (),
    ) -> PathVersion:
        requests = publish_requests(task, components, hparams, metrics, input, parent, new_components)
        return convert.path_version_from_pb(await self._call(self._evolution.PublishPath, requests))

    async def report_status(self, task: str, status: EvolutionStatus) -> None:
        request = evolution_pb2.ReportStatusRequest(task=task, status=convert.status_to_pb(status))
        await self._call(self._evolution.ReportStatus, request)
