"""A task's path versions: publishing a new one, rolling back to an old one, listing them. Both changes swap the
task's route without a failed request, in the order live.py describes."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

from munet_serve.artifacts import ComponentKind
from munet_serve.errors import NotFoundError

from . import paths
from .events import EventHub
from .integrity import StoredFiles
from .live import LiveRoutes
from .records import (
    ComponentFiles,
    ComponentUpload,
    NewVersion,
    PathHeader,
    ServedPath,
    TaskRecord,
    TaskView,
    VersionRecord,
)
from .registry import Registry
from .tasks import Tasks
from .uploads import verify_component

logger = logging.getLogger(__name__)


class Versions:
    """Publishes, rolls back and lists the versions of a task's path."""

    def __init__(self, registry: Registry, files: StoredFiles, live: LiveRoutes, tasks: Tasks,
                 events: EventHub) -> None:
        self._registry = registry
        self._files = files
        self._live = live
        self._tasks = tasks
        self._events = events

    def publish(self, header: PathHeader, uploads: Iterable[ComponentUpload]) -> VersionRecord:
        """Makes the path the task's next version and swaps it in. `uploads` are the components the path adds,
        verified one by one as they come (an iterator may still be streaming them in). Returns the new version."""
        task = self._registry.get_task(header.task)
        uploaded: dict[str, ComponentFiles] = {}
        for upload in uploads:
            files = verify_component(upload)
            uploaded[files.record.id] = files
        what = f"path of {task.name!r}"
        new = NewVersion(
            components=paths.slots(header.components, what),
            hparams=header.hparams,
            metrics=header.metrics,
            input=paths.input_spec(header.input, what),
            parent=header.parent,
        )
        if new.parent and new.parent[0]:
            try:
                self._registry.get_version(*new.parent)
            except NotFoundError as e:
                raise NotFoundError(f"the parent of the published path does not exist: {e}") from e
        kinds = self._kinds(new.components, uploaded)
        paths.check_ends(kinds)
        path = ServedPath(version=0, components=tuple(kinds), input=new.input)
        records = [c.record for c in uploaded.values()]
        with self._live.changes, self._files.staged(records):
            self._registry.write_component_files(uploaded.values())
            record = self._live.swap_in(
                task, path, "publish",
                lambda: self._registry.commit_publish(task.name, new, records),
            )
        logger.info("published %s version %d (%d new components, val acc %.4f)", task.name, record.version,
                    len(uploaded), new.metrics.get("validation_accuracy", 0.0))
        self._events.emit("published", self._tasks.view(task.name), record.version)
        return record

    def rollback(self, name: str, version: int) -> TaskView:
        """Makes an earlier (or any) version of the task current again and serves it."""
        with self._live.changes:
            task = self._registry.get_task(name)
            target = self._registry.get_version(name, version)
            if task.current_version != version or self._live.get(name) is None:
                self._live.swap_in(task, self._live.path_of(target), "rollback",
                                   lambda: self._set_current(target))
        logger.info("rolled %s back to version %d", name, version)
        view = self._tasks.view(name)
        self._events.emit("rolled_back", view, version)
        return view

    def history(self, name: str) -> tuple[TaskRecord, list[VersionRecord]]:
        """The task and all its versions, oldest first."""
        return self._registry.get_task(name), self._registry.list_versions(name)

    def _set_current(self, version: VersionRecord) -> VersionRecord:
        self._registry.set_current(version.task, version.version)
        return version

    def _kinds(
        self, slots: Sequence[tuple[str, str]], uploaded: dict[str, ComponentFiles]
    ) -> list[tuple[str, ComponentKind]]:
        kinds = []
        for _, cid in slots:
            if cid in uploaded:
                kinds.append((cid, uploaded[cid].record.kind))
            elif self._registry.has_component(cid):
                kinds.append((cid, self._registry.get_component(cid).kind))
            else:
                raise NotFoundError(f"component {cid} is neither stored nor uploaded with this publish")
        return kinds
