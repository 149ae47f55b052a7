"""Content-addressed files under the data directory, written atomically (temp file, fsync, rename, fsync dir)."""

from __future__ import annotations

import os
from pathlib import Path

from munet_serve.files import atomic_write_bytes


class BlobStore:
    """Immutable files named by content address: ``<root>/<area>/<id[:2]>/<id><suffix>``."""

    def __init__(self, root: Path, *, create: bool = True) -> None:
        """`create=False`: only to read (munet-serve check, backup), the folders are not made."""
        self.root = Path(root)
        self.tmp = self.root / "tmp"
        if create:
            self.tmp.mkdir(parents=True, exist_ok=True)

    def path(self, area: str, id: str, suffix: str) -> Path:
        return self.root / area / id[:2] / f"{id}{suffix}"

    def write(self, area: str, id: str, suffix: str, data: bytes) -> Path:
        """Writes the file durably unless it exists already with these bytes (a corrupted copy is replaced: sending
        a component again heals it); returns its path."""
        target = self.path(area, id, suffix)
        if target.exists() and target.stat().st_size == len(data) and target.read_bytes() == data:
            return target
        atomic_write_bytes(target, data, tmp_dir=self.tmp)
        _fsync_dir(target.parent)
        return target

    def clear_tmp(self) -> None:
        """Removes temp files a crash may have left behind."""
        for leftover in self.tmp.iterdir():
            leftover.unlink(missing_ok=True)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
