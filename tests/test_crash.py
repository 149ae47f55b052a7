"""Crash safety on a real server process: a publish killed between writing its files and committing leaves the
previous version current, the registry consistent, and a restarted server answering exactly as before."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from munet_serve.clients import Client
from munet_serve.clients.errors import UnavailableError
from munet_serve.clients.types import PathComponent
from munet_serve.evolver.components import fresh_head
from munet_serve.evolver.export import export_component, fresh_lineage

from serving_fixtures import TASK, Served

SERVER_KILLED_IN_PUBLISH = textwrap.dedent("""
    import os, signal, sys
    from munet_serve.server.registry import Registry

    def killed(*args, **kwargs):  # the files are written and synced; the transaction never runs
        os.kill(os.getpid(), signal.SIGKILL)

    Registry.commit_publish = killed
    from munet_serve.server.app import create_server
    from munet_serve.server.config import ServerConfig

    server = create_server(ServerConfig(data_dir=sys.argv[1], port=0))
    print(server.port, flush=True)
    server.wait()
""")


def test_publish_killed_before_commit_keeps_the_previous_version(
    start_server, served_dir: Path, served_template: Served
) -> None:
    images = list(served_template.test_images[:16])
    before_server = start_server(served_dir)
    with Client(before_server.target, timeout=60) as client:
        (v1,) = client.list_versions(TASK)
        before = client.predict(TASK, images, include_logits=True)
        dim = client.list_components([v1.components[-1].id])[0].config["dim"]
    before_server.stop()
    head = export_component(fresh_head(dim, 10), fresh_lineage(TASK, "head"))

    proc = subprocess.Popen([sys.executable, "-c", SERVER_KILLED_IN_PUBLISH, str(served_dir)],
                            stdout=subprocess.PIPE, text=True)
    try:
        port = int(proc.stdout.readline())
        with Client(f"127.0.0.1:{port}", timeout=60) as client:
            client.wait_ready()
            with pytest.raises(UnavailableError):
                client.publish_path(TASK, [*v1.components[:-1], PathComponent("head", head.id)], hparams={},
                                    metrics=v1.metrics, input=v1.input, parent=None, new_components=[head])
        assert proc.wait(timeout=30) == -9
    finally:
        proc.kill()

    db = sqlite3.connect(served_dir / "registry.sqlite3")
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert db.execute("SELECT COUNT(*) FROM components WHERE id = ?", (head.id,)).fetchone()[0] == 0
    db.close()
    assert any(served_dir.joinpath("components").rglob(f"{head.id}.onnx"))  # written, never referenced

    restarted = start_server(served_dir)
    with Client(restarted.target, timeout=60) as client:
        task = client.get_task(TASK)
        assert task.current_version == 1 and task.num_versions == 1
        after = client.predict(TASK, images, include_logits=True)
        assert after.version == 1
        assert np.array_equal(np.stack([p.logits for p in after.predictions]),
                              np.stack([p.logits for p in before.predictions]))
        # The same publish, retried, succeeds: the leftover files do not get in the way.
        published = client.publish_path(TASK, [*v1.components[:-1], PathComponent("head", head.id)], hparams={},
                                        metrics=v1.metrics, input=v1.input, parent=None, new_components=[head])
        assert published.version == 2 and client.get_task(TASK).current_version == 2
