"""`munet-serve check`: whether a data dir is whole. It reads the registry read-only (a running server may keep
serving) and reports:

- SQLite's own integrity and foreign-key checks;
- every reference the records make: each version's and the root's components recorded, each task's dataset;
- every referenced file present and matching its content address (a component's weights its id, its ONNX graph
  the hash recorded with it, a dataset file its id);
- the files nothing references: a publish or a registration killed after writing its files and before its
  transaction, or temp files. They are listed, and removed on request once older than a grace period, so that the
  files of a publish in flight (written a moment before its transaction) are never taken.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .blobs import BlobStore
from .integrity import mismatch
from .registry import COMPONENTS_AREA, DATASET_SUFFIX, DATASETS_AREA, ONNX_SUFFIX, WEIGHTS_SUFFIX

DATABASE = "registry.sqlite3"
REMOVE_GRACE_S = 600.0  # unreferenced files younger than this are left alone: a publish may be about to commit them


@dataclass
class CheckReport:
    data_dir: Path
    database: list[str] = field(default_factory=list)  # SQLite integrity and foreign-key problems
    references: list[str] = field(default_factory=list)  # records naming what is not recorded
    files: list[str] = field(default_factory=list)  # referenced files missing or not matching their hash
    unreferenced: list[Path] = field(default_factory=list)  # files nothing references
    checked_files: int = 0
    counts: dict[str, int] = field(default_factory=dict)  # tasks, versions, components, datasets

    @property
    def ok(self) -> bool:
        """Whole: the database sound, every reference resolved, every referenced file matching its hash.
        Unreferenced files are garbage, not damage."""
        return not (self.database or self.references or self.files)

    def problems(self) -> list[str]:
        return [*self.database, *self.references, *self.files]


def open_read_only(data_dir: Path) -> sqlite3.Connection:
    """The registry of a data dir, read-only (FileNotFoundError if there is none)."""
    path = Path(data_dir) / DATABASE
    if not path.exists():
        raise FileNotFoundError(f"{data_dir} holds no registry ({DATABASE})")
    db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None)
    db.row_factory = sqlite3.Row
    return db


def expected_files(db: sqlite3.Connection, blobs: BlobStore) -> dict[Path, tuple[str, str]]:
    """Every file the records reference: path -> (what it is, its expected SHA-256)."""
    files: dict[Path, tuple[str, str]] = {}
    for row in db.execute("SELECT id, onnx_sha256 FROM components"):
        cid = row["id"]
        files[blobs.path(COMPONENTS_AREA, cid, WEIGHTS_SUFFIX)] = (f"component {cid} weights", cid)
        files[blobs.path(COMPONENTS_AREA, cid, ONNX_SUFFIX)] = (f"component {cid} graph", row["onnx_sha256"])
    for row in db.execute("SELECT id FROM datasets"):
        files[blobs.path(DATASETS_AREA, row["id"], DATASET_SUFFIX)] = (f"dataset {row['id']}", row["id"])
    return files


def check_data_dir(data_dir: Path, *, hashes: bool = True) -> CheckReport:
    """Checks the data dir as the module docstring says; `hashes=False` checks only that the files are there."""
    data_dir = Path(data_dir)
    report = CheckReport(data_dir)
    blobs = BlobStore(data_dir, create=False)
    db = open_read_only(data_dir)
    try:
        db.execute("BEGIN")  # one read transaction: one state of the records
        integrity = [r[0] for r in db.execute("PRAGMA integrity_check")]
        if integrity != ["ok"]:
            report.database += [f"SQLite integrity: {line}" for line in integrity]
        for row in db.execute("PRAGMA foreign_key_check"):
            report.database.append(f"SQLite foreign key: a row of {row[0]} names a missing row of {row[2]}")
        report.references += list(_dangling(db))
        files = expected_files(db, blobs)
        report.counts = {table: db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]  # noqa: S608
                         for table in ("tasks", "versions", "components", "datasets")}
        db.execute("COMMIT")
    finally:
        db.close()
    for path, (what, expected) in sorted(files.items()):
        report.checked_files += 1
        problem = mismatch(path, expected) if hashes else (None if path.exists() else f"{path} is missing")
        if problem is not None:
            report.files.append(f"{what}: {problem}")
    report.unreferenced = [p for p in _stored_files(blobs) if p not in files]
    return report


def remove_unreferenced(report: CheckReport, grace_s: float = REMOVE_GRACE_S) -> tuple[list[Path], list[Path]]:
    """Removes the report's unreferenced files older than `grace_s`; returns (removed, kept because too new)."""
    removed, kept = [], []
    now = time.time()
    for path in report.unreferenced:
        try:
            if now - path.stat().st_mtime < grace_s:
                kept.append(path)
                continue
            path.unlink()
            removed.append(path)
        except FileNotFoundError:
            continue
    return removed, kept


def _dangling(db: sqlite3.Connection) -> Iterator[str]:
    recorded = {r[0] for r in db.execute("SELECT id FROM components")}
    for row in db.execute("SELECT task, version, components FROM versions"):
        for _, cid in json.loads(row["components"]):
            if cid not in recorded:
                yield f"task {row['task']!r} version {row['version']} names component {cid}, which is not recorded"
    for row in db.execute("SELECT components FROM root"):
        for name, cid in json.loads(row["components"]):
            if cid not in recorded:
                yield f"the root's {name} is component {cid}, which is not recorded"
    for row in db.execute("SELECT name, current_version FROM tasks WHERE current_version IS NOT NULL"):
        if not db.execute("SELECT 1 FROM versions WHERE task = ? AND version = ?",
                          (row["name"], row["current_version"])).fetchone():
            yield f"task {row['name']!r} is on version {row['current_version']}, which is not recorded"


def _stored_files(blobs: BlobStore) -> Iterator[Path]:
    for area in (COMPONENTS_AREA, DATASETS_AREA):
        folder = blobs.root / area
        if folder.is_dir():
            yield from sorted(p for p in folder.rglob("*") if p.is_file())
    if blobs.tmp.is_dir():
        yield from sorted(p for p in blobs.tmp.iterdir() if p.is_file())
