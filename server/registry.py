"""The registry: the store of tasks, datasets, components, path versions and the root, in SQLite (WAL) plus
content-addressed files; it reads and writes the records of records.py. The server is its only writer.

A publish is atomic: `write_component_files` writes and syncs the files first, then `commit_publish` runs one
transaction that records the new components, inserts the version and makes it current. A crash in between leaves
unreferenced files and the previous version current.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from munet_serve.artifacts import ComponentKind, sha256_file
from munet_serve.errors import AlreadyExistsError, FailedPreconditionError, NotFoundError, task_not_found
from munet_serve.imaging import InputSpec

from .blobs import BlobStore
from .records import (
    ComponentFiles,
    ComponentRecord,
    DatasetRecord,
    NewVersion,
    RootRecord,
    TaskRecord,
    TaskView,
    VersionRecord,
)

SCHEMA_VERSION = 3  # 2: tasks.unloaded; 3: components.onnx_sha256
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS datasets (
    id TEXT PRIMARY KEY, train INTEGER NOT NULL, validation INTEGER NOT NULL, test INTEGER NOT NULL,
    image_shape TEXT NOT NULL, size_bytes INTEGER NOT NULL, created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS tasks (
    name TEXT PRIMARY KEY, labels TEXT NOT NULL, description TEXT NOT NULL,
    dataset_id TEXT NOT NULL REFERENCES datasets(id), current_version INTEGER,
    status TEXT NOT NULL DEFAULT '{}', created_at REAL NOT NULL, unloaded INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS components (
    id TEXT PRIMARY KEY, kind TEXT NOT NULL, config TEXT NOT NULL, lineage TEXT NOT NULL,
    num_params INTEGER NOT NULL, parity_max_abs_error REAL NOT NULL, onnx_bytes INTEGER NOT NULL,
    weights_bytes INTEGER NOT NULL, created_at REAL NOT NULL, onnx_sha256 TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS versions (
    task TEXT NOT NULL REFERENCES tasks(name) ON DELETE CASCADE, version INTEGER NOT NULL,
    components TEXT NOT NULL, hparams TEXT NOT NULL, metrics TEXT NOT NULL, input TEXT NOT NULL,
    parent_task TEXT, parent_version INTEGER, created_at REAL NOT NULL, PRIMARY KEY (task, version));
CREATE TABLE IF NOT EXISTS root (
    id INTEGER PRIMARY KEY CHECK (id = 1), source TEXT NOT NULL, components TEXT NOT NULL, config TEXT NOT NULL,
    params INTEGER NOT NULL, input TEXT NOT NULL);
"""

COMPONENTS_AREA, DATASETS_AREA = "components", "datasets"
WEIGHTS_SUFFIX, ONNX_SUFFIX, DATASET_SUFFIX = ".safetensors", ".onnx", ".npz"

def _spec_to_json(spec: InputSpec) -> str:
    return json.dumps({"image_size": spec.image_size, "mean": list(spec.mean), "std": list(spec.std)})


def _spec_from_json(text: str) -> InputSpec:
    d = json.loads(text)
    return InputSpec(image_size=d["image_size"], mean=tuple(d["mean"]), std=tuple(d["std"]))


