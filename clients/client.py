"""The synchronous Python SDK: one `Client` per server, owning its gRPC channel."""

from __future__ import annotations

import os
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc

from munet_serve.artifacts import sha256_file
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
from .errors import MunetError, NotFoundError, UnavailableError, from_rpc_error
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
    DatasetInfo,
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

DEFAULT_TARGET = os.environ.get("MUNET_SERVE_SERVER", "127.0.0.1:50051")
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
]


class TaskWatch:
    """An iterator over task events; `cancel()` ends it from any thread."""

    def __init__(self, call: grpc.Future) -> None:
        self._call = call

    def __iter__(self) -> Iterator[TaskEvent]:
        try:
            for event in self._call:  # type: ignore[attr-defined]
                yield convert.event_from_pb(event)
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.CANCELLED:
                raise from_rpc_error(e) from e

    def cancel(self) -> None:
        self._call.cancel()


class Client:
    """Talks to a munet-serve server: predictions, tasks, versions, and the evolver's calls.

    Every failed call raises a `munet_serve.clients.errors.MunetError` subclass carrying the server's message.
    """

    def __init__(self, target: str = DEFAULT_TARGET, *, timeout: float | None = None) -> None:
        self.target = target
        self.timeout = timeout
        self._channel = grpc.insecure_channel(target, options=CHANNEL_OPTIONS)
        self._inference = inference_pb2_grpc.InferenceStub(self._channel)
        self._tasks = tasks_pb2_grpc.TasksStub(self._channel)
        self._versions = tasks_pb2_grpc.VersionsStub(self._channel)
        self._evolution = evolution_pb2_grpc.EvolutionStub(self._channel)
        self._health = health_pb2_grpc.HealthStub(self._channel)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method, request, timeout: float | None = None):  # noqa: ANN001, ANN202
        stream = RequestStream(request) if isinstance(request, Iterator) else None
        try:
            return method(stream or request, timeout=timeout if timeout is not None else self.timeout)
        except grpc.RpcError as e:
            raise failure(e, stream) from e

    # --- health ----------------------------------------------------------------------------------------------------

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Blocks until the server reports SERVING on the standard health service."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                reply = self._health.Check(health_pb2.HealthCheckRequest(service=""), timeout=1.0)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            if time.monotonic() > deadline:
                raise UnavailableError(f"server at {self.target} not ready after {timeout:.0f} s")
            time.sleep(0.1)

    # --- inference -------------------------------------------------------------------------------------------------

    def predict(
        self,
        task: str,
        images: Sequence[convert.ImageInput],
        *,
        top_k: int = 5,
        include_logits: bool = False,
    ) -> PredictResult:
        """Classifies images: encoded bytes, file paths, uint8 pixel arrays or preprocessed float32 [3, S, S]."""
        request = convert.predict_request(task, images, None, top_k, include_logits)
        return convert.predict_result_from_pb(self._call(self._inference.Predict, request))

    def predict_batch(
        self, task: str, batch: np.ndarray, *, top_k: int = 5, include_logits: bool = False
    ) -> PredictResult:
        """Classifies a batch tensor: preprocessed float32 [N, 3, S, S] or uint8 pixels [N, H, W(, C)]."""
        request = convert.predict_request(task, None, batch, top_k, include_logits)
        return convert.predict_result_from_pb(self._call(self._inference.Predict, request))

    def serving_info(self) -> ServingInfo:
        reply = self._call(self._inference.GetServingInfo, inference_pb2.GetServingInfoRequest())
        return convert.serving_info_from_pb(reply)

    # --- tasks -----------------------------------------------------------------------------------------------------

    def register_task(
        self,
        name: str,
        labels: Sequence[str],
        images: Sequence[bytes | np.ndarray],
        label_ids: Sequence[int],
        *,
        splits: Sequence[int] | None = None,
        description: str = "",
        validation_fraction: float = 0.0,
        test_fraction: float = 0.0,
        image_size: int = 0,
        progress: Progress | None = None,
    ) -> TaskInfo:
        """Registers a task, streaming its examples in chunks; it starts pending until the evolver publishes v1."""
        upload = TaskUpload(
            name, labels, images, label_ids, splits, description, validation_fraction, test_fraction, image_size
        )
        return self.register(upload, progress=progress)

    def register(self, upload: TaskUpload, progress: Progress | None = None) -> TaskInfo:
        reply = self._call(self._tasks.RegisterTask, register_requests(upload, progress))
        return convert.task_from_pb(reply)

    def list_tasks(self) -> list[TaskInfo]:
        return self.list_tasks_with_stats()[0]

    def system_stats(self) -> SystemStats:
        """Parameters of the system: serving tasks, distinct parameters, parameters per task, root parameters."""
        return self.list_tasks_with_stats()[1]

    def list_tasks_with_stats(self) -> tuple[list[TaskInfo], SystemStats]:
        """Every task and the system's parameter figures, from one ListTasks call (one server state)."""
        return convert.task_list_from_pb(self._call(self._tasks.ListTasks, tasks_pb2.ListTasksRequest()))

    def get_task(self, name: str) -> TaskInfo:
        return convert.task_from_pb(self._call(self._tasks.GetTask, tasks_pb2.GetTaskRequest(name=name)))

    def delete_task(self, name: str) -> None:
        self._call(self._tasks.DeleteTask, tasks_pb2.DeleteTaskRequest(name=name))

    def watch_tasks(self, task: str = "", send_initial: bool = False) -> TaskWatch:
        """Streams task events until cancelled (`TaskWatch.cancel()`).

        Returns once the server has subscribed the watch, so every event after this call is delivered.
        """
        call = self._tasks.WatchTasks(tasks_pb2.WatchTasksRequest(task=task, send_initial=send_initial))
        call.initial_metadata()  # type: ignore[attr-defined]  # the server sends it after subscribing
        return TaskWatch(call)

    def wait_for_version(self, task: str, version: int = 1, timeout: float = 600.0) -> TaskInfo:
        """Blocks until the task's current version is at least `version`."""
        deadline = time.monotonic() + timeout
        watch = self.watch_tasks(task, send_initial=True)
        timer = threading.Timer(timeout, watch.cancel)
        timer.start()
        try:
            for event in watch:
                if event.type == "deleted":
                    raise NotFoundError(f"task {task!r} was deleted while waiting for version {version}")
                if event.task.current_version >= version:
                    return event.task
        finally:
            timer.cancel()
            watch.cancel()
        if time.monotonic() >= deadline:
            raise MunetError(f"task {task!r} did not reach version {version} within {timeout:.0f} s")
        raise UnavailableError(f"watch on task {task!r} ended before version {version}")

    # --- versions --------------------------------------------------------------------------------------------------

    def list_versions(self, task: str) -> list[PathVersion]:
        reply = self._call(self._versions.ListVersions, tasks_pb2.ListVersionsRequest(task=task))
        return [convert.path_version_from_pb(v) for v in reply.versions]

    def rollback(self, task: str, version: int) -> TaskInfo:
        reply = self._call(self._versions.Rollback, tasks_pb2.RollbackRequest(task=task, version=version))
        return convert.task_from_pb(reply)

    # --- the evolver's side ----------------------------------------------------------------------------------------

    def get_root(self) -> RootInfo | None:
        try:
            return convert.root_from_pb(self._call(self._evolution.GetRoot, evolution_pb2.GetRootRequest()))
        except NotFoundError:
            return None

    def set_root(self, root: RootInfo) -> RootInfo:
        return convert.root_from_pb(self._call(self._evolution.SetRoot, convert.root_to_pb(root)))

    def upload_components(self, artifacts: Sequence[ComponentArtifact]) -> tuple[list[str], list[str]]:
        """Stores components; returns (ids stored now, ids already stored)."""
        reply = self._call(self._evolution.UploadComponents, component_parts(artifacts))
        return list(reply.stored), list(reply.existing)

    def list_components(self, ids: Sequence[str] = ()) -> list[ComponentInfo]:
        reply = self._call(self._evolution.ListComponents, evolution_pb2.ListComponentsRequest(ids=list(ids)))
        return [convert.component_info_from_pb(c) for c in reply.components]

    def get_component(self, id: str, include_onnx: bool = False) -> ComponentArtifact:
        assembler = ComponentAssembler()
        request = evolution_pb2.GetComponentRequest(id=id, include_onnx=include_onnx)
        try:
            for part in self._evolution.GetComponent(request, timeout=self.timeout):
                assembler.add(part)
        except grpc.RpcError as e:
            raise from_rpc_error(e) from e
        return assembler.result()

    def download_dataset(self, task: str, cache_dir: Path) -> tuple[DatasetInfo, Path]:
        """Downloads the task's dataset file into cache_dir (skipped when a verified copy is there)."""
        cache_dir = Path(cache_dir)
        cache_dir.mkdir(parents=True, exist_ok=True)
        stream = self._evolution.GetDataset(evolution_pb2.GetDatasetRequest(task=task), timeout=self.timeout)
        info: DatasetInfo | None = None
        try:
            first = next(iter(stream))
            info = convert.dataset_from_pb(first.info)
            if info is None:
                raise MunetError(f"dataset stream of {task!r} did not start with its info")
            target = cache_dir / f"{info.id}.npz"
            if target.exists() and sha256_file(target) == info.id:
                stream.cancel()
                return info, target
            with tempfile.NamedTemporaryFile(dir=cache_dir, delete=False, suffix=".part") as tmp:
                for part in stream:
                    tmp.write(part.chunk)
            if sha256_file(Path(tmp.name)) != info.id:
                os.unlink(tmp.name)
                raise MunetError(f"dataset of {task!r}: downloaded bytes do not match id {info.id}")
            os.replace(tmp.name, target)
            return info, target
        except grpc.RpcError as e:
            raise from_rpc_error(e) from e

    def publish_path(
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
        """Publishes a path as the task's next version; returns it once the server serves it."""
        requests = publish_requests(task, components, hparams, metrics, input, parent, new_components)
        return convert.path_version_from_pb(self._call(self._evolution.PublishPath, requests))

    def report_status(self, task: str, status: EvolutionStatus) -> None:
        request = evolution_pb2.ReportStatusRequest(task=task, status=convert.status_to_pb(status))
        self._call(self._evolution.ReportStatus, request)
