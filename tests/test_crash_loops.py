"""Crash loops (benchmarks/crash/loops.py) on a real server and the real evolver: kill -9 of the server under load,
with predicts and publishes in flight, and of the evolver part-way through its publish stream; after each kill
munet-serve check passes and every answer is bit-identical to the first one of its version, from a version never
older than the last acknowledged publish. The default run makes a few kills; the slow one makes the issue's 20 of
each."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.crash.loops import Answers, Kill, evolver_kill_loop, server_kill_loop, start_server
from benchmarks.crash.setup import KILLED_ARGS
from munet_serve.server.registry import Registry

from serving_fixtures import TASK, Served, random_heads


def _kills(served_dir: Path, images, tmp_path: Path, server_kills: int, evolver_kills: int) -> tuple[
        list[Kill], list[Kill], Answers]:
    registry = Registry(served_dir)
    try:
        (current,) = registry.current_versions()
        dim = registry.get_component(current.component_ids[-1]).config["dim"]
    finally:
        registry.close()
    answers = Answers(TASK, images)
    servers = server_kill_loop(served_dir, tmp_path, answers, random_heads(dim, 4), kills=server_kills)
    server = start_server(served_dir, tmp_path, "evolver-loop")
    try:
        evolvers = evolver_kill_loop(server.target, served_dir, tmp_path / "cache", answers, KILLED_ARGS,
                                     kills=evolver_kills)
    finally:
        server.stop()
    return servers, evolvers, answers


def _assert_survived(servers: list[Kill], evolvers: list[Kill], answers: Answers, server_kills: int,
                     evolver_kills: int) -> None:
    assert len(servers) == server_kills and len(evolvers) == evolver_kills
    assert all(k.check_ok for k in [*servers, *evolvers])
    assert sum(k.in_flight for k in servers) >= server_kills  # the kills landed on requests in flight
    assert answers.acknowledged >= 2  # publishes went through between the kills
    assert all(k.served_version >= 1 for k in [*servers, *evolvers])
    assert answers.checked > server_kills + evolver_kills


def test_a_few_kills_of_the_server_and_the_evolver(served_dir: Path, served_template: Served,
                                                  tmp_path: Path) -> None:
    servers, evolvers, answers = _kills(served_dir, served_template.test_images[:16], tmp_path, 2, 1)
    _assert_survived(servers, evolvers, answers, 2, 1)


@pytest.mark.slow
def test_twenty_kills_of_the_server_and_twenty_of_the_evolver(served_dir: Path, served_template: Served,
                                                             tmp_path: Path) -> None:
    servers, evolvers, answers = _kills(served_dir, served_template.test_images[:16], tmp_path, 20, 20)
    _assert_survived(servers, evolvers, answers, 20, 20)
