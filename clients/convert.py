"""The SDK's protobuf <-> dataclass conversions; what the server builds alike comes from munet_serve.messages."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from datetime import datetime, timezone

import numpy as np
from google.protobuf import timestamp_pb2

from munet_serve import messages
from munet_serve.imaging import InputSpec
from munet_serve.proto.v1 import inference_pb2, tasks_pb2, types_pb2
from munet_serve.structs import from_struct, to_struct

from .types import (
    ComponentInfo,
    DatasetInfo,
    EvolutionStatus,
    LabelScore,
    LiveRoute,
    LoadedComponent,
    Metrics,
    PathComponent,
    PathRef,
    PathVersion,
    Prediction,
    PredictResult,
    RootInfo,
    ServingInfo,
    SystemStats,
    TaskEvent,
    TaskInfo,
)

ImageInput = bytes | np.ndarray | str | os.PathLike

_STATE = {types_pb2.TASK_STATE_PENDING: "pending", types_pb2.TASK_STATE_SERVING: "serving"}
_EVENT = {
    tasks_pb2.TaskEventType.Value(name): name.removeprefix("TASK_EVENT_TYPE_").lower()
    for name in tasks_pb2.TaskEventType.keys()
}
_DTYPES: dict[np.dtype, types_pb2.DType] = {
    np.dtype(np.float32): types_pb2.DTYPE_FLOAT32,
    np.dtype(np.uint8): types_pb2.DTYPE_UINT8,
}
_NP_DTYPES: dict[int, np.dtype] = {v: k for k, v in _DTYPES.items()}


# --- small helpers -------------------------------------------------------------------------------------------------


def time_from_pb(ts: timestamp_pb2.Timestamp) -> datetime | None:
    if ts.seconds == 0 and ts.nanos == 0:
        return None
    return ts.ToDatetime(tzinfo=timezone.utc)


def tensor_to_pb(array: np.ndarray) -> types_pb2.Tensor:
    array = np.ascontiguousarray(array)
    if array.dtype not in _DTYPES:
        raise TypeError(f"tensors must be float32 or uint8, got {array.dtype}")
    return types_pb2.Tensor(dtype=_DTYPES[array.dtype], shape=list(array.shape), data=array.tobytes())


def tensor_from_pb(t: types_pb2.Tensor) -> np.ndarray:
    dtype = _NP_DTYPES[t.dtype]
    return np.frombuffer(t.data, dtype=dtype).reshape(tuple(t.shape))


def input_spec_from_pb(spec: types_pb2.InputSpec) -> InputSpec | None:
    """None for an unset spec (image_size 0)."""
    return None if spec.image_size == 0 else messages.input_spec_from_pb(spec)


# --- requests ------------------------------------------------------------------------------------------------------


def image_to_pb(image: ImageInput) -> types_pb2.Image:
    """bytes: encoded; a path: the file's bytes; uint8 array: pixels; float32 [3, S, S]: preprocessed input."""
    if isinstance(image, bytes | bytearray):
        return types_pb2.Image(encoded=bytes(image))
    if isinstance(image, np.ndarray):
        return types_pb2.Image(pixels=tensor_to_pb(image))
    with open(image, "rb") as f:
        return types_pb2.Image(encoded=f.read())


def predict_request(
    task: str, images: Sequence[ImageInput] | None, batch: np.ndarray | None, top_k: int, include_logits: bool,
    version: int | None = None,
) -> inference_pb2.PredictRequest:
    if version is not None and version < 1:
        raise ValueError(f"version must be a published version number (>= 1), got {version}")
    request = inference_pb2.PredictRequest(task=task, top_k=top_k, include_logits=include_logits,
                                           version=version or 0)
    if images is not None:
        request.images.extend(image_to_pb(im) for im in images)
    if batch is not None:
        request.batch.CopyFrom(tensor_to_pb(batch))
    return request


def metrics_to_pb(m: Metrics) -> types_pb2.Metrics:
    return types_pb2.Metrics(**dataclasses.asdict(m))


def status_to_pb(s: EvolutionStatus) -> types_pb2.EvolutionStatus:
    """updated_at is left out: the server stamps it."""
    try:
        state = to_struct(s.state)
    except (TypeError, ValueError, AttributeError) as e:
        raise TypeError(f"EvolutionStatus.state must be JSON-like (str keys; str, number, bool, None, list, dict): "
                        f"{e}") from e
    return types_pb2.EvolutionStatus(
        phase=s.phase,
        iteration=s.iteration,
        generation=s.generation,
        candidates=s.candidates,
        best_score=s.best_score,
        message=s.message,
        worker=s.worker,
        state=state,
    )


def component_info_to_pb(c: ComponentInfo) -> types_pb2.ComponentInfo:
    """created_at is left out: the server stamps it."""
    return messages.component_info_pb(
        id=c.id,
        kind=c.kind,
        config=c.config,
        num_params=c.num_params,
        parity_max_abs_error=c.parity_max_abs_error,
        lineage=c.lineage,
        onnx_bytes=c.onnx_bytes,
        weights_bytes=c.weights_bytes,
    )


def path_components_to_pb(components: Sequence[PathComponent]) -> list[types_pb2.PathComponent]:
    return [types_pb2.PathComponent(name=c.name, id=c.id) for c in components]


