"""Every call of the SDK, written once for `Client` and `AsyncClient`: its parameters and docstring, the request it
builds, the RPC steps it takes (clients/steps.py) and how it parses the replies into the SDK's types.

A call's first parameter is the client running it (a `Session`, like `self`); the clients list the calls and run
their steps synchronously or as coroutines. Multi-step calls (wait_ready, wait_for_version, download_dataset) are
plain code between their steps, so both clients give them the same semantics.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

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
from .errors import DeadlineExceededError, MunetError, NotFoundError, UnavailableError
from .steps import Call, Session, Sleep, Steps, Stream, Watch
from .streams import (
    ComponentAssembler,
    DatasetDownload,
    Progress,
    TaskUpload,
    component_parts,
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

HEALTH = health_pb2_grpc.HealthStub
INFERENCE = inference_pb2_grpc.InferenceStub
TASKS = tasks_pb2_grpc.TasksStub
VERSIONS = tasks_pb2_grpc.VersionsStub
EVOLUTION = evolution_pb2_grpc.EvolutionStub

# --- health --------------------------------------------------------------------------------------------------------


def wait_ready(client: Session, timeout: float = 30.0) -> Steps[None]:
    """Returns once the server reports SERVING on the standard health service (UnavailableError after `timeout` s)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            reply = yield Call(HEALTH, "Check", health_pb2.HealthCheckRequest(service=""), timeout=1.0)
            if reply.status == health_pb2.HealthCheckResponse.SERVING:
                return
        except MunetError:
            pass
        if time.monotonic() > deadline:
            raise UnavailableError(f"server at {client.target} not ready after {timeout:.0f} s")
        yield Sleep(0.1)


# --- inference -----------------------------------------------------------------------------------------------------


def predict(
    client: Session,
    task: str,
    images: Sequence[convert.ImageInput],
    *,
    top_k: int = 5,
    include_logits: bool = False,
    version: int | None = None,
) -> Steps[PredictResult]:
    """Classifies images: encoded bytes, file paths, uint8 pixel arrays or preprocessed float32 [3, S, S]. With
    `version`, that version of the task answers instead of its current one."""
    request = convert.predict_request(task, images, None, top_k, include_logits, version)
    return convert.predict_result_from_pb((yield Call(INFERENCE, "Predict", request)))


def predict_batch(
    client: Session, task: str, batch: np.ndarray, *, top_k: int = 5, include_logits: bool = False,
    version: int | None = None,
) -> Steps[PredictResult]:
    """Classifies a batch tensor: preprocessed float32 [N, 3, S, S] or uint8 pixels [N, H, W(, C)]. With
    `version`, that version of the task answers instead of its current one."""
    request = convert.predict_request(task, None, batch, top_k, include_logits, version)
    return convert.predict_result_from_pb((yield Call(INFERENCE, "Predict", request)))


def serving_info(client: Session) -> Steps[ServingInfo]:
    """The server's execution providers, loaded sessions and live routes."""
    reply = yield Call(INFERENCE, "GetServingInfo", inference_pb2.GetServingInfoRequest())
    return convert.serving_info_from_pb(reply)


# --- tasks ---------------------------------------------------------------------------------------------------------


def register_task(
    client: Session,
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
) -> Steps[TaskInfo]:
    """Registers a task, streaming its examples in chunks; it starts pending until the evolver publishes v1."""
    upload = TaskUpload(
        name, labels, images, label_ids, splits, description, validation_fraction, test_fraction, image_size
    )
    return (yield from register(client, upload, progress=progress))


def register(client: Session, upload: TaskUpload, progress: Progress | None = None) -> Steps[TaskInfo]:
    """Registers the task of a TaskUpload (clients/datasets.py reads folders, .npz files and built-in datasets)."""
    reply = yield Call(TASKS, "RegisterTask", register_requests(upload, progress))
    return convert.task_from_pb(reply)


def list_tasks(client: Session) -> Steps[list[TaskInfo]]:
    """Every task."""
    return (yield from list_tasks_with_stats(client))[0]


def system_stats(client: Session) -> Steps[SystemStats]:
    """Parameters of the system: serving tasks, distinct parameters, parameters per task, root parameters."""
    return (yield from list_tasks_with_stats(client))[1]


def list_tasks_with_stats(client: Session) -> Steps[tuple[list[TaskInfo], SystemStats]]:
    """Every task and the system's parameter figures, from one ListTasks call (one server state)."""
    return convert.task_list_from_pb((yield Call(TASKS, "ListTasks", tasks_pb2.ListTasksRequest())))


def get_task(client: Session, name: str) -> Steps[TaskInfo]:
    """One task: its labels, state, current version and metrics, evolution status and dataset."""
    return convert.task_from_pb((yield Call(TASKS, "GetTask", tasks_pb2.GetTaskRequest(name=name))))


def delete_task(client: Session, name: str) -> Steps[None]:
    """Deletes the task; the server stops serving it."""
    yield Call(TASKS, "DeleteTask", tasks_pb2.DeleteTaskRequest(name=name))


