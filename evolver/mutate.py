"""Building a child path from a parent (§2.2) with every mutation of §2.3.

In order: copy the parent's hyperparameters and overwrite the generation's ds_* values; mutate hyperparameters by the
neighbour rule (num_layers, adapter_dim, opt_*, and mu2Net's _mu_), each with probability mu; insert residual
adapters with probability mu per block (an adapter starts as the identity); then resolve each component name by
walking the ancestors: a trainable (unlocked) component is always deep-copied, a frozen one is shared or, with
probability mu, deep-copied (layer cloning; `encoder_norm` always); a head comes only from the same task, otherwise it
is fresh and zero-initialised; a position embedding for a new image size is the root's, resized (shared frozen or,
with probability mu, cloned; always cloned where the strategy says so, mu2Net's). Where mu comes from is the
strategy's too (evolver/strategy.py). In the seed phase (`mutate=False`) nothing is drawn: the child copies the seed
and only its fresh head (and anything already trainable) trains.
"""

from __future__ import annotations

import copy
import logging
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from munet_serve.imaging import InputSpec

from .components import Component, PositionEmbedding, fresh_adapter, fresh_head
from .config import Hyperparameters
from .locks import Locks
from .path import Origin, Path, Slot
from .search_space import SearchSpace, is_mutable_here, neighbour
from .strategy import Strategy

logger = logging.getLogger(__name__)

__all__ = ["ChildFactory", "MutationSettings", "resize_posembed", "slot_names"]

_ADAPTER = re.compile(r"^residual_adapter_(\d+)$")


@dataclass(frozen=True)
class MutationSettings:
    """mu: the configured mutation probability (muNet's global one; mu2Net's default `_mu_`: the strategy says
    which a child's draws use). mutate_adapters: residual adapters are inserted. force_finetune: components a mutated
    child always clones."""

    mu: float = 0.1
    mutate_adapters: bool = True
    force_finetune: tuple[str, ...] = ("encoder_norm",)

    def __post_init__(self) -> None:
        if not 0.0 <= self.mu <= 1.0:
            raise ValueError(f"mutation probability must be in [0, 1], got {self.mu}")


def slot_names(num_layers: int, adapter_layers: tuple[int, ...]) -> list[str]:
    """The component names a path with this architecture needs, in execution order (§1.2)."""
    names = ["embedding", "cls", "posembed_input"]
    for i in range(num_layers):
        if i in adapter_layers:
            names.append(f"residual_adapter_{i}")
        names.append(f"encoderblock_{i}")
    return [*names, "encoder_norm", "head"]


def resize_posembed(module: PositionEmbedding, grid: tuple[int, int]) -> PositionEmbedding:
    """The position embedding on another patch grid: the patch rows resized by linear interpolation with the
    corners kept (vit_jax's order-1 zoom), the class-token row kept as it is."""
    dim = module.config["embed_dim"]
    resized = PositionEmbedding(dim, grid)
    with torch.no_grad():
        cls_row, patches = module.pos_embed[:, :1], module.pos_embed[:, 1:]
        gh, gw = module.grid
        x = patches.reshape(1, gh, gw, dim).permute(0, 3, 1, 2)
        y = F.interpolate(x, size=grid, mode="bilinear", align_corners=True) if (gh, gw) != grid else x
        resized.pos_embed.copy_(torch.cat([cls_row, y.permute(0, 2, 3, 1).reshape(1, -1, dim)], dim=1))
    return resized.requires_grad_(False).eval()


def _clone(module: Component) -> Component:
    return copy.deepcopy(module).requires_grad_(True)


