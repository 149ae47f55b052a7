"""`munet-serve backup DEST`: a consistent snapshot of a data dir, taken while its server serves.

The records are copied with SQLite's online backup API, which reads one state of the database even while the
server writes. The files follow from that snapshot: every file it references was written and synced before the
transaction that referenced it, and files are immutable, so each is there to copy; files written after the snapshot
are not referenced by it and are not copied. Each file is checked against its content address as it is copied. The
copy's registry takes its final name last, so an interrupted backup leaves no data dir that looks whole, and the
finished copy is checked as `munet-serve check` checks one.

DEST is a data dir: `munet-serve serve --data-dir DEST` serves it, and answers as the original did at the snapshot.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from munet_serve.artifacts import sha256_hex
from munet_serve.files import atomic_write_bytes

from .blobs import BlobStore
from .check import DATABASE, CheckReport, check_data_dir, expected_files, open_read_only


@dataclass(frozen=True)
class BackupReport:
    dest: Path
    files: int  # files copied
    bytes: int  # their size
    check: CheckReport  # the copy, checked


class BackupError(Exception):
    """The backup could not be taken whole (a source file missing or corrupted); DEST is left incomplete."""


def backup(data_dir: Path, dest: Path) -> BackupReport:
    """Copies the data dir's registry and every file it references into `dest` (new, or an empty folder)."""
    data_dir, dest = Path(data_dir), Path(dest)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise FileExistsError(f"{dest} exists and is not an empty folder")
    if dest.resolve() == data_dir.resolve():
        raise ValueError("the backup must go to another folder than the data dir")
    source = open_read_only(data_dir)
    dest.mkdir(parents=True, exist_ok=True)
    partial = dest / f"{DATABASE}.partial"
    snapshot = sqlite3.connect(partial)
    try:
        source.backup(snapshot)
        snapshot.row_factory = sqlite3.Row
        wanted = expected_files(snapshot, BlobStore(data_dir, create=False))
    finally:
        snapshot.close()
        source.close()
    target = BlobStore(dest)
    copied = size = 0
    problems = []
    for path, (what, expected) in sorted(wanted.items()):
        try:
            data = path.read_bytes()
        except OSError as e:
            problems.append(f"{what}: {path} cannot be read: {e}")
            continue
        if sha256_hex(data) != expected:
            problems.append(f"{what}: {path} does not match its hash")
            continue
        atomic_write_bytes(dest / path.relative_to(data_dir), data, tmp_dir=target.tmp)
        copied, size = copied + 1, size + len(data)
    if problems:
        raise BackupError("the data dir is damaged, so the backup is incomplete: " + "; ".join(problems))
    os.replace(partial, dest / DATABASE)
    return BackupReport(dest, copied, size, check_data_dir(dest))
