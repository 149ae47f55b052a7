"""Shared fixtures: real servers on 127.0.0.1:0 over temporary data directories, and the real SDK."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from munet_serve.clients import Client
from munet_serve.server.app import RunningServer, create_server
from munet_serve.server.config import ServerConfig

pytest_plugins = ["evolver_fixtures", "serving_fixtures", "tls_fixtures"]

ServerFactory = Callable[..., RunningServer]


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[ServerFactory]:
    """Starts servers (default data dir: tmp_path/data); every one still running is stopped at teardown."""
    running: list[RunningServer] = []

    def start(data_dir: Path | None = None, **overrides: object) -> RunningServer:
        config = ServerConfig(data_dir=data_dir or tmp_path / "data", port=0, **overrides)
        server = create_server(config)
        running.append(server)
        return server

    yield start
    for server in running:
        server.stop(grace=1.0)


@pytest.fixture
def server(start_server: ServerFactory) -> RunningServer:
    return start_server()


@pytest.fixture
def client(server: RunningServer) -> Iterator[Client]:
    with Client(server.target, timeout=120) as c:
        c.wait_ready()
        yield c