class ChildFactory:
    """Makes the children of one task iteration.

    Args:
        task: the task being evolved; num_classes: its label count.
        root: the root path (the end of every inheritance walk).
        space: the search space; locks: who holds a lock on which published component.
        settings: mu and the structural switches.
        strategy: the variant's strategy: where a child's mu comes from, and whether a resized position embedding
            always trains.
        rng: every Bernoulli and neighbour draw; torch_seed: seeds fresh adapters.
    """

    def __init__(
        self,
        *,
        task: str,
        num_classes: int,
        root: Path,
        space: SearchSpace,
        locks: Locks,
        settings: MutationSettings,
        strategy: Strategy,
        rng: random.Random,
        torch_seed: int = 0,
    ) -> None:
        self.task = task
        self.num_classes = num_classes
        self.root = root
        self.space = space
        self.locks = locks
        self.settings = settings
        self.strategy = strategy
        self.rng = rng
        self._generator = torch.Generator().manual_seed(torch_seed)
        root_posembed = root.slot("posembed_input")
        if root_posembed is None or not isinstance(root_posembed.module, PositionEmbedding):
            raise ValueError("the root path has no position embedding")
        self._root_posembed = root_posembed
        self._patch = int(root.slots[0].module.config["patch_size"])
        self._dim = int(root_posembed.module.config["embed_dim"])
        self._derived: dict[tuple[int, int], PositionEmbedding] = {}

    # --- hyperparameters -------------------------------------------------------------------------------------------

    def _mu(self, values: Mapping[str, Any]) -> float:
        return self.strategy.mutation_probability(values, self.settings.mu)

    def child_hparams(self, parent: Path, ds: Mapping[str, Any], mutate: bool) -> Hyperparameters:
        """Steps 1-3: copied hyperparameters, the generation's ds_*, neighbour mutations, adapter insertion."""
        values = {**parent.hparams.to_dict(), **ds}
        if not mutate:
            return Hyperparameters.from_dict(values)
        mu = self._mu(values)
        for key, choices in self.space.ranges.items():
            if self.rng.random() < mu and is_mutable_here(key):
                values[key] = neighbour(values[key], choices, self.rng)
                mu = self._mu(values)  # a mutated per-path `_mu_` (mu2Net) drives the rest of the child's draws
        adapters = set(values["adapter_layers"])
        if self.settings.mutate_adapters:
            for i in range(values["num_layers"]):
                if self.rng.random() < mu and i not in adapters:
                    adapters.add(i)
        values["adapter_layers"] = tuple(sorted(i for i in adapters if i < values["num_layers"]))
        return Hyperparameters.from_dict(values)

    # --- components ------------------------------------------------------------------------------------------------

    def child(
        self, parent: Path, ds: Mapping[str, Any], *, mutate: bool, generation: int = 0, label: str = ""
    ) -> Path:
        """A new candidate for the task from `parent` (§2.2); counts the offspring on the parent (step 5)."""
        hparams = self.child_hparams(parent, ds, mutate)
        mu = self._mu(hparams.to_dict())
        slots = [
            self._resolve(name, parent, hparams, mutate, mu)
            for name in slot_names(hparams.num_layers, hparams.adapter_layers)
        ]
        parent.offspring[self.task] += 1
        spec = self.root.input
        input = InputSpec(image_size=hparams.ds_image_size, mean=spec.mean, std=spec.std)
        parent_ref = parent.published_ref or parent.parent
        label = label or f"g{generation}"
        return Path(
            task=self.task, slots=slots, hparams=hparams, input=input, parent=parent_ref, label=label,
            ancestor=parent, generation=generation,
        )

    def _frozen(self, slot: Slot) -> bool:
        if slot.origin is Origin.DERIVED:
            return True
        pid = slot.published_id
        return pid is not None and self.locks.frozen_for(pid, self.task)

    def _resolve(self, name: str, parent: Path, h: Hyperparameters, mutate: bool, mu: float) -> Slot:
        source = self._inherit(name, parent, h)
        if source is None:
            return self._fresh(name, h, mutate, mu)
        if not self._frozen(source):  # trainable in its owner: never trained in place, always a copy
            return Slot(name, _clone(source.module), Origin.CLONE, source.published_id or source.component_id)
        if mutate and (name in self.settings.force_finetune or self.rng.random() < mu):  # layer cloning
            return Slot(name, _clone(source.module), Origin.CLONE, source.published_id)
        return Slot(name, source.module, source.origin, source.component_id)

    def _inherit(self, name: str, parent: Path, h: Hyperparameters) -> Slot | None:
        """Step 4a: the nearest ancestor's component of that name, skipping foreign heads and wrong shapes."""
        grid = self._grid(h.ds_image_size)
        for path in (parent, *parent.ancestors(), self.root):
            slot = path.slot(name)
            if slot is None:
                continue
            if name == "head" and path.task != self.task:
                continue  # heads come only from the same task
            if name == "posembed_input" and tuple(slot.module.config["grid"]) != grid:
                continue  # trained at another image size
            if _ADAPTER.match(name) and slot.module.config["adapter_dim"] != h.adapter_dim:
                continue
            return slot
        return None

    def _fresh(self, name: str, h: Hyperparameters, mutate: bool, mu: float) -> Slot:
        """Steps 4c-4d: a resized root position embedding, a zero head, an identity adapter."""
        if name == "head":
            return Slot(name, fresh_head(self._dim, self.num_classes), Origin.FRESH)
        if _ADAPTER.match(name):
            return Slot(name, fresh_adapter(self._dim, h.adapter_dim, generator=self._generator), Origin.FRESH)
        if name == "posembed_input":
            derived = self.derived_posembed(self._grid(h.ds_image_size))
            if self.strategy.clones_resized_posembed or (mutate and self.rng.random() < mu):
                return Slot(name, _clone(derived), Origin.CLONE, None)
            return Slot(name, derived, Origin.DERIVED, None)
        raise ValueError(f"no ancestor has {name} and it cannot be created fresh (the root has fewer blocks)")

    def _grid(self, image_size: int) -> tuple[int, int]:
        if image_size % self._patch:
            raise ValueError(f"image size {image_size} is not a multiple of the patch size {self._patch}")
        return (image_size // self._patch, image_size // self._patch)

    def derived_posembed(self, grid: tuple[int, int]) -> PositionEmbedding:
        """The root's position embedding resized to `grid`, made once per grid and shared (root-locked)."""
        if grid not in self._derived:
            self._derived[grid] = resize_posembed(self._root_posembed.module, grid)  # type: ignore[arg-type]
        return self._derived[grid]
