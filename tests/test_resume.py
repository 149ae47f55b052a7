"""Resume: kill -9 the evolver mid-generation or mid-publish, restart it, and it continues from what the server
holds; at most the iteration in progress is lost, never anything published."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from munet_serve.clients import Client

from serving_fixtures import TASK, Served

EVOLVER_ARGS = ["--root-preset", "tiny-test", "--budget", "small", "--search", "tiny", "--threads", "2", "--once"]

DIES_IN_PUBLISH = textwrap.dedent("""
    import os, signal, sys
    import munet_serve.clients.calls as sdk

    publish_requests = sdk.publish_requests

    def dies_midway(*args, **kwargs):  # the path and part of its first component go out, then the process dies
        requests = publish_requests(*args, **kwargs)
        yield next(requests)
        yield next(requests)
        os.kill(os.getpid(), signal.SIGKILL)

    sdk.publish_requests = dies_midway
    from munet_serve.evolver.__main__ import main
    sys.exit(main(sys.argv[1:]))
""")


def start_evolver(target: str, cache: Path, *, script: str | None = None) -> subprocess.Popen:
    command = ["-c", script] if script else ["-m", "munet_serve.evolver"]
    return subprocess.Popen([sys.executable, *command, "--server", target, "--cache-dir", str(cache),
                             *EVOLVER_ARGS], stderr=subprocess.PIPE, text=True)


def published(client: Client) -> list[tuple[int, list[str]]]:
    return [(v.version, [c.id for c in v.components]) for v in client.list_versions(TASK)]


def finish(target: str, cache: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "munet_serve.evolver", "--server", target, "--cache-dir",
                           str(cache), *EVOLVER_ARGS], capture_output=True, text=True, timeout=600)


def test_kill_9_mid_generation_then_resume(start_server, served_dir: Path, served_template: Served,
                                           tmp_path: Path) -> None:
    server = start_server(served_dir)
    with Client(server.target, timeout=60) as client:
        evolver = start_evolver(server.target, tmp_path / "cache")
        try:
            deadline = time.monotonic() + 300
            while True:  # wait until a generation after the first is training
                status = client.get_task(TASK).evolution
                if status.phase == "evolving" and status.generation >= 2 and "training" in status.message:
                    break
                assert evolver.poll() is None, evolver.stderr.read()
                assert time.monotonic() < deadline, status
                time.sleep(0.05)
            evolver.send_signal(signal.SIGKILL)
            assert evolver.wait(timeout=30) == -signal.SIGKILL
        finally:
            evolver.kill()
        before = published(client)
        assert client.get_task(TASK).evolution.state.get("completed_iterations", 0) == 0
        assert client.predict(TASK, [served_template.test_images[0]]).version == before[-1][0]

        done = finish(server.target, tmp_path / "cache")
        assert done.returncode == 0, done.stderr
        after = published(client)
        assert after[: len(before)] == before  # nothing published was lost or changed
        task = client.get_task(TASK)
        assert task.evolution.phase == "idle" and task.evolution.state["completed_iterations"] == 1
        assert client.predict(TASK, [served_template.test_images[0]]).version == task.current_version


def test_kill_9_mid_publish_then_resume(start_server, served_dir: Path, tmp_path: Path) -> None:
    server = start_server(served_dir)
    with Client(server.target, timeout=60) as client:
        before = published(client)
        dying = start_evolver(server.target, tmp_path / "cache", script=DIES_IN_PUBLISH)
        try:
            assert dying.wait(timeout=300) == -signal.SIGKILL, dying.stderr.read()
        finally:
            dying.kill()
        assert published(client) == before  # the half-sent publish left no version behind
        task = client.get_task(TASK)
        assert task.current_version == before[-1][0] and task.state == "serving"

        done = finish(server.target, tmp_path / "cache")
        assert done.returncode == 0, done.stderr
        after = published(client)
        assert after[: len(before)] == before and len(after) > len(before)
        assert client.get_task(TASK).evolution.state["completed_iterations"] == 1
