"""Evolution status with the evolver's opaque state: stored by ReportStatus, returned by GetTask, ListTasks and
WatchTasks, kept across a restart, replaced whole by the next report; shown by `tasks show` and `tasks watch`."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import numpy as np
import pytest
from test_cli import CLI, ENV, cli

from munet_serve.clients import AsyncClient, Client
from munet_serve.clients.errors import InvalidArgumentError, NotFoundError, ResourceExhaustedError
from munet_serve.clients.types import EvolutionStatus

STATE = {
    "completed_iterations": 3,
    "offspring": {"a1b2c3": 2, "d4e5f6": 0},
    "history": [{"generation": 1, "score": 0.5, "published": True}, [1, 2.5, None, "x"]],
    "large": 2**52 + 1,
    "negative": -7,
    "nested": {"deeper": {"list": [[], {}], "text": "[not markup]"}},
}


def register_small(client: Client, name: str = "small") -> None:
    client.register_task(name, ["a", "b"], [np.zeros((8, 8), np.uint8)] * 6, [0, 1] * 3)


def _assert_same_types(got: object, want: object) -> None:
    assert type(got) is type(want), (got, want)
    if isinstance(want, dict):
        assert isinstance(got, dict) and got.keys() == want.keys()
        for key in want:
            _assert_same_types(got[key], want[key])
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want)
        for g, w in zip(got, want, strict=True):
            _assert_same_types(g, w)


def test_state_round_trips_through_every_read_and_survives_a_restart(start_server, tmp_path: Path) -> None:
    server = start_server()
    status = EvolutionStatus(phase="evolving", iteration=4, generation=2, candidates=17, best_score=0.8125,
                             message="generation 2 of 3", worker="w1", state=STATE)
    with Client(server.target, timeout=60) as client:
        register_small(client)
        watch = client.watch_tasks("small")
        events = iter(watch)
        client.report_status("small", status)
        event = next(events)
        watch.cancel()
        task = client.get_task("small")
        (listed,) = client.list_tasks()

    assert event.type == "status" and event.task.evolution.state == STATE
    for got in (task.evolution, listed.evolution):
        assert got.state == STATE
        _assert_same_types(got.state, STATE)  # whole numbers are ints again, at any depth
        assert (got.phase, got.iteration, got.generation, got.candidates, got.best_score, got.message, got.worker) \
            == ("evolving", 4, 2, 17, 0.8125, "generation 2 of 3", "w1")
        assert got.updated_at is not None  # stamped by the server

    server.stop()
    restarted = start_server(tmp_path / "data")
    with Client(restarted.target, timeout=60) as client:
        again = client.get_task("small").evolution
        assert again.state == STATE and again.updated_at == task.evolution.updated_at
        _assert_same_types(again.state, STATE)

        # A report replaces the whole status: no state sent means no state kept.
        client.report_status("small", EvolutionStatus(phase="idle"))
        replaced = client.get_task("small").evolution
        assert replaced.phase == "idle" and replaced.state == {} and replaced.iteration == 0
        assert replaced.updated_at is not None and replaced.updated_at >= again.updated_at


def test_async_client_reports_and_reads_state(start_server) -> None:
    server = start_server()

    async def run() -> EvolutionStatus:
        async with AsyncClient(server.target, timeout=60) as client:
            await client.wait_ready()
            await client.register(_small_upload())
            await client.report_status("small", EvolutionStatus(phase="seeding", state={"done": [1, 2]}))
            return (await client.get_task("small")).evolution

    got = asyncio.run(run())
    assert got.phase == "seeding" and got.state == {"done": [1, 2]}


def _small_upload():  # noqa: ANN202
    from munet_serve.clients import TaskUpload

    return TaskUpload("small", ["a", "b"], [np.zeros((8, 8), np.uint8)] * 6, [0, 1] * 3)


def test_bad_states_are_refused_with_a_message(start_server) -> None:
    server = start_server(max_status_bytes=1000)
    with Client(server.target, timeout=60) as client:
        register_small(client)
        client.report_status("small", EvolutionStatus(phase="evolving", state={"ok": 1}))
        with pytest.raises(ResourceExhaustedError, match=r"takes \d+ bytes as JSON; the limit is 1000"):
            client.report_status("small", EvolutionStatus(phase="evolving", state={"big": "x" * 2000}))
        with pytest.raises(InvalidArgumentError, match="status state cannot be stored.*NaN"):
            client.report_status("small", EvolutionStatus(phase="evolving", state={"score": float("nan")}))
        with pytest.raises(TypeError, match="must be JSON-like"):
            client.report_status("small", EvolutionStatus(phase="evolving", state={"shape": np.int64(3)}))
        with pytest.raises(NotFoundError, match="task 'nope' not found"):
            client.report_status("nope", EvolutionStatus(phase="evolving", state={"ok": 1}))
        # Refused reports left the last good one in place.
        assert client.get_task("small").evolution.state == {"ok": 1}


def test_show_and_watch_print_the_evolution_status(start_server) -> None:
    server = start_server()
    with Client(server.target, timeout=60) as client:
        register_small(client)
        show = cli("tasks", "show", "small", server=server.target).stdout
        assert "no status reported yet" in show
        watcher = subprocess.Popen([CLI, "tasks", "watch", "small", "--server", server.target],
                                   stdout=subprocess.PIPE, text=True, env=ENV)
        try:
            assert "small: snapshot [pending, v0]" in watcher.stdout.readline()
            client.report_status("small", EvolutionStatus(
                phase="evolving", iteration=4, generation=2, candidates=17, best_score=0.8125,
                message="trying [adapters] next", worker="w1", state=STATE,
            ))
            line = watcher.stdout.readline()
        finally:
            watcher.terminate()
            watcher.wait(timeout=10)
    assert ("small: status [pending, v0] evolving, iter 4 gen 2, 17 candidates, best 0.8125, "
            "trying [adapters] next (from w1)") in line

    show = cli("tasks", "show", "small", server=server.target).stdout
    rows = {" ".join(line.strip("│ ").split()) for line in show.splitlines()}
    for expected in ("evolution phase │ evolving", "iteration │ 4", "generation │ 2", "candidates │ 17",
                     "best score │ 0.8125", "versions published │ 0", "message │ trying [adapters] next",
                     "worker │ w1"):
        assert expected in rows, (expected, show)
    assert "status updated" in show
    assert 'evolver state' in show and '{"completed_iterations":3,' in show
