"""The two variants of the method, muNet and mu2Net, as the list of what they do differently.

Everything else (mutations, training, scoring, locks) is one method. mu2Net (the follow-up made for tasks that
arrive one after another) differs from muNet in these ways, each a field here so that no code tests a name:

- no seed phase: every child is mutated, and the seeds are reached by the decay walk (§4.2);
- mu is a hyperparameter of each path (`_mu_`, auto-tuned; its keys are mutated in sorted order, `_mu_` first);
- ties are kept: a snapshot, and a publish, also on a score equal to the best so far;
- optimizer momentum travels with components (§5.3): a clone resumes from the trace stored with what it copies, and
  a trained component stores the trace of its best snapshot;
- a position embedding resized for a new image size is always cloned (trainable);
- `num_layers` is searched only by the size-scaled configurations (s < 1), not at s = 1.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from .config import VARIANT_NAMES
from .path import Path
from .policy import DecayPolicy, Mu2NetPolicy, ParentPolicy
from .search_space import SearchSpace

__all__ = ["MU2NET", "MUNET", "VARIANTS", "Variant", "variant"]


@dataclass(frozen=True)
class Variant:
    """What one variant of the method does where muNet and mu2Net differ (see the module docstring)."""

    name: str
    seed_phase: bool
    per_path_mu: bool
    accept_ties: bool
    inherit_momentum: bool
    clone_new_posembed: bool
    num_layers_only_size_scaled: bool

    def search_space(self, num_layers: int, patch_size: int, root_image_size: int, scale_factor: float) -> SearchSpace:
        """The hyperparameter lists this variant mutates, for a root and a scale factor."""
        space = (SearchSpace.mu2net if self.per_path_mu else SearchSpace.munet)(num_layers, patch_size,
                                                                                root_image_size)
        if self.num_layers_only_size_scaled and scale_factor >= 1.0:
            return SearchSpace({k: v for k, v in space.ranges.items() if k != "num_layers"}, space.variant)
        return space

    def policy(self, task: str, seeds: Sequence[Path], population: list[Path], rng: random.Random) -> ParentPolicy:
        """Parent selection: muNet's seed phase and decay walk, or mu2Net's decay walk over population then seeds."""
        if self.seed_phase:
            return DecayPolicy(task, seeds, population, rng)
        return Mu2NetPolicy(task, seeds, population, rng)


MUNET = Variant(
    name="munet", seed_phase=True, per_path_mu=False, accept_ties=False, inherit_momentum=False,
    clone_new_posembed=False, num_layers_only_size_scaled=False,
)
MU2NET = Variant(
    name="mu2net", seed_phase=False, per_path_mu=True, accept_ties=True, inherit_momentum=True,
    clone_new_posembed=True, num_layers_only_size_scaled=True,
)
VARIANTS: dict[str, Variant] = {v.name: v for v in (MUNET, MU2NET)}
assert tuple(VARIANTS) == VARIANT_NAMES  # the names the settings accept (config.py cannot import torch)


def variant(name: str) -> Variant:
    try:
        return VARIANTS[name]
    except KeyError:
        raise ValueError(f"unknown variant {name!r}; known: {', '.join(VARIANTS)}") from None
