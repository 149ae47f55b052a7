"""Where generated datasets are kept: $MUNET_SERVE_CACHE/builtin or ~/.cache/munet-serve/builtin."""

from __future__ import annotations

import os
from pathlib import Path

from munet_serve.files import atomic_write_bytes

__all__ = ["CACHE_ENV", "GENERATOR_VERSION", "atomic_write_bytes", "default_cache_dir", "read_bytes"]

CACHE_ENV = "MUNET_SERVE_CACHE"
# Bump when a change to font selection, rendering, augmentation, splitting or sampling changes what a name generates:
# cached datasets and font plans carry it in their file names, so older ones are no longer used.
GENERATOR_VERSION = 1


def default_cache_dir() -> Path:
    env = os.environ.get(CACHE_ENV)
    return (Path(env) if env else Path.home() / ".cache" / "munet-serve") / "builtin"  # beside roots/


def read_bytes(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None
