"""The server's protobuf <-> record conversions (records.py): the transport's half of every call.

It checks what the wire format leaves open (a tensor's dtype, shape and bytes, an image's encoding, the number of
images in one request) and, for a root, which arrives whole, the domain's checks of its slots and input spec
(paths.py); the domain checks the rest of what a request asks (tasks.py, versions.py, uploads.py, prediction.py).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np
from google.protobuf.message import Message

from munet_serve import messages
from munet_serve.artifacts import ComponentKind
from munet_serve.errors import InvalidArgumentError, ResourceExhaustedError
from munet_serve.imaging import ImageError, InputSpec, check_pixels, decode
from munet_serve.proto.v1 import inference_pb2, tasks_pb2, types_pb2
from munet_serve.structs import from_struct, to_struct

from . import paths
from .accounting import ParamAccount
from .events import TaskEvent
from .records import (
    ComponentRecord,
    ComponentUpload,
    DatasetRecord,
    Example,
    InputFields,
    PathHeader,
    PredictInput,
    Prediction,
    RootRecord,
    ServingInfo,
    TaskSpec,
    TaskView,
    VersionRecord,
)

_NP_DTYPE: dict[int, np.dtype] = {
    types_pb2.DTYPE_FLOAT32: np.dtype(np.float32),
    types_pb2.DTYPE_UINT8: np.dtype(np.uint8),
}
_STRUCT = "google.protobuf.Struct"
MAX_TENSOR_DIMS = 8  # numpy holds at most 64; an image batch has 4
_EVENT_TO_PB = {
    name.removeprefix("TASK_EVENT_TYPE_").lower(): tasks_pb2.TaskEventType.Value(name)
    for name in tasks_pb2.TaskEventType.keys()
}


# --- generic helpers -----------------------------------------------------------------------------------------------


def _stored_fields(message: Message) -> dict[str, bool]:
    """The fields `message_to_dict` keeps: name -> whether it is a google.protobuf.Struct (else a scalar)."""
    return {
        f.name: f.type == f.TYPE_MESSAGE
        for f in message.DESCRIPTOR.fields
        if f.type != f.TYPE_MESSAGE or f.message_type.full_name == _STRUCT
    }


def message_to_dict(message: Message) -> dict[str, Any]:
    """Scalar and Struct fields of a flat message as a plain dict (for JSON storage); other messages are left out.

    Struct fields become dicts whose whole numbers are ints again (`munet_serve.structs.from_struct`).
    """
    return {
        name: from_struct(getattr(message, name)) if is_struct else getattr(message, name)
        for name, is_struct in _stored_fields(message).items()
    }


def fill_message(message: Message, values: dict[str, Any]) -> Message:
    """The inverse of `message_to_dict`: sets the scalar and Struct fields named in values, ignoring other keys."""
    fields = _stored_fields(message)
    for key, value in values.items():
        if key not in fields:
            continue
        if fields[key]:
            getattr(message, key).CopyFrom(to_struct(value))
        else:
            setattr(message, key, value)
    return message


def struct_dict(s: Message, what: str) -> dict[str, Any]:
    """A google.protobuf.Struct the client sent, as a dict; INVALID_ARGUMENT where it holds what JSON cannot (a NaN
    or infinite number, a Value with no kind set)."""
    try:
        return from_struct(s)
    except ValueError as e:
        raise InvalidArgumentError(f"{what} cannot be stored: {e}") from e


timestamp = messages.timestamp_pb
kind_pb = messages.kind_pb
input_spec_pb = messages.input_spec_pb


def kind_from_pb(kind: int) -> ComponentKind:
    try:
        return messages.kind_from_pb(kind)
    except ValueError as e:
        raise InvalidArgumentError(str(e)) from e


# --- tensors and images --------------------------------------------------------------------------------------------


def _dtype_name(value: int) -> str:
    """The DType's name, or its number where it names none (proto3 enums take any number on the wire)."""
    try:
        return types_pb2.DType.Name(value)
    except ValueError:
        return f"{value} (no such DType)"


