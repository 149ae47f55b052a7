"""What the crash loops run on: a data dir with the demo task seeded by the real evolver on the tiny offline root
(durability, not accuracy, is measured, so the smallest root keeps each evolver round short), and a pool of heads
exported before any clock starts so that the publisher spends no CPU on torch during the loops."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from munet_serve.clients import Client
from munet_serve.clients.datasets import demo_digits
from munet_serve.clients.types import ComponentArtifact

from .loops import start_server

TASK = "digits"
EVOLVER_ARGS = ["--root-preset", "tiny-test", "--budget", "small", "--search", "tiny", "--threads", "2"]
SEED_ARGS = [*EVOLVER_ARGS, "--once"]  # seed the task and run one iteration, then exit
KILLED_ARGS = [*EVOLVER_ARGS, "--task-iterations", "0"]  # evolve until the publish it dies in


@dataclass(frozen=True)
class Prepared:
    data_dir: Path
    cache: Path  # the evolver's cache
    images: np.ndarray  # the images every answer is checked on
    heads: list[ComponentArtifact]


def random_heads(dim: int, classes: int, count: int, task: str = TASK) -> list[ComponentArtifact]:
    """`count` heads with random kernels, exported to ONNX (each a different component)."""
    import torch

    from munet_serve.evolver.components import fresh_head
    from munet_serve.evolver.export import export_component, fresh_lineage

    heads = []
    for seed in range(count):
        head = fresh_head(dim, classes)
        with torch.no_grad():
            head.fc.weight.copy_(torch.randn(head.fc.weight.shape, generator=torch.Generator().manual_seed(seed)))
        heads.append(export_component(head, fresh_lineage(task, "head")))
    return heads


def prepare(workdir: Path, heads: int = 8) -> Prepared:
    """Registers the demo task on a new data dir and lets the real evolver publish its first versions."""
    data_dir, cache = workdir / "data", workdir / "evolver-cache"
    upload = demo_digits(TASK)
    server = start_server(data_dir, workdir, "setup")
    try:
        with Client(server.target, timeout=300) as client:
            client.register(upload)
            subprocess.run([sys.executable, "-m", "munet_serve.evolver", "--server", server.target, "--cache-dir",
                            str(cache), *SEED_ARGS], check=True, capture_output=True, timeout=1800)
            v1 = client.list_versions(TASK)[0]
            dim = client.list_components([v1.components[-1].id])[0].config["dim"]
    finally:
        server.stop()
    images = np.stack(upload.images[:16])
    return Prepared(data_dir, cache, images, random_heads(dim, len(upload.labels), heads))
