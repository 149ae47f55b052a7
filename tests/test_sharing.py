"""Two tasks on shared root components: each distinct component in one session, the root's body fused into one
segment session both tasks use, seen through public surfaces (the GetServingInfo RPC and the Prometheus metric);
requests of both tasks run through the shared components together (cross-task batching, seen in the batch metrics);
deleting one task leaves the other serving bit for bit as before."""

from __future__ import annotations

import re
import threading
import urllib.request
from pathlib import Path

import numpy as np
import torch

from munet_serve.clients import Client
from munet_serve.clients.types import Metrics, PathComponent
from munet_serve.evolver.components import fresh_head
from munet_serve.evolver.config import SearchBudget
from munet_serve.evolver.export import export_component, fresh_lineage

from evolver_fixtures import ExportedRoot
from serving_fixtures import TASK, Served, evolver, register_dataset, upload_root


def loaded_sessions_metric(port: int) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    return float(re.search(r"^munet_loaded_sessions (\S+)$", text, re.M).group(1))


def cross_task_runs(port: int) -> dict[str, float]:
    """Component runs that served more than one task, per component kind (from the munet_batch_tasks histogram)."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    totals = dict(re.findall(r'^munet_batch_tasks_count{kind="(\w+)"} (\S+)$', text, re.M))
    single = dict(re.findall(r'^munet_batch_tasks_bucket{kind="(\w+)",le="1.0"} (\S+)$', text, re.M))
    return {kind: float(totals[kind]) - float(single[kind]) for kind in totals}


def test_shared_components_are_loaded_once_and_survive_a_delete(
    start_server, served_dir: Path, served_template: Served, digits, tmp_path: Path
) -> None:
    # A long batching delay: requests that arrive within 300 ms of each other are sure to share runs.
    server = start_server(served_dir, metrics_port=0, batch_delay_ms=300)
    with Client(server.target, timeout=300) as client:
        first = client.predict(TASK, list(served_template.test_images[:8]), include_logits=True)
        # Served alone, the path is two sessions: the root's components (its body) and the task's own head.
        body, head = sorted(client.serving_info().sessions, key=lambda s: len(s.component_ids), reverse=True)
        assert body.component_ids + head.component_ids == client.serving_info().routes[0].component_ids
        # A second task: even digits vs odd digits, on the same images.
        parity = digits.__class__(digits.images, digits.labels % 2, digits.splits)
        register_dataset(client, "parity", parity, labels=["even", "odd"])
        # one candidate: the seed phase's first, the first task's path with a fresh head (no mutated children)
        one = SearchBudget(children_per_generation=1, samples_per_task=1, task_iterations=1)
        assert evolver(client, tmp_path / "cache", search=one).seed_pending() == ["parity"]
        # The new task's path runs through the same body session; the first task answers bit for bit as before.
        assert {s.id: s.tasks for s in client.serving_info().sessions}[body.id] == sorted([TASK, "parity"])
        again = client.predict(TASK, list(served_template.test_images[:8]), include_logits=True)
        assert np.array_equal(np.stack([p.logits for p in again.predictions]),
                              np.stack([p.logits for p in first.predictions]))

        routes = {r.task: r for r in client.serving_info().routes}
        assert set(routes) == {TASK, "parity"}
        ids = {t: set(r.component_ids) for t, r in routes.items()}
        shared = ids[TASK] & ids["parity"]
        assert len(shared) >= len(routes[TASK].component_ids) - 2  # at least the root body (parity may reuse more)
        info = client.serving_info()
        loaded = [cid for s in info.sessions for cid in s.component_ids]
        assert sorted(loaded) == sorted(ids[TASK] | ids["parity"])  # each distinct component in exactly one session
        users = {cid: s.tasks for s in info.sessions for cid in s.component_ids}
        assert all(users[c] == sorted([TASK, "parity"]) for c in shared)
        both = [s for s in info.sessions if s.tasks == sorted([TASK, "parity"])]
        assert {c for s in both for c in s.component_ids} == shared
        assert len(both) < len(shared)  # the shared runs of components are fused segments
        assert loaded_sessions_metric(server.metrics_port) == len(info.sessions)

        # Both tasks at once: their requests share the runs of the shared components, and each answer is its own.
        images = list(served_template.test_images[:3])
        alone = {t: client.predict(t, images, include_logits=True) for t in (TASK, "parity")}
        before = cross_task_runs(server.metrics_port)
        assert before and not any(before.values())  # one task at a time so far
        together: dict[str, object] = {}
        gate = threading.Barrier(2)

        def ask(task: str) -> None:
            gate.wait()
            together[task] = client.predict(task, images, include_logits=True)

        threads = [threading.Thread(target=ask, args=(t,)) for t in (TASK, "parity")]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        for task in (TASK, "parity"):
            np.testing.assert_allclose(np.stack([p.logits for p in together[task].predictions]),
                                       np.stack([p.logits for p in alone[task].predictions]), atol=1e-5)
        after = cross_task_runs(server.metrics_port)
        assert after["embedding"] == 1  # shared by every path: ran once for both requests
        assert after.get("head", 0) == 0  # each task's own head ran alone

        (parity_v1,) = client.list_versions("parity")
        assert parity_v1.parent is not None and parity_v1.parent.task in ("", TASK)

        before = client.predict(TASK, list(served_template.test_images[:8]), include_logits=True)
        client.delete_task("parity")
        after = client.predict(TASK, list(served_template.test_images[:8]), include_logits=True)
        assert after.version == before.version == 1
        assert np.array_equal(np.stack([p.logits for p in after.predictions]),
                              np.stack([p.logits for p in before.predictions]))
        info = client.serving_info()
        # parity's own components are unloaded; the body and the head are the two sessions left
        assert sorted(c for s in info.sessions for c in s.component_ids) == sorted(ids[TASK])
        assert {s.id for s in info.sessions} == {body.id, head.id}
        assert all(s.tasks == [TASK] for s in info.sessions)
        assert loaded_sessions_metric(server.metrics_port) == len(info.sessions)
        assert [t.name for t in client.list_tasks()] == [TASK]


def test_a_path_that_parts_inside_the_shared_body_splits_it_and_changes_no_answer(
    start_server, served_dir: Path, served_template: Served, digits, tiny_root: ExportedRoot
) -> None:
    server = start_server(served_dir)
    with Client(server.target, timeout=300) as client:
        (v1,) = client.list_versions(TASK)
        images = list(served_template.test_images[:4])

        def logits(task: str) -> np.ndarray:
            return np.stack([p.logits for p in client.predict(task, images, include_logits=True).predictions])

        def publish(task: str, components: list[PathComponent], new: list) -> None:
            register_dataset(client, task, digits)
            client.publish_path(task, components, hparams={}, metrics=v1.metrics, input=v1.input, parent=None,
                                new_components=new)

        # 'other' shares the whole body and has a head of its own: two sessions each, the body shared.
        dim = client.list_components([v1.components[-1].id])[0].config["dim"]
        head = fresh_head(dim, 10)
        with torch.no_grad():
            head.fc.weight.copy_(torch.randn(head.fc.weight.shape, generator=torch.Generator().manual_seed(3)))
        other_head = export_component(head, fresh_lineage("other", "head"))
        publish("other", [*v1.components[:-1], PathComponent("head", other_head.id)], [other_head])
        before = {task: logits(task) for task in (TASK, "other")}
        assert len(client.serving_info().sessions) == 3

        # 'clone' runs its own copy of the first block (same weights, another id) and joins the body again after it,
        # with TASK's head: the body is split around the block for everyone, and nobody's answers change.
        index = next(i for i, c in enumerate(v1.components) if c.name == "encoderblock_0")
        block = export_component(tiny_root.module("encoderblock_0"), fresh_lineage("clone", "encoderblock_0"))
        components = list(v1.components)
        components[index] = PathComponent("encoderblock_0", block.id)
        publish("clone", components, [block])
        info = client.serving_info()
        paths = {r.task: r.component_ids for r in info.routes}
        loaded = [cid for s in info.sessions for cid in s.component_ids]
        assert sorted(loaded) == sorted({cid for path in paths.values() for cid in path})  # each one, once
        users = {cid: s.tasks for s in info.sessions for cid in s.component_ids}
        assert users[block.id] == ["clone"] and users[v1.components[index].id] == sorted([TASK, "other"])
        assert users[v1.components[0].id] == users[v1.components[index + 1].id] == sorted([TASK, "clone", "other"])
        for task in (TASK, "other"):
            assert np.array_equal(logits(task), before[task])
        assert np.array_equal(logits("clone"), before[TASK])  # the same arithmetic, cut differently


def test_paths_published_before_the_root_is_set_are_cut_apart_from_it_when_it_is(
    start_server, tmp_path: Path, digits, tiny_root: ExportedRoot, served_template: Served
) -> None:
    server = start_server(tmp_path / "data")
    with Client(server.target, timeout=300) as client:
        client.upload_components(tiny_root.artifacts)  # the root's components, not yet named the root
        register_dataset(client, TASK, digits)
        dim = int(tiny_root.artifacts[-1].info.config["dim"])
        head = export_component(fresh_head(dim, 10), fresh_lineage(TASK, "head"))
        root_part = [PathComponent(name, a.id) for (name, _), a in zip(tiny_root.root.components, tiny_root.artifacts,
                                                                        strict=True)]
        client.publish_path(TASK, [*root_part, PathComponent("head", head.id)], hparams={}, metrics=Metrics(),
                            input=tiny_root.root.input, parent=None, new_components=[head])
        images = list(served_template.test_images[:4])
        before = client.predict(TASK, images, include_logits=True)
        # No root: nothing tells the root's components from the task's own, and the one path is one segment.
        assert [s.component_ids for s in client.serving_info().sessions] == [[c.id for c in root_part] + [head.id]]

        upload_root(client, tiny_root)
        # Setting the root re-cuts the live path: the root's components apart from the task's own head.
        sessions = sorted(s.component_ids for s in client.serving_info().sessions)
        assert sessions == sorted([[c.id for c in root_part], [head.id]])
        after = client.predict(TASK, images, include_logits=True)
        assert np.array_equal(np.stack([p.logits for p in after.predictions]),
                              np.stack([p.logits for p in before.predictions]))
