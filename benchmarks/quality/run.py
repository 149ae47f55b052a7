"""Runs the quality benchmark: the evolution through the real server and evolver, then the baselines at equal steps.

Each evolution system (a variant at a scale factor, on one seed) runs in a server of its own (own data dir) with
the same exported root. Tasks are registered one after another; each is evolved through its task iterations before
the next arrives, and after each new task every earlier task's test predictions are fetched again over gRPC and
compared bit for bit with the ones taken when that task finished (the no-forgetting guarantee). Test accuracy is what
the server answers.

Order: every variant at s = 1 on every seed; then the better of them (by average test accuracy over the seeds) at
each smaller scale factor; then the baselines (docs/evolution.md §8.6) on every seed, in PyTorch from the same root
path and datasets; then the ablations on the first seed.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from munet_serve.artifacts import Split
from munet_serve.builtin import BuiltinDataset, load
from munet_serve.clients import Client
from munet_serve.clients.datasets import builtin_upload
from munet_serve.clients.types import PathComponent, RootInfo
from munet_serve.evolver.config import SearchBudget, TrainBudget
from munet_serve.server.app import RunningServer, create_server
from munet_serve.server.config import ServerConfig

from .profiles import Ablation, QualityProfile

logger = logging.getLogger(__name__)

__all__ = [
    "EvolutionSpec",
    "ForgettingCheck",
    "QualityReport",
    "SystemResult",
    "SystemSummary",
    "TaskResult",
    "keep_validation",
    "run_quality",
    "task_name",
]

PREDICT_CHUNK = 256
VARIANT_NAMES = {"munet": "muNet", "mu2net": "mu2Net"}


@dataclass
class TaskResult:
    task: str
    builtin: str
    classes: int
    train_examples: int
    test_examples: int
    test_accuracy: float
    validation_accuracy: float
    params: float  # evolution: parameters accounted to the task at the end; baselines: parameters it trains
    steps: int  # optimizer steps spent on this task (all candidates or replicas)
    seconds: float  # wall time on the task (training, validation, publishing, test predictions)
    train_seconds: float = 0.0  # candidate-seconds: time spent training candidates or replicas
    candidates: int = 0  # evolution: candidates trained; baselines: replicas
    version: int = 0  # evolution: the published version serving at the end
    hparams: dict[str, Any] = field(default_factory=dict)  # evolution: the serving version's hyperparameters
    own_components: list[str] = field(default_factory=list)  # evolution: its components no other path had before


@dataclass
class ForgettingCheck:
    after_task: str
    checked: list[str]
    identical: bool
    differing: list[str] = field(default_factory=list)


@dataclass
class SystemResult:
    """One system on one seed."""

    system: str  # "muNet s=1", "finetune-all", ...
    kind: str  # "munet" | "baseline" | "ablation"
    scale_factor: float | None
    seed: int
    tasks: list[TaskResult]
    params_per_task: float  # distinct parameters of the whole multitask system / number of tasks
    seconds: float
    variant: str | None = None
    forgetting_checks: list[ForgettingCheck] = field(default_factory=list)

    @property
    def average_accuracy(self) -> float:
        return float(np.mean([t.test_accuracy for t in self.tasks])) if self.tasks else 0.0

    @property
    def steps_per_task(self) -> float:
        return float(np.mean([t.steps for t in self.tasks])) if self.tasks else 0.0

    @property
    def candidate_seconds_per_task(self) -> float:
        return float(np.mean([t.train_seconds for t in self.tasks])) if self.tasks else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "average_accuracy": self.average_accuracy, "steps_per_task": self.steps_per_task,
                "candidate_seconds_per_task": self.candidate_seconds_per_task}


@dataclass
class SystemSummary:
    """One system over its seeds: the means, and the spread of the average accuracy (half the range)."""

    system: str
    kind: str
    runs: list[SystemResult]
    scale_factor: float | None = None
    variant: str | None = None

    @property
    def seeds(self) -> list[int]:
        return [r.seed for r in self.runs]

    def _mean(self, attr: str) -> float:
        return float(np.mean([getattr(r, attr) for r in self.runs]))

    @property
    def average_accuracy(self) -> float:
        return self._mean("average_accuracy")

    @property
    def accuracy_spread(self) -> float:
        values = [r.average_accuracy for r in self.runs]
        return (max(values) - min(values)) / 2

    @property
    def params_per_task(self) -> float:
        return self._mean("params_per_task")

    @property
    def steps_per_task(self) -> float:
        return self._mean("steps_per_task")

    @property
    def candidate_seconds_per_task(self) -> float:
        return self._mean("candidate_seconds_per_task")

    @property
    def seconds(self) -> float:
        return float(sum(r.seconds for r in self.runs))

    def task_accuracy(self, i: int) -> float:
        """Test accuracy of the i-th task, averaged over the seeds."""
        return float(np.mean([r.tasks[i].test_accuracy for r in self.runs]))

    def to_dict(self) -> dict[str, Any]:
        return {
            "system": self.system,
            "kind": self.kind,
            "variant": self.variant,
            "scale_factor": self.scale_factor,
            "seeds": self.seeds,
            "average_accuracy": self.average_accuracy,
            "accuracy_spread": self.accuracy_spread,
            "seed_accuracies": [r.average_accuracy for r in self.runs],
            "params_per_task": self.params_per_task,
            "steps_per_task": self.steps_per_task,
            "candidate_seconds_per_task": self.candidate_seconds_per_task,
            "seconds": self.seconds,
            "runs": [r.to_dict() for r in self.runs],
        }


@dataclass
class QualityReport:
    profile: dict[str, Any]
    root: dict[str, Any]
    systems: list[SystemSummary]
    environment: dict[str, Any]
    seconds: float
    better_variant: str = ""

    @property
    def no_forgetting(self) -> bool:
        return all(c.identical for s in self.systems for r in s.runs for c in r.forgetting_checks)

    def system(self, name: str) -> SystemSummary | None:
        return next((s for s in self.systems if s.system == name), None)

    def to_dict(self) -> dict[str, Any]:
        from .targets import targets

        return {
            "name": self.profile["name"],
            "profile": self.profile,
            "root": self.root,
            "better_variant": self.better_variant,
            "systems": [s.to_dict() for s in self.systems],
            "targets": targets(self),
            "no_forgetting": self.no_forgetting,
            "environment": self.environment,
            "seconds": self.seconds,
        }


@dataclass(frozen=True)
class EvolutionSpec:
    """One evolution system: a variant at a scale factor, with a profile's budgets unless an ablation changes one."""

    variant: str
    scale: float
    kind: str = "munet"
    label: str = ""  # an ablation's knob
    mutation_probability: float | None = None
    ds_mutation_probability: float | None = None
    transfer_ds: bool | None = None
    search: SearchBudget | None = None
    train: TrainBudget | None = None
    validation_per_class: int | None = None

    @property
    def name(self) -> str:
        base = f"{VARIANT_NAMES.get(self.variant, self.variant)} s={self.scale:g}"
        return f"{base}, {self.label}" if self.label else base

    @classmethod
    def ablation(cls, better: str, ablation: Ablation) -> EvolutionSpec:
        return cls(
            variant=ablation.variant or better, scale=1.0, kind="ablation", label=ablation.label,
            mutation_probability=ablation.mutation_probability,
            ds_mutation_probability=ablation.ds_mutation_probability, transfer_ds=ablation.transfer_ds,
            search=ablation.search, train=ablation.train, validation_per_class=ablation.validation_per_class,
        )


