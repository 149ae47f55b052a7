"""The Ray executor (a local `ray.init()`) gives the same retained children as the inline one for a fixed seed,
and puts each frozen shared component in the object store once, not once per candidate."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from munet_serve.clients import Client
from munet_serve.evolver.config import SearchBudget
from munet_serve.evolver.executors import InlineExecutor, RayExecutor

from serving_fixtures import Served, evolver

ray = pytest.importorskip("ray")
SEARCH = SearchBudget(children_per_generation=2, samples_per_task=4, task_iterations=1)


class Recording:
    """Wraps an executor and keeps, per candidate, what training gave and its trained weights."""

    def __init__(self, inner) -> None:  # noqa: ANN001
        self.inner = inner
        self.log: list[tuple[str, bool, float, float, dict[str, torch.Tensor]]] = []

    def train(self, generation, data, stop=None, on_result=None):  # noqa: ANN001, ANN201
        results = self.inner.train(generation, data, stop, on_result)
        for c, r in zip(generation.candidates, results, strict=True):
            weights = {f"{s.name}.{k}": v.clone()
                       for s in c.trainable_slots() for k, v in s.module.state_dict().items()}
            self.log.append((c.label, r.retained, r.quality, r.score, weights))
        return results

    def close(self) -> None:
        self.inner.close()


def run(start_server, served: Served, target_dir: Path, executor) -> list:  # noqa: ANN001
    shutil.copytree(served.data_dir, target_dir)
    server = start_server(target_dir)
    recording = Recording(executor)
    with Client(server.target, timeout=300) as client:
        worker = evolver(client, target_dir.parent / f"{target_dir.name}-cache", recording, search=SEARCH, threads=1,
                         mutation_probability=0.5)
        worker.run_once()
    server.stop()
    return recording.log


def test_ray_and_inline_retain_the_same_children(start_server, served_template: Served, tmp_path: Path) -> None:
    threads = torch.get_num_threads()
    try:
        inline = run(start_server, served_template, tmp_path / "inline", InlineExecutor(progress=False))
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        executor = RayExecutor(threads=1)
        remote = run(start_server, served_template, tmp_path / "ray", executor)
    finally:
        torch.set_num_threads(threads)
        if ray.is_initialized():
            ray.shutdown()
    assert [entry[:4] for entry in remote] == [entry[:4] for entry in inline]
    assert any(retained for _, retained, *_ in inline)
    for (label, *_, a), (_, *_, b) in zip(inline, remote, strict=True):
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), label
    # Each frozen component went to the object store once, although several candidates used it.
    assert executor.frozen_puts == len(executor._frozen) > 0  # noqa: SLF001
    frozen_uses = 2 * SEARCH.samples_per_task  # at least the embedding and cls of every candidate are shared
    assert executor.frozen_puts < frozen_uses