def tensor_array(t: types_pb2.Tensor, what: str) -> np.ndarray:
    if t.dtype not in _NP_DTYPE:
        raise InvalidArgumentError(f"{what}: dtype must be FLOAT32 or UINT8, got {_dtype_name(t.dtype)}")
    dtype = _NP_DTYPE[t.dtype]
    shape = tuple(t.shape)
    if not shape or any(d <= 0 for d in shape):
        raise InvalidArgumentError(f"{what}: shape {list(shape)} must have positive dimensions"[:300])
    if len(shape) > MAX_TENSOR_DIMS:
        raise InvalidArgumentError(f"{what}: shape has {len(shape)} dimensions; a tensor here has at most "
                                   f"{MAX_TENSOR_DIMS}")
    expected = math.prod(shape) * dtype.itemsize  # Python integers: a product of int64 dimensions may overflow int64
    if len(t.data) != expected:
        raise InvalidArgumentError(
            f"{what}: data has {len(t.data)} bytes, but shape {list(shape)} of {dtype.name} needs {expected}"
        )
    return np.frombuffer(t.data, dtype=dtype).reshape(shape)


def predict_input(request: inference_pb2.PredictRequest, max_images: int) -> PredictInput:
    has_batch = request.HasField("batch")
    if has_batch and request.images:
        raise InvalidArgumentError("give either images or a batch tensor, not both")
    if not has_batch and not request.images:
        raise InvalidArgumentError("the request has no images")
    if has_batch:
        array = tensor_array(request.batch, "batch")
        if len(array) > max_images:
            raise ResourceExhaustedError(f"{len(array)} images in one request; the limit is {max_images}")
        if array.dtype == np.float32:
            if array.ndim != 4:
                raise InvalidArgumentError(f"a float32 batch must have shape [N, 3, S, S], got {list(array.shape)}")
            return PredictInput(preprocessed=array)
        if array.ndim not in (3, 4):
            raise InvalidArgumentError(
                f"a uint8 batch must have shape [N, H, W] or [N, H, W, C], got {list(array.shape)}"
            )
        return PredictInput(pixels=[_pixels(a, f"batch[{i}]") for i, a in enumerate(array)])
    if len(request.images) > max_images:
        raise ResourceExhaustedError(f"{len(request.images)} images in one request; the limit is {max_images}")
    pixels: list[np.ndarray] = []
    floats: list[np.ndarray] = []
    for i, image in enumerate(request.images):
        array = image_array(image, f"image {i}")
        (floats if array.dtype == np.float32 else pixels).append(array)
    if pixels and floats:
        raise InvalidArgumentError("a request mixes preprocessed float32 images with encoded or uint8 ones")
    if floats:
        shapes = {a.shape for a in floats}
        if len(shapes) > 1 or floats[0].ndim != 3:
            raise InvalidArgumentError(f"float32 images must all have shape [3, S, S], got {sorted(map(list, shapes))}")
        return PredictInput(preprocessed=np.stack(floats))
    return PredictInput(pixels=pixels)


def image_array(image: types_pb2.Image, what: str) -> np.ndarray:
    """Encoded -> decoded uint8; uint8 pixels -> validated; float32 -> returned as is (checked against the spec)."""
    which = image.WhichOneof("content")
    if which is None:
        raise InvalidArgumentError(f"{what}: empty image (set encoded or pixels)")
    try:
        if which == "encoded":
            return decode(image.encoded)
        array = tensor_array(image.pixels, what)
        return array if array.dtype == np.float32 else check_pixels(array)
    except ImageError as e:
        raise InvalidArgumentError(f"{what}: {e}") from e


def _pixels(array: np.ndarray, what: str) -> np.ndarray:
    try:
        return check_pixels(array)
    except ImageError as e:
        raise InvalidArgumentError(f"{what}: {e}") from e


