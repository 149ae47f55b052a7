"""One task iteration of muNet (§4-§5): the seed phase, then generations of mutated candidates.

A task iteration starts from what the server holds: the root, every task's current path, and the locks they imply.
Its seed list is every other task's current path (most recent first) and the root; its population starts with the
task's own current path on a revisit. Each generation samples the dataset hyperparameters (§3.3), makes its
children (muNet: one unmutated child per seed first; then mutated children of decay-walk parents), trains them on one
batch stream through the executor, keeps those that improve on their same-task parent, and publishes a candidate as
soon as it improves on the task's current score. Where muNet and mu2Net differ (search space, parent policy and seed
phase, tie rule, mutation probability, momentum), the iteration asks the strategy of the configured variant
(evolver/strategy.py). The evolver's resume state (completed iterations, offspring counts) travels in the status the
server keeps.
"""

from __future__ import annotations

import logging
import math
import random
import sys
import threading
import zlib
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from munet_serve.clients.types import EvolutionStatus, PathVersion, RootInfo, TaskInfo

from .config import EvolverConfig, Hyperparameters
from .data import Augmentation, TaskData
from .executors import Executor, Generation, GenerationSettings
from .locks import Locks
from .mutate import ChildFactory, MutationSettings
from .path import Origin, Path, Slot
from .policy import ParentPolicy
from .prefix import cpu_has_native_bf16
from .publish import publish
from .score import accounted_params, size_factor
from .search_space import SearchSpace, neighbour
from .store import ComponentStore
from .strategy import Strategy, strategy_for
from .train import TrainResult

if TYPE_CHECKING:
    from munet_serve.clients import Client

logger = logging.getLogger(__name__)

__all__ = ["SystemView", "TaskIteration", "completed_iterations", "distinct_seeds", "generation_ds", "root_path"]

Report = Callable[[EvolutionStatus], None]


def root_path(root: RootInfo, store: ComponentStore, mu: float | None = None) -> Path:
    """The root as a path: its components held by reference, the method's default hyperparameters (with `mu` as
    mu2Net's per-path `_mu_`, which its children start from)."""
    slots = [Slot(c.name, store.get(c.id).module, Origin.SHARED, c.id) for c in root.components]
    layers = sum(1 for c in root.components if c.name.startswith("encoderblock_"))
    hparams = Hyperparameters(num_layers=layers, ds_image_size=root.input.image_size)
    if mu is not None:
        hparams = hparams.replace(_mu_=mu)
    return Path(task="", slots=slots, hparams=hparams, input=root.input, parent=None, label="root")


def published_path(version: PathVersion, store: ComponentStore) -> Path:
    """A task's published version as a path (its inheritance walk ends at the root)."""
    slots = []
    for c in version.components:
        stored = store.get(c.id)
        slots.append(Slot(c.name, stored.module, Origin.DERIVED if stored.derived else Origin.SHARED, c.id))
    return Path(
        task=version.task,
        slots=slots,
        hparams=Hyperparameters.from_dict(version.hparams),
        input=version.input,
        parent=version.parent,
        label=f"{version.task} v{version.version}",
        quality=version.metrics.validation_accuracy,
        score=version.metrics.score,
        version=version.version,
    )


def completed_iterations(task: TaskInfo) -> int:
    return int(task.evolution.state.get("completed_iterations", 0))


@dataclass
class SystemView:
    """The system as the server holds it: the root, each serving task's current path, and the locks."""

    root: Path
    root_info: RootInfo
    current: dict[str, Path]  # task -> current path, most recently published first
    locks: Locks

    @classmethod
    def load(cls, client: Client, root: RootInfo, store: ComponentStore, root_path_: Path | None = None) -> SystemView:
        versions: list[PathVersion] = []
        for task in client.list_tasks():
            if task.state == "serving":
                versions += [v for v in client.list_versions(task.name) if v.current]
        versions.sort(key=lambda v: (v.created_at.timestamp() if v.created_at else 0.0, v.version), reverse=True)
        current = {v.task: published_path(v, store) for v in versions}
        locks = Locks.build(
            [c.id for c in root.components], {t: [s.component_id or "" for s in p.slots] for t, p in current.items()}
        )
        return cls(root_path_ or root_path(root, store), root, current, locks)

    def accounted(self, path: Path, store: ComponentStore) -> float:
        """Parameters accounted to `path` for its task (§6): shared components count 1 / number of users."""
        others = self.locks.other_users(path.task)
        items = []
        for i, slot in enumerate(path.slots):
            pid = slot.published_id
            if pid is not None:
                items.append((pid, store.get(pid).num_params))
            else:
                items.append((f"new:{i}", sum(p.numel() for p in slot.module.parameters())))
        return accounted_params(items, others)


