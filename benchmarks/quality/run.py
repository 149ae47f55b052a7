"""Runs the quality benchmark: muNet through the real server and evolver, then each baseline at equal compute.

muNet runs once per scale factor, each in its own server (own data dir) with the same exported root. Tasks are
registered one after another; each is evolved through its task iterations before the next arrives, and after each
new task every earlier task's test predictions are fetched again over gRPC and compared bit for bit with the ones
taken when that task finished (muNet's no-forgetting guarantee). Test accuracy is what the server answers.

The baselines (§8.6) train in PyTorch from the same root path, on the same datasets (downloaded from the server),
with the same augmentation and batch size, for as many steps per task as the evolution's budget.
"""

from __future__ import annotations

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
from munet_serve.server.app import RunningServer, create_server
from munet_serve.server.config import ServerConfig

from .profiles import QualityProfile

logger = logging.getLogger(__name__)

__all__ = ["ForgettingCheck", "QualityReport", "SystemResult", "TaskResult", "run_quality", "task_name"]

PREDICT_CHUNK = 256


@dataclass
class TaskResult:
    task: str
    builtin: str
    classes: int
    train_examples: int
    test_examples: int
    test_accuracy: float
    validation_accuracy: float
    params: float  # muNet: parameters accounted to the task at the end; baselines: parameters it trains
    steps: int  # optimizer steps spent on this task (all candidates or replicas)
    seconds: float
    version: int = 0  # muNet: the published version serving at the end


@dataclass
class ForgettingCheck:
    after_task: str
    checked: list[str]
    identical: bool
    differing: list[str] = field(default_factory=list)


@dataclass
class SystemResult:
    system: str  # "muNet s=1", "finetune-all", ...
    kind: str  # "munet" | "baseline"
    scale_factor: float | None
    tasks: list[TaskResult]
    params_per_task: float  # distinct parameters of the whole multitask system / number of tasks
    seconds: float
    forgetting_checks: list[ForgettingCheck] = field(default_factory=list)

    @property
    def average_accuracy(self) -> float:
        return float(np.mean([t.test_accuracy for t in self.tasks])) if self.tasks else 0.0

    @property
    def steps_per_task(self) -> float:
        return float(np.mean([t.steps for t in self.tasks])) if self.tasks else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "average_accuracy": self.average_accuracy, "steps_per_task": self.steps_per_task}


@dataclass
class QualityReport:
    profile: dict[str, Any]
    root: dict[str, Any]
    systems: list[SystemResult]
    environment: dict[str, Any]
    seconds: float

    @property
    def no_forgetting(self) -> bool:
        return all(c.identical for s in self.systems for c in s.forgetting_checks)

    def to_dict(self) -> dict[str, Any]:
        return {
            "profile": self.profile,
            "root": self.root,
            "systems": [s.to_dict() for s in self.systems],
            "no_forgetting": self.no_forgetting,
            "environment": self.environment,
            "seconds": self.seconds,
        }


