"""The stored components (uploading, listing, reading their files) and the root the paths grow from."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from munet_serve.errors import NotFoundError

from .integrity import StoredFiles
from .live import LiveRoutes
from .ort_env import OrtEnvironment, check_loadable
from .records import ComponentPaths, ComponentRecord, ComponentUpload, RootRecord, StoredComponents
from .registry import Registry
from .uploads import verify_component


class Components:
    """Components by id, and the one root of the server."""

    def __init__(self, env: OrtEnvironment, registry: Registry, files: StoredFiles, live: LiveRoutes) -> None:
        self._env = env
        self._registry = registry
        self._files = files
        self._live = live

    def store(self, uploads: Iterable[ComponentUpload]) -> StoredComponents:
        """Verifies every upload, then stores the ones not stored yet, each once ONNX Runtime has loaded its graph."""
        verified = [verify_component(upload) for upload in uploads]
        stored, existing = [], []
        for files in verified:
            if self._registry.has_component(files.record.id):
                existing.append(files.record.id)
                continue
            check_loadable(self._env, files.onnx, files.record.id)
            self._registry.write_component_files([files])
            self._registry.record_components([files.record])
            stored.append(files.record.id)
        return StoredComponents(stored=stored, existing=existing)

    def records(self, ids: Sequence[str] = ()) -> list[ComponentRecord]:
        """The components named (NOT_FOUND for one not stored), or every stored one when none is named."""
        registry = self._registry
        return [registry.get_component(i) for i in ids] if ids else registry.list_components()

    def files(self, id: str) -> ComponentPaths:
        record = self._registry.get_component(id)
        return ComponentPaths(record, self._files.weights(record.id), self._files.onnx(record.id))

    def root(self) -> RootRecord:
        root = self._registry.get_root()
        if root is None:
            raise NotFoundError("no root has been set yet (the evolver sets it when it first starts)")
        return root

    def set_root(self, root: RootRecord) -> RootRecord:
        """Sets the root once (its components stored first); setting the same root again returns it, a different
        one is refused. The live paths are re-cut: the root's components form segments of their own."""
        for _, cid in root.components:
            if not self._registry.has_component(cid):
                raise NotFoundError(f"root component {cid} is not stored; upload it first")
        with self._live.changes:
            stored = self._registry.set_root(root)
            self._live.recut()  # paths published before the root was set: their root components become a segment apart
        return stored
