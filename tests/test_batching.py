"""Dynamic and cross-task batching (server/batching.py) on real ONNX Runtime sessions of exported components:
batched answers equal unbatched ones, different tasks share runs of shared components, the oldest request goes
first, failures reach every request of the batch, and closing fails what is still waiting. The device-resident value
path (IOBinding, server/values.py) runs the same chains on the CPU device and must agree with the host path."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pytest
import torch

from munet_serve.errors import MunetError, UnavailableError
from munet_serve.evolver.components import Head
from munet_serve.evolver.export import export_component, fresh_lineage
from munet_serve.imaging import InputSpec
from munet_serve.server.batching import Batcher, BatchingConfig
from munet_serve.server.ort_env import ort_environment
from munet_serve.server.routes import Route
from munet_serve.server.sessions import LoadedSegment
from munet_serve.server.values import DeviceValues, HostValues, ValueOps

from evolver_fixtures import ExportedRoot


def _component(artifact: Any) -> LoadedSegment:
    return LoadedSegment(((artifact.id, artifact.info.kind),), ort_environment().create_session(artifact.onnx))


def _head(dim: int, classes: int, seed: int) -> Any:
    head = Head(dim, classes)
    torch.nn.init.normal_(head.fc.weight, std=0.5, generator=torch.Generator().manual_seed(seed))
    return export_component(head, fresh_lineage(f"t{seed}", "head"))


@pytest.fixture(scope="module")
def routes(tiny_root: ExportedRoot) -> dict[str, Route]:
    """Three tasks on the tiny root: 'frequent' and 'rare' share everything but their heads; 'broken' feeds the
    embedding's output into the embedding again (ONNX Runtime rejects it at run time)."""
    body = tuple(_component(a) for a in tiny_root.artifacts)
    dim = int(tiny_root.root.describe()["embed_dim"])
    spec = InputSpec(image_size=32)

    def route(task: str, tail: tuple[LoadedSegment, ...], classes: int) -> Route:
        return Route(task, 1, tuple(f"l{i}" for i in range(classes)), spec, body + tail)

    routes = {
        "frequent": route("frequent", (_component(_head(dim, 3, 1)),), 3),
        "rare": route("rare", (_component(_head(dim, 5, 2)),), 5),
    }
    routes["broken"] = Route("broken", 1, ("a", "b"), spec, (body[0], body[0]))
    return routes


def _images(rows: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((rows, 3, 32, 32)).astype(np.float32)


class Recorder:
    """Batch observer: (kind, tasks of the jobs, images) of every component run, in order."""

    def __init__(self) -> None:
        self.runs: list[tuple[str, list[str], int]] = []
        self._lock = threading.Lock()

    def __call__(self, component: LoadedSegment, tasks: list[str], images: int) -> None:
        with self._lock:
            self.runs.append((component.kind.value, tasks, images))


def _submit_all(batcher: Batcher, requests: Sequence[tuple[Route, np.ndarray]]) -> list[Any]:
    """Submits every request from its own thread at once; returns each answer or exception, in request order."""
    answers: list[Any] = [None] * len(requests)
    start = threading.Barrier(len(requests))

    def call(i: int) -> None:
        start.wait()
        try:
            answers[i] = batcher.run(*requests[i])
        except Exception as e:  # noqa: BLE001 - recorded for the assertions
            answers[i] = e

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(requests))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return answers


@pytest.mark.parametrize("ops_factory", [HostValues, lambda: DeviceValues(ort_environment(), "cpu")],
                         ids=["host", "iobinding-cpu"])
