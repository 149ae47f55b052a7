"""Session fixtures for integration tests: a data directory in which the real evolver has already seeded the digits
task (version 1) on the tiny-test root. Tests start their own server on a copy of it."""

from __future__ import annotations

import dataclasses
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from benchmarks.crash.setup import random_heads as exported_random_heads
from munet_serve.artifacts import Dataset, Split
from munet_serve.clients import Client
from munet_serve.clients.types import ComponentArtifact, PathComponent, PathRef, PathVersion, RootInfo
from munet_serve.evolver.config import EvolverConfig, budget_preset, root_preset, search_preset
from munet_serve.evolver.executors import Executor
from munet_serve.evolver.worker import Evolver
from munet_serve.server.app import create_server
from munet_serve.server.config import ServerConfig

from evolver_fixtures import ExportedRoot

TASK = "digits"
LABELS = [str(i) for i in range(10)]


def upload_root(client: Client, exported: ExportedRoot) -> RootInfo:
    """Puts an already exported root on a server, as the evolver does on its first start."""
    client.upload_components(exported.artifacts)
    root = exported.root
    names = [name for name, _ in root.components]
    return client.set_root(
        RootInfo(
            source=root.source,
            components=[PathComponent(name, a.id) for name, a in zip(names, exported.artifacts, strict=True)],
            config=root.describe(),
            params=root.params,
            input=root.input,
        )
    )


def register_dataset(client: Client, name: str, data: Dataset, labels: list[str] = LABELS) -> None:
    client.register_task(name, labels, list(data.images), data.labels.tolist(), splits=data.splits.tolist())


def evolver(client: Client, cache_dir: Path, executor_: Executor | None = None, **settings: object) -> Evolver:
    """The real evolver on the tiny-test root with the tiny budget (override any EvolverConfig field)."""
    config = EvolverConfig(
        server=client.target, cache_dir=cache_dir, root=root_preset("tiny-test"), budget=budget_preset("tiny"),
        search=search_preset("tiny"), once=True, threads=2,
    )
    return Evolver(dataclasses.replace(config, **settings), client, executor_)


def random_heads(dim: int, count: int, classes: int = 10) -> list[ComponentArtifact]:
    """`count` heads of the task with random kernels, exported (the crash benchmark's, benchmarks/crash/setup.py)."""
    return exported_random_heads(dim, classes, count, TASK)


def publish_heads(client: Client, count: int, task: str = TASK) -> list[PathVersion]:
    """Publishes `count` versions of the task, each version 1's body with a new random head; returns them."""
    v1 = client.list_versions(task)[0]
    dim = client.list_components([v1.components[-1].id])[0].config["dim"]
    published = []
    for head in random_heads(dim, count):
        published.append(client.publish_path(
            task, [*v1.components[:-1], PathComponent("head", head.id)], hparams=v1.hparams, metrics=v1.metrics,
            input=v1.input, parent=PathRef(task, 1), new_components=[head],
        ))
    return published


@dataclass(frozen=True)
class Served:
    data_dir: Path
    test_images: np.ndarray  # uint8 [N, 8, 8, 1] of the test split
    test_labels: np.ndarray


@pytest.fixture(scope="session")
def served_template(tmp_path_factory: pytest.TempPathFactory, tiny_root: ExportedRoot, digits: Dataset) -> Served:
    base = tmp_path_factory.mktemp("served")
    server = create_server(ServerConfig(data_dir=base / "data", port=0))
    try:
        with Client(server.target, timeout=300) as client:
            upload_root(client, tiny_root)
            register_dataset(client, TASK, digits)
            assert evolver(client, base / "cache").seed_pending() == [TASK]
            assert client.get_task(TASK).current_version == 1
    finally:
        server.stop()
    images, labels = digits.split(Split.TEST)
    return Served(base / "data", images, labels)


@pytest.fixture
def served_dir(served_template: Served, tmp_path: Path) -> Path:
    """A private copy of the template data directory."""
    target = tmp_path / "served"
    shutil.copytree(served_template.data_dir, target)
    return target
