"""Parent selection (§4): muNet's seed phase and decay walk, and mu2Net's variant.

The decay walk goes down a list sorted by score, best first, accepting each path with probability
0.5^(children it already produced for this task): an unexplored top path is always taken, and each child it produces
halves its chance, pushing exploration down the ranking.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from .path import Path

__all__ = ["DecayPolicy", "Mu2NetPolicy", "ParentPolicy", "decay_walk"]


def decay_walk(paths: Sequence[Path], task: str, rng: random.Random) -> Path | None:
    """Walks `paths` in the given order, accepting each with probability 0.5 ** offspring[task]."""
    for path in paths:
        if rng.random() < 0.5 ** path.offspring[task]:
            return path
    return None


def by_score(population: Sequence[Path]) -> list[Path]:
    """Highest score first; ties go to the most recent (later in the population)."""
    return [p for _, p in sorted(enumerate(population), key=lambda ip: (-ip[1].score, -ip[0]))]


class ParentPolicy:
    """Chooses the parent of each child of a task iteration. `next()` returns (parent, mutate)."""

    def __init__(self, task: str, seeds: Sequence[Path], population: list[Path], rng: random.Random) -> None:
        self.task = task
        self.seeds = list(seeds)
        self.population = population  # the task's paths of this iteration (shared with the caller, grows)
        self.rng = rng

    @property
    def in_seed_phase(self) -> bool:
        return self.seeds_remaining > 0

    @property
    def seeds_remaining(self) -> int:
        return 0

    def next(self) -> tuple[Path, bool]:
        raise NotImplementedError


class DecayPolicy(ParentPolicy):
    """muNet's PPDecay (§4.1): first one unmutated child per seed, in order; then the decay walk over the task's
    population, falling back to a uniform pick among seeds and population."""

    def __init__(
        self, task: str, seeds: Sequence[Path], population: list[Path], rng: random.Random, seed_phase: bool = True
    ) -> None:
        super().__init__(task, seeds, population, rng)
        self._pending_seeds = list(seeds) if seed_phase else []

    @property
    def seeds_remaining(self) -> int:
        return len(self._pending_seeds)

    def next(self) -> tuple[Path, bool]:
        if self._pending_seeds:
            return self._pending_seeds.pop(0), False
        parent = decay_walk(by_score(self.population), self.task, self.rng)
        if parent is None:
            parent = self.rng.choice([*self.seeds, *self.population])
        return parent, True


class Mu2NetPolicy(ParentPolicy):
    """mu2Net (§4.2): no separate seed phase, every child mutated. The decay walk over the task's population, then
    over the seeds (shuffled once at task start, rotated past each accepted seed), then a uniform pick."""

    def __init__(self, task: str, seeds: Sequence[Path], population: list[Path], rng: random.Random) -> None:
        super().__init__(task, seeds, population, rng)
        self.rng.shuffle(self.seeds)

    def next(self) -> tuple[Path, bool]:
        parent = decay_walk(by_score(self.population), self.task, self.rng)
        if parent is None:
            parent = decay_walk(self.seeds, self.task, self.rng)
            if parent is not None:
                i = self.seeds.index(parent)
                self.seeds = self.seeds[i + 1 :] + self.seeds[: i + 1]
        if parent is None:
            parent = self.rng.choice([*self.seeds, *self.population])
        return parent, True
