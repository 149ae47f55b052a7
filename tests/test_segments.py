"""Segments (server/segments.py): how live paths are cut into runs of components, and fused graphs that answer bit
for bit what the chain of their component sessions answers; the session pool runs a chain it cannot fuse unfused."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
import torch

from munet_serve.evolver.components import Head
from munet_serve.evolver.export import export_component, fresh_lineage
from munet_serve.server.ort_env import ort_environment
from munet_serve.server.segments import FuseError, fuse, segment_paths
from munet_serve.server.sessions import SessionPool
from munet_serve.server.values import DeviceValues, HostValues

from evolver_fixtures import ExportedRoot


def _check_cut(paths: dict[str, list[str]], cut: dict[str, Any]) -> None:
    """Every path is its segments laid end to end, and two paths that share a component share its whole segment."""
    owner: dict[str, tuple[str, ...]] = {}
    for task, path in paths.items():
        assert [cid for segment in cut[task] for cid in segment] == path
        for segment in cut[task]:
            for cid in segment:
                assert owner.setdefault(cid, segment) == segment, (task, cid)


def test_one_path_is_one_segment() -> None:
    paths = {"a": ["e", "b1", "b2", "n", "h"]}
    assert segment_paths(paths) == {"a": (("e", "b1", "b2", "n", "h"),)}


def test_paths_are_cut_where_they_part_and_join_again() -> None:
    paths = {
        "a": ["e", "b1", "b2", "b3", "n", "ha"],
        "b": ["e", "b1", "b2", "b3", "n", "hb"],  # own head
        "c": ["e", "b1", "c2", "b3", "n", "hc"],  # clones the second block
        "d": ["e", "b1", "b3", "n", "hd"],  # drops the second block
    }
    cut = segment_paths(paths)
    _check_cut(paths, cut)
    assert cut["a"] == (("e", "b1"), ("b2",), ("b3", "n"), ("ha",))
    assert cut["c"] == (("e", "b1"), ("c2",), ("b3", "n"), ("hc",))
    assert cut["d"] == (("e", "b1"), ("b3", "n"), ("hd",))
    # Without the tasks that parted, the shared body is one segment again.
    assert segment_paths({"a": paths["a"], "b": paths["b"]})["a"] == (("e", "b1", "b2", "b3", "n"), ("ha",))


def test_root_components_never_share_a_segment_with_a_tasks_own() -> None:
    paths = {"a": ["e", "b1", "c2", "c3", "n", "ha"]}  # its own clones of two blocks, and its own head
    cut = segment_paths(paths, stable={"e", "b1", "b2", "b3", "n"})
    assert cut == {"a": (("e", "b1"), ("c2", "c3"), ("n",), ("ha",))}


def test_a_path_ending_where_another_goes_on_and_a_repeated_component_are_cut() -> None:
    paths = {"short": ["e", "b1", "h"], "long": ["e", "b1", "h", "x"], "twice": ["f", "g", "f", "g"]}
    cut = segment_paths(paths)
    _check_cut(paths, cut)
    assert cut["short"] == (("e", "b1", "h"),) and cut["long"] == (("e", "b1", "h"), ("x",))
    assert cut["twice"] == (("f",), ("g",), ("f",), ("g",))


def _head(dim: int, classes: int, seed: int) -> Any:
    head = Head(dim, classes)
    torch.nn.init.normal_(head.fc.weight, std=0.5, generator=torch.Generator().manual_seed(seed))
    return export_component(head, fresh_lineage(f"t{seed}", "head"))


@pytest.fixture(scope="module")
def path(tiny_root: ExportedRoot) -> list[Any]:
    """The tiny root's components and a fresh head, exported."""
    return [*tiny_root.artifacts, _head(int(tiny_root.root.describe()["embed_dim"]), 4, 7)]


def _chain(graphs: list[bytes], x: np.ndarray) -> np.ndarray:
    env = ort_environment()
    for graph in graphs:
        session = env.create_session(graph)
        x = session.run([session.get_outputs()[-1].name], {session.get_inputs()[0].name: x})[0]
    return x


def test_a_fused_path_answers_bit_for_bit_what_its_chain_answers(path: list[Any]) -> None:
    graphs = [a.onnx for a in path]
    fused = fuse([onnx.load_from_string(g) for g in graphs])
    assert len(fused.graph.output) == len(graphs)  # every join stays an output: nothing is fused across it
    for rows in (1, 3):
        x = np.random.default_rng(rows).standard_normal((rows, 3, 32, 32)).astype(np.float32)
        unfused = _chain(graphs, x)
        assert unfused.shape == (rows, 4)
        assert np.array_equal(_chain([fused.SerializeToString()], x), unfused)
        # Any cut of the path into segments answers the same.
        halves = [fuse([onnx.load_from_string(g) for g in part]).SerializeToString() for part in (graphs[:4],
                                                                                                   graphs[4:])]
        assert np.array_equal(_chain(halves, x), unfused)


def test_graphs_of_different_opsets_are_not_fused(path: list[Any]) -> None:
    first, second = (onnx.load_from_string(a.onnx) for a in path[:2])
    second.opset_import[0].version -= 1
    with pytest.raises(FuseError, match="different versions of opset"):
        fuse([first, second])


def test_the_pool_runs_a_segment_it_cannot_fuse_one_session_per_component(
    path: list[Any], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    files = {}
    for i, artifact in enumerate(path):
        model = onnx.load_from_string(artifact.onnx)
        if i == len(path) - 1:
            model.opset_import[0].version -= 1  # the head cannot join the others
        files[artifact.id] = tmp_path / f"{artifact.id}.onnx"
        files[artifact.id].write_bytes(model.SerializeToString())
    pool = SessionPool(ort_environment(), files.__getitem__)
    segment = [(a.id, a.info.kind) for a in path]
    body = segment[:-1]
    with caplog.at_level(logging.WARNING, logger="munet_serve.server.sessions"):
        steps = pool.acquire([segment, body])
    assert "runs unfused" in caplog.text
    assert [s.component_ids for s in steps] == [(cid,) for cid, _ in segment] + [tuple(c for c, _ in body)]
    assert len(pool.loaded()) == len(path) + 1  # the body fused (its opsets agree), shared by nobody else
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    y = x
    for step in steps[:len(path)]:
        y = step.run(y)
    assert np.array_equal(y, _chain([a.onnx for a in path], x))
    assert np.array_equal(steps[-1].run(x), _chain([a.onnx for a in path[:-1]], x))
    pool.release([s.id for s in steps])
    assert pool.loaded() == []


def test_a_fused_segment_runs_with_iobinding_on_device_values(path: list[Any], tmp_path: Path) -> None:
    """The CUDA path binds only a segment's last output (its joins are outputs too); the same code on the CPU device
    answers what the host path answers."""
    files = {a.id: tmp_path / f"{a.id}.onnx" for a in path}
    for artifact in path:
        files[artifact.id].write_bytes(artifact.onnx)
    pool = SessionPool(ort_environment(), files.__getitem__)
    body, head = pool.acquire([[(a.id, a.info.kind) for a in path[:-1]], [(path[-1].id, path[-1].info.kind)]])
    x = np.random.default_rng(1).standard_normal((3, 3, 32, 32)).astype(np.float32)
    device = DeviceValues(ort_environment(), "cpu")
    host = HostValues()
    on_device = device.to_host(device.run(head, device.run(body, device.from_host(x))))
    assert np.array_equal(on_device, host.run(head, host.run(body, x)))