def _first(*values: Any) -> Any:
    """The first value that is not None."""
    return next((v for v in values if v is not None), None)


def task_name(builtin: str) -> str:
    """The served task's name for a built-in dataset: chars/latin-upper -> chars-latin-upper."""
    return builtin.replace("/", "-")


def keep_validation(ds: BuiltinDataset, per_class: int) -> BuiltinDataset:
    """The dataset with only the first `per_class` validation examples of each class (train and test untouched)."""
    keep = np.ones(len(ds.labels), dtype=bool)
    for label in np.unique(ds.labels):
        members = np.flatnonzero((ds.labels == label) & (ds.splits == int(Split.VALIDATION)))
        keep[members[per_class:]] = False
    return dataclasses.replace(ds, images=ds.images[keep], labels=ds.labels[keep], splits=ds.splits[keep],
                               sources=ds.sources[keep])


def _environment(threads: int | None) -> dict[str, Any]:
    import onnxruntime
    import torch

    return {
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "torch_threads": threads or os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
        "device": "cuda" if torch.cuda.is_available() else "cpu",
    }


def _test_logits(client: Client, name: str, images: np.ndarray) -> tuple[np.ndarray, int]:
    """The served logits of every image (in chunks), and the version that answered (the same for all chunks)."""
    chunks, versions = [], set()
    for i in range(0, len(images), PREDICT_CHUNK):
        result = client.predict_batch(name, images[i : i + PREDICT_CHUNK], top_k=1, include_logits=True)
        versions.add(result.version)
        chunks.append(np.stack([p.logits for p in result.predictions if p.logits is not None]))
    if len(versions) != 1:
        raise RuntimeError(f"task {name} changed version while its test set was predicted: {sorted(versions)}")
    return np.concatenate(chunks), versions.pop()


