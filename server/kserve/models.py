"""The KServe v2 protocol's view of the server: tasks as models, published versions as model versions, the registry
as the model repository. The transports (grpc_service.py, rest.py) decode their requests into the records below,
call one method and encode what it returns: the metadata, configuration, statistics and index come back as the
JSON objects of the protocol's HTTP/REST form, which the gRPC side parses into its messages field for field.

The one model interface every task has:
- input `IMAGE`: UINT8 pixels [N, H, W, C] or [N, H, W] (any size: they are resized and normalised as the task's
  version says), FP32 [N, 3, S, S] already preprocessed, or BYTES [N] (or [N, 1]) encoded images;
- output `LOGITS`: FP32 [N, L] over the task's L labels. With the classification extension (class_count = k) it is
  BYTES [N, k] of "value:index:label", the best first, value being the logit as Triton writes it.
Errors follow Triton's statuses: NOT_FOUND (no such model or version), INVALID_ARGUMENT (a malformed request),
UNAVAILABLE (a model that cannot answer now: pending, unloaded or being changed), UNIMPLEMENTED.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from munet_serve import __version__
from munet_serve.errors import (
    DataLossError,
    FailedPreconditionError,
    InvalidArgumentError,
    MunetError,
    NotFoundError,
    ResourceExhaustedError,
    UnavailableError,
)
from munet_serve.imaging import ImageError, InputSpec, check_pixels, decode

from ..records import PredictInput, TaskRecord, VersionRecord
from ..repository import READY
from ..service import ServeCore
from ..statistics import Duration, VersionStatistics
from . import tensors

SERVER_NAME = "munet-serve"
EXTENSIONS = ("classification", "model_repository", "model_configuration", "statistics", "binary_tensor_data")
PLATFORM, BACKEND = "onnxruntime_onnx", "onnxruntime"
INPUT, OUTPUT = "IMAGE", "LOGITS"
LABELS_FILE = "labels.txt"
MAX_VERSION = 2**32 - 1  # version numbers are uint32 in the native API


@dataclass(frozen=True)
class InputTensor:
    name: str
    datatype: str
    shape: tuple[int, ...]
    data: tensors.Data


@dataclass(frozen=True)
class RequestedOutput:
    name: str
    class_count: int = 0  # > 0: the classification extension
    binary: bool | None = None  # HTTP: send it as binary data (None: as the request says by default)


@dataclass(frozen=True)
class InferRequest:
    model: str
    version: str = ""
    id: str = ""
    inputs: list[InputTensor] = field(default_factory=list)
    outputs: list[RequestedOutput] = field(default_factory=list)


@dataclass(frozen=True)
class OutputTensor:
    name: str
    datatype: str
    shape: tuple[int, ...]
    data: tensors.Data
    binary: bool | None = None


@dataclass(frozen=True)
class InferResponse:
    model: str
    version: str
    id: str
    outputs: list[OutputTensor]


class KServeModels:
    """The protocol's calls over one server's domain (ServeCore)."""

    def __init__(self, core: ServeCore) -> None:
        self._core = core
        self._registry = core.registry
        self._stopping = False

    # --- health and metadata ---------------------------------------------------------------------------------------

    def stopping(self) -> None:
        """ServerReady answers false from now on (the server is shutting down)."""
        self._stopping = True

    def server_ready(self) -> bool:
        return not self._stopping

    def server_metadata(self) -> dict[str, Any]:
        return {"name": SERVER_NAME, "version": __version__, "extensions": list(EXTENSIONS)}

    def model_ready(self, name: str, version: str = "") -> bool:
        """The model answers requests at the version ("" is its current one): its task serves, and the version is
        published (a non-current one loads on its first request)."""
        if self._stopping or not self._registry.has_task(name):
            return False
        task = self._registry.get_task(name)
        try:
            number = self._version(task, version)
        except MunetError:
            return False
        if number is None or number == task.current_version:
            return self._core.repository.state(name).state == READY
        return not task.unloaded

    def model_metadata(self, name: str, version: str = "") -> dict[str, Any]:
        task = self._registry.get_task(name)
        record = self._version_record(task, version)
        spec, labels = self._spec(record), len(task.labels)
        return {
            "name": task.name,
            "versions": [str(v.version) for v in self._registry.list_versions(name)],
            "platform": PLATFORM,
            "inputs": [{"name": INPUT, "datatype": "UINT8", "shape": [-1, spec.image_size, spec.image_size, 3]}],
            "outputs": [{"name": OUTPUT, "datatype": "FP32", "shape": [-1, labels]}],
        }

    def model_config(self, name: str, version: str = "") -> dict[str, Any]:
        """The model's configuration as Triton's image client expects it: a batch dimension (max_batch_size > 0),
        one NHWC image input with its dims, one output with its labels."""
        task = self._registry.get_task(name)
        record = self._version_record(task, version)
        spec = self._spec(record)
        config = self._core.config
        parameters = {
            "labels": json.dumps(list(task.labels)),
            "version": "" if record is None else str(record.version),
            "accepted_inputs": "IMAGE as UINT8 [N,H,W,C] or [N,H,W] pixels of any size, FP32 [N,3,S,S] "
                               "preprocessed, or BYTES [N] encoded images",
            "mean": json.dumps(list(spec.mean)),
            "std": json.dumps(list(spec.std)),
        }
        return {
            "name": task.name,
            "platform": PLATFORM,
            "backend": BACKEND,
            "version_policy": {"all": {}},
            "max_batch_size": config.max_images_per_request,
            "input": [{"name": INPUT, "data_type": "TYPE_UINT8", "format": "FORMAT_NHWC",
                       "dims": [spec.image_size, spec.image_size, 3]}],
            "output": [{"name": OUTPUT, "data_type": "TYPE_FP32", "dims": [len(task.labels)],
                        "label_filename": LABELS_FILE}],
            "dynamic_batching": {"preferred_batch_size": [config.max_batch_images],
                                 "max_queue_delay_microseconds": int(config.batch_delay_ms * 1000)},
            "parameters": {k: {"string_value": v} for k, v in parameters.items()},
        }

    # --- inference -------------------------------------------------------------------------------------------------

    def infer(self, request: InferRequest) -> InferResponse:
        with triton_statuses():
            task = self._registry.get_task(request.model)
            version = self._version(task, request.version)
            inputs = self._inputs(request)
            wanted = self._outputs(request)
            prediction = self._core.predictor.predict(task.name, inputs, version)
        outputs = [self._output(o, prediction.logits, prediction.labels) for o in wanted]
        return InferResponse(prediction.task, str(prediction.version), request.id, outputs)

    # --- statistics ------------------------------------------------------------------------------------------------

    def statistics(self, name: str = "", version: str = "") -> dict[str, Any]:
        """Per model and version: images answered, batched runs, successes and failures, and the time spent
        waiting in the batcher and running in it. Every model (name "") or one; every version asked for ("") or
        one."""
        if not name and version:
            raise InvalidArgumentError("a version needs the model's name")
        tasks = [self._registry.get_task(name)] if name else self._registry.list_tasks()
        stats: list[VersionStatistics] = []
        for task in tasks:
            number = self._version(task, version)
            if number is not None:
                stats.append(self._core.statistics.of(task.name, number))
                continue
            seen = self._core.statistics.versions(task.name)
            if task.current_version is not None and task.current_version not in {s.version for s in seen}:
                seen.append(self._core.statistics.of(task.name, task.current_version))
            stats.extend(sorted(seen, key=lambda s: s.version))
        return {"model_stats": [_statistics(s) for s in stats]}

    # --- repository ------------------------------------------------------------------------------------------------

    def index(self, ready: bool = False) -> list[dict[str, Any]]:
        states = self._core.repository.index()
        return [{"name": s.name, "version": s.version, "state": s.state, "reason": s.reason}
                for s in states if not ready or s.state == READY]

    def load(self, name: str) -> None:
        self._core.repository.load(name)

    def unload(self, name: str) -> None:
        self._core.repository.unload(name)

    # --- internals -------------------------------------------------------------------------------------------------

    def _version(self, task: TaskRecord, version: str) -> int | None:
        """A model version string as a version number (None for "": the current one); NOT_FOUND if unpublished."""
        if not version:
            return None
        if not version.isdecimal() or int(version) < 1:
            raise InvalidArgumentError(f"model version {version!r} of {task.name!r} is not a version number: give "
                                       f"a published version as a decimal string, or \"\" for the current one")
        number = int(version)
        if number > MAX_VERSION:  # none such, and past what the registry's integers hold
            raise NotFoundError(f"task {task.name!r} has no version {version}")
        self._registry.get_version(task.name, number)  # NOT_FOUND: "task 'x' has no version 7"
        return number

    def _version_record(self, task: TaskRecord, version: str) -> VersionRecord | None:
        number = self._version(task, version)
        if number is None:
            number = task.current_version
        return None if number is None else self._registry.get_version(task.name, number)

    def _spec(self, record: VersionRecord | None) -> InputSpec:
        """The version's input spec; before the first version, the root's (what version 1 will take)."""
        if record is not None:
            return record.input
        root = self._registry.get_root()
        return root.input if root is not None else InputSpec(image_size=224)

    def _inputs(self, request: InferRequest) -> PredictInput:
        if len(request.inputs) != 1:
            raise InvalidArgumentError(f"model {request.model!r} takes one input, {INPUT!r}; the request has "
                                       f"{len(request.inputs)}")
        tensor = request.inputs[0]
        if tensor.name != INPUT:
            raise InvalidArgumentError(f"model {request.model!r} has no input {tensor.name!r}; its input is "
                                       f"{INPUT!r}")
        limit = self._core.config.max_images_per_request
        count = tensor.shape[0] if tensor.shape else 0
        if count > limit:
            raise InvalidArgumentError(f"{count} images in one request; the limit is {limit} (max_batch_size)")
        if count == 0:
            raise InvalidArgumentError(f"input {INPUT!r} holds no images (shape {list(tensor.shape)})")
        data = tensor.data
        try:
            if tensor.datatype == "UINT8":
                assert isinstance(data, np.ndarray)
                if data.ndim not in (3, 4):
                    raise InvalidArgumentError(f"UINT8 input {INPUT!r} must have shape [N, H, W, C] or [N, H, W], "
                                               f"got {list(data.shape)}")
                return PredictInput(pixels=[check_pixels(np.ascontiguousarray(a)) for a in data])
            if tensor.datatype == "FP32":
                assert isinstance(data, np.ndarray)
                if data.ndim != 4:
                    raise InvalidArgumentError(f"FP32 input {INPUT!r} must have shape [N, 3, S, S], got "
                                               f"{list(data.shape)}")
                return PredictInput(preprocessed=np.ascontiguousarray(data, dtype=np.float32))
            if tensor.datatype == tensors.BYTES:
                assert isinstance(data, list)
                if len(tensor.shape) > 2 or (len(tensor.shape) == 2 and tensor.shape[1] != 1):
                    raise InvalidArgumentError(f"BYTES input {INPUT!r} must have shape [N] or [N, 1] (one encoded "
                                               f"image each), got {list(tensor.shape)}")
                return PredictInput(pixels=[decode(e) for e in data])
        except ImageError as e:
            raise InvalidArgumentError(f"input {INPUT!r}: {e}") from e
        raise InvalidArgumentError(f"input {INPUT!r} has datatype {tensor.datatype}; it takes UINT8 pixels, FP32 "
                                   f"preprocessed images or BYTES encoded images")

    def _outputs(self, request: InferRequest) -> list[RequestedOutput]:
        for output in request.outputs:
            if output.name != OUTPUT:
                raise InvalidArgumentError(f"model {request.model!r} has no output {output.name!r}; its output is "
                                           f"{OUTPUT!r}")
            if output.class_count < 0:
                raise InvalidArgumentError(f"class_count must be positive, got {output.class_count}")
        return request.outputs or [RequestedOutput(OUTPUT)]

    @staticmethod
    def _output(wanted: RequestedOutput, logits: np.ndarray, labels: tuple[str, ...]) -> OutputTensor:
        logits = np.ascontiguousarray(logits, dtype=np.float32)
        if not wanted.class_count:
            return OutputTensor(OUTPUT, "FP32", tuple(logits.shape), logits, wanted.binary)
        k = min(wanted.class_count, logits.shape[1])
        best = np.argsort(-logits, axis=1, kind="stable")[:, :k]
        elements = [f"{logits[row, i]:.6f}:{i}:{labels[i]}".encode() for row in range(len(logits)) for i in best[row]]
        return OutputTensor(OUTPUT, tensors.BYTES, (len(logits), k), elements, wanted.binary)


@contextmanager
def triton_statuses() -> Iterator[None]:
    """The domain's errors as Triton reports them for an inference: a task that cannot answer yet is UNAVAILABLE,
    a request over the limits INVALID_ARGUMENT; the message stays."""
    try:
        yield
    except (FailedPreconditionError, DataLossError) as e:
        raise UnavailableError(e.details) from e
    except ResourceExhaustedError as e:
        raise InvalidArgumentError(e.details) from e


def _statistics(s: VersionStatistics) -> dict[str, Any]:
    def duration(d: Duration) -> dict[str, int]:
        return {"count": d.count, "ns": int(d.seconds * 1e9)}

    none = duration(Duration())
    return {
        "name": s.task,
        "version": str(s.version),
        "last_inference": s.last_inference_ms,
        "inference_count": s.inference_count,
        "execution_count": s.execution_count,
        "inference_stats": {
            "success": duration(s.success), "fail": duration(s.fail), "queue": duration(s.queue),
            "compute_input": duration(s.compute_input), "compute_infer": duration(s.compute_infer),
            "compute_output": duration(s.compute_output), "cache_hit": none, "cache_miss": none,
        },
        "batch_stats": [],
    }
