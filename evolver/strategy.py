"""The two variants of the method, muNet and mu2Net, as strategies: one object per variant, chosen once.

Everything else (mutations, training, scoring, locks) is one method. A task iteration looks its strategy up once
from `EvolverConfig.variant` (`strategy_for`) and asks it, wherever the variants differ:

- `search_space`: the hyperparameter lists mutated. muNet's auto-tune lists (§3.2); mu2Net's have larger learning
  rate and momentum lists and the per-path `_mu_`, their keys are mutated in sorted order (`_mu_` first), and
  `num_layers` is searched only by the size-scaled configurations (s < 1), not at s = 1;
- `policy`: parent selection, and with it the seed phase. muNet first makes one unmutated child per seed, then
  walks its population (§4.1); mu2Net has no seed phase: every child is mutated and the seeds are reached by the
  decay walk (§4.2);
- `improves`: the tie rule. muNet keeps a snapshot, and publishes, only on a score above the best so far; mu2Net
  also on an equal one;
- `mutation_probability`: where a child's mu comes from. muNet's is the configured one; mu2Net's is the path's own
  auto-tuned `_mu_`;
- `inherits_momentum`: mu2Net's optimizer momentum travels with components (§5.3): a clone resumes from the trace
  stored with what it copies, and a trained component stores the trace of its best snapshot;
- `clones_resized_posembed`: mu2Net always clones (so trains) a position embedding resized for a new image size;
  muNet shares it frozen, or clones it with probability mu.
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from .config import VARIANT_NAMES
from .path import Path
from .policy import DecayPolicy, Mu2NetPolicy, ParentPolicy
from .search_space import SearchSpace

__all__ = ["MU2NET", "MUNET", "STRATEGIES", "Mu2Net", "MuNet", "Strategy", "strategy_for"]


class Strategy(ABC):
    """What one variant of the method does where muNet and mu2Net differ (see the module docstring).

    Strategies hold no state, so they pickle (a Ray worker gets the tie rule as a bound method).
    """

    inherits_momentum: ClassVar[bool]  # clones resume from the momentum trace stored with their component
    clones_resized_posembed: ClassVar[bool]  # a position embedding resized for a new image size always trains

    @abstractmethod
    def search_space(self, num_layers: int, patch_size: int, root_image_size: int, scale_factor: float) -> SearchSpace:
        """The hyperparameter lists this variant mutates, for a root (its blocks, patch and image size) and the
        scale factor s."""

    @abstractmethod
    def policy(self, task: str, seeds: Sequence[Path], population: list[Path], rng: random.Random) -> ParentPolicy:
        """The parent policy of a task iteration (which makes the seed phase's children, if the variant has one)."""

    @abstractmethod
    def improves(self, score: float, best: float) -> bool:
        """The tie rule: whether `score` improves on `best`, for a training snapshot and for a publish."""

    @abstractmethod
    def mutation_probability(self, hparams: Mapping[str, Any], configured: float) -> float:
        """The mutation probability of a child's draws, given its hyperparameters and the configured mu."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class MuNet(Strategy):
    """muNet: a seed phase, then the decay walk; strict improvement; one configured mu."""

    inherits_momentum = False
    clones_resized_posembed = False

    def search_space(self, num_layers: int, patch_size: int, root_image_size: int, scale_factor: float) -> SearchSpace:
        return SearchSpace.munet(num_layers, patch_size, root_image_size)

    def policy(self, task: str, seeds: Sequence[Path], population: list[Path], rng: random.Random) -> ParentPolicy:
        return DecayPolicy(task, seeds, population, rng)  # one unmutated child per seed first: the seed phase

    def improves(self, score: float, best: float) -> bool:
        return score > best

    def mutation_probability(self, hparams: Mapping[str, Any], configured: float) -> float:
        return configured


class Mu2Net(Strategy):
    """mu2Net: no seed phase, the decay walk over the population then the seeds; ties kept; a per-path mu;
    momentum carried by components; a resized position embedding always trains."""

    inherits_momentum = True
    clones_resized_posembed = True

    def search_space(self, num_layers: int, patch_size: int, root_image_size: int, scale_factor: float) -> SearchSpace:
        space = SearchSpace.mu2net(num_layers, patch_size, root_image_size)
        if scale_factor >= 1.0:  # num_layers is searched only with a size scale
            return SearchSpace({k: v for k, v in space.ranges.items() if k != "num_layers"})
        return space

    def policy(self, task: str, seeds: Sequence[Path], population: list[Path], rng: random.Random) -> ParentPolicy:
        return Mu2NetPolicy(task, seeds, population, rng)  # every child mutated: no seed phase

    def improves(self, score: float, best: float) -> bool:
        return score >= best

    def mutation_probability(self, hparams: Mapping[str, Any], configured: float) -> float:
        return float(hparams.get("_mu_", configured))


MUNET = MuNet()
MU2NET = Mu2Net()
STRATEGIES: dict[str, Strategy] = {"munet": MUNET, "mu2net": MU2NET}
assert tuple(STRATEGIES) == VARIANT_NAMES  # the names the settings accept (config.py cannot import torch)


def strategy_for(variant: str) -> Strategy:
    """The strategy of a variant name (`EvolverConfig.variant`)."""
    try:
        return STRATEGIES[variant]
    except KeyError:
        raise ValueError(f"unknown variant {variant!r}; known: {', '.join(STRATEGIES)}") from None
