"""The registry on its own: a real SQLite file and real files in a temporary data directory."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from munet_serve.artifacts import ComponentKind, Split, read_dataset, sha256_hex
from munet_serve.errors import AlreadyExistsError, FailedPreconditionError, InvalidArgumentError, NotFoundError
from munet_serve.imaging import InputSpec
from munet_serve.server.datasets import DatasetBuilder, SplitPolicy
from munet_serve.server.records import ComponentFiles, ComponentRecord, NewVersion, RootRecord
from munet_serve.server.registry import Registry


def _dataset(n_per_class: int = 20, classes: int = 3, seed: int = 0, policy: SplitPolicy | None = None):
    rng = np.random.default_rng(seed)
    builder = DatasetBuilder(num_labels=classes, image_size=0, max_bytes=1 << 30)
    for label in range(classes):
        for _ in range(n_per_class):
            builder.add(rng.integers(0, 255, (8, 8), dtype=np.uint8), label, 0)
    return builder.build(policy or SplitPolicy())


def _component(tag: str, kind: ComponentKind = ComponentKind.HEAD) -> ComponentFiles:
    weights, onnx = f"weights-{tag}".encode(), f"onnx-{tag}".encode()
    record = ComponentRecord(id=f"{tag:0>64}", kind=kind, config={"tag": tag}, lineage={}, num_params=3,
                             parity_max_abs_error=0.0, onnx_bytes=len(onnx), weights_bytes=len(weights))
    return ComponentFiles(record=record, weights=weights, onnx=onnx)


def _version(*ids: str) -> NewVersion:
    return NewVersion(components=tuple((f"c{i}", cid) for i, cid in enumerate(ids)), hparams={"opt_lr": 0.01},
                      metrics={"validation_accuracy": 0.5}, input=InputSpec(image_size=32))


def test_dataset_split_is_deterministic_stratified_and_disjoint(tmp_path: Path) -> None:
    (record, data), (record2, data2) = _dataset(), _dataset()
    assert data == data2 and record.id == record2.id
    path = tmp_path / "d.npz"
    path.write_bytes(data)
    ds = read_dataset(path)
    assert ds.images.shape == (60, 8, 8, 1)
    for label in range(3):
        counts = {s: int(((ds.labels == label) & (ds.splits == s)).sum()) for s in Split}
        # the default: 10 % each, raised to min(16, a fifth of the class) = 4 of 20
        assert counts == {Split.TRAIN: 12, Split.VALIDATION: 4, Split.TEST: 4}
    assert (record.train, record.validation, record.test) == (36, 12, 12)


@pytest.mark.parametrize(
    ("per_class", "fractions", "expected"),
    [
        (60, (0.0, 0.0), (36, 12, 12)),  # 600 images of 10 classes: 120 validation images, not 60
        (120, (0.0, 0.0), (88, 16, 16)),  # the floor of 16 per class
        (1000, (0.0, 0.0), (800, 100, 100)),  # 10 % once it is more
        (60, (0.1, 0.0), (42, 6, 12)),  # a fraction the user gives is exact
    ],
)
def test_the_default_split_leaves_enough_validation_examples_per_class(per_class, fractions, expected) -> None:
    record, _ = _dataset(per_class, classes=2, policy=SplitPolicy.of(*fractions))
    assert (record.train // 2, record.validation // 2, record.test // 2) == expected
    assert SplitPolicy().held_out(2) == (0, 0)  # a class of fewer than 3 only trains


def test_named_splits_are_kept_and_must_all_be_present() -> None:
    builder = DatasetBuilder(num_labels=2, image_size=16, max_bytes=1 << 30)
    for i, split in enumerate([Split.TRAIN, Split.TRAIN, Split.VALIDATION, Split.TEST]):
        builder.add(np.full((8, 12, 3), i, dtype=np.uint8), i % 2, int(split))
    record, _ = builder.build(SplitPolicy())
    assert (record.train, record.validation, record.test, record.image_shape) == (2, 1, 1, (16, 16, 3))
    builder = DatasetBuilder(num_labels=2, image_size=0, max_bytes=1 << 30)
    builder.add(np.zeros((8, 8), np.uint8), 0, int(Split.TRAIN))
    with pytest.raises(InvalidArgumentError, match="every example names its split or none"):
        builder.add(np.zeros((8, 8), np.uint8), 1, 0)
    with pytest.raises(InvalidArgumentError, match="validation split is empty"):
        builder.build(SplitPolicy())


def test_tasks_versions_and_rollback_survive_a_reopen(tmp_path: Path) -> None:
    registry = Registry(tmp_path)
    dataset, data = _dataset()
    registry.create_task("t", ["a", "b", "c"], "demo", dataset, data)
    with pytest.raises(AlreadyExistsError):
        registry.create_task("t", ["a", "b"], "", dataset, data)
    assert registry.get_task("t").state == "pending"
    a, b = _component("a"), _component("b")
    registry.write_component_files([a, b])
    v1 = registry.commit_publish("t", _version(a.record.id), [a.record])
    v2 = registry.commit_publish("t", _version(a.record.id, b.record.id), [b.record])
    assert (v1.version, v2.version) == (1, 2)
    registry.set_current("t", 1)
    with pytest.raises(NotFoundError, match="no version 7"):
        registry.set_current("t", 7)
    registry.close()

    reopened = Registry(tmp_path)
    task = reopened.get_task("t")
    assert task.state == "serving" and task.current_version == 1
    assert [v.component_ids for v in reopened.list_versions("t")] == [(a.record.id,), (a.record.id, b.record.id)]
    assert reopened.get_component(b.record.id).config == {"tag": "b"}
    assert reopened.weights_path(b.record.id).read_bytes() == b"weights-b"
    assert read_dataset(reopened.dataset_path(dataset.id)).labels.shape == (60,)
    reopened.delete_task("t")
    with pytest.raises(NotFoundError):
        reopened.list_versions("t")
    reopened.close()


def test_a_data_dir_of_schema_1_gains_the_unloaded_flag_and_its_graphs_hashes(tmp_path: Path) -> None:
    registry = Registry(tmp_path)
    dataset, data = _dataset()
    registry.create_task("t", ["a", "b", "c"], "demo", dataset, data)
    component = _component("a")
    registry.write_component_files([component])
    registry.record_components([component.record])
    registry.close()
    with sqlite3.connect(tmp_path / "registry.sqlite3") as db:  # what schema 1 had: no unloaded, no graph hashes
        db.execute("ALTER TABLE tasks DROP COLUMN unloaded")
        db.execute("ALTER TABLE components DROP COLUMN onnx_sha256")
        db.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    reopened = Registry(tmp_path)
    assert reopened.get_task("t").unloaded is False
    assert reopened.set_unloaded("t", True).unloaded is True
    assert reopened.get_component(component.record.id).onnx_sha256 == sha256_hex(component.onnx)
    reopened.close()
    with sqlite3.connect(tmp_path / "registry.sqlite3") as db:
        assert db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == ("3",)
    assert Registry(tmp_path).get_task("t").unloaded is True


def test_root_is_set_once(tmp_path: Path) -> None:
    registry = Registry(tmp_path)
    root = RootRecord(source="test", components=(("embedding", "e" * 64),), params=10,
                      input=InputSpec(image_size=32))
    assert registry.set_root(root) == root
    assert registry.set_root(root) == root
    with pytest.raises(FailedPreconditionError, match="different root"):
        registry.set_root(RootRecord(source="other", components=(("embedding", "f" * 64),)))
    registry.close()
    assert Registry(tmp_path).get_root() == root


CRASHING_PUBLISH = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, {tests!r})
    from test_registry import _component, _version
    from munet_serve.server.registry import Registry

    registry = Registry({data!r})
    c = _component("c")
    registry.write_component_files([c])
    os.kill(os.getpid(), signal.SIGKILL)   # killed after the files, before the transaction
    registry.commit_publish("t", _version(c.record.id), [c.record])
""")


