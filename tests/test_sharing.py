"""Two tasks on shared root components: one session per distinct component, seen through public surfaces (the
GetServingInfo RPC and the Prometheus metric); deleting one task leaves the other serving."""

from __future__ import annotations

import re
import urllib.request
from pathlib import Path

import numpy as np

from munet_serve.clients import Client

from serving_fixtures import TASK, Served, evolver, register_dataset


def loaded_sessions_metric(port: int) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    return float(re.search(r"^munet_loaded_sessions (\S+)$", text, re.M).group(1))


def test_shared_components_are_loaded_once_and_survive_a_delete(
    start_server, served_dir: Path, served_template: Served, digits, tmp_path: Path
) -> None:
    server = start_server(served_dir, metrics_port=0)
    with Client(server.target, timeout=300) as client:
        # A second task: even digits vs odd digits, on the same images.
        parity = digits.__class__(digits.images, digits.labels % 2, digits.splits)
        register_dataset(client, "parity", parity, labels=["even", "odd"])
        assert evolver(client, tmp_path / "cache").seed_pending() == ["parity"]

        routes = {r.task: r for r in client.serving_info().routes}
        assert set(routes) == {TASK, "parity"}
        ids = {t: set(r.component_ids) for t, r in routes.items()}
        shared = ids[TASK] & ids["parity"]
        assert len(shared) >= len(routes[TASK].component_ids) - 2  # at least the root body (parity may reuse more)
        info = client.serving_info()
        assert len(info.sessions) == len(ids[TASK] | ids["parity"])  # one session per distinct component
        users = {s.id: s.tasks for s in info.sessions}
        assert all(users[c] == sorted([TASK, "parity"]) for c in shared)
        assert loaded_sessions_metric(server.metrics_port) == len(info.sessions)

        (parity_v1,) = client.list_versions("parity")
        assert parity_v1.parent is not None and parity_v1.parent.task in ("", TASK)

        before = client.predict(TASK, list(served_template.test_images[:8]), include_logits=True)
        client.delete_task("parity")
        after = client.predict(TASK, list(served_template.test_images[:8]), include_logits=True)
        assert after.version == before.version == 1
        assert np.array_equal(np.stack([p.logits for p in after.predictions]),
                              np.stack([p.logits for p in before.predictions]))
        info = client.serving_info()
        assert {s.id for s in info.sessions} == ids[TASK]  # parity's own components are unloaded
        assert loaded_sessions_metric(server.metrics_port) == len(ids[TASK])
        assert [t.name for t in client.list_tasks()] == [TASK]
