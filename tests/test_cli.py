"""The `munet-serve` command line, run as a real process against a real server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from munet_serve.clients import Client
from munet_serve.clients.types import PathComponent
from munet_serve.imaging import encode_png

from serving_fixtures import TASK, Served

CLI = str(Path(sys.executable).with_name("munet-serve"))
ENV = {**os.environ, "COLUMNS": "200", "TERM": "dumb"}


def cli(*args: str, server: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([CLI, *args, "--server", server], capture_output=True, text=True, timeout=120, env=ENV)
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def write_folder(root: Path, labels: list[str], per_label: int) -> Path:
    rng = np.random.default_rng(0)
    for label in labels:
        (root / label).mkdir(parents=True)
        for i in range(per_label):
            (root / label / f"{i}.png").write_bytes(encode_png(rng.integers(0, 255, (12, 12, 3), dtype=np.uint8)))
    return root


def test_tasks_commands(start_server, tmp_path: Path) -> None:
    server = start_server()
    target = server.target
    folder = write_folder(tmp_path / "shapes", ["circle", "square", "triangle"], per_label=5)
    out = cli("tasks", "register", "shapes", "--from-folder", str(folder), server=target).stdout
    assert "registered 'shapes': 3 labels, state pending" in out
    np.savez(tmp_path / "d.npz", images=np.zeros((20, 8, 8), np.uint8), labels=np.arange(20) % 2,
             label_names=np.array(["no", "yes"]))
    assert "registered 'npz-task'" in cli("tasks", "register", "npz-task", "--from-npz", str(tmp_path / "d.npz"),
                                          server=target).stdout
    listing = cli("tasks", "list", server=target).stdout
    assert "shapes" in listing and "npz-task" in listing and "pending" in listing
    show = cli("tasks", "show", "shapes", server=target).stdout
    assert "circle, square, triangle" in show and "pending" in show
    with Client(target) as client:
        shapes = client.get_task("shapes")
        assert shapes.labels == ["circle", "square", "triangle"]
        total = shapes.dataset.train_examples + shapes.dataset.validation_examples + shapes.dataset.test_examples
        assert total == 15
        assert client.get_task("npz-task").labels == ["no", "yes"]
    assert "deleted 'npz-task'" in cli("tasks", "delete", "npz-task", server=target).stdout
    assert "npz-task" not in cli("tasks", "list", server=target).stdout

    failed = cli("tasks", "show", "nope", server=target, check=False)
    assert failed.returncode == 1 and "NOT_FOUND: task 'nope' not found" in failed.stdout
    failed = cli("tasks", "register", "shapes", "--from-folder", str(folder), server=target, check=False)
    assert failed.returncode == 1 and "ALREADY_EXISTS" in failed.stdout


def test_predict_and_versions_commands(start_server, served_dir: Path, served_template: Served,
                                       tmp_path: Path) -> None:
    server = start_server(served_dir)
    target = server.target
    paths = []
    for i, image in enumerate(served_template.test_images[:3]):
        paths.append(tmp_path / f"digit{i}.png")
        paths[-1].write_bytes(encode_png(image[:, :, 0]))
    out = cli("predict", TASK, *map(str, paths), server=target).stdout
    assert "digits (version 1)" in out and "digit0.png" in out and "digit2.png" in out

    with Client(target, timeout=60) as client:
        (v1,) = client.list_versions(TASK)
        client.publish_path(TASK, v1.components, hparams=v1.hparams, metrics=v1.metrics, input=v1.input,
                            parent=None)
    listing = cli("versions", "list", TASK, server=target).stdout
    assert " 1 " in listing and " 2 " in listing and "root" in listing
    assert "digits now serves version 1" in cli("versions", "rollback", TASK, "1", server=target).stdout
    with Client(target) as client:
        assert client.get_task(TASK).current_version == 1
    assert "digits (version 2)" in cli("predict", TASK, str(paths[0]), "--version", "2", server=target).stdout
    missing = cli("predict", TASK, str(paths[0]), "--version", "9", server=target, check=False)
    assert missing.returncode != 0 and "no version 9" in missing.stdout + missing.stderr

    failed = cli("predict", TASK, str(tmp_path / "missing.png"), server=target, check=False)
    assert failed.returncode == 2 and "missing.png" in failed.stdout


def test_watch_streams_events(start_server, tmp_path: Path) -> None:
    server = start_server()
    images, labels = [np.zeros((8, 8), np.uint8)] * 6, [0, 1] * 3
    with Client(server.target) as client:
        client.register_task("first", ["a", "b"], images, labels)
        watcher = subprocess.Popen([CLI, "tasks", "watch", "--server", server.target], stdout=subprocess.PIPE,
                                   text=True, env=ENV)
        try:
            assert "first: snapshot [pending, v0]" in watcher.stdout.readline()  # the stream is open
            client.register_task("watched", ["a", "b"], images, labels)
            client.delete_task("watched")
            lines = [watcher.stdout.readline() for _ in range(2)]
        finally:
            watcher.terminate()
            watcher.wait(timeout=10)
    assert "watched: registered [pending, v0]" in lines[0]
    assert "watched: deleted" in lines[1]


def test_server_and_timeout_go_before_or_after_the_command(start_server) -> None:
    server = start_server()
    with Client(server.target) as client:
        client.register_task("first", ["a", "b"], [np.zeros((8, 8), np.uint8)] * 6, [0, 1] * 3)
    for args in (
        ["--server", server.target, "tasks", "list"],
        ["tasks", "list", "--server", server.target],
        ["--timeout", "30", f"--server={server.target}", "tasks", "list"],
        ["tasks", "--server", server.target, "list", "--timeout", "30"],
        ["--server", "127.0.0.1:1", "tasks", "list", "--server", server.target],  # given twice: the later one
    ):
        proc = subprocess.run([CLI, *args], capture_output=True, text=True, timeout=120, env=ENV)
        assert proc.returncode == 0 and "first" in proc.stdout, (args, proc.stdout + proc.stderr)
    refused = subprocess.run([CLI, "--server", server.target, "serve"], capture_output=True, text=True, env=ENV)
    assert refused.returncode == 2 and "--server: only for predict, tasks and versions, not serve" in refused.stderr


def test_help_lists_every_command() -> None:
    out = subprocess.run([CLI, "--help"], capture_output=True, text=True, env=ENV).stdout
    for command in ("serve", "evolve", "up", "predict", "tasks", "versions"):
        assert command in out
    assert PathComponent  # the SDK types are importable next to the CLI
