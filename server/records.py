"""The records of the server's stored state (a task, its dataset, a component, a version, the root): what the
registry reads and writes and the rest of the server passes around."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from munet_serve.artifacts import ComponentKind
from munet_serve.imaging import InputSpec

Slots = tuple[tuple[str, str], ...]  # (component name, component id) in execution order

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


@dataclass(frozen=True)
class ComponentFiles:
    """A component on its way in: its record and its two files."""

    record: ComponentRecord
    weights: bytes
    onnx: bytes


@dataclass(frozen=True)
class NewVersion:
    """What a publish asks to become the task's next version."""

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


@dataclass(frozen=True)
class TaskView:
    """A task with what GetTask shows about it."""

    task: TaskRecord
    dataset: DatasetRecord
    current: VersionRecord | None
    num_versions: int
    accounted_params: int = 0  # live, from every task's current path (see accounting.py); set by the service
