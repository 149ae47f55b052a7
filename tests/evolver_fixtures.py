"""Shared fixtures of the evolver tests: sklearn digits as a task dataset, and the tiny-test root exported once.

tests/conftest.py registers it (pytest_plugins), so its session fixtures run once per session.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import pytest

from munet_serve.artifacts import Dataset, Split
from munet_serve.clients.types import ComponentArtifact
from munet_serve.evolver.components import Component
from munet_serve.evolver.config import root_preset
from munet_serve.evolver.export import export_component, root_lineage
from munet_serve.evolver.root import Root, build_root


def digits_dataset(seed: int = 0, fractions: tuple[float, float] = (0.8, 0.9)) -> Dataset:
    """sklearn digits (1797 8x8 grey images, 10 classes) as uint8 [N, 8, 8, 1], split 80/10/10 with a fixed seed."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
    labels = digits.target.astype(np.int64)
    n = len(labels)
    order = np.random.default_rng(seed).permutation(n)
    splits = np.empty(n, dtype=np.uint8)
    a, b = int(fractions[0] * n), int(fractions[1] * n)
    splits[order[:a]] = Split.TRAIN
    splits[order[a:b]] = Split.VALIDATION
    splits[order[b:]] = Split.TEST
    return Dataset(images=images, labels=labels, splits=splits)


@dataclass(frozen=True)
class ExportedRoot:
    root: Root
    artifacts: list[ComponentArtifact]  # in root component order

    def module(self, name: str) -> Component:
        return dict(self.root.components)[name]


@functools.cache
def _exported_tiny_root() -> ExportedRoot:
    root = build_root(root_preset("tiny-test"))
    return ExportedRoot(root, [export_component(m, root_lineage(name)) for name, m in root.components])


@pytest.fixture(scope="session")
def tiny_root() -> ExportedRoot:
    """The tiny-test root, built and exported once per session (do not train its modules in place)."""
    return _exported_tiny_root()


@pytest.fixture(scope="session")
def digits() -> Dataset:
    return digits_dataset()
