"""gRPC servicers: translate messages to ServeCore calls and back. Errors are mapped by ErrorMappingInterceptor."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import grpc

from munet_serve import __version__
from munet_serve.artifacts import CHUNK_BYTES
from munet_serve.errors import NotFoundError
from munet_serve.proto.v1 import (
    evolution_pb2,
    evolution_pb2_grpc,
    inference_pb2,
    inference_pb2_grpc,
    tasks_pb2,
    tasks_pb2_grpc,
)

from . import codec
from .events import TaskEvent
from .service import ServeCore


def _file_chunks(path, chunk_bytes: int = CHUNK_BYTES) -> Iterator[bytes]:  # noqa: ANN001
    with open(path, "rb") as f:
        while block := f.read(chunk_bytes):
            yield block


class InferenceServicer(inference_pb2_grpc.InferenceServicer):
    def __init__(self, core: ServeCore) -> None:
        self.core = core

    def Predict(self, request: inference_pb2.PredictRequest, context: grpc.ServicerContext):  # noqa: N802
        started = time.perf_counter()
        metrics = self.core.metrics
        try:
            inputs = codec.predict_input(request, self.core.config.max_images_per_request)
            route, logits = self.core.predict(request.task, inputs)
        except Exception as e:
            code = getattr(e, "code", grpc.StatusCode.INTERNAL)
            metrics.requests.labels(request.task, code.name).inc()
            raise
        metrics.requests.labels(request.task, "OK").inc()
        metrics.images.labels(request.task).inc(len(inputs))
        metrics.latency.labels(request.task).observe(time.perf_counter() - started)
        return inference_pb2.PredictResponse(
            task=request.task,
            version=route.version,
            results=codec.classifications(logits, route.labels, request.top_k, request.include_logits),
        )

    def GetServingInfo(self, request, context):  # noqa: N802, ANN001
        routes = self.core.router.all()
        users: dict[str, list[str]] = {}
        for route in routes:
            for sid in dict.fromkeys(route.step_ids):
                users.setdefault(sid, []).append(route.task)
        return inference_pb2.ServingInfo(
            providers=list(self.core.env.providers),
            sessions=[
                inference_pb2.LoadedComponent(id=s.id, kind=codec.kind_pb(s.kind), tasks=sorted(users.get(s.id, [])),
                                              component_ids=list(s.component_ids))
                for s in self.core.pool.loaded()
            ],
            routes=[
                inference_pb2.LiveRoute(task=r.task, version=r.version, component_ids=list(r.component_ids))
                for r in routes
            ],
            server_version=__version__,
        )


class TasksServicer(tasks_pb2_grpc.TasksServicer):
    def __init__(self, core: ServeCore) -> None:
        self.core = core

    def RegisterTask(self, request_iterator, context):  # noqa: N802, ANN001
        return codec.task_pb(self.core.register_task(iter(request_iterator)))

    def ListTasks(self, request, context):  # noqa: N802, ANN001
        listing = self.core.listing()
        return tasks_pb2.ListTasksResponse(
            tasks=[codec.task_pb(v) for v in listing.views], system=codec.system_pb(listing.params)
        )

    def GetTask(self, request, context):  # noqa: N802, ANN001
        return codec.task_pb(self.core.view(request.name))

    def DeleteTask(self, request, context):  # noqa: N802, ANN001
        self.core.delete_task(request.name)
        return tasks_pb2.DeleteTaskResponse()

    def WatchTasks(self, request, context):  # noqa: N802, ANN001
        if request.task:
            self.core.view(request.task)  # NOT_FOUND for an unknown task
        subscription = self.core.events.subscribe(request.task)
        context.send_initial_metadata(())  # tells the client it is subscribed: later events reach it
        alive = threading.Event()
        alive.set()
        context.add_callback(alive.clear)
        if request.send_initial:
            views = [self.core.view(request.task)] if request.task else self.core.views()
            for view in views:
                yield codec.event_pb(TaskEvent(type="snapshot", view=view, version=0, time=time.time()))
        for event in subscription.events(alive):
            yield codec.event_pb(event)
            if event.type == "deleted" and request.task:
                return


class VersionsServicer(tasks_pb2_grpc.VersionsServicer):
    def __init__(self, core: ServeCore) -> None:
        self.core = core

    def ListVersions(self, request, context):  # noqa: N802, ANN001
        task, versions = self.core.versions(request.task)
        return tasks_pb2.ListVersionsResponse(
            versions=[codec.version_pb(v, v.version == task.current_version) for v in versions]
        )

    def Rollback(self, request, context):  # noqa: N802, ANN001
        return codec.task_pb(self.core.rollback(request.task, request.version))


class EvolutionServicer(evolution_pb2_grpc.EvolutionServicer):
    def __init__(self, core: ServeCore) -> None:
        self.core = core

    def GetRoot(self, request, context):  # noqa: N802, ANN001
        root = self.core.registry.get_root()
        if root is None:
            raise NotFoundError("no root has been set yet (the evolver sets it when it first starts)")
        return codec.root_pb(root)

    def SetRoot(self, request, context):  # noqa: N802, ANN001
        return self.core.set_root(request)

    def UploadComponents(self, request_iterator, context):  # noqa: N802, ANN001
        stored, existing = self.core.store_components(iter(request_iterator))
        return evolution_pb2.UploadComponentsResponse(stored=stored, existing=existing)

    def ListComponents(self, request, context):  # noqa: N802, ANN001
        registry = self.core.registry
        records = [registry.get_component(i) for i in request.ids] if request.ids else registry.list_components()
        return evolution_pb2.ListComponentsResponse(components=[codec.component_pb(c) for c in records])

    def GetComponent(self, request, context):  # noqa: N802, ANN001
        registry = self.core.registry
        record = registry.get_component(request.id)
        yield evolution_pb2.ComponentPart(info=codec.component_pb(record))
        for block in _file_chunks(registry.weights_path(record.id)):
            yield evolution_pb2.ComponentPart(weights_chunk=block)
        if request.include_onnx:
            for block in _file_chunks(registry.onnx_path(record.id)):
                yield evolution_pb2.ComponentPart(onnx_chunk=block)

    def GetDataset(self, request, context):  # noqa: N802, ANN001
        record, path = self.core.dataset(request.task)
        yield evolution_pb2.DatasetPart(info=codec.dataset_pb(record))
        for block in _file_chunks(path):
            yield evolution_pb2.DatasetPart(chunk=block)

    def PublishPath(self, request_iterator, context):  # noqa: N802, ANN001
        record = self.core.publish(iter(request_iterator))
        return codec.version_pb(record, current=True)

    def ReportStatus(self, request, context):  # noqa: N802, ANN001
        self.core.report_status(request.task, request.status)
        return evolution_pb2.ReportStatusResponse()

