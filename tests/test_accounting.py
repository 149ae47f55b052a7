"""Live parameter accounting (docs/evolution.md §6): each task's accounted parameters divide every component of its
current path among the tasks whose current path uses it; the system's parameters per task are its distinct parameters
divided by the serving tasks. Checked by hand on two tasks sharing the root body, through the SDK and the CLI."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
from test_cli import cli

from munet_serve.clients import AsyncClient, Client
from munet_serve.clients.types import Metrics, PathComponent, PathRef, SystemStats
from munet_serve.evolver.components import fresh_head
from munet_serve.evolver.export import export_component, fresh_lineage
from munet_serve.server.accounting import account

from serving_fixtures import TASK


def test_account_divides_each_component_among_its_users() -> None:
    paths = {"a": ["b1", "b2", "ha"], "b": ["b1", "b2", "hb"], "c": ["b1", "hc", "hc"]}
    params = {"b1": 30, "b2": 9, "ha": 5, "hb": 7, "hc": 4}
    result = account(paths, params, root_params=100)
    # b1 is used by 3 tasks (10 each), b2 by 2 (4.5 each); hc repeated in one path counts once.
    assert result.accounted == {"a": round(10 + 4.5 + 5), "b": round(10 + 4.5 + 7), "c": 10 + 4}
    assert result.distinct_params == 30 + 9 + 5 + 7 + 4
    assert result.serving_tasks == 3 and result.params_per_task == 55 / 3 and result.root_params == 100
    empty = account({}, {}, root_params=0)
    assert (empty.accounted, empty.distinct_params, empty.serving_tasks, empty.params_per_task) == ({}, 0, 0, 0.0)


def test_accounted_params_follow_sharing_publishes_and_deletes(start_server, served_dir: Path) -> None:
    server = start_server(served_dir)
    target = server.target
    with Client(target, timeout=120) as client:
        root = client.get_root()
        assert root is not None and root.params > 0
        (v1,) = client.list_versions(TASK)
        body, digits_head = v1.components[:-1], v1.components[-1]
        infos = {c.id: c for c in client.list_components([c.id for c in v1.components])}
        body_params = [infos[cid].num_params for cid in dict.fromkeys(c.id for c in body)]
        digits_head_params = infos[digits_head.id].num_params
        alone = sum(body_params) + digits_head_params

        # One task: it carries its whole path.
        assert client.get_task(TASK).accounted_params == alone
        assert client.system_stats() == SystemStats(
            distinct_params=alone, params_per_task=float(alone), serving_tasks=1, root_params=root.params
        )

        # A pending task accounts nothing and is not a serving task.
        client.register_task("parity", ["even", "odd"], [np.zeros((8, 8), np.uint8)] * 6, [0, 1] * 3)
        assert client.get_task("parity").accounted_params == 0
        assert client.system_stats().serving_tasks == 1

        # Publish parity as the root body (shared with digits) plus its own head, without the evolver.
        head = export_component(fresh_head(infos[digits_head.id].config["dim"], 2), fresh_lineage("parity", "head"))
        client.publish_path(
            "parity", [*body, PathComponent("head", head.id)], hparams=v1.hparams,
            metrics=Metrics(validation_accuracy=0.5, accounted_params=123), input=v1.input,
            parent=PathRef(TASK, 1), new_components=[head],
        )
        tasks, stats = client.list_tasks_with_stats()
        by_name = {t.name: t for t in tasks}
        half_body = sum(p / 2 for p in body_params)
        assert by_name[TASK].accounted_params == round(half_body + digits_head_params)
        assert by_name["parity"].accounted_params == round(half_body + head.info.num_params)
        assert client.get_task(TASK).accounted_params == by_name[TASK].accounted_params
        distinct = sum(body_params) + digits_head_params + head.info.num_params
        assert stats == SystemStats(
            distinct_params=distinct, params_per_task=distinct / 2, serving_tasks=2, root_params=root.params
        )
        # Parameters per task is the mean of the tasks' accounted counts (up to their rounding).
        mean = (by_name[TASK].accounted_params + by_name["parity"].accounted_params) / 2
        assert abs(stats.params_per_task - mean) <= 1
        # The published figures stay what they were at publish time.
        assert by_name[TASK].metrics.accounted_params == v1.metrics.accounted_params
        assert by_name["parity"].metrics.accounted_params == 123

        async def async_stats() -> SystemStats:
            async with AsyncClient(target, timeout=60) as aclient:
                return await aclient.system_stats()

        assert asyncio.run(async_stats()) == stats

        listing = cli("tasks", "list", server=target).stdout
        assert f"{by_name[TASK].accounted_params:,}" in listing and f"{by_name['parity'].accounted_params:,}" in listing
        assert (f"system: 2 serving tasks, {distinct:,} distinct params, {distinct / 2:,.0f} params per task "
                f"({distinct / 2 / root.params:.3f} x root); root {root.params:,} params") in listing
        show = cli("tasks", "show", "parity", server=target).stdout
        assert f"{by_name['parity'].accounted_params:,}" in show and "123" in show

        # Deleting parity gives digits its whole path back.
        client.delete_task("parity")
        assert client.get_task(TASK).accounted_params == alone
        assert client.system_stats() == SystemStats(
            distinct_params=alone, params_per_task=float(alone), serving_tasks=1, root_params=root.params
        )


def test_system_line_without_tasks_or_root(start_server) -> None:
    server = start_server()
    with Client(server.target, timeout=60) as client:
        assert client.system_stats() == SystemStats()
    assert "system: no serving tasks; no root set" in cli("tasks", "list", server=server.target).stdout
