"""Stored files are checked against their content address before they are read (server/integrity.py): a corrupted
component graph makes the version that needs it refuse to load while the current one goes on serving, the error
travels as DATA_LOSS naming the file and is counted in the metrics, and the same holds at start-up, for component
downloads and for datasets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from munet_serve.clients import Client
from munet_serve.clients.errors import DataLossError, UnavailableError
from munet_serve.server.registry import Registry

from serving_fixtures import TASK, Served, publish_heads


def _corrupt(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, one byte flipped
    path.write_bytes(bytes(data))


def _logits(client: Client, images: np.ndarray, version: int | None = None) -> np.ndarray:
    answer = client.predict_batch(TASK, images, include_logits=True, version=version)
    return np.stack([p.logits for p in answer.predictions])


def _corrupt_count(server) -> float:  # noqa: ANN001 - a RunningServer
    value = server.core.metrics.registry.get_sample_value("munet_corrupt_files_total", {"area": "component"})
    return value or 0.0


def test_a_corrupted_component_refuses_to_load_and_the_current_version_keeps_serving(
        start_server, served_dir: Path, served_template: Served) -> None:
    server = start_server(served_dir)
    images = served_template.test_images[:8]
    with Client(server.target, timeout=60) as client:
        v1 = client.list_versions(TASK)[0]
        (v2,) = publish_heads(client, 1)
        before = _logits(client, images)
        head_v1 = v1.components[-1].id
        _corrupt(server.core.registry.onnx_path(head_v1))  # version 1's own head, not loaded while 2 serves

        with pytest.raises(DataLossError, match=f"component {head_v1} is corrupted.*hashes to"):
            client.rollback(TASK, 1)
        with pytest.raises(DataLossError, match="corrupted"):
            client.predict_batch(TASK, images, version=1)
        with pytest.raises(DataLossError, match="corrupted"):
            client.get_component(head_v1, include_onnx=True)
        assert client.get_task(TASK).current_version == v2.version
        assert np.array_equal(_logits(client, images), before)  # version 2 serves on, bit-identically
        assert _corrupt_count(server) == 3
        text = server.core.metrics.registry.get_sample_value("munet_swaps_total", {"kind": "rollback",
                                                                                    "outcome": "failed"})
        assert text == 1

        # Sending the component again (as a publish of it does) replaces the corrupted copy.
        artifact = client.get_component(v2.components[-1].id, include_onnx=True)
        assert artifact.id == v2.components[-1].id


def test_a_corrupted_current_version_is_reported_at_start_up_and_other_files_are_checked(
        start_server, served_dir: Path, served_template: Served, tmp_path: Path) -> None:
    registry = Registry(served_dir)
    try:
        (version,) = registry.current_versions()
        head = version.component_ids[-1]
        dataset = registry.get_task(TASK).dataset_id
        _corrupt(registry.onnx_path(head))
        _corrupt(registry.dataset_path(dataset))
    finally:
        registry.close()
    server = start_server(served_dir)
    with Client(server.target, timeout=60) as client:
        with pytest.raises(UnavailableError, match=f"component {head} is corrupted"):
            client.predict_batch(TASK, served_template.test_images[:2])
        with pytest.raises(DataLossError, match=f"dataset {dataset} is corrupted"):
            client.download_dataset(TASK, tmp_path / "cache")
    assert _corrupt_count(server) >= 1
    assert server.core.metrics.registry.get_sample_value("munet_corrupt_files_total", {"area": "dataset"}) == 1