def test_publish_killed_between_files_and_commit_keeps_the_previous_version(tmp_path: Path) -> None:
    registry = Registry(tmp_path)
    dataset, data = _dataset()
    registry.create_task("t", ["a", "b", "c"], "", dataset, data)
    a = _component("a")
    registry.write_component_files([a])
    registry.commit_publish("t", _version(a.record.id), [a.record])
    registry.close()

    script = CRASHING_PUBLISH.format(tests=str(Path(__file__).parent), data=str(tmp_path))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == -9, proc.stderr

    reopened = Registry(tmp_path)
    assert reopened.get_task("t").current_version == 1
    assert [v.version for v in reopened.list_versions("t")] == [1]
    assert not reopened.has_component(_component("c").record.id)
    assert reopened.weights_path(_component("c").record.id).exists()  # an unreferenced file, nothing more
    db = sqlite3.connect(tmp_path / "registry.sqlite3")
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert db.execute("PRAGMA foreign_key_check").fetchall() == []
    assert not any((tmp_path / "tmp").iterdir())
    reopened.close()
    assert os.path.exists(tmp_path / "registry.sqlite3")


def test_task_views_and_accounting_reads_take_a_fixed_number_of_queries(tmp_path: Path) -> None:
    registry = Registry(tmp_path)
    statements: list[str] = []
    registry._db.set_trace_callback(statements.append)  # the SQL the registry runs, to count it
    dataset, data = _dataset()
    shared, counts = _component("shared", ComponentKind.EMBEDDING), []
    registry.write_component_files([shared])
    for i in range(4):
        registry.create_task(f"t{i}", ["a", "b", "c"], "", dataset, data)
        head = _component(f"h{i}")
        registry.write_component_files([head])
        registry.commit_publish(f"t{i}", _version(shared.record.id, head.record.id), [shared.record, head.record])
        statements.clear()
        views = registry.task_views()
        paths = registry.current_paths()
        params = registry.component_params(cid for ids in paths.values() for cid in ids)
        counts.append(len(statements))
        assert [v.task.name for v in views] == [f"t{j}" for j in range(i + 1)]
        assert all(v.num_versions == 1 and v.current is not None for v in views)
        assert paths["t0"] == (shared.record.id, _component("h0").record.id)
        assert params == {shared.record.id: 3, **{_component(f"h{j}").record.id: 3 for j in range(i + 1)}}
    assert len(set(counts)) == 1, counts  # the same for 1 to 4 tasks
    (view,) = registry.task_views("t2")
    assert view.task.name == "t2" and view.dataset.id == dataset.id
    with pytest.raises(NotFoundError, match="task 'nope' not found"):
        registry.task_views("nope")
    registry.close()
