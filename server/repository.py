"""The repository, as the KServe v2 protocol sees the registry: every task with its serving state, and taking a task
out of service and back (unload, load) without deleting it. Whether a task is unloaded is stored, so it survives a
restart."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from .live import LiveRoutes
from .registry import Registry

logger = logging.getLogger(__name__)

READY, UNAVAILABLE = "READY", "UNAVAILABLE"


@dataclass(frozen=True)
class ModelState:
    """One task as the repository index lists it: its current version ("" while pending), READY or UNAVAILABLE,
    and why it is not ready."""

    name: str
    version: str
    state: str
    reason: str = ""


class Repository:
    """Every task's serving state; unload and load."""

    def __init__(self, registry: Registry, live: LiveRoutes) -> None:
        self._registry = registry
        self._live = live

    def index(self) -> list[ModelState]:
        return [self._state(task.name) for task in self._registry.list_tasks()]

    def state(self, name: str) -> ModelState:
        self._registry.get_task(name)  # NOT_FOUND for an unknown task
        return self._state(name)

    def unload(self, name: str) -> None:
        """Stops serving the task (its requests get UNAVAILABLE) and releases the sessions of its own components;
        its versions, dataset and evolution stay. Unloading an unloaded task does nothing."""
        with self._live.changes:
            self._registry.set_unloaded(name, True)
            self._live.remove(name)
        logger.info("unloaded task %s", name)

    def load(self, name: str) -> None:
        """Serves the task's current version again (a pending task is only marked to serve once published).
        If the version cannot be loaded, the task stays unloaded and the error says why."""
        with self._live.changes:
            task = self._registry.get_task(name)
            if task.current_version is not None and (task.unloaded or self._live.get(name) is None):
                version = self._registry.get_version(name, task.current_version)
                self._live.serve(task, version)
            self._registry.set_unloaded(name, False)
        logger.info("loaded task %s", name)

    def _state(self, name: str) -> ModelState:
        task = self._registry.get_task(name)
        version = "" if task.current_version is None else str(task.current_version)
        if task.unloaded:
            return ModelState(name, version, UNAVAILABLE, "unloaded")
        if task.current_version is None:
            return ModelState(name, version, UNAVAILABLE, "pending: no version published yet (the evolver "
                                                          "publishes version 1 after its seed step)")
        if self._live.get(name) is None:
            error = self._live.load_error(name)
            return ModelState(name, version, UNAVAILABLE, error or "being changed")
        return ModelState(name, version, READY)