def root_to_pb(root: RootInfo) -> types_pb2.RootInfo:
    return types_pb2.RootInfo(
        source=root.source,
        components=path_components_to_pb(root.components),
        config=to_struct(root.config),
        params=root.params,
        input=messages.input_spec_pb(root.input),
    )


# --- responses -----------------------------------------------------------------------------------------------------


def metrics_from_pb(m: types_pb2.Metrics) -> Metrics:
    return Metrics(**{f.name: getattr(m, f.name) for f in dataclasses.fields(Metrics)})


def status_from_pb(s: types_pb2.EvolutionStatus) -> EvolutionStatus:
    return EvolutionStatus(
        phase=s.phase,
        iteration=s.iteration,
        generation=s.generation,
        candidates=s.candidates,
        best_score=s.best_score,
        message=s.message,
        worker=s.worker,
        updated_at=time_from_pb(s.updated_at),
        state=from_struct(s.state),
    )


def dataset_from_pb(d: types_pb2.DatasetInfo) -> DatasetInfo | None:
    if not d.id:
        return None
    return DatasetInfo(
        id=d.id,
        train_examples=d.train_examples,
        validation_examples=d.validation_examples,
        test_examples=d.test_examples,
        image_shape=tuple(d.image_shape),
        size_bytes=d.size_bytes,
    )


def task_from_pb(t: types_pb2.TaskInfo) -> TaskInfo:
    return TaskInfo(
        name=t.name,
        labels=list(t.labels),
        state=_STATE.get(t.state, "unknown"),
        current_version=t.current_version,
        num_versions=t.num_versions,
        description=t.description,
        metrics=metrics_from_pb(t.metrics),
        input=input_spec_from_pb(t.input),
        evolution=status_from_pb(t.evolution),
        dataset=dataset_from_pb(t.dataset),
        created_at=time_from_pb(t.created_at),
        accounted_params=t.accounted_params,
    )


def system_stats_from_pb(s: tasks_pb2.SystemStats) -> SystemStats:
    return SystemStats(
        distinct_params=s.distinct_params,
        params_per_task=s.params_per_task,
        serving_tasks=s.serving_tasks,
        root_params=s.root_params,
    )


def task_list_from_pb(r: tasks_pb2.ListTasksResponse) -> tuple[list[TaskInfo], SystemStats]:
    return [task_from_pb(t) for t in r.tasks], system_stats_from_pb(r.system)


def path_version_from_pb(v: types_pb2.PathVersion) -> PathVersion:
    spec = input_spec_from_pb(v.input)
    if spec is None:
        raise ValueError(f"version {v.version} of {v.task!r} has no input spec")
    return PathVersion(
        task=v.task,
        version=v.version,
        components=[PathComponent(name=c.name, id=c.id) for c in v.components],
        hparams=from_struct(v.hparams),
        metrics=metrics_from_pb(v.metrics),
        input=spec,
        parent=PathRef(task=v.parent.task, version=v.parent.version) if v.HasField("parent") else None,
        created_at=time_from_pb(v.created_at),
        current=v.current,
    )


def component_info_from_pb(c: types_pb2.ComponentInfo) -> ComponentInfo:
    return ComponentInfo(
        id=c.id,
        kind=messages.kind_from_pb(c.kind),
        config=from_struct(c.config),
        num_params=c.num_params,
        parity_max_abs_error=c.parity_max_abs_error,
        lineage=from_struct(c.lineage),
        onnx_bytes=c.onnx_bytes,
        weights_bytes=c.weights_bytes,
        created_at=time_from_pb(c.created_at),
    )


def root_from_pb(r: types_pb2.RootInfo) -> RootInfo:
    spec = input_spec_from_pb(r.input)
    if spec is None:
        raise ValueError("the root has no input spec")
    return RootInfo(
        source=r.source,
        components=[PathComponent(name=c.name, id=c.id) for c in r.components],
        config=from_struct(r.config),
        params=r.params,
        input=spec,
    )


def predict_result_from_pb(r: inference_pb2.PredictResponse) -> PredictResult:
    predictions = []
    for c in r.results:
        top = [LabelScore(label=s.label, index=s.index, score=s.score) for s in c.top]
        logits = tensor_from_pb(c.logits) if c.HasField("logits") else None
        predictions.append(Prediction(top=top, logits=logits))
    return PredictResult(task=r.task, version=r.version, predictions=predictions)


def event_from_pb(e: tasks_pb2.TaskEvent) -> TaskEvent:
    return TaskEvent(
        type=_EVENT.get(e.type, "unspecified"), task=task_from_pb(e.task), version=e.version, time=time_from_pb(e.time)
    )


def serving_info_from_pb(s: inference_pb2.ServingInfo) -> ServingInfo:
    return ServingInfo(
        providers=list(s.providers),
        sessions=[LoadedComponent(id=c.id, kind=messages.kind_from_pb(c.kind), tasks=list(c.tasks),
                                  component_ids=list(c.component_ids) or [c.id]) for c in s.sessions],
        routes=[LiveRoute(task=r.task, version=r.version, component_ids=list(r.component_ids)) for r in s.routes],
        server_version=s.server_version,
    )