def classifications(
    logits: np.ndarray, labels: tuple[str, ...], top_k: int, include_logits: bool
) -> list[inference_pb2.Classification]:
    shifted = logits - logits.max(axis=1, keepdims=True)
    probs = np.exp(shifted)
    probs /= probs.sum(axis=1, keepdims=True)
    k = min(top_k or 5, len(labels))
    order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    results = []
    for row, best in enumerate(order):
        c = inference_pb2.Classification(
            top=[inference_pb2.LabelScore(label=labels[i], index=int(i), score=float(probs[row, i])) for i in best]
        )
        if include_logits:
            row_logits = np.ascontiguousarray(logits[row], dtype=np.float32)
            c.logits.CopyFrom(
                types_pb2.Tensor(dtype=types_pb2.DTYPE_FLOAT32, shape=[len(labels)], data=row_logits.tobytes())
            )
        results.append(c)
    return results


def predict_response(prediction: Prediction, top_k: int, include_logits: bool) -> inference_pb2.PredictResponse:
    return inference_pb2.PredictResponse(
        task=prediction.task,
        version=prediction.version,
        results=classifications(prediction.logits, prediction.labels, top_k, include_logits),
    )


def serving_info_pb(info: ServingInfo) -> inference_pb2.ServingInfo:
    return inference_pb2.ServingInfo(
        providers=list(info.providers),
        sessions=[
            inference_pb2.LoadedComponent(id=s.id, kind=kind_pb(s.kind), tasks=list(s.tasks),
                                          component_ids=list(s.component_ids))
            for s in info.sessions
        ],
        routes=[
            inference_pb2.LiveRoute(task=r.task, version=r.version, component_ids=list(r.component_ids))
            for r in info.routes
        ],
        server_version=info.server_version,
    )


# --- specs ---------------------------------------------------------------------------------------------------------


def input_fields(spec: types_pb2.InputSpec) -> InputFields:
    return InputFields(image_size=spec.image_size, mean=tuple(spec.mean), std=tuple(spec.std))


def input_spec(spec: types_pb2.InputSpec, what: str) -> InputSpec:
    return paths.input_spec(input_fields(spec), what)


# --- messages -> records -------------------------------------------------------------------------------------------


def task_spec(spec: tasks_pb2.TaskSpec) -> TaskSpec:
    return TaskSpec(
        name=spec.name,
        labels=tuple(spec.labels),
        description=spec.description,
        image_size=spec.image_size,
        validation_fraction=spec.validation_fraction,
        test_fraction=spec.test_fraction,
    )


def example(e: tasks_pb2.Example, what: str) -> Example:
    return Example(pixels=image_array(e.image, what), label=e.label, split=e.split)


def path_header(path: types_pb2.PathVersion) -> PathHeader:
    return PathHeader(
        task=path.task,
        components=_slots(path.components),
        hparams=struct_dict(path.hparams, "the path's hparams"),
        metrics=message_to_dict(path.metrics),
        input=input_fields(path.input),
        parent=(path.parent.task, path.parent.version) if path.HasField("parent") else None,
    )


def _kind_or_number(value: int) -> ComponentKind | int:
    try:
        return messages.kind_from_pb(value)
    except ValueError:
        return value


def component_upload(info: types_pb2.ComponentInfo, weights: bytes, onnx: bytes) -> ComponentUpload:
    """A streamed component: its kind as a ComponentKind, or its number where it names none (uploads.py says so)."""
    return ComponentUpload(
        id=info.id,
        kind=_kind_or_number(info.kind),
        lineage=struct_dict(info.lineage, f"the lineage of component {info.id}"),
        parity_max_abs_error=info.parity_max_abs_error,
        weights=weights,
        onnx=onnx,
    )


# --- records -> messages -------------------------------------------------------------------------------------------


def dataset_pb(d: DatasetRecord) -> types_pb2.DatasetInfo:
    return types_pb2.DatasetInfo(
        id=d.id,
        train_examples=d.train,
        validation_examples=d.validation,
        test_examples=d.test,
        image_shape=list(d.image_shape),
        size_bytes=d.size_bytes,
    )


