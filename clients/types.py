"""Plain dataclasses the SDK returns and takes, so callers never handle protobuf messages."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from munet_serve.artifacts import ComponentKind, count_params, read_component_metadata, sha256_hex
from munet_serve.imaging import InputSpec

__all__ = [
    "ComponentArtifact",
    "ComponentInfo",
    "ComponentKind",
    "DatasetInfo",
    "EvolutionStatus",
    "InputSpec",
    "LabelScore",
    "LiveRoute",
    "LoadedComponent",
    "Metrics",
    "PathComponent",
    "PathRef",
    "PathVersion",
    "Prediction",
    "PredictResult",
    "RootInfo",
    "ServingInfo",
    "SystemStats",
    "TaskEvent",
    "TaskInfo",
]


@dataclass(frozen=True)
class Metrics:
    validation_accuracy: float = 0.0
    test_accuracy: float = 0.0
    score: float = 0.0
    accounted_params: int = 0
    new_params: int = 0
    train_steps: int = 0
    train_seconds: float = 0.0


@dataclass(frozen=True)
class EvolutionStatus:
    """What the evolver is doing with a task. A report replaces the whole status, `state` included.

    `state` is the evolver's own resume state (JSON-like: str keys; str, number, bool, None, lists, dicts), kept by
    the server and opaque to it. Whole numbers come back as int; numbers travel as doubles (exact up to 2**53).
    """

    phase: str = ""
    iteration: int = 0
    generation: int = 0
    candidates: int = 0
    best_score: float = 0.0
    message: str = ""
    worker: str = ""
    updated_at: datetime | None = None  # stamped by the server
    state: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DatasetInfo:
    id: str
    train_examples: int
    validation_examples: int
    test_examples: int
    image_shape: tuple[int, ...]
    size_bytes: int


@dataclass(frozen=True)
class TaskInfo:
    name: str
    labels: list[str]
    state: str  # "pending" or "serving"
    current_version: int = 0
    num_versions: int = 0
    description: str = ""
    metrics: Metrics = field(default_factory=Metrics)
    input: InputSpec | None = None
    evolution: EvolutionStatus = field(default_factory=EvolutionStatus)
    dataset: DatasetInfo | None = None
    created_at: datetime | None = None
    # Parameters accounted to the current path now (shared components divided among the tasks using them); it
    # moves as other tasks share components. metrics.accounted_params is the value at publish time.
    accounted_params: int = 0


@dataclass(frozen=True)
class SystemStats:
    """Parameters of the multitask system: all serving tasks' current paths, each shared component counted once."""

    distinct_params: int = 0
    params_per_task: float = 0.0  # distinct_params / serving_tasks
    serving_tasks: int = 0
    root_params: int = 0  # P_root; 0 when no root is set

    @property
    def root_fraction(self) -> float:
        """Parameters per task as a fraction of the root's parameters (0 when no root is set)."""
        return self.params_per_task / self.root_params if self.root_params else 0.0


@dataclass(frozen=True)
class PathComponent:
    """One slot of a path: the muNet component name (e.g. "encoderblock_0") and the component id."""

    name: str
    id: str


@dataclass(frozen=True)
class PathRef:
    """A published path: a task's version, or the root when task is ""."""

    task: str
    version: int = 0

    @property
    def is_root(self) -> bool:
        return not self.task


@dataclass(frozen=True)
class PathVersion:
    task: str
    version: int
    components: list[PathComponent]
    hparams: dict[str, Any]
    metrics: Metrics
    input: InputSpec
    parent: PathRef | None = None
    created_at: datetime | None = None
    current: bool = False


@dataclass(frozen=True)
class ComponentInfo:
    id: str
    kind: ComponentKind
    config: dict[str, Any]
    num_params: int
    parity_max_abs_error: float = 0.0
    lineage: dict[str, Any] = field(default_factory=dict)
    onnx_bytes: int = 0
    weights_bytes: int = 0
    created_at: datetime | None = None


@dataclass(frozen=True)
class ComponentArtifact:
    """A component with its files: safetensors weights (which define its id) and, for upload, its ONNX graph."""

    info: ComponentInfo
    weights: bytes
    onnx: bytes | None = None

    @classmethod
    def create(cls, weights: bytes, onnx: bytes, parity_max_abs_error: float) -> ComponentArtifact:
        """Builds an artifact from a weights file (whose metadata carries kind, config, lineage) and its graph."""
        meta = read_component_metadata(weights)
        info = ComponentInfo(
            id=sha256_hex(weights),
            kind=meta.kind,
            config=meta.config,
            num_params=count_params(weights),
            parity_max_abs_error=float(parity_max_abs_error),
            lineage=meta.lineage,
            onnx_bytes=len(onnx),
            weights_bytes=len(weights),
        )
        return cls(info=info, weights=weights, onnx=onnx)

    @property
    def id(self) -> str:
        return self.info.id


@dataclass(frozen=True)
class RootInfo:
    source: str
    components: list[PathComponent]
    config: dict[str, Any]
    params: int
    input: InputSpec


@dataclass(frozen=True)
class LabelScore:
    label: str
    index: int
    score: float


@dataclass(frozen=True)
class Prediction:
    top: list[LabelScore]
    logits: np.ndarray | None = None

    @property
    def label(self) -> str:
        return self.top[0].label


@dataclass(frozen=True)
class PredictResult:
    task: str
    version: int
    predictions: list[Prediction]


@dataclass(frozen=True)
class TaskEvent:
    type: str  # "snapshot", "registered", "published", "rolled_back", "deleted", "status"
    task: TaskInfo
    version: int = 0
    time: datetime | None = None


@dataclass(frozen=True)
class LoadedComponent:
    """One server session: a component, or a fused segment of components (`component_ids`, in order)."""

    id: str
    kind: ComponentKind
    tasks: list[str]
    component_ids: list[str]


@dataclass(frozen=True)
class LiveRoute:
    task: str
    version: int
    component_ids: list[str]


@dataclass(frozen=True)
class ServingInfo:
    providers: list[str]
    sessions: list[LoadedComponent]
    routes: list[LiveRoute]
    server_version: str = ""
