"""The seed step of a pending task (§4.1 seed phase, no mutations): try every published path as a starting point.

The candidates are the root and each other serving task's current path, minus its head, each with a fresh
zero-initialised head for this task. Only the head trains; everything else is shared frozen. The candidate with the
best validation score becomes the task's first version: its test accuracy is measured (the test split never takes
part in selection), its head is exported, and the path is published.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from munet_serve.artifacts import Split
from munet_serve.clients.types import (
    EvolutionStatus,
    Metrics,
    PathComponent,
    PathRef,
    PathVersion,
    RootInfo,
    TaskInfo,
)
from munet_serve.imaging import InputSpec

from .components import fresh_head
from .config import Hyperparameters, TrainBudget
from .data import Augmentation, TaskData
from .errors import StopRequested
from .export import PARITY_TOLERANCE, export_component, fresh_lineage
from .path import Candidate, Origin, Slot
from .score import accounted_params, count_users, size_factor
from .store import ComponentStore
from .train import TrainResult, evaluate_batches, train_candidate

if TYPE_CHECKING:
    from munet_serve.clients import Client

logger = logging.getLogger(__name__)

__all__ = [
    "SeedPath",
    "SeedReport",
    "build_seed_candidate",
    "current_paths",
    "distinct_seeds",
    "seed_paths",
    "seed_task",
]

_ADAPTER = re.compile(r"^residual_adapter_(\d+)$")
_EPOCH = datetime.min.replace(tzinfo=timezone.utc)


@dataclass(frozen=True)
class SeedPath:
    """A published path used as a starting point: the root or another task's current version, without its head."""

    parent: PathRef
    components: list[PathComponent]
    input: InputSpec
    hparams: Mapping[str, object]
    label: str


@dataclass(frozen=True)
class SeedReport:
    """The outcome of a seed step: the published version and every candidate's result (in seed order)."""

    version: PathVersion
    results: list[tuple[str, TrainResult]]
    test_accuracy: float
    seconds: float


def current_paths(client: Client, exclude: str = "") -> dict[str, PathVersion]:
    """The current path version of every serving task except `exclude`, most recently published first."""
    paths: list[PathVersion] = []
    for task in client.list_tasks():
        if task.name == exclude or task.state != "serving" or task.current_version <= 0:
            continue
        current = [v for v in client.list_versions(task.name) if v.current]
        if current:
            paths.append(current[0])
    paths.sort(key=lambda v: (v.created_at or _EPOCH, v.version), reverse=True)
    return {v.task: v for v in paths}


def seed_paths(root: RootInfo, others: Mapping[str, PathVersion]) -> list[SeedPath]:
    """The seed list: other tasks' current paths (in the given order, most recent first), then the root."""
    seeds = [
        SeedPath(
            parent=PathRef(v.task, v.version),
            components=[c for c in v.components if c.name != "head"],
            input=v.input,
            hparams=v.hparams,
            label=f"seed {v.task} v{v.version}",
        )
        for v in others.values()
    ]
    seeds.append(SeedPath(PathRef("", 0), list(root.components), root.input, {}, "seed root"))
    return seeds


def distinct_seeds(seeds: Sequence[SeedPath]) -> list[SeedPath]:
    """Drops seeds whose components and input equal an earlier seed's: they would train the very same candidate.

    (A task seeded from the root with only a head shares all its other components with the root.)
    """
    seen: dict[tuple[tuple[str, ...], InputSpec], str] = {}
    kept = []
    for seed in seeds:
        key = (tuple(c.id for c in seed.components), seed.input)
        if key in seen:
            logger.debug("%s: same components as %s; not trained twice", seed.label, seen[key])
            continue
        seen[key] = seed.label
        kept.append(seed)
    return kept


def _seed_hparams(seed: SeedPath) -> Hyperparameters:
    """Default hyperparameters with the seed's architecture (blocks, adapters) and image size."""
    names = [c.name for c in seed.components]
    adapters = tuple(sorted(int(m.group(1)) for n in names if (m := _ADAPTER.match(n))))
    h = Hyperparameters(
        num_layers=sum(1 for n in names if n.startswith("encoderblock_")),
        adapter_layers=adapters,
        ds_image_size=seed.input.image_size,
    )
    if adapters and "adapter_dim" in seed.hparams:
        h = h.replace(adapter_dim=int(seed.hparams["adapter_dim"]))  # type: ignore[call-overload]
    return h


def build_seed_candidate(task: str, num_classes: int, seed: SeedPath, store: ComponentStore) -> Candidate:
    """The seed's components shared frozen, plus a fresh zero head for this task."""
    slots = [Slot(c.name, store.get(c.id).module, Origin.SHARED, c.id) for c in seed.components]
    dim = int(slots[-1].module.config["dim"])
    slots.append(Slot("head", fresh_head(dim, num_classes), Origin.FRESH))
    return Candidate(
        task=task, slots=slots, hparams=_seed_hparams(seed), input=seed.input, parent=seed.parent, label=seed.label
    )


def _accounted(candidate: Candidate, store: ComponentStore, other_users: Mapping[str, int]) -> float:
    items: list[tuple[str, int]] = []
    for i, slot in enumerate(candidate.slots):
        if slot.origin is Origin.SHARED and slot.component_id:
            items.append((slot.component_id, store.get(slot.component_id).num_params))
        else:
            items.append((f"new:{i}", sum(p.numel() for p in slot.module.parameters())))
    return accounted_params(items, other_users)