def status_values(status: types_pb2.EvolutionStatus) -> dict[str, Any]:
    """A reported status as stored (updated_at aside): its scalar fields and its state as a dict."""
    try:
        return message_to_dict(status)
    except ValueError as e:  # a NaN or infinite number in the state
        raise InvalidArgumentError(f"the status state cannot be stored: {e}") from e


def status_pb(status: dict[str, Any]) -> types_pb2.EvolutionStatus:
    message = fill_message(types_pb2.EvolutionStatus(), status)
    message.updated_at.CopyFrom(timestamp(status.get("updated_at", 0.0)))
    return message  # type: ignore[return-value]


def task_pb(view: TaskView) -> types_pb2.TaskInfo:
    task = view.task
    info = types_pb2.TaskInfo(
        name=task.name,
        labels=list(task.labels),
        description=task.description,
        state=types_pb2.TASK_STATE_PENDING if task.current_version is None else types_pb2.TASK_STATE_SERVING,
        current_version=task.current_version or 0,
        num_versions=view.num_versions,
        evolution=status_pb(task.status),
        dataset=dataset_pb(view.dataset),
        created_at=timestamp(task.created_at),
        accounted_params=view.accounted_params,
    )
    if view.current is not None:
        info.metrics.CopyFrom(fill_message(types_pb2.Metrics(), view.current.metrics))
        info.input.CopyFrom(input_spec_pb(view.current.input))
    return info


def system_pb(params: ParamAccount) -> tasks_pb2.SystemStats:
    return tasks_pb2.SystemStats(
        distinct_params=params.distinct_params,
        params_per_task=params.params_per_task,
        serving_tasks=params.serving_tasks,
        root_params=params.root_params,
    )


def version_pb(v: VersionRecord, current: bool) -> types_pb2.PathVersion:
    message = types_pb2.PathVersion(
        task=v.task,
        version=v.version,
        components=[types_pb2.PathComponent(name=n, id=c) for n, c in v.components],
        hparams=to_struct(v.hparams),
        metrics=fill_message(types_pb2.Metrics(), v.metrics),
        input=input_spec_pb(v.input),
        created_at=timestamp(v.created_at),
        current=current,
    )
    if v.parent is not None:
        message.parent.CopyFrom(types_pb2.PathRef(task=v.parent[0], version=v.parent[1]))
    return message


def component_pb(c: ComponentRecord) -> types_pb2.ComponentInfo:
    return messages.component_info_pb(
        id=c.id, kind=c.kind, config=c.config, num_params=c.num_params, parity_max_abs_error=c.parity_max_abs_error,
        lineage=c.lineage, onnx_bytes=c.onnx_bytes, weights_bytes=c.weights_bytes, created_at=c.created_at,
    )


def root_pb(r: RootRecord) -> types_pb2.RootInfo:
    return types_pb2.RootInfo(
        source=r.source,
        components=[types_pb2.PathComponent(name=n, id=c) for n, c in r.components],
        config=to_struct(r.config),
        params=r.params,
        input=input_spec_pb(r.input),
    )


def root_record(r: types_pb2.RootInfo) -> RootRecord:
    if not r.components:
        raise InvalidArgumentError("the root has no components")
    return RootRecord(
        source=r.source,
        components=paths.slots(_slots(r.components), "root"),
        config=struct_dict(r.config, "the root's config"),
        params=r.params,
        input=input_spec(r.input, "root"),
    )


def _slots(components: Iterable[types_pb2.PathComponent]) -> tuple[tuple[str, str], ...]:
    return tuple((c.name, c.id) for c in components)


def event_pb(event: TaskEvent) -> tasks_pb2.TaskEvent:
    return tasks_pb2.TaskEvent(
        type=_EVENT_TO_PB[event.type], task=task_pb(event.view), version=event.version, time=timestamp(event.time)
    )