def test_batched_answers_equal_unbatched_ones_and_tasks_share_runs(
    routes: dict[str, Route], ops_factory: Callable[[], ValueOps]
) -> None:
    recorder = Recorder()
    batcher = Batcher(BatchingConfig(max_batch_images=16, max_delay_ms=50), ops_factory(), recorder)
    try:
        requests = [(routes["rare" if i % 4 == 0 else "frequent"], _images(1 + i % 3, i)) for i in range(24)]
        answers = _submit_all(batcher, requests)
    finally:
        batcher.close()
    for (route, x), got in zip(requests, answers, strict=True):
        assert isinstance(got, np.ndarray), got
        np.testing.assert_allclose(got, route.run(x), rtol=1e-5, atol=1e-5)
        assert got.shape == (x.shape[0], len(route.labels))
    shared = [r for r in recorder.runs if r[0] != "head"]
    assert any(len(set(tasks)) == 2 for _, tasks, _ in shared)  # cross-task batches through the shared body
    assert all(len(set(tasks)) == 1 for kind, tasks, _ in recorder.runs if kind == "head")  # heads are per task
    assert all(images <= 16 or len(tasks) == 1 for _, tasks, images in recorder.runs)
    assert max(images for _, _, images in recorder.runs) > 3  # requests really ran together
    images_through_embedding = sum(images for kind, _, images in recorder.runs if kind == "embedding")
    assert images_through_embedding == sum(x.shape[0] for _, x in requests)


class GatedOps(HostValues):
    """Host values whose first component run waits for `gate`: lets a test queue requests behind a busy worker."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.started = threading.Event()
        self._first = True

    def run(self, component: LoadedSegment, value: np.ndarray) -> np.ndarray:
        if self._first:
            self._first = False
            self.started.set()
            assert self.gate.wait(30)
        return super().run(component, value)


def _start(batcher: Batcher, route: Route, x: np.ndarray, out: dict[str, Any], name: str) -> threading.Thread:
    def call() -> None:
        try:
            out[name] = batcher.run(route, x)
        except Exception as e:  # noqa: BLE001
            out[name] = e

    thread = threading.Thread(target=call)
    thread.start()
    return thread


def _release(ops: GatedOps, threads: list[threading.Thread]) -> None:
    """Lets the queued requests settle, opens the gate and waits for every request."""
    time.sleep(0.2)
    ops.gate.set()
    for t in threads:
        t.join(timeout=60)


def test_the_oldest_request_runs_first_so_a_rare_task_is_not_starved(routes: dict[str, Route]) -> None:
    ops, recorder = GatedOps(), Recorder()
    batcher = Batcher(BatchingConfig(max_batch_images=64, max_delay_ms=0), ops, recorder)
    out: dict[str, Any] = {}
    try:
        threads = [_start(batcher, routes["frequent"], _images(1, 0), out, "busy")]
        assert ops.started.wait(30)  # the worker is busy with the first request
        threads.append(_start(batcher, routes["rare"], _images(1, 1), out, "rare"))
        time.sleep(0.05)
        for i in range(12):  # frequent traffic that arrives after the rare request
            threads.append(_start(batcher, routes["frequent"], _images(1, 10 + i), out, f"f{i}"))
        _release(ops, threads)
    finally:
        batcher.close()
    assert all(isinstance(v, np.ndarray) for v in out.values()), out
    heads = [tasks for kind, tasks, _ in recorder.runs if kind == "head"]
    # The busy request finishes first, then the rare one (the oldest waiting), then the frequent ones in one batch.
    assert heads[0] == ["frequent"] and heads[1] == ["rare"] and sorted(heads[2]) == ["frequent"] * 12
    embedding_batches = [tasks for kind, tasks, _ in recorder.runs if kind == "embedding"]
    assert sorted(embedding_batches[1]) == ["frequent"] * 12 + ["rare"]  # ... after sharing the body with them


def _cloned_route(routes: dict[str, Route]) -> tuple[Route, Route, int]:
    """'frequent' and a route 'cloned' that runs its own copy of the first block (a distinct component id on the same
    session) and the shared blocks after it, with the rare task's head; and the index of that block."""
    frequent = routes["frequent"]
    index = next(i for i, c in enumerate(frequent.steps) if c.kind.value == "encoder_block")
    block = frequent.steps[index]
    clone = LoadedSegment(((f"clone-of-{block.id}", block.kind),), block.session)
    tail = (*frequent.steps[index + 1:-1], routes["rare"].steps[-1])
    return frequent, Route("cloned", 1, routes["rare"].labels, frequent.input,
                           (*frequent.steps[:index], clone, *tail)), index