def watch_tasks(client: Session, task: str = "", send_initial: bool = False) -> Watch[TaskEvent]:
    """Streams task events (of `task`, or of every task) until the caller stops.

    `Client` returns a TaskWatch once the server has subscribed it, so every event after this call is delivered;
    `TaskWatch.cancel()` ends it from any thread. `AsyncClient` gives an async iterator; leaving the loop ends it.
    With `send_initial`, the first events are a snapshot of each watched task.
    """
    return Watch(TASKS, "WatchTasks", tasks_pb2.WatchTasksRequest(task=task, send_initial=send_initial),
                 convert.event_from_pb)


def wait_for_version(client: Session, task: str, version: int = 1, timeout: float = 600.0) -> Steps[TaskInfo]:
    """Waits until the task's current version is at least `version` and returns the task; NotFoundError when it is
    deleted meanwhile, MunetError when `timeout` s pass first."""
    reached: list[TaskInfo] = []

    def receive(message: tasks_pb2.TaskEvent) -> bool:
        event = convert.event_from_pb(message)
        if event.type == "deleted":
            raise NotFoundError(f"task {task!r} was deleted while waiting for version {version}")
        if event.task.current_version >= version:
            reached.append(event.task)
        return bool(reached)

    request = tasks_pb2.WatchTasksRequest(task=task, send_initial=True)
    try:
        yield Stream(TASKS, "WatchTasks", request, receive, timeout=timeout)
    except DeadlineExceededError:
        raise MunetError(f"task {task!r} did not reach version {version} within {timeout:.0f} s") from None
    except MunetError as e:
        if e.code != grpc.StatusCode.CANCELLED:
            raise
    if reached:
        return reached[0]
    raise UnavailableError(f"watch on task {task!r} ended before version {version}")


# --- versions ------------------------------------------------------------------------------------------------------


def list_versions(client: Session, task: str) -> Steps[list[PathVersion]]:
    """The task's published versions with their paths, metrics and parents."""
    reply = yield Call(VERSIONS, "ListVersions", tasks_pb2.ListVersionsRequest(task=task))
    return [convert.path_version_from_pb(v) for v in reply.versions]


def rollback(client: Session, task: str, version: int) -> Steps[TaskInfo]:
    """Makes an earlier version the task's current one; returns the task once the server serves it."""
    reply = yield Call(VERSIONS, "Rollback", tasks_pb2.RollbackRequest(task=task, version=version))
    return convert.task_from_pb(reply)


# --- the evolver's side --------------------------------------------------------------------------------------------


def get_root(client: Session) -> Steps[RootInfo | None]:
    """The server's root, or None before one is set."""
    try:
        reply = yield Call(EVOLUTION, "GetRoot", evolution_pb2.GetRootRequest())
    except NotFoundError:
        return None
    return convert.root_from_pb(reply)


def set_root(client: Session, root: RootInfo) -> Steps[RootInfo]:
    """Sets the server's root (its components uploaded with upload_components); returns it as stored."""
    return convert.root_from_pb((yield Call(EVOLUTION, "SetRoot", convert.root_to_pb(root))))


def upload_components(client: Session, artifacts: Sequence[ComponentArtifact]) -> Steps[tuple[list[str], list[str]]]:
    """Stores components; returns (ids stored now, ids already stored)."""
    reply = yield Call(EVOLUTION, "UploadComponents", component_parts(artifacts))
    return list(reply.stored), list(reply.existing)


def list_components(client: Session, ids: Sequence[str] = ()) -> Steps[list[ComponentInfo]]:
    """The stored components (those of `ids`, or all)."""
    reply = yield Call(EVOLUTION, "ListComponents", evolution_pb2.ListComponentsRequest(ids=list(ids)))
    return [convert.component_info_from_pb(c) for c in reply.components]


def get_component(client: Session, id: str, include_onnx: bool = False) -> Steps[ComponentArtifact]:
    """A stored component with its weights (checked against its id) and, with `include_onnx`, its ONNX graph."""
    assembler = ComponentAssembler()
    request = evolution_pb2.GetComponentRequest(id=id, include_onnx=include_onnx)
    yield Stream(EVOLUTION, "GetComponent", request, assembler.add)
    return assembler.result()


def download_dataset(client: Session, task: str, cache_dir: Path) -> Steps[tuple[DatasetInfo, Path]]:
    """Downloads the task's dataset file into cache_dir (skipped when a verified copy is there)."""
    download = DatasetDownload(task, Path(cache_dir))
    try:
        yield Stream(EVOLUTION, "GetDataset", evolution_pb2.GetDatasetRequest(task=task), download.add)
        return download.result()
    finally:
        download.discard()


def publish_path(
    client: Session,
    task: str,
    components: Sequence[PathComponent],
    *,
    hparams: dict,
    metrics: Metrics,
    input: InputSpec,
    parent: PathRef | None,
    new_components: Sequence[ComponentArtifact] = (),
) -> Steps[PathVersion]:
    """Publishes a path as the task's next version; returns it once the server serves it."""
    requests = publish_requests(task, components, hparams, metrics, input, parent, new_components)
    return convert.path_version_from_pb((yield Call(EVOLUTION, "PublishPath", requests)))


def report_status(client: Session, task: str, status: EvolutionStatus) -> Steps[None]:
    """Replaces the task's evolution status (its `state` included); the server stamps `updated_at`."""
    request = evolution_pb2.ReportStatusRequest(task=task, status=convert.status_to_pb(status))
    yield Call(EVOLUTION, "ReportStatus", request)
