"""The whole method against a real server: improvements are published and served as they come, nothing already
published changes when another task evolves, and a task registered mid-run joins the round-robin."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np

from munet_serve.artifacts import sha256_hex
from munet_serve.clients import Client
from munet_serve.evolver.config import SearchBudget
from munet_serve.evolver.executors import InlineExecutor
from munet_serve.evolver.path import Origin
from munet_serve.evolver.path import Path as Path_

from serving_fixtures import TASK, Served, evolver, register_dataset

SHORT = SearchBudget(children_per_generation=2, samples_per_task=6, task_iterations=1)


class RecordingExecutor(InlineExecutor):
    """The inline executor, keeping every candidate it trained (to look at what they were made of)."""

    def __init__(self) -> None:
        super().__init__(progress=False)
        self.trained: list[Path_] = []

    def train(self, generation, data, stop=None, on_result=None):  # noqa: ANN001, ANN201
        self.trained += generation.candidates
        return super().train(generation, data, stop, on_result)


def parity_of(digits):
    return digits.__class__(digits.images, digits.labels % 2, digits.splits)


def test_evolution_publishes_improvements_and_each_goes_live(
    start_server, served_dir: Path, served_template: Served, tmp_path: Path
) -> None:
    server = start_server(served_dir)
    images = list(served_template.test_images[:4])
    client = Client(server.target, timeout=300)
    answered: list[tuple[int, int]] = []  # (published version, version that answered right after)
    watch = client.watch_tasks(TASK)

    def follow() -> None:
        with Client(server.target, timeout=60) as c:
            for event in watch:
                if event.type == "published":
                    answered.append((event.version, c.predict(TASK, images).version))

    follower = threading.Thread(target=follow)
    follower.start()
    try:
        worker = evolver(client, tmp_path / "cache", search=SHORT, mutation_probability=0.3)
        assert worker.run_once() == [TASK]
        time.sleep(1.0)
    finally:
        watch.cancel()
        follower.join(timeout=30)

    versions = client.list_versions(TASK)
    assert len(versions) >= 2
    scores = [v.metrics.validation_accuracy for v in versions]
    assert scores == sorted(scores), scores  # each publish beat the task's current score
    assert all(v.metrics.test_accuracy > 0 for v in versions)
    assert [v for v, _ in answered] == [v.version for v in versions[1:]]
    assert all(now >= published for published, now in answered)  # predictions switched to each new version
    task = client.get_task(TASK)
    assert task.current_version == versions[-1].version
    assert task.evolution.phase == "idle" and task.evolution.state["completed_iterations"] == 1
    # 6 candidates in generations of 2: the seed phase's generation holds the one seed (the root) and a mutated child
    assert task.evolution.candidates == 6 and task.evolution.generation == 3
    client.close()


def test_evolving_another_task_changes_nothing_already_published(
    start_server, served_dir: Path, served_template: Served, digits, tmp_path: Path
) -> None:
    server = start_server(served_dir)
    images = list(served_template.test_images)
    with Client(server.target, timeout=300) as client:
        # Task A (digits) evolves first, so that it owns private, cloned components.
        evolver(client, tmp_path / "a", search=SHORT, mutation_probability=1.0).run_once()
        (a_current,) = [v for v in client.list_versions(TASK) if v.current]
        a_ids = [c.id for c in a_current.components]
        a_weights = {cid: sha256_hex(client.get_component(cid).weights) for cid in a_ids}
        before = client.predict(TASK, images, include_logits=True)

        # Task B evolves with every frozen component cloned (mu = 1), from A's path among others.
        register_dataset(client, "parity", parity_of(digits), labels=["even", "odd"])
        recorder = RecordingExecutor()
        evolver(client, tmp_path / "b", search=SHORT, mutation_probability=1.0, executor_=recorder).run_once()
        cloned_from_a = [s for c in recorder.trained for s in c.slots
                         if s.origin is Origin.CLONE and s.component_id in a_ids]
        assert cloned_from_a, "no candidate of B cloned a component of A"
        shared_from_a = [s for c in recorder.trained for s in c.slots
                         if s.origin is Origin.SHARED and s.component_id in a_ids]
        assert shared_from_a, "no candidate of B used a component of A by reference"
        assert client.list_versions("parity")

        after = client.predict(TASK, images, include_logits=True)
        assert after.version == before.version == a_current.version
        assert np.array_equal(np.stack([p.logits for p in after.predictions]),
                              np.stack([p.logits for p in before.predictions]))
        (a_again,) = [v for v in client.list_versions(TASK) if v.current]
        assert [c.id for c in a_again.components] == a_ids
        assert {cid: sha256_hex(client.get_component(cid).weights) for cid in a_ids} == a_weights


def test_a_task_registered_while_the_evolver_runs_joins_the_round_robin(
    start_server, served_dir: Path, digits, tmp_path: Path
) -> None:
    server = start_server(served_dir)
    stop = threading.Event()
    with Client(server.target, timeout=300) as client:
        worker = evolver(client, tmp_path / "cache", search=SHORT, once=False, poll_interval=0.5)
        runner = threading.Thread(target=worker.run_forever, args=(stop,))
        runner.start()
        try:
            deadline = time.monotonic() + 240
            while client.get_task(TASK).evolution.phase not in ("seeding", "evolving"):
                assert time.monotonic() < deadline
                time.sleep(0.1)
            register_dataset(client, "parity", parity_of(digits), labels=["even", "odd"])
            first = client.wait_for_version("parity", 1, timeout=240)
            assert first.evolution.state.get("completed_iterations", 0) == 0  # servable before its evolution ran
            while client.get_task("parity").evolution.state.get("completed_iterations", 0) < 1:
                assert time.monotonic() < deadline, client.get_task("parity").evolution
                time.sleep(0.2)
        finally:
            stop.set()
            runner.join(timeout=120)
        assert not runner.is_alive()
        assert client.get_task(TASK).evolution.state["completed_iterations"] == 1
        assert client.predict("parity", [digits.images[0]]).version >= 1


def test_mu2net_variant_with_a_scale_factor_scores_by_size(start_server, served_dir: Path, tmp_path: Path) -> None:
    server = start_server(served_dir)
    with Client(server.target, timeout=300) as client:
        (v1,) = client.list_versions(TASK)
        worker = evolver(client, tmp_path / "cache", search=SHORT, variant="mu2net", scale_factor=0.5,
                         mutation_probability=0.2)
        worker.run_once()
        root_params = client.get_root().params
        new = client.list_versions(TASK)[1:]
        assert new, "mu2Net published nothing"
        for v in new:
            expected = v.metrics.validation_accuracy * 0.5 ** (v.metrics.accounted_params / root_params)
            assert abs(v.metrics.score - expected) < 1e-3 * expected, (v.version, v.metrics)
            assert "_mu_" in v.hparams and 0.1 <= v.hparams["_mu_"] <= 0.3
        assert client.get_task(TASK).evolution.state["completed_iterations"] == 1
        assert v1.metrics.score > 0


def test_mu2net_makes_a_new_task_servable_from_its_first_generation(
    start_server, served_dir: Path, digits, tmp_path: Path
) -> None:
    server = start_server(served_dir)
    with Client(server.target, timeout=300) as client:
        register_dataset(client, "parity", parity_of(digits), labels=["even", "odd"])
        worker = evolver(client, tmp_path / "cache", search=SHORT, variant="mu2net")
        assert worker.seed_pending() == ["parity"]
        task = client.get_task("parity")
        assert task.current_version == 1 and task.evolution.generation == 1  # no seed phase: one generation
        assert task.evolution.state["completed_iterations"] == 0  # the rest of the iteration waits its turn
        # the seeds' children for this task are kept (mu2Net's decay walk over the seeds reads them on a revisit)
        assert sum(task.evolution.state["seed_offspring"].values()) <= SHORT.children_per_generation
        worker.run_once()
        assert client.get_task("parity").evolution.state["completed_iterations"] == 1
