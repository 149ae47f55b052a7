"""A path in PyTorch: the chain of its component modules, and the paths of the evolution.

`PathModule` runs exactly the chain the server runs as ONNX graphs. A `Path` knows, per slot, whether the component
is shared (frozen, published, referenced by id), derived from the root (a resized position embedding, frozen), or
new to it (fresh or cloned, trainable, exported when the path is published). A candidate is a path under training;
once retained it joins its task's population, keeping its ancestor for the inheritance walk of §2.2.
"""

from __future__ import annotations

import enum
import logging
import math
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from munet_serve.clients.types import PathRef
from munet_serve.imaging import InputSpec

from .components import Component
from .config import Hyperparameters

logger = logging.getLogger(__name__)

__all__ = ["Candidate", "Origin", "Path", "PathModule", "Slot"]


class PathModule(nn.Module):
    """The chain of a path's component modules, in order. Shared modules are held by reference."""

    def __init__(self, components: Sequence[tuple[str, nn.Module]]) -> None:
        super().__init__()
        if not components:
            raise ValueError("a path needs at least one component")
        names = [name for name, _ in components]
        if len(set(names)) != len(names):
            raise ValueError(f"slot names repeat in {names}")
        self.slots = nn.ModuleDict(dict(components))

    @classmethod
    def from_components(cls, components: Sequence[tuple[str, nn.Module]]) -> PathModule:
        return cls(components)

    @property
    def names(self) -> list[str]:
        return list(self.slots.keys())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_from(x, 0)

    def forward_from(self, x: torch.Tensor, start: int) -> torch.Tensor:
        """The chain from its `start`-th component on (x is the output of the components before it)."""
        for module in list(self.slots.values())[start:]:
            x = module(x)
        return x


class Origin(str, enum.Enum):
    """Where a candidate's component comes from."""

    SHARED = "shared"  # a published component, held by reference (frozen while someone else's lock is on it)
    DERIVED = "derived"  # the root's position embedding resized to another grid: root-locked, never trained
    FRESH = "fresh"  # newly initialised for this candidate (a head, an adapter)
    CLONE = "clone"  # a trainable copy of another path's component


@dataclass
class Slot:
    """One slot of a candidate: its name, module, and (for shared or cloned ones) the published component id."""

    name: str
    module: Component
    origin: Origin
    component_id: str | None = None  # SHARED: its id; CLONE: the published component it copies, if any

    def __post_init__(self) -> None:
        if self.origin is Origin.SHARED and not self.component_id:
            raise ValueError(f"slot {self.name}: a shared component needs its component id")

    @property
    def trainable(self) -> bool:
        return self.origin in (Origin.FRESH, Origin.CLONE)

    @property
    def published_id(self) -> str | None:
        """The id of the published component this slot holds by reference (None if not published yet)."""
        return self.component_id if self.origin in (Origin.SHARED, Origin.DERIVED) else None


@dataclass(eq=False)
class Path:
    """A path of the evolution: the root, a published path, a candidate under training, or a retained one.

    Attributes:
        task: the task it serves ("" for the root).
        slots: its components in execution order.
        hparams: its hyperparameters.
        input: how its input is preprocessed.
        parent: the nearest published path it descends from (PathRef("", 0) for the root), for the registry's
            lineage; None for the root itself.
        label: a short description for logs, e.g. "root" or "seed digits v3".
        ancestor: the path it was made from (walked to inherit components, §2.2); None for the root and for paths
            loaded from the server, whose inheritance ends at the root.
        quality: best validation accuracy; score: quality x the size factor (§6); -inf until trained.
        version: its published version (0 while unpublished).
        offspring: children made from it, per task (muNet counts its own task's, mu2Net every task's).
        generation: the generation that produced it.
    """

    task: str
    slots: list[Slot]
    hparams: Hyperparameters
    input: InputSpec
    parent: PathRef | None
    label: str = ""
    ancestor: Path | None = None
    quality: float = -math.inf
    score: float = -math.inf
    version: int = 0
    offspring: Counter[str] = field(default_factory=Counter)
    generation: int = 0
    _module: PathModule | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        for slot in self.slots:
            slot.module.requires_grad_(slot.trainable)

    @property
    def module(self) -> PathModule:
        if self._module is None:
            self._module = PathModule([(s.name, s.module) for s in self.slots])
        return self._module

    def trainable_slots(self) -> list[Slot]:
        return [s for s in self.slots if s.trainable]

    def trainable_parameters(self) -> Iterator[nn.Parameter]:
        for slot in self.trainable_slots():
            yield from slot.module.parameters()

    def num_new_params(self) -> int:
        return sum(p.numel() for p in self.trainable_parameters())

    def slot(self, name: str) -> Slot | None:
        return next((s for s in self.slots if s.name == name), None)

    def ancestors(self) -> Iterator[Path]:
        """This path's ancestor, its ancestor's ancestor, ... (the walk of §2.2 step 4a)."""
        path = self.ancestor
        while path is not None:
            yield path
            path = path.ancestor

    @property
    def published_ref(self) -> PathRef | None:
        """This path as a parent reference, if it is the root or a published version."""
        if not self.task:
            return PathRef("", 0)
        return PathRef(self.task, self.version) if self.version else None


Candidate = Path  # a path under training
