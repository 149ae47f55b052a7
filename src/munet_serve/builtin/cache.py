"""Where generated datasets are kept: $MUNET_SERVE_CACHE or ~/.cache/munet-serve/builtin, written atomically."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

CACHE_ENV = "MUNET_SERVE_CACHE"
# Bump when a change to font selection, rendering, augmentation, splitting or sampling changes what a name generates:
# cached datasets and font plans carry it in their file names, so older ones are no longer used.
GENERATOR_VERSION = 1


def default_cache_dir() -> Path:
    env = os.environ.get(CACHE_ENV)
    return Path(env) if env else Path.home() / ".cache" / "munet-serve" / "builtin"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Writes `data` to a temporary file beside `path`, then renames it into place: readers see all or nothing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def read_bytes(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None