def copy_root(source: Client, target: Client) -> RootInfo:
    """Puts the source server's exported root on the target server (no second export)."""
    root = source.get_root()
    if root is None:
        raise RuntimeError("the source server has no root")
    target.upload_components([source.get_component(c.id, include_onnx=True) for c in root.components])
    return target.set_root(
        RootInfo(
            source=root.source,
            components=[PathComponent(c.name, c.id) for c in root.components],
            config=root.config,
            params=root.params,
            input=root.input,
        )
    )


class MunetRun:
    """One evolution system on one seed: a server with its own data dir, and the evolver, driven task by task."""

    def __init__(self, profile: QualityProfile, spec: EvolutionSpec, seed: int, workdir: Path) -> None:
        from munet_serve.evolver.config import EvolverConfig
        from munet_serve.evolver.worker import Evolver

        self.profile = profile
        self.spec = spec
        self.seed = seed
        self.train = spec.train or profile.train
        self.search = spec.search or profile.search
        self.server: RunningServer = create_server(ServerConfig(data_dir=workdir / "data", port=0))
        self.client = Client(self.server.target, timeout=900)
        self.client.wait_ready()
        config = EvolverConfig(
            server=self.server.target,
            cache_dir=workdir / "evolver-cache",
            root=profile.root,
            budget=self.train,
            search=self.search,
            once=True,
            threads=profile.threads,
            scale_factor=spec.scale,
            seed=seed,
            variant=spec.variant,
            mutation_probability=_first(spec.mutation_probability, profile.mutation_probability),
            ds_mutation_probability=_first(spec.ds_mutation_probability, profile.ds_mutation_probability),
            transfer_ds=_first(spec.transfer_ds, profile.transfer_ds),
        )
        self.evolver = Evolver(config, self.client)

    def close(self) -> None:
        self.client.close()
        self.server.stop(grace=1.0)

    def run(self, datasets: dict[str, BuiltinDataset], progress: Callable[[str], None]) -> SystemResult:
        from munet_serve.evolver.evolution import TaskIteration

        self.evolver.ensure_root()
        start = time.perf_counter()
        results: list[TaskResult] = []
        checks: list[ForgettingCheck] = []
        reference: dict[str, tuple[np.ndarray, int]] = {}
        reference_versions: dict[str, Any] = {}
        root = self.client.get_root()
        root_ids = {c.id for c in root.components} if root else set()
        for builtin, ds in datasets.items():
            name = task_name(builtin)
            t0 = time.perf_counter()
            if self.spec.validation_per_class is not None:
                ds = keep_validation(ds, self.spec.validation_per_class)
            self.client.register(builtin_upload(name, ds, builtin))
            iterations: dict[int, TaskIteration] = {}
            first = self.evolver.seed(self.client.get_task(name))
            iterations[id(first)] = first
            while (task := self.evolver.next_task(once=True)) is not None:
                it = self.evolver.evolve(task)
                iterations[id(it)] = it
            data = self.evolver.data(self.client.get_task(name))
            mine = [it for it in iterations.values() if it.task.name == name]
            trained = sum(it.trained for it in mine)
            steps = trained * self.train.total_steps(data.num_train)
            seconds = time.perf_counter() - t0
            test_images, test_labels = ds.split(Split.TEST)
            logits, version = _test_logits(self.client, name, test_images)
            reference[name] = (logits, version)
            info = self.client.get_task(name)
            (current,) = [v for v in self.client.list_versions(name) if v.current]
            before = {c.id for t, v in reference_versions.items() for c in v.components} | root_ids
            reference_versions[name] = current
            results.append(
                TaskResult(
                    task=name,
                    builtin=builtin,
                    classes=len(ds.label_names),
                    train_examples=data.num_train,
                    test_examples=len(test_labels),
                    test_accuracy=float(np.mean(logits.argmax(axis=1) == test_labels)),
                    validation_accuracy=info.metrics.validation_accuracy,
                    params=0.0,  # filled in at the end: accounting moves as later tasks share components
                    steps=steps,
                    seconds=seconds,
                    train_seconds=sum(it.train_seconds for it in mine),
                    candidates=trained,
                    version=version,
                    hparams=dict(current.hparams),
                    own_components=[c.name for c in current.components if c.id not in before],
                )
            )
            checks.append(self._check_earlier(name, datasets, reference))
            progress(f"{self.spec.name} seed {self.seed}: {name} v{version} test {results[-1].test_accuracy:.3f} "
                     f"({trained} candidates, {seconds:.0f} s)")
        tasks, system = self.client.list_tasks_with_stats()
        accounted = {t.name: t.accounted_params for t in tasks}
        for r in results:
            r.params = float(accounted[r.task])
        return SystemResult(
            system=self.spec.name,
            kind=self.spec.kind,
            scale_factor=self.spec.scale,
            seed=self.seed,
            tasks=results,
            params_per_task=system.params_per_task,
            seconds=time.perf_counter() - start,
            variant=self.spec.variant,
            forgetting_checks=checks,
        )

    def _check_earlier(
        self, newest: str, datasets: dict[str, BuiltinDataset], reference: dict[str, tuple[np.ndarray, int]]
    ) -> ForgettingCheck:
        """Every task before the newest answers exactly as it did when it finished (same version, same bits)."""
        checked, differing = [], []
        for builtin, ds in datasets.items():
            name = task_name(builtin)
            if name == newest:
                break
            logits, version = _test_logits(self.client, name, ds.split(Split.TEST)[0])
            ref_logits, ref_version = reference[name]
            checked.append(name)
            if version != ref_version or logits.dtype != ref_logits.dtype or not np.array_equal(logits, ref_logits):
                differing.append(name)
        return ForgettingCheck(after_task=newest, checked=checked, identical=not differing, differing=differing)

    def run_baselines(
        self,
        specs: tuple[str, ...],
        datasets: dict[str, BuiltinDataset],
        progress: Callable[[str], None],
        *,
        seed: int,
        replicas: int | None,
        suffix: str = "",
    ) -> list[SystemResult]:
        """Each baseline on every task, from this run's root and datasets (its server must hold every task)."""
        from munet_serve.evolver.baselines import BaselineSpec, train_baseline
        from munet_serve.evolver.evolution import root_path
        from munet_serve.evolver.prefix import cpu_has_native_bf16

        root = root_path(self.evolver.ensure_root(), self.evolver.store)
        layers = sum(1 for s in root.slots if s.name.startswith("encoderblock_"))
        systems = []
        for text in specs:
            spec = BaselineSpec.parse(text.replace(":L", f":{layers}"))
            start = time.perf_counter()
            results: list[TaskResult] = []
            shared: dict[str, int] = {}
            for builtin, ds in datasets.items():
                name = task_name(builtin)
                data = self.evolver.data(self.client.get_task(name))
                r = train_baseline(
                    spec, root, data, train=self.profile.train, search=self.profile.search, task=name,
                    seed=seed, replicas=replicas, bf16_prefix=cpu_has_native_bf16(),
                )
                for slot in r.path.slots:
                    if not slot.trainable:
                        shared[slot.component_id or f"module@{id(slot.module):x}"] = sum(
                            p.numel() for p in slot.module.parameters()
                        )
                results.append(
                    TaskResult(
                        task=name,
                        builtin=builtin,
                        classes=len(ds.label_names),
                        train_examples=data.num_train,
                        test_examples=data.num_examples(Split.TEST),
                        test_accuracy=r.test_accuracy,
                        validation_accuracy=r.validation_accuracy,
                        params=float(r.per_task_params),
                        steps=r.steps,
                        seconds=r.seconds,
                        train_seconds=r.train_seconds,
                        candidates=len(r.replica_accuracies),
                    )
                )
                progress(f"{spec.name}{suffix} seed {seed}: {name} test {r.test_accuracy:.3f} ({r.steps} steps, "
                         f"{r.seconds:.0f} s)")
            total = sum(shared.values()) + sum(t.params for t in results)
            systems.append(
                SystemResult(
                    system=spec.name + suffix,
                    kind="baseline",
                    scale_factor=None,
                    seed=seed,
                    tasks=results,
                    params_per_task=total / max(1, len(results)),
                    seconds=time.perf_counter() - start,
                )
            )
        return systems