def distinct_seeds(seeds: Sequence[Path]) -> list[Path]:
    """Drops seeds whose components (without head) and input equal an earlier seed's: they would make the very same
    seed-phase candidate (a task seeded from the root shares every component but its head with the root)."""
    seen: set[tuple[tuple[str | None, ...], Any]] = set()
    kept = []
    for seed in seeds:
        key = (tuple(s.published_id for s in seed.slots if s.name != "head"), seed.input)
        if key not in seen:
            seen.add(key)
            kept.append(seed)
    return kept


def generation_ds(
    root_image_size: int,
    *,
    best: Path | None,
    latest_other: Path | None,
    space: SearchSpace,
    mu: float,
    rng: random.Random,
) -> dict[str, Any]:
    """A generation's dataset hyperparameters (§3.3): the defaults, overwritten by the values of the task's best path,
    then each mutated with probability mu by the neighbour rule.

    `latest_other` (given with EvolverConfig.transfer_ds) is the most recently published path of another task: a task
    with no path of its own yet starts from its augmentation (every ds_* key but the image size) instead of the
    defaults, so what one task's evolution learnt about cropping, flipping and colour carries to the next one.
    """
    values = {k: v for k, v in Hyperparameters(ds_image_size=root_image_size).to_dict().items() if k.startswith("ds_")}
    if best is not None:
        values.update({k: v for k, v in best.hparams.to_dict().items() if k.startswith("ds_")})
    elif latest_other is not None:
        values.update({k: v for k, v in latest_other.hparams.to_dict().items()
                       if k.startswith("ds_") and k != "ds_image_size"})
    if mu > 0:  # mu = 0 draws nothing, so the rng's sequence stays that of a generation without dataset mutation
        for key, choices in space.ranges.items():
            if key.startswith("ds_") and rng.random() < mu:
                values[key] = neighbour(values[key], choices, rng)
    return values


@dataclass
class _Best:
    path: Path
    result: TrainResult
    accounted: float


