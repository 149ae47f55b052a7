"""Stored files are what their names say: each is checked against its content address before it is read.

A component's id is the SHA-256 of its weights file; its ONNX graph's SHA-256 is recorded with it (registry schema
3); a dataset's id is the SHA-256 of its file. A file that is missing or hashes to anything else raises DataLossError:
the version that needs it refuses to load (the route it would replace goes on serving), the error is logged and
counted in `munet_corrupt_files_total`, and the caller gets DATA_LOSS with the file named. `munet-serve check`
(check.py) runs the same test over a whole data dir.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from munet_serve.artifacts import sha256_file
from munet_serve.errors import DataLossError

from .metrics import ServerMetrics
from .records import ComponentRecord
from .registry import Registry

logger = logging.getLogger(__name__)


def mismatch(path: Path, expected: str) -> str | None:
    """Why the file at `path` is not the one whose SHA-256 is `expected`, or None if it is."""
    if not expected:
        return f"{path} has no recorded hash"
    try:
        actual = sha256_file(path)
    except FileNotFoundError:
        return f"{path} is missing"
    except OSError as e:
        return f"{path} cannot be read: {e}"
    if actual != expected:
        return f"{path} hashes to {actual[:16]}..., not to {expected[:16]}..."
    return None


class StoredFiles:
    """The paths of stored files, each checked against its content address first (DataLossError if it fails)."""

    def __init__(self, registry: Registry, metrics: ServerMetrics) -> None:
        self._registry = registry
        self._metrics = metrics
        self._staged: dict[str, str] = {}  # component id -> graph hash, for components written but not recorded yet
        self._lock = threading.Lock()

    @contextmanager
    def staged(self, records: Iterable[ComponentRecord]) -> Iterator[None]:
        """While a publish loads the components it uploads (written, but recorded only by its transaction), their
        graphs are checked against the hashes of the upload."""
        records = list(records)
        with self._lock:
            self._staged.update({r.id: r.onnx_sha256 for r in records})
        try:
            yield
        finally:
            with self._lock:
                for r in records:
                    self._staged.pop(r.id, None)

    def onnx(self, component_id: str) -> Path:
        """The component's ONNX graph, checked against the hash recorded when it was uploaded."""
        with self._lock:
            expected = self._staged.get(component_id)
        if expected is None:
            expected = self._registry.get_component(component_id).onnx_sha256
        return self._checked("component", f"component {component_id}", self._registry.onnx_path(component_id),
                             expected)

    def weights(self, component_id: str) -> Path:
        """The component's weights, checked against its id."""
        return self._checked("component", f"component {component_id}", self._registry.weights_path(component_id),
                             component_id)

    def dataset(self, dataset_id: str) -> Path:
        """The dataset's file, checked against its id."""
        return self._checked("dataset", f"dataset {dataset_id}", self._registry.dataset_path(dataset_id), dataset_id)

    def _checked(self, area: str, what: str, path: Path, expected: str) -> Path:
        problem = mismatch(path, expected)
        if problem is None:
            return path
        self._metrics.corrupt_files.labels(area).inc()
        logger.error("refusing to load %s: %s", what, problem)
        raise DataLossError(f"{what} is corrupted: {problem}; run munet-serve check on the data dir")