@dataclass
class _Trained:
    candidate: Candidate
    result: TrainResult
    accounted: float


def seed_task(
    client: Client,
    task: TaskInfo,
    data: TaskData,
    *,
    root: RootInfo,
    store: ComponentStore,
    budget: TrainBudget,
    seed: int = 0,
    scale_factor: float = 1.0,
    parity_tolerance: float = PARITY_TOLERANCE,
    stop: threading.Event | None = None,
    report: Callable[[EvolutionStatus], None] | None = None,
    progress: bool | None = None,
) -> SeedReport:
    """Seeds a pending task and publishes its first version.

    Args:
        client: the SDK client.
        task: the pending task.
        data: its dataset.
        root: the server's root.
        store: component modules by id (fetched from the server on first use).
        budget: training budget of each candidate.
        seed: seed of the data stream (every candidate sees the same batches).
        scale_factor: s of the score.
        parity_tolerance: for the head's export check.
        stop: checked between training steps.
        report: called with evolution status updates.
        progress: show progress bars (default: when stderr is a terminal).

    Raises:
        StopRequested: stop was set before the path was published.
    """
    start = time.perf_counter()
    num_classes = len(task.labels)
    if data.max_label >= num_classes:
        raise ValueError(f"task {task.name}: dataset label {data.max_label} is out of range for {num_classes} labels")
    others = current_paths(client, exclude=task.name)
    other_users = count_users([c.id for c in v.components] for v in others.values())
    seeds = distinct_seeds(seed_paths(root, others))
    k = budget.steps_between_validations(data.num_train)
    logger.info(
        "task %s: seeding from %d paths (%d train / %d validation examples, %d x %d steps at batch %d)",
        task.name, len(seeds), data.num_train, data.num_examples(Split.VALIDATION), budget.validations, k,
        budget.batch_size,
    )
    results: list[tuple[str, TrainResult]] = []
    best: _Trained | None = None
    for i, seed_path in enumerate(seeds):
        if report is not None:
            report(_status(i, best.result.score if best else 0.0, f"training candidate {seed_path.label}"))
        candidate = build_seed_candidate(task.name, num_classes, seed_path, store)
        accounted = _accounted(candidate, store, other_users)
        result = train_candidate(
            candidate,
            data.train_batches(budget.batch_size, Augmentation.from_hparams(candidate.hparams), candidate.input, seed),
            data.eval_tensors(Split.VALIDATION, candidate.input, budget.max_validation_examples),
            steps_between_validations=k,
            validations=budget.validations,
            score_factor=size_factor(accounted, root.params, scale_factor),
            eval_batch_size=budget.eval_batch_size,
            stop=stop,
            progress=progress,
        )
        results.append((seed_path.label, result))
        logger.info(
            "task %s: candidate %s: validation accuracy %.4f, score %.4f, %d steps in %.1f s (%.1f steps/s)",
            task.name, seed_path.label, result.quality, result.score, result.steps, result.seconds,
            result.steps / max(result.seconds, 1e-9),
        )
        if result.retained and (best is None or result.score > best.result.score):
            best = _Trained(candidate, result, accounted)  # ties keep the earlier (more recent) seed
    if best is None:
        raise RuntimeError(f"task {task.name}: no seed candidate was retained")
    if stop is not None and stop.is_set():
        raise StopRequested(f"stopped before publishing task {task.name}")
    version, test_accuracy = _publish(client, task, data, best, budget, parity_tolerance)
    seconds = time.perf_counter() - start
    logger.info(
        "task %s: published v%d from %s: validation %.4f, test %.4f, score %.4f, %d accounted params (%.1f s)",
        task.name, version.version, best.candidate.label, best.result.quality, test_accuracy, best.result.score,
        version.metrics.accounted_params, seconds,
    )
    if report is not None:
        message = f"published v{version.version} from {best.candidate.label}"
        report(_status(len(seeds), best.result.score, message, phase="idle"))
    return SeedReport(version=version, results=results, test_accuracy=test_accuracy, seconds=seconds)


def _publish(
    client: Client, task: TaskInfo, data: TaskData, best: _Trained, budget: TrainBudget, parity_tolerance: float
) -> tuple[PathVersion, float]:
    """Measures the winner's test accuracy, exports its new head and publishes it as the task's next version."""
    winner, result = best.candidate, best.result
    test_accuracy = evaluate_batches(winner.module, data.eval_batches(Split.TEST, winner.input, budget.eval_batch_size))
    head = winner.slots[-1]
    artifact = export_component(head.module, fresh_lineage(task.name, head.name), tolerance=parity_tolerance)
    components = [PathComponent(s.name, s.component_id or "") for s in winner.slots[:-1]]
    components.append(PathComponent(head.name, artifact.id))
    metrics = Metrics(
        validation_accuracy=result.quality,
        test_accuracy=test_accuracy,
        score=result.score,
        accounted_params=round(best.accounted),
        new_params=artifact.info.num_params,
        train_steps=result.steps,
        train_seconds=result.seconds,
    )
    version = client.publish_path(
        task.name,
        components,
        hparams={**winner.hparams.to_dict(), "num_classes": len(task.labels)},
        metrics=metrics,
        input=winner.input,
        parent=winner.parent,
        new_components=[artifact],
    )
    return version, test_accuracy


def _status(done: int, best_score: float, message: str, phase: str = "seeding") -> EvolutionStatus:
    return EvolutionStatus(
        phase=phase, iteration=1, generation=0, candidates=done, best_score=best_score, message=message
    )
