"""A path in PyTorch: the chain of its component modules, and the candidate being trained for a task.

`PathModule` runs exactly the chain the server runs as ONNX graphs. A `Candidate` knows, per slot, whether the
component is shared (frozen, published, referenced by id) or new to it (fresh or cloned, trainable, exported at
publish time).
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from munet_serve.clients.types import PathRef
from munet_serve.imaging import InputSpec

from .components import Component
from .config import Hyperparameters

logger = logging.getLogger(__name__)

__all__ = ["Candidate", "Origin", "PathModule", "Slot"]


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
        for module in self.slots.values():
            x = module(x)
        return x


class Origin(str, enum.Enum):
    """Where a candidate's component comes from."""

    SHARED = "shared"  # a published component, used frozen by reference
    FRESH = "fresh"  # newly initialised for this candidate (a head, an adapter)
    CLONE = "clone"  # a trainable copy of a published component


@dataclass
class Slot:
    """One slot of a candidate: its name, module, and (for shared or cloned ones) the published component id."""

    name: str
    module: Component
    origin: Origin
    component_id: str | None = None  # the shared component, or the parent of a clone

    def __post_init__(self) -> None:
        if self.origin is not Origin.FRESH and not self.component_id:
            raise ValueError(f"slot {self.name}: a {self.origin.value} component needs its component id")

    @property
    def trainable(self) -> bool:
        return self.origin is not Origin.SHARED


@dataclass
class Candidate:
    """A child path under training for a task.

    Attributes:
        task: the task it is trained for.
        slots: its components in execution order.
        hparams: its hyperparameters.
        input: how its input is preprocessed (the seed path's InputSpec).
        parent: the published path it descends from (PathRef("", 0) for the root).
        label: a short description for logs, e.g. "root" or "seed digits v3".
    """

    task: str
    slots: list[Slot]
    hparams: Hyperparameters
    input: InputSpec
    parent: PathRef | None
    label: str = ""
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