class RunLog:
    """Batch observer keeping (component id, sorted tasks) of every run."""

    def __init__(self) -> None:
        self.runs: list[tuple[str, list[str]]] = []

    def __call__(self, component: LoadedSegment, tasks: list[str], images: int) -> None:
        self.runs.append((component.id, sorted(tasks)))


def _check_answers(out: dict[str, Any], routes: dict[str, Route], seeds: dict[str, int]) -> None:
    for name, got in out.items():
        assert isinstance(got, np.ndarray), (name, got)
        np.testing.assert_allclose(got, routes[name].run(_images(1, seeds[name])), rtol=1e-5, atol=1e-5)


def test_parts_of_a_wave_join_again_after_a_cloned_block(routes: dict[str, Route]) -> None:
    """The wave splits at the first block ('cloned' runs its own copy) and its parts must run the next shared block
    together, not one after the other: the part that is behind goes first."""
    frequent, cloned, index = _cloned_route(routes)
    ops, log = GatedOps(), RunLog()
    batcher = Batcher(BatchingConfig(max_batch_images=64, max_delay_ms=0), ops, log)
    out: dict[str, Any] = {}
    by_name, seeds = {"busy": frequent}, {"busy": 0}
    try:
        threads = [_start(batcher, frequent, _images(1, 0), out, "busy")]
        assert ops.started.wait(30)  # the worker is held: the next requests queue as one wave
        for i in range(6):
            name = f"{'cloned' if i % 2 else 'frequent'}{i}"
            by_name[name], seeds[name] = cloned if i % 2 else frequent, 10 + i
            threads.append(_start(batcher, by_name[name], _images(1, seeds[name]), out, name))
            time.sleep(0.01)
        _release(ops, threads)
    finally:
        batcher.close()
    _check_answers(out, by_name, seeds)
    block, clone, after = frequent.steps[index], cloned.steps[index], frequent.steps[index + 1]
    wave = ["cloned"] * 3 + ["frequent"] * 3
    assert (block.id, ["frequent"] * 3) in log.runs and (clone.id, ["cloned"] * 3) in log.runs  # the wave split ...
    assert [r for r in log.runs if r[0] == after.id and r[1] != ["frequent"]] == [(after.id, wave)]  # ... and joined


def test_a_failing_component_fails_every_request_of_its_batch_and_the_batcher_goes_on(
    routes: dict[str, Route],
) -> None:
    batcher = Batcher(BatchingConfig(max_delay_ms=20), HostValues())
    try:
        answers = _submit_all(batcher, [(routes["broken"], _images(1, i)) for i in range(3)])
        assert all(isinstance(a, MunetError) for a in answers), answers
        assert "inference failed on version 1 of task 'broken'" in str(answers[0])
        ok = batcher.run(routes["rare"], _images(2, 5))
        np.testing.assert_allclose(ok, routes["rare"].run(_images(2, 5)), rtol=1e-5, atol=1e-5)
    finally:
        batcher.close()


def test_closing_fails_requests_still_waiting_with_unavailable(routes: dict[str, Route]) -> None:
    ops = GatedOps()
    batcher = Batcher(BatchingConfig(max_delay_ms=0), ops)
    out: dict[str, Any] = {}
    threads = [_start(batcher, routes["frequent"], _images(1, 0), out, "running")]
    assert ops.started.wait(30)
    threads.append(_start(batcher, routes["rare"], _images(1, 1), out, "waiting"))
    time.sleep(0.1)
    closer = threading.Thread(target=batcher.close)
    closer.start()
    time.sleep(0.1)
    ops.gate.set()
    closer.join(timeout=30)
    for t in threads:
        t.join(timeout=30)
    assert isinstance(out["waiting"], UnavailableError) and "stopped" in str(out["waiting"])
    assert isinstance(out["running"], UnavailableError)  # it was between two components when the server stopped
    with pytest.raises(UnavailableError, match="stopping"):
        batcher.run(routes["rare"], _images(1, 2))


def test_batching_settings_are_checked() -> None:
    for bad in ({"max_batch_images": 0}, {"max_delay_ms": -1}, {"workers": 0}):
        with pytest.raises(ValueError):
            BatchingConfig(**bad)  # type: ignore[arg-type]