def load_datasets(profile: QualityProfile, cache_dir: Path | None = None) -> dict[str, BuiltinDataset]:
    return {name: load(name, sizes=profile.sizes, cache_dir=cache_dir) for name in profile.tasks}


class _Systems:
    """Collects each system's runs, in the order systems first appear."""

    def __init__(self) -> None:
        self.summaries: dict[str, SystemSummary] = {}

    def add(self, result: SystemResult) -> None:
        summary = self.summaries.get(result.system)
        if summary is None:
            summary = SystemSummary(result.system, result.kind, [], result.scale_factor, result.variant)
            self.summaries[result.system] = summary
        summary.runs.append(result)


def run_quality(
    profile: QualityProfile,
    workdir: Path,
    *,
    dataset_cache: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> QualityReport:
    """Runs every system of the profile on every seed and returns the report (nothing is written here)."""
    import torch

    say = progress or (lambda line: logger.info("%s", line))
    if profile.threads:
        torch.set_num_threads(profile.threads)
    start = time.perf_counter()
    datasets = load_datasets(profile, dataset_cache)
    say(f"{len(datasets)} tasks: " + ", ".join(f"{n} ({len(d.label_names)} classes)" for n, d in datasets.items()))
    systems = _Systems()
    first: MunetRun | None = None

    def evolve(spec: EvolutionSpec, seed: int) -> None:
        nonlocal first
        run = MunetRun(profile, spec, seed, workdir / f"{spec.name.replace(' ', '_').replace(',', '')}-seed{seed}")
        try:
            if first is not None:
                copy_root(first.client, run.client)
            systems.add(run.run(datasets, say))
        finally:
            if first is None:
                first = run  # kept open: the baselines train from its root and datasets
            else:
                run.close()

    try:
        for variant in profile.variants:
            for seed in profile.seeds:
                evolve(EvolutionSpec(variant, 1.0), seed)
        better = max(profile.variants, key=lambda v: systems.summaries[EvolutionSpec(v, 1.0).name].average_accuracy)
        say(f"better variant at s=1: {better}")
        for scale in profile.scale_factors:
            for seed in profile.seeds:
                evolve(EvolutionSpec(better, scale), seed)
        assert first is not None
        for seed in profile.seeds:
            for result in first.run_baselines(profile.baselines, datasets, say, seed=seed,
                                              replicas=profile.baseline_replicas):
                systems.add(result)
            for result in first.run_baselines(profile.long_baselines, datasets, say, seed=seed, replicas=1,
                                              suffix=", one long run"):
                systems.add(result)
        for ablation in profile.ablations:
            evolve(EvolutionSpec.ablation(better, ablation), profile.seeds[0])
        root = first.client.get_root()
        root_info = {"source": root.source, "params": root.params, "config": root.config} if root else {}
    finally:
        if first is not None:
            first.close()
    return QualityReport(
        profile=_profile_info(profile),
        root=root_info,
        systems=list(systems.summaries.values()),
        environment=_environment(profile.threads),
        seconds=time.perf_counter() - start,
        better_variant=better,
    )


def _profile_info(profile: QualityProfile) -> dict[str, Any]:
    return {
        "name": profile.name,
        "tasks": list(profile.tasks),
        "sizes": asdict(profile.sizes) if profile.sizes else None,
        "root_preset": profile.root_preset,
        "train": asdict(profile.train),
        "search": asdict(profile.search),
        "variants": list(profile.variants),
        "scale_factors": list(profile.scale_factors),
        "mutation_probability": profile.mutation_probability,
        "ds_mutation_probability": profile.ds_mutation_probability,
        "transfer_ds": profile.transfer_ds,
        "baselines": list(profile.baselines),
        "long_baselines": list(profile.long_baselines),
        "baseline_replicas": profile.baseline_replicas or profile.search.children_per_generation,
        "seeds": list(profile.seeds),
        "ablations": [asdict(a) for a in profile.ablations],
    }
