"""Hot swap under load: client threads predict without pause while 20 versions are published and rolled back."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from munet_serve.clients import Client
from munet_serve.clients.errors import InvalidArgumentError, MunetError
from munet_serve.clients.types import PathComponent, PathRef
from munet_serve.evolver.components import fresh_head
from munet_serve.evolver.export import export_component, fresh_lineage
from munet_serve.imaging import to_model_input

from serving_fixtures import TASK, Served, random_heads

PUBLISHES = 20
CLIENT_THREADS = 4


def test_publishes_and_rollbacks_under_load_drop_no_request(
    start_server, served_dir: Path, served_template: Served
) -> None:
    server = start_server(served_dir)
    client = Client(server.target, timeout=60)
    (v1,) = client.list_versions(TASK)
    body = v1.components[:-1]
    dim = client.list_components([v1.components[-1].id])[0].config["dim"]
    heads = random_heads(dim, 3)
    x = to_model_input(list(served_template.test_images[:2]), v1.input)

    # Which head each version uses, to check every answer came from one whole version.
    version_head = {1: v1.components[-1].id}
    expected_by_head: dict[str, np.ndarray] = {}

    answers: list[tuple[float, float, int, np.ndarray]] = []
    failures: list[BaseException] = []
    stop = threading.Event()

    def predict_forever() -> None:
        with Client(server.target, timeout=60) as c:
            while not stop.is_set():
                start = time.monotonic()
                try:
                    r = c.predict_batch(TASK, x, include_logits=True)
                except BaseException as e:  # noqa: BLE001 - every failure counts
                    failures.append(e)
                    continue
                answers.append((start, time.monotonic(), r.version, np.stack([p.logits for p in r.predictions])))

    # current[i] = (time the change began, time it ended, version made current)
    current: list[tuple[float, float, int]] = [(0.0, 0.0, 1)]
    threads = [threading.Thread(target=predict_forever) for _ in range(CLIENT_THREADS)]
    for t in threads:
        t.start()
    try:
        for i in range(PUBLISHES):
            head = heads[i % len(heads)]
            began = time.monotonic()
            published = client.publish_path(
                TASK, [*body, PathComponent("head", head.id)], hparams=v1.hparams, metrics=v1.metrics,
                input=v1.input, parent=PathRef(TASK, 1), new_components=[head],
            )
            current.append((began, time.monotonic(), published.version))
            version_head[published.version] = head.id
            if i % 4 == 3:  # roll back to an earlier version every fourth publish
                target = published.version - 2
                began = time.monotonic()
                assert client.rollback(TASK, target).current_version == target
                current.append((began, time.monotonic(), target))
            time.sleep(0.02)
    finally:
        stop.set()
        for t in threads:
            t.join()

    assert failures == []
    assert len(answers) > 50
    versions = [v.version for v in client.list_versions(TASK)]
    assert versions == list(range(1, PUBLISHES + 2))

    # An answer names a version that was current at some moment of its call: version v was current from the
    # start of the change that made it current to the end of the next change.
    windows: dict[int, list[tuple[float, float]]] = {}
    for i, (began, _, version) in enumerate(current):
        until = current[i + 1][1] if i + 1 < len(current) else float("inf")
        windows.setdefault(version, []).append((began, until))
    for start, end, version, logits in answers:
        assert any(s <= end and start <= u for s, u in windows[version]), (version, start, end)
        head_id = version_head[version]
        expected = expected_by_head.setdefault(head_id, logits)
        assert np.array_equal(logits, expected), f"version {version} answered with mixed components"
    assert len({v for _, _, v, _ in answers}) > 3
    # Only the current path's components stay loaded: the heads of earlier versions were unloaded. The body every
    # version kept is one session of its own, reused by each publish; each new head another.
    (route,) = client.serving_info().routes
    loaded = sorted(s.component_ids for s in client.serving_info().sessions)
    assert loaded == sorted([route.component_ids[:-1], route.component_ids[-1:]])
    client.close()


def test_a_version_that_cannot_load_is_refused_and_the_old_one_keeps_serving(
    start_server, served_dir: Path, served_template: Served
) -> None:
    server = start_server(served_dir)
    with Client(server.target, timeout=60) as client:
        (v1,) = client.list_versions(TASK)
        dim = client.list_components([v1.components[-1].id])[0].config["dim"]
        wrong = export_component(fresh_head(dim, 7), fresh_lineage(TASK, "head"))  # 7 classes for a 10-label task
        with pytest.raises(InvalidArgumentError, match=r"outputs shape \[1, 7\].*10 labels"):
            client.publish_path(
                TASK, [*v1.components[:-1], PathComponent("head", wrong.id)], hparams={}, metrics=v1.metrics,
                input=v1.input, parent=None, new_components=[wrong],
            )
        task = client.get_task(TASK)
        assert task.current_version == 1 and task.num_versions == 1
        assert client.predict(TASK, [served_template.test_images[0]]).version == 1
        info = client.serving_info()
        assert wrong.id not in {c for s in info.sessions for c in s.component_ids}
        with pytest.raises(MunetError):
            client.list_components([wrong.id])