class Registry:
    """All durable state of a server, under `data_dir`."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.blobs = BlobStore(self.data_dir)
        self.blobs.clear_tmp()
        self._lock = threading.RLock()
        self._db = sqlite3.connect(self.data_dir / "registry.sqlite3", check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA foreign_keys=ON")
        with self._transaction() as db:
            for statement in filter(str.strip, SCHEMA.split(";")):
                db.execute(statement)
            columns = {r["name"] for r in db.execute("PRAGMA table_info(tasks)")}
            if "unloaded" not in columns:  # a data dir of schema 1
                db.execute("ALTER TABLE tasks ADD COLUMN unloaded INTEGER NOT NULL DEFAULT 0")
            if "onnx_sha256" not in {r["name"] for r in db.execute("PRAGMA table_info(components)")}:  # schema < 3
                db.execute("ALTER TABLE components ADD COLUMN onnx_sha256 TEXT NOT NULL DEFAULT ''")
                self._record_onnx_hashes(db)
            db.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _record_onnx_hashes(self, db: sqlite3.Connection) -> None:
        """Upgrading to schema 3: the ONNX graphs stored before it get the hash they have now (a component's id
        addresses its weights; its graph's hash was not kept before). A missing graph keeps '' and fails its check."""
        for (cid,) in db.execute("SELECT id FROM components WHERE onnx_sha256 = ''").fetchall():
            path = self.onnx_path(cid)
            if path.exists():
                db.execute("UPDATE components SET onnx_sha256 = ? WHERE id = ?", (sha256_file(path), cid))

    class _Txn:
        def __init__(self, registry: Registry) -> None:
            self.registry = registry

        def __enter__(self) -> sqlite3.Connection:
            self.registry._lock.acquire()
            self.registry._db.execute("BEGIN IMMEDIATE")
            return self.registry._db

        def __exit__(self, exc_type: object, *rest: object) -> None:
            try:
                self.registry._db.execute("ROLLBACK" if exc_type else "COMMIT")
            finally:
                self.registry._lock.release()

    def _transaction(self) -> Registry._Txn:
        return Registry._Txn(self)

    def _query(self, sql: str, args: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    @contextmanager
    def consistent_reads(self) -> Iterator[None]:
        """Makes several reads see one state: writes (all of them go through this registry) wait for the block."""
        with self._lock:
            yield

    # --- datasets and tasks ----------------------------------------------------------------------------------------

    def create_task(
        self, name: str, labels: Sequence[str], description: str, dataset: DatasetRecord, dataset_file: bytes
    ) -> TaskRecord:
        """Stores the dataset file (once per content) and the task, pending, in one transaction."""
        self.blobs.write(DATASETS_AREA, dataset.id, DATASET_SUFFIX, dataset_file)
        now = time.time()
        try:
            with self._transaction() as db:
                db.execute(
                    "INSERT OR IGNORE INTO datasets VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (dataset.id, dataset.train, dataset.validation, dataset.test,
                     json.dumps(list(dataset.image_shape)), dataset.size_bytes, now),
                )
                db.execute(
                    "INSERT INTO tasks (name, labels, description, dataset_id, current_version, created_at) "
                    "VALUES (?, ?, ?, ?, NULL, ?)",
                    (name, json.dumps(list(labels)), description, dataset.id, now),
                )
        except sqlite3.IntegrityError as e:
            raise AlreadyExistsError(f"task {name!r} already exists") from e
        return self.get_task(name)

    def has_task(self, name: str) -> bool:
        return bool(self._query("SELECT 1 FROM tasks WHERE name = ?", (name,)))

    def get_task(self, name: str) -> TaskRecord:
        rows = self._query("SELECT * FROM tasks WHERE name = ?", (name,))
        if not rows:
            raise task_not_found(name)
        return self._task(rows[0])

    def list_tasks(self) -> list[TaskRecord]:
        return [self._task(r) for r in self._query("SELECT * FROM tasks ORDER BY created_at, name")]

    def delete_task(self, name: str) -> TaskRecord:
        with self._transaction() as db:
            rows = db.execute("SELECT * FROM tasks WHERE name = ?", (name,)).fetchall()
            if not rows:
                raise task_not_found(name)
            db.execute("DELETE FROM tasks WHERE name = ?", (name,))
        return self._task(rows[0])

    def set_status(self, name: str, status: dict[str, Any]) -> TaskRecord:
        with self._transaction() as db:
            if db.execute("UPDATE tasks SET status = ? WHERE name = ?", (json.dumps(status), name)).rowcount == 0:
                raise task_not_found(name)
        return self.get_task(name)

    def set_unloaded(self, name: str, unloaded: bool) -> TaskRecord:
        """Records whether the task is taken out of service (RepositoryModelUnload) or serves (Load)."""
        with self._transaction() as db:
            if db.execute("UPDATE tasks SET unloaded = ? WHERE name = ?", (int(unloaded), name)).rowcount == 0:
                raise task_not_found(name)
        return self.get_task(name)

    def get_dataset(self, id: str) -> DatasetRecord:
        rows = self._query("SELECT * FROM datasets WHERE id = ?", (id,))
        if not rows:
            raise NotFoundError(f"dataset {id} not found")
        return self._dataset(rows[0])

    def dataset_path(self, id: str) -> Path:
        return self.blobs.path(DATASETS_AREA, id, DATASET_SUFFIX)

    def task_views(self, name: str | None = None) -> list[TaskView]:
        """Every task (or the one named), oldest first, with its dataset, current version and number of versions.

        Four queries however many tasks there are, all on one state. `accounted_params` is left 0.
        """
        where, args = ("WHERE t.name = ?", (name,)) if name is not None else ("", ())
        with self.consistent_reads():
            tasks = [self._task(r) for r in self._query(f"SELECT t.* FROM tasks t {where} "
                                                        "ORDER BY t.created_at, t.name", args)]
            if name is not None and not tasks:
                raise task_not_found(name)
            current = {v.task: v for v in map(self._version, self._query(
                f"SELECT v.* FROM versions v JOIN tasks t ON t.name = v.task AND t.current_version = v.version {where}",
                args))}
            counts = {r[0]: r[1] for r in self._query(
                f"SELECT v.task, COUNT(*) FROM versions v JOIN tasks t ON t.name = v.task {where} GROUP BY v.task",
                args)}
            datasets = {d.id: d for d in map(self._dataset, self._query(
                f"SELECT * FROM datasets WHERE id IN (SELECT t.dataset_id FROM tasks t {where})", args))}
        return [
            TaskView(task=t, dataset=datasets[t.dataset_id], current=current.get(t.name),
                     num_versions=counts.get(t.name, 0))
            for t in tasks
        ]

    # --- components ------------------------------------------------------------------------------------------------

    def write_component_files(self, components: Iterable[ComponentFiles]) -> None:
        """Writes and syncs component files; they are referenced only once a transaction records them."""
        for c in components:
            self.blobs.write(COMPONENTS_AREA, c.record.id, WEIGHTS_SUFFIX, c.weights)
            self.blobs.write(COMPONENTS_AREA, c.record.id, ONNX_SUFFIX, c.onnx)

    def record_components(self, records: Iterable[ComponentRecord]) -> None:
        with self._transaction() as db:
            self._insert_components(db, records)

    @staticmethod
    def _insert_components(db: sqlite3.Connection, records: Iterable[ComponentRecord]) -> None:
        now = time.time()
        db.executemany(
            "INSERT OR IGNORE INTO components (id, kind, config, lineage, num_params, parity_max_abs_error, "
            "onnx_bytes, weights_bytes, created_at, onnx_sha256) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (r.id, r.kind.value, json.dumps(r.config), json.dumps(r.lineage), r.num_params,
                 r.parity_max_abs_error, r.onnx_bytes, r.weights_bytes, now, r.onnx_sha256)
                for r in records
            ],
        )

    def has_component(self, id: str) -> bool:
        return bool(self._query("SELECT 1 FROM components WHERE id = ?", (id,)))

    def get_component(self, id: str) -> ComponentRecord:
        rows = self._query("SELECT * FROM components WHERE id = ?", (id,))
        if not rows:
            raise NotFoundError(f"component {id} not found")
        return self._component(rows[0])

    def list_components(self) -> list[ComponentRecord]:
        return [self._component(r) for r in self._query("SELECT * FROM components ORDER BY created_at, id")]

    def component_params(self, ids: Iterable[str]) -> dict[str, int]:
        """Parameter count of each stored component among ids, in one query (unknown ids are left out)."""
        rows = self._query("SELECT id, num_params FROM components WHERE id IN (SELECT value FROM json_each(?))",
                           (json.dumps(sorted(set(ids))),))
        return {r["id"]: r["num_params"] for r in rows}

    def onnx_path(self, id: str) -> Path:
        return self.blobs.path(COMPONENTS_AREA, id, ONNX_SUFFIX)

    def weights_path(self, id: str) -> Path:
        return self.blobs.path(COMPONENTS_AREA, id, WEIGHTS_SUFFIX)

    # --- versions --------------------------------------------------------------------------------------------------

    def commit_publish(self, task: str, new: NewVersion, components: Sequence[ComponentRecord]) -> VersionRecord:
        """One transaction: record the new components, insert the next version, make it current."""
        with self._transaction() as db:
            if not db.execute("SELECT 1 FROM tasks WHERE name = ?", (task,)).fetchone():
                raise task_not_found(task)
            self._insert_components(db, components)
            number = db.execute(
                "SELECT COALESCE(MAX(version), 0) + 1 FROM versions WHERE task = ?", (task,)
            ).fetchone()[0]
            parent_task, parent_version = new.parent if new.parent else (None, None)
            db.execute(
                "INSERT INTO versions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (task, number, json.dumps([list(s) for s in new.components]), json.dumps(new.hparams),
                 json.dumps(new.metrics), _spec_to_json(new.input), parent_task, parent_version, time.time()),
            )
            db.execute("UPDATE tasks SET current_version = ? WHERE name = ?", (number, task))
        return self.get_version(task, number)

    def set_current(self, task: str, version: int) -> None:
        with self._transaction() as db:
            if not db.execute("SELECT 1 FROM versions WHERE task = ? AND version = ?", (task, version)).fetchone():
                raise NotFoundError(f"task {task!r} has no version {version}")
            db.execute("UPDATE tasks SET current_version = ? WHERE name = ?", (version, task))

    def get_version(self, task: str, version: int) -> VersionRecord:
        rows = self._query("SELECT * FROM versions WHERE task = ? AND version = ?", (task, version))
        if not rows:
            if not self.has_task(task):
                raise task_not_found(task)
            raise NotFoundError(f"task {task!r} has no version {version}")
        return self._version(rows[0])

    def list_versions(self, task: str) -> list[VersionRecord]:
        self.get_task(task)
        return [self._version(r) for r in self._query("SELECT * FROM versions WHERE task = ? ORDER BY version",
                                                      (task,))]

    def current_versions(self) -> list[VersionRecord]:
        rows = self._query(
            "SELECT v.* FROM versions v JOIN tasks t ON t.name = v.task AND t.current_version = v.version "
            "ORDER BY t.created_at"
        )
        return [self._version(r) for r in rows]

    def current_paths(self) -> dict[str, tuple[str, ...]]:
        """Component ids of every serving task's current path, in execution order, in one query."""
        rows = self._query(
            "SELECT v.task, v.components FROM versions v "
            "JOIN tasks t ON t.name = v.task AND t.current_version = v.version"
        )
        return {r["task"]: tuple(cid for _, cid in json.loads(r["components"])) for r in rows}

    # --- root ------------------------------------------------------------------------------------------------------

    def get_root(self) -> RootRecord | None:
        rows = self._query("SELECT * FROM root WHERE id = 1")
        if not rows:
            return None
        r = rows[0]
        return RootRecord(
            source=r["source"],
            components=tuple((n, c) for n, c in json.loads(r["components"])),
            config=json.loads(r["config"]),
            params=r["params"],
            input=_spec_from_json(r["input"]),
        )

    def set_root(self, root: RootRecord) -> RootRecord:
        with self._transaction() as db:
            existing = self.get_root()
            if existing is not None:
                if existing.components != root.components:
                    raise FailedPreconditionError(
                        f"a different root is already set ({existing.source}); a server holds one root"
                    )
                return existing
            db.execute(
                "INSERT INTO root VALUES (1, ?, ?, ?, ?, ?)",
                (root.source, json.dumps([list(s) for s in root.components]), json.dumps(root.config),
                 root.params, _spec_to_json(root.input)),
            )
        return root

    # --- rows ------------------------------------------------------------------------------------------------------

    @staticmethod
    def _task(r: sqlite3.Row) -> TaskRecord:
        return TaskRecord(
            name=r["name"],
            labels=tuple(json.loads(r["labels"])),
            description=r["description"],
            dataset_id=r["dataset_id"],
            current_version=r["current_version"],
            status=json.loads(r["status"]),
            created_at=r["created_at"],
            unloaded=bool(r["unloaded"]),
        )

    @staticmethod
    def _dataset(r: sqlite3.Row) -> DatasetRecord:
        return DatasetRecord(r["id"], r["train"], r["validation"], r["test"], tuple(json.loads(r["image_shape"])),
                             r["size_bytes"])

    @staticmethod
    def _component(r: sqlite3.Row) -> ComponentRecord:
        return ComponentRecord(
            id=r["id"],
            kind=ComponentKind(r["kind"]),
            config=json.loads(r["config"]),
            lineage=json.loads(r["lineage"]),
            num_params=r["num_params"],
            parity_max_abs_error=r["parity_max_abs_error"],
            onnx_bytes=r["onnx_bytes"],
            weights_bytes=r["weights_bytes"],
            created_at=r["created_at"],
            onnx_sha256=r["onnx_sha256"],
        )

    @staticmethod
    def _version(r: sqlite3.Row) -> VersionRecord:
        parent = (r["parent_task"] or "", r["parent_version"] or 0) if r["parent_task"] is not None else None
        return VersionRecord(
            task=r["task"],
            version=r["version"],
            components=tuple((n, c) for n, c in json.loads(r["components"])),
            hparams=json.loads(r["hparams"]),
            metrics=json.loads(r["metrics"]),
            input=_spec_from_json(r["input"]),
            parent=parent,
            created_at=r["created_at"],
        )