class TaskIteration:
    """One visit of the round-robin to a task: `run_seed_phase()` and/or `run()`; progress is reported."""

    def __init__(
        self,
        *,
        client: Client,
        task: TaskInfo,
        number: int,
        data: TaskData,
        system: SystemView,
        store: ComponentStore,
        executor: Executor,
        config: EvolverConfig,
        report: Report | None = None,
    ) -> None:
        self.client = client
        self.task = task
        self.number = number
        self.data = data
        self.system = system
        self.store = store
        self.executor = executor
        self.config = config
        self.report = report
        self.rng = random.Random(_seed(config.seed, task.name, number))
        self.strategy: Strategy = strategy_for(config.variant)
        root = system.root
        embed = root.slots[0].module.config
        self.space = self.strategy.search_space(
            root.hparams.num_layers, int(embed["patch_size"]), root.input.image_size, config.scale_factor
        )
        self.mutation = MutationSettings(mu=config.mutation_probability)
        self.own = system.current.get(task.name)
        self.population: list[Path] = []
        self.best_score = -math.inf
        state = task.evolution.state
        if self.own is not None:  # a revisit: the task's current path is its population's first member
            self.own.offspring = Counter(state.get("offspring", {}))
            self.own.score = self.own.quality * self._size_factor(system.accounted(self.own, store))
            self.population.append(self.own)
            self.best_score = self.own.score
        self.current = self.own
        self.seeds = distinct_seeds([p for t, p in system.current.items() if t != task.name] + [root])
        seed_offspring = state.get("seed_offspring", {})
        for seed in self.seeds:  # mu2Net's decay walk over the seeds counts their children for this task (§4.2)
            seed.offspring[task.name] = int(seed_offspring.get(_seed_key(seed), 0))
        self.policy: ParentPolicy = self.strategy.policy(task.name, self.seeds, self.population, self.rng)
        self.factory = ChildFactory(
            task=task.name, num_classes=len(task.labels), root=root, space=self.space, locks=system.locks,
            settings=self.mutation, strategy=self.strategy, rng=self.rng,
            torch_seed=_seed(config.seed, task.name, number, "torch"),
        )
        self.generation = 0
        self.trained = 0
        self.train_seconds = 0.0  # candidate-seconds: the generations' training time
        self.published: list[PathVersion] = []

    # --- running ---------------------------------------------------------------------------------------------------

    @property
    def done(self) -> bool:
        """An iteration trains samples_per_task candidates (muNet: 64 = 8 generations of 8)."""
        return self.trained >= self.config.search.samples_per_task

    def run_seed_phase(self, stop: threading.Event | None = None) -> None:
        """Runs generations while seeds remain (muNet's seed phase) and until the task has a version (mu2Net, which
        has no seed phase, publishes it from its first generation): the task's first version comes out of this."""
        while not self.done and (self.policy.in_seed_phase or self.current is None):
            self.step(stop)

    def run(self, stop: threading.Event | None = None) -> None:
        """Runs the remaining generations and ends the iteration."""
        bar = _progress(self.config.search.samples_per_task, self.trained, f"{self.task.name} iteration {self.number}")
        try:
            while not self.done:
                before = self.trained
                self.step(stop)
                if bar is not None:
                    bar.update(self.trained - before)
                    bar.set_postfix(best=f"{self.best_score:.4f}", refresh=False)
        finally:
            if bar is not None:
                bar.close()
        self._report("idle", f"iteration {self.number} done", completed=self.number)

    def step(self, stop: threading.Event | None = None) -> None:
        """One generation: children on one batch stream, retention, and a publish if the task improved."""
        self.generation += 1
        seed_phase = self.policy.in_seed_phase
        ds = self._dataset_hparams(mutate=not seed_phase)
        # Every generation has children_per_generation children; in the seed phase the seeds come first and mutated
        # children fill the rest of the generation (as the authors' code does).
        size = min(self.config.search.children_per_generation, self.config.search.samples_per_task - self.trained)
        children = []
        for k in range(size):
            parent, mutate = self.policy.next()
            label = f"i{self.number}g{self.generation}c{k}"
            children.append(self.factory.child(parent, ds, mutate=mutate, generation=self.generation, label=label))
            logger.debug("%s: %s child of %s", label, "mutated" if mutate else "seed", parent.label)
        accounted = [self.system.accounted(c, self.store) for c in children]
        budget = self.config.budget
        settings = GenerationSettings(
            augmentation=Augmentation.from_hparams(children[0].hparams),
            input=children[0].input,
            batch_seed=_seed(self.config.seed, self.task.name, self.number, self.generation),
            batch_size=budget.batch_size,
            steps_between_validations=budget.steps_between_validations(self.data.num_train),
            validations=budget.validations,
            max_validation_examples=budget.max_validation_examples,
            eval_batch_size=budget.eval_batch_size,
            improves=self.strategy.improves,
            inherit_momentum=self.strategy.inherits_momentum,
            bf16_prefix=cpu_has_native_bf16() if self.config.bf16_prefix is None else self.config.bf16_prefix,
        )
        generation = Generation(
            task=self.task.name,
            number=self.generation,
            candidates=children,
            initial_best=[c.ancestor.score if c.ancestor and c.ancestor.task == self.task.name else -math.inf
                          for c in children],
            score_factors=[self._size_factor(a) for a in accounted],
            settings=settings,
        )
        self._report("seeding" if seed_phase else "evolving", f"generation {self.generation}: training")
        results = self.executor.train(generation, self.data, stop)
        self.trained += len(children)
        self.train_seconds += sum(r.seconds for r in results)
        best: _Best | None = None
        for child, result, a in zip(children, results, accounted, strict=True):
            child.quality, child.score = result.quality, result.score
            if result.retained:
                self.population.append(child)
                if best is None or child.score > best.path.score:
                    best = _Best(child, result, a)
        logger.info(
            "task %s iteration %d generation %d: %d candidates (%s), %d retained, best score %.4f with %d params "
            "(current %.4f)",
            self.task.name, self.number, self.generation, len(children),
            ", ".join(f"{c.label} of {c.ancestor.label if c.ancestor else '?'}" for c in children),
            sum(r.retained for r in results), best.path.score if best else -math.inf,
            round(best.accounted) if best else 0, self.best_score,
        )
        # A task without a version has best_score -inf, which any retained (finite) score improves on.
        improved = best is not None and self.strategy.improves(best.path.score, self.best_score)
        if improved and best is not None and (stop is None or not stop.is_set()):
            self._publish(best)
        self._report("seeding" if self.policy.in_seed_phase else "evolving", f"generation {self.generation} done")

    # --- internals -------------------------------------------------------------------------------------------------

    @property
    def _ds_mu(self) -> float:
        mu = self.config.ds_mutation_probability
        return self.config.mutation_probability if mu is None else mu

    def _size_factor(self, accounted: float) -> float:
        return size_factor(accounted, self.system.root_info.params, self.config.scale_factor)

    def _dataset_hparams(self, mutate: bool) -> dict[str, Any]:
        ranked = sorted(self.population, key=lambda p: p.score, reverse=True)
        others = [p for t, p in self.system.current.items() if t != self.task.name]
        return generation_ds(
            self.system.root.input.image_size,
            best=ranked[0] if ranked else None,
            latest_other=others[0] if others and self.config.transfer_ds else None,
            space=self.space,
            mu=self._ds_mu if mutate else 0.0,
            rng=self.rng,
        )

    def _publish(self, best: _Best) -> None:
        version = publish(
            self.client,
            best.path,
            self.data,
            best.result,
            accounted_params=best.accounted,
            num_classes=len(self.task.labels),
            store=self.store,
            root_posembed_id=self._root_posembed_id(),
            eval_batch_size=self.config.budget.eval_batch_size,
            parity_tolerance=self.config.parity_tolerance,
        )
        self.best_score = best.path.score
        self.current = best.path
        self.published.append(version)

    def _root_posembed_id(self) -> str:
        slot = self.system.root.slot("posembed_input")
        assert slot is not None and slot.component_id
        return slot.component_id

    def state(self, completed: int) -> dict[str, Any]:
        """What a restarted evolver needs: completed iterations, the current path's offspring counts, and how many
        children of this task each seed has had (mu2Net's decay walk over the seeds reads them)."""
        offspring = dict(self.current.offspring) if self.current is not None else {}
        seeds = {_seed_key(s): s.offspring[self.task.name] for s in self.seeds if s.offspring[self.task.name]}
        return {"completed_iterations": completed, "offspring": offspring, "seed_offspring": seeds}

    def _report(self, phase: str, message: str, completed: int | None = None) -> None:
        if self.report is None:
            return
        done = self.number - 1 if completed is None else completed
        self.report(
            EvolutionStatus(
                phase=phase,
                iteration=self.number,
                generation=self.generation,
                candidates=self.trained,
                best_score=max(self.best_score, 0.0),
                message=message,
                state=self.state(done),
            )
        )


def _progress(total: int, done: int, label: str):  # type: ignore[no-untyped-def]
    """A generation progress bar when stderr is a terminal."""
    if not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=done, desc=label, unit="candidate", file=sys.stderr)


def _seed_key(seed: Path) -> str:
    """A seed's name in the task's saved state: "root", or "<task>@<version>" for another task's published path."""
    return f"{seed.task}@{seed.version}" if seed.task else "root"


def _seed(*parts: object) -> int:
    """A stable 32-bit seed from the evolver seed and names (Python's hash() is salted per process)."""
    return zlib.crc32(":".join(str(p) for p in parts).encode())