def task_name(builtin: str) -> str:
    """The served task's name for a built-in dataset: chars/latin-upper -> chars-latin-upper."""
    return builtin.replace("/", "-")


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
    """One muNet system: a server with its own data dir, and the evolver, driven task by task."""

    def __init__(self, profile: QualityProfile, scale: float, workdir: Path) -> None:
        from munet_serve.evolver.config import EvolverConfig
        from munet_serve.evolver.worker import Evolver

        self.profile = profile
        self.scale = scale
        self.server: RunningServer = create_server(ServerConfig(data_dir=workdir / "data", port=0))
        self.client = Client(self.server.target, timeout=900)
        self.client.wait_ready()
        config = EvolverConfig(
            server=self.server.target,
            cache_dir=workdir / "evolver-cache",
            root=profile.root,
            budget=profile.train,
            search=profile.search,
            once=True,
            threads=profile.threads,
            scale_factor=scale,
            seed=profile.seed,
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
        for builtin, ds in datasets.items():
            name = task_name(builtin)
            t0 = time.perf_counter()
            self.client.register(builtin_upload(name, ds, builtin))
            iterations: dict[int, TaskIteration] = {}
            first = self.evolver.seed(self.client.get_task(name))
            iterations[id(first)] = first
            while (task := self.evolver.next_task(once=True)) is not None:
                it = self.evolver.evolve(task)
                iterations[id(it)] = it
            data = self.evolver.data(self.client.get_task(name))
            trained = sum(it.trained for it in iterations.values())
            steps = trained * self.profile.train.total_steps(data.num_train)
            seconds = time.perf_counter() - t0
            test_images, test_labels = ds.split(Split.TEST)
            logits, version = _test_logits(self.client, name, test_images)
            reference[name] = (logits, version)
            info = self.client.get_task(name)
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
                    version=version,
                )
            )
            checks.append(self._check_earlier(name, datasets, reference))
            progress(f"muNet s={self.scale:g}: {name} v{version} test {results[-1].test_accuracy:.3f} "
                     f"({trained} candidates, {seconds:.0f} s)")
        tasks, system = self.client.list_tasks_with_stats()
        accounted = {t.name: t.accounted_params for t in tasks}
        for r in results:
            r.params = float(accounted[r.task])
        return SystemResult(
            system=f"muNet s={self.scale:g}",
            kind="munet",
            scale_factor=self.scale,
            tasks=results,
            params_per_task=system.params_per_task,
            seconds=time.perf_counter() - start,
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
        self, specs: tuple[str, ...], datasets: dict[str, BuiltinDataset], progress: Callable[[str], None]
    ) -> list[SystemResult]:
        """Each baseline on every task, from this run's root and datasets (its server must hold every task)."""
        from munet_serve.evolver.baselines import BaselineSpec, train_baseline
        from munet_serve.evolver.evolution import root_path

        root = root_path(self.evolver.ensure_root(), self.evolver.store)
        systems = []
        for text in specs:
            spec = BaselineSpec.parse(text)
            start = time.perf_counter()
            results: list[TaskResult] = []
            shared: dict[str, int] = {}
            for builtin, ds in datasets.items():
                name = task_name(builtin)
                data = self.evolver.data(self.client.get_task(name))
                r = train_baseline(
                    spec, root, data, train=self.profile.train, search=self.profile.search, task=name,
                    seed=self.profile.seed, replicas=self.profile.baseline_replicas,
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
                    )
                )
                progress(f"{spec.name}: {name} test {r.test_accuracy:.3f} ({r.steps} steps, {r.seconds:.0f} s)")
            total = sum(shared.values()) + sum(t.params for t in results)
            systems.append(
                SystemResult(
                    system=spec.name,
                    kind="baseline",
                    scale_factor=None,
                    tasks=results,
                    params_per_task=total / max(1, len(results)),
                    seconds=time.perf_counter() - start,
                )
            )
        return systems


def load_datasets(profile: QualityProfile, cache_dir: Path | None = None) -> dict[str, BuiltinDataset]:
    return {name: load(name, sizes=profile.sizes, cache_dir=cache_dir) for name in profile.tasks}


def run_quality(
    profile: QualityProfile,
    workdir: Path,
    *,
    dataset_cache: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> QualityReport:
    """Runs every system of the profile and returns the report (nothing is written here; see report.py)."""
    import torch

    say = progress or (lambda line: logger.info("%s", line))
    if profile.threads:
        torch.set_num_threads(profile.threads)
    start = time.perf_counter()
    datasets = load_datasets(profile, dataset_cache)
    say(f"{len(datasets)} tasks: " + ", ".join(f"{n} ({len(d.label_names)} classes)" for n, d in datasets.items()))
    systems: list[SystemResult] = []
    first: MunetRun | None = None
    try:
        for scale in profile.scale_factors:
            run = MunetRun(profile, scale, workdir / f"munet-s{scale:g}")
            try:
                if first is not None:
                    copy_root(first.client, run.client)
                systems.append(run.run(datasets, say))
            finally:
                if first is None:
                    first = run  # kept open: the baselines train from its root and datasets
                else:
                    run.close()
        assert first is not None, "a profile needs at least one scale factor"
        systems.extend(first.run_baselines(profile.baselines, datasets, say))
        root = first.client.get_root()
        root_info = {"source": root.source, "params": root.params, "config": root.config} if root else {}
    finally:
        if first is not None:
            first.close()
    profile_info = {
        "name": profile.name,
        "tasks": list(profile.tasks),
        "sizes": asdict(profile.sizes) if profile.sizes else None,
        "root_preset": profile.root_preset,
        "train": asdict(profile.train),
        "search": asdict(profile.search),
        "scale_factors": list(profile.scale_factors),
        "baselines": list(profile.baselines),
        "baseline_replicas": profile.baseline_replicas,
    }
    return QualityReport(
        profile=profile_info,
        root=root_info,
        systems=systems,
        environment=_environment(profile.threads),
        seconds=time.perf_counter() - start,
    )
