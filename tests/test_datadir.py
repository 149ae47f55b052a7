"""`munet-serve check` and `munet-serve backup` on real data dirs (server/check.py, server/backup.py): a whole data
dir checks ok, stray files are listed and removed only past the grace period, a corrupted or missing file is named
and fails the check; a backup taken while the server serves and publishes is whole, and a server started on it
answers bit-identically to the original's version at the snapshot."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import numpy as np

from munet_serve.clients import Client
from munet_serve.clients.types import PathComponent, PathRef
from munet_serve.server.check import check_data_dir
from munet_serve.server.registry import Registry

from serving_fixtures import TASK, Served, random_heads

CLI = str(Path(sys.executable).with_name("munet-serve"))


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([CLI, *args], capture_output=True, text=True, timeout=300)


def test_check_finds_stray_corrupted_and_missing_files(served_dir: Path) -> None:
    done = _cli("check", "--data-dir", str(served_dir))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 tasks, 1 versions" in done.stdout and done.stdout.strip().endswith("ok")

    stray = served_dir / "components" / "ab" / ("ab" * 32 + ".onnx")  # a publish killed before its transaction
    stray.parent.mkdir(parents=True, exist_ok=True)
    stray.write_bytes(b"written, never committed")
    report = check_data_dir(served_dir)
    assert report.ok and report.unreferenced == [stray]
    kept = _cli("check", "--data-dir", str(served_dir), "--remove-unreferenced")  # too new: a publish may be on
    assert kept.returncode == 0 and "kept 1 younger than 600 s" in kept.stdout and stray.exists()
    removed = _cli("check", "--data-dir", str(served_dir), "--remove-unreferenced", "--grace", "0")
    assert removed.returncode == 0 and "removed 1 unreferenced files" in removed.stdout and not stray.exists()

    registry = Registry(served_dir)
    try:
        (version,) = registry.current_versions()
        head, body = version.component_ids[-1], version.component_ids[0]
        graph, weights = registry.onnx_path(head), registry.weights_path(body)
    finally:
        registry.close()
    data = bytearray(graph.read_bytes())
    data[100] ^= 1
    graph.write_bytes(bytes(data))
    weights.unlink()
    damaged = _cli("check", "--data-dir", str(served_dir))
    assert damaged.returncode == 1 and "2 problems" in damaged.stdout
    assert f"component {head} graph" in damaged.stdout and "does not match" not in damaged.stdout
    assert f"component {body} weights" in damaged.stdout and "is missing" in damaged.stdout
    assert not _cli("check", "--data-dir", str(served_dir / "nowhere")).returncode == 0


def test_a_backup_taken_while_serving_and_publishing_is_whole_and_answers_bit_identically(
        start_server, served_dir: Path, served_template: Served, tmp_path: Path) -> None:
    images = served_template.test_images[:16]
    server = start_server(served_dir)
    with Client(server.target, timeout=120) as client:
        v1 = client.list_versions(TASK)[0]
        dim = client.list_components([v1.components[-1].id])[0].config["dim"]
        heads = random_heads(dim, 6)
        stop, published = threading.Event(), []

        def publish() -> None:  # versions keep coming while the backup runs
            for head in heads:
                if stop.is_set():
                    return
                published.append(client.publish_path(
                    TASK, [*v1.components[:-1], PathComponent("head", head.id)], hparams=v1.hparams,
                    metrics=v1.metrics, input=v1.input, parent=PathRef(TASK, 1), new_components=[head]))

        publisher = threading.Thread(target=publish)
        publisher.start()
        try:
            made = _cli("backup", str(tmp_path / "copy"), "--data-dir", str(served_dir))
        finally:
            stop.set()
            publisher.join()
        assert made.returncode == 0, made.stdout + made.stderr
        assert "the copy checks ok" in made.stdout and published

        copy = start_server(tmp_path / "copy")
        with Client(copy.target, timeout=120) as restored:
            restored_task = restored.get_task(TASK)
            version = restored_task.current_version
            assert 1 <= version <= client.get_task(TASK).current_version
            assert [v.version for v in restored.list_versions(TASK)] == list(range(1, version + 1))
            for number in (1, version):
                ours = restored.predict_batch(TASK, images, include_logits=True, version=number)
                theirs = client.predict_batch(TASK, images, include_logits=True, version=number)
                assert np.array_equal(np.stack([p.logits for p in ours.predictions]),
                                      np.stack([p.logits for p in theirs.predictions]))
        assert check_data_dir(tmp_path / "copy").ok
    again = _cli("backup", str(tmp_path / "copy"), "--data-dir", str(served_dir))
    assert again.returncode == 2 and "not an empty folder" in again.stdout
