"""The native gRPC servicers: each call decodes its messages (codec.py, streams.py), calls one part of the domain
(service.py) and encodes what it answers. Errors are mapped to statuses by ErrorMappingInterceptor (errors.py)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import grpc

from munet_serve.errors import MunetError
from munet_serve.proto.v1 import (
    evolution_pb2,
    evolution_pb2_grpc,
    inference_pb2,
    inference_pb2_grpc,
    tasks_pb2,
    tasks_pb2_grpc,
)

from . import codec, streams
from .service import ServeCore

FILES = (inference_pb2.DESCRIPTOR, tasks_pb2.DESCRIPTOR, evolution_pb2.DESCRIPTOR)  # for reflection
SERVICE_NAMES = (
    inference_pb2.DESCRIPTOR.services_by_name["Inference"].full_name,
    tasks_pb2.DESCRIPTOR.services_by_name["Tasks"].full_name,
    tasks_pb2.DESCRIPTOR.services_by_name["Versions"].full_name,
    evolution_pb2.DESCRIPTOR.services_by_name["Evolution"].full_name,
)


def add_servicers(core: ServeCore, server: grpc.Server) -> tuple[str, ...]:
    """Adds the native services over `core` to the server; returns their full names."""
    inference_pb2_grpc.add_InferenceServicer_to_server(InferenceServicer(core), server)
    tasks_pb2_grpc.add_TasksServicer_to_server(TasksServicer(core), server)
    tasks_pb2_grpc.add_VersionsServicer_to_server(VersionsServicer(core), server)
    evolution_pb2_grpc.add_EvolutionServicer_to_server(EvolutionServicer(core), server)
    return SERVICE_NAMES


class InferenceServicer(inference_pb2_grpc.InferenceServicer):
    def __init__(self, core: ServeCore) -> None:
        self.predictor = core.predictor
        self.live = core.live
        self.metrics = core.metrics
        self.max_images = core.config.max_images_per_request

    def Predict(self, request: inference_pb2.PredictRequest, context: grpc.ServicerContext):  # noqa: N802
        started = time.perf_counter()
        metrics = self.metrics
        try:
            inputs = codec.predict_input(request, self.max_images)
            prediction = self.predictor.predict(request.task, inputs, request.version or None)
        except Exception as e:
            code = e.code if isinstance(e, MunetError) else grpc.StatusCode.INTERNAL
            metrics.requests.labels(request.task, code.name).inc()
            raise
        metrics.requests.labels(request.task, "OK").inc()
        metrics.images.labels(request.task).inc(len(inputs))
        metrics.latency.labels(request.task).observe(time.perf_counter() - started)
        return codec.predict_response(prediction, request.top_k, request.include_logits)

    def GetServingInfo(self, request, context):  # noqa: N802, ANN001
        return codec.serving_info_pb(self.live.serving_info())


class TasksServicer(tasks_pb2_grpc.TasksServicer):
    def __init__(self, core: ServeCore) -> None:
        self.tasks = core.tasks
        self.events = core.events

    def RegisterTask(self, request_iterator, context):  # noqa: N802, ANN001
        spec, examples = streams.task_registration(iter(request_iterator))
        return codec.task_pb(self.tasks.register(spec, examples))

    def ListTasks(self, request, context):  # noqa: N802, ANN001
        listing = self.tasks.listing()
        return tasks_pb2.ListTasksResponse(
            tasks=[codec.task_pb(v) for v in listing.views], system=codec.system_pb(listing.params)
        )

    def GetTask(self, request, context):  # noqa: N802, ANN001
        return codec.task_pb(self.tasks.view(request.name))

    def DeleteTask(self, request, context):  # noqa: N802, ANN001
        self.tasks.delete(request.name)
        return tasks_pb2.DeleteTaskResponse()

    def WatchTasks(self, request, context):  # noqa: N802, ANN001
        if request.task:
            self.tasks.view(request.task)  # NOT_FOUND for an unknown task
        subscription = self.events.subscribe(request.task)
        context.send_initial_metadata(())  # tells the client it is subscribed: later events reach it
        alive = threading.Event()
        alive.set()
        context.add_callback(alive.clear)
        if request.send_initial:
            for event in self.tasks.snapshot(request.task):
                yield codec.event_pb(event)
        for event in subscription.events(alive):
            yield codec.event_pb(event)
            if event.type == "deleted" and request.task:
                return


class VersionsServicer(tasks_pb2_grpc.VersionsServicer):
    def __init__(self, core: ServeCore) -> None:
        self.versions = core.versions

    def ListVersions(self, request, context):  # noqa: N802, ANN001
        task, versions = self.versions.history(request.task)
        return tasks_pb2.ListVersionsResponse(
            versions=[codec.version_pb(v, v.version == task.current_version) for v in versions]
        )

    def Rollback(self, request, context):  # noqa: N802, ANN001
        return codec.task_pb(self.versions.rollback(request.task, request.version))


class EvolutionServicer(evolution_pb2_grpc.EvolutionServicer):
    def __init__(self, core: ServeCore) -> None:
        self.components = core.components
        self.versions = core.versions
        self.tasks = core.tasks
        self.max_upload_bytes = core.config.max_upload_bytes

    def GetRoot(self, request, context):  # noqa: N802, ANN001
        return codec.root_pb(self.components.root())

    def SetRoot(self, request, context):  # noqa: N802, ANN001
        return codec.root_pb(self.components.set_root(codec.root_record(request)))

    def UploadComponents(self, request_iterator, context):  # noqa: N802, ANN001
        done = self.components.store(streams.component_uploads(iter(request_iterator), self.max_upload_bytes))
        return evolution_pb2.UploadComponentsResponse(stored=done.stored, existing=done.existing)

    def ListComponents(self, request, context):  # noqa: N802, ANN001
        records = self.components.records(list(request.ids))
        return evolution_pb2.ListComponentsResponse(components=[codec.component_pb(c) for c in records])

    def GetComponent(self, request, context) -> Iterator[evolution_pb2.ComponentPart]:  # noqa: N802, ANN001
        component = self.components.files(request.id)
        yield evolution_pb2.ComponentPart(info=codec.component_pb(component.record))
        for block in streams.file_chunks(component.weights):
            yield evolution_pb2.ComponentPart(weights_chunk=block)
        if request.include_onnx:
            for block in streams.file_chunks(component.onnx):
                yield evolution_pb2.ComponentPart(onnx_chunk=block)

    def GetDataset(self, request, context) -> Iterator[evolution_pb2.DatasetPart]:  # noqa: N802, ANN001
        dataset = self.tasks.dataset(request.task)
        yield evolution_pb2.DatasetPart(info=codec.dataset_pb(dataset.record))
        for block in streams.file_chunks(dataset.path):
            yield evolution_pb2.DatasetPart(chunk=block)

    def PublishPath(self, request_iterator, context):  # noqa: N802, ANN001
        header, components = streams.path_publication(iter(request_iterator), self.max_upload_bytes)
        return codec.version_pb(self.versions.publish(header, components), current=True)

    def ReportStatus(self, request, context):  # noqa: N802, ANN001
        self.tasks.report_status(request.task, codec.status_values(request.status))
        return evolution_pb2.ReportStatusResponse()
