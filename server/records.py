"""The plain records the server's domain takes and returns: no protobuf here (codec.py converts to and from it).

The stored ones (a task, its dataset, a component, a version, the root) are what the registry reads and writes;
the others are what a request asks for or an answer carries.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from munet_serve.artifacts import ComponentKind
from munet_serve.imaging import InputSpec

from .accounting import ParamAccount

Slots = tuple[tuple[str, str], ...]  # (component name, component id) in execution order

# --- stored ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DatasetRecord:
    id: str
    train: int
    validation: int
    test: int
    image_shape: tuple[int, ...]
    size_bytes: int


@dataclass(frozen=True)
class TaskRecord:
    name: str
    labels: tuple[str, ...]
    description: str
    dataset_id: str
    current_version: int | None
    status: dict[str, Any]
    created_at: float
    unloaded: bool = False  # taken out of service by an unload (it keeps its versions) until a load

    @property
    def state(self) -> str:
        return "pending" if self.current_version is None else "serving"


@dataclass(frozen=True)
class ComponentRecord:
    id: str
    kind: ComponentKind
    config: dict[str, Any]
    lineage: dict[str, Any]
    num_params: int
    parity_max_abs_error: float
    onnx_bytes: int
    weights_bytes: int
    created_at: float = 0.0
    onnx_sha256: str = ""  # the ONNX graph's hash (the id is the weights'): checked before a session loads it


@dataclass(frozen=True)
class ComponentFiles:
    """A verified component on its way in: its record and its two files."""

    record: ComponentRecord
    weights: bytes
    onnx: bytes


@dataclass(frozen=True)
class NewVersion:
    """What a publish asks to become the task's next version, checked."""

    components: Slots
    hparams: dict[str, Any]
    metrics: dict[str, Any]
    input: InputSpec
    parent: tuple[str, int] | None = None


@dataclass(frozen=True)
class VersionRecord:
    task: str
    version: int
    components: Slots
    hparams: dict[str, Any]
    metrics: dict[str, Any]
    input: InputSpec
    parent: tuple[str, int] | None
    created_at: float

    @property
    def component_ids(self) -> tuple[str, ...]:
        return tuple(cid for _, cid in self.components)


@dataclass(frozen=True)
class RootRecord:
    source: str
    components: Slots
    config: dict[str, Any] = field(default_factory=dict)
    params: int = 0
    input: InputSpec = field(default_factory=lambda: InputSpec(image_size=224))


# --- views of stored state -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TaskView:
    """A task with what GetTask shows about it."""

    task: TaskRecord
    dataset: DatasetRecord
    current: VersionRecord | None
    num_versions: int
    accounted_params: int = 0  # live, from every task's current path (see accounting.py); set by tasks.py


@dataclass(frozen=True)
class TaskListing:
    """Tasks as ListTasks shows them, with their live accounted parameters and the system's figures."""

    views: list[TaskView]
    params: ParamAccount


@dataclass(frozen=True)
class DatasetFile:
    """A task's dataset: its record and the file that holds it."""

    record: DatasetRecord
    path: Path


@dataclass(frozen=True)
class ComponentPaths:
    """A stored component: its record and where its two files lie."""

    record: ComponentRecord
    weights: Path
    onnx: Path


@dataclass(frozen=True)
class StoredComponents:
    """What an upload of components did: the ids it stored and the ids that were stored already."""

    stored: list[str]
    existing: list[str]


# --- requests --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TaskSpec:
    """A task to register, as the client asked for it (tasks.py checks it)."""

    name: str
    labels: tuple[str, ...]
    description: str = ""
    image_size: int = 0  # 0 keeps the first example's size
    validation_fraction: float = 0.0  # 0: the default split
    test_fraction: float = 0.0


@dataclass(frozen=True)
class Example:
    """One example of a dataset to register: decoded pixels (uint8 [H, W] or [H, W, C]), its label index, its split
    (0: the server assigns one)."""

    pixels: np.ndarray
    label: int
    split: int = 0


@dataclass(frozen=True)
class InputFields:
    """An input spec as the client sent it: an empty mean or std means the default (paths.input_spec checks it)."""

    image_size: int
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()


@dataclass(frozen=True)
class PathHeader:
    """A path to publish as the client sent it, before its checks (versions.py makes it a NewVersion)."""

    task: str
    components: Slots
    hparams: dict[str, Any]
    metrics: dict[str, Any]
    input: InputFields
    parent: tuple[str, int] | None = None


@dataclass(frozen=True)
class ComponentUpload:
    """A component as the client sent it: what it says about it and its two files (uploads.py verifies it)."""

    id: str
    kind: ComponentKind | int  # an int: a kind number this server does not know
    lineage: dict[str, Any]
    parity_max_abs_error: float
    weights: bytes
    onnx: bytes


@dataclass(frozen=True)
class PredictInput:
    """Images of a predict request: raw uint8 pixels to preprocess, or an already preprocessed float32 batch."""

    pixels: list[np.ndarray] | None = None
    preprocessed: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.pixels) if self.pixels is not None else len(self.preprocessed)  # type: ignore[arg-type]


# --- serving ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServedPath:
    """A path to load as a route: the version it serves (0: a published path not numbered yet), its components'
    (id, kind) in execution order and its input spec."""

    version: int
    components: tuple[tuple[str, ComponentKind], ...]
    input: InputSpec

    @property
    def component_ids(self) -> tuple[str, ...]:
        return tuple(cid for cid, _ in self.components)


@dataclass(frozen=True)
class Prediction:
    """What a predict answers: the version of the task that ran, its labels and the logits [N, len(labels)]."""

    task: str
    version: int
    labels: tuple[str, ...]
    logits: np.ndarray


@dataclass(frozen=True)
class LoadedSession:
    """One loaded session: its id, its first component's kind, the tasks whose routes run it, its components."""

    id: str
    kind: ComponentKind
    tasks: list[str]
    component_ids: tuple[str, ...]


@dataclass(frozen=True)
class LiveRoute:
    """One task's live route: the version it serves and its components."""

    task: str
    version: int
    component_ids: tuple[str, ...]


@dataclass(frozen=True)
class ServingInfo:
    """What the server runs right now."""

    providers: tuple[str, ...]
    sessions: list[LoadedSession]
    routes: list[LiveRoute]
    server_version: str
