"""Tasks and their datasets: registering, showing, deleting a task, and the status the evolver reports for it."""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import time
from collections.abc import Iterable
from typing import Any

import numpy as np

from munet_serve.errors import AlreadyExistsError, InvalidArgumentError, ResourceExhaustedError

from .accounting import account
from .config import ServerConfig
from .datasets import DatasetBuilder, SplitPolicy
from .events import EventHub, TaskEvent
from .integrity import StoredFiles
from .live import LiveRoutes
from .records import DatasetFile, Example, TaskListing, TaskSpec, TaskView
from .registry import Registry
from .statistics import Statistics

logger = logging.getLogger(__name__)

TASK_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
MAX_IMAGE_SIZE = 4096


def check_task_name(name: str) -> str:
    if not TASK_NAME.match(name):
        raise InvalidArgumentError(
            f"invalid task name {name!r}: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    return name


class Tasks:
    """The tasks a server holds, with their datasets and the evolver's status of each."""

    def __init__(self, config: ServerConfig, registry: Registry, files: StoredFiles, live: LiveRoutes,
                 events: EventHub, statistics: Statistics) -> None:
        self._config = config
        self._registry = registry
        self._files = files
        self._live = live
        self._events = events
        self._statistics = statistics

    def register(self, spec: TaskSpec, examples: Iterable[Example]) -> TaskView:
        """Checks the spec, builds the dataset from the examples (taken one by one, as they come) and stores the
        task, pending: it serves once the evolver publishes its first version."""
        name = check_task_name(spec.name)
        labels = list(spec.labels)
        if not labels:
            raise InvalidArgumentError(f"task {name!r}: labels missing (give the class names, at least 2)")
        if len(labels) < 2 or any(not label for label in labels) or len(set(labels)) != len(labels):
            raise InvalidArgumentError(
                f"task {name!r}: labels must be at least 2 distinct non-empty names, got {labels}"
            )
        if len(labels) > self._config.max_labels:
            raise InvalidArgumentError(f"task {name!r} has {len(labels)} labels; the limit is "
                                       f"{self._config.max_labels} (the server's max_labels)")
        if self._registry.has_task(name):
            raise AlreadyExistsError(f"task {name!r} already exists")
        if spec.image_size > MAX_IMAGE_SIZE:
            raise InvalidArgumentError(f"image_size {spec.image_size} is over {MAX_IMAGE_SIZE}")
        policy = SplitPolicy.of(spec.validation_fraction, spec.test_fraction)
        builder = DatasetBuilder(len(labels), spec.image_size, self._config.max_dataset_bytes)
        for example in examples:
            if example.pixels.dtype != np.uint8:
                raise InvalidArgumentError(
                    f"example {len(builder)}: dataset images must be encoded or uint8 pixels, not float32"
                )
            builder.add(example.pixels, example.label, example.split)
        dataset, data = builder.build(policy)
        self._registry.create_task(name, labels, spec.description, dataset, data)
        view = self.view(name)
        logger.info("registered task %s: %d labels, dataset %s (%d/%d/%d)", name, len(labels), dataset.id[:12],
                    dataset.train, dataset.validation, dataset.test)
        self._events.emit("registered", view)
        return view

    def view(self, name: str) -> TaskView:
        return self.listing(name).views[0]

    def views(self) -> list[TaskView]:
        return self.listing().views

    def listing(self, name: str | None = None) -> TaskListing:
        """Every task (or the one named) with its live accounted parameters: a fixed number of queries, one state."""
        registry = self._registry
        with registry.consistent_reads():
            views = registry.task_views(name)
            paths = registry.current_paths()
            params = registry.component_params(cid for ids in paths.values() for cid in ids)
            root = registry.get_root()
        accounting = account(paths, params, root.params if root else 0)
        views = [dataclasses.replace(v, accounted_params=accounting.accounted.get(v.task.name, 0)) for v in views]
        return TaskListing(views=views, params=accounting)

    def snapshot(self, name: str = "") -> list[TaskEvent]:
        """The task (or every task), each as a "snapshot" event: what a watcher is sent before the changes."""
        views = [self.view(name)] if name else self.views()
        return [TaskEvent(type="snapshot", view=view, version=0, time=time.time()) for view in views]

    def delete(self, name: str) -> None:
        """Deletes the task and its versions; its route goes out of service (its dataset and components stay)."""
        with self._live.changes:
            task = self._registry.delete_task(name)
            self._live.remove(name)
            self._statistics.forget(name)
        view = TaskView(task=task, dataset=self._registry.get_dataset(task.dataset_id), current=None, num_versions=0)
        logger.info("deleted task %s", name)
        self._events.emit("deleted", view)

    def report_status(self, name: str, status: dict[str, Any]) -> None:
        """Replaces the task's status, the evolver's state included; the server stamps updated_at."""
        values = dict(status)
        size = len(json.dumps(values.get("state", {})))
        if size > self._config.max_status_bytes:
            raise ResourceExhaustedError(
                f"the evolver state in the status of task {name!r} takes {size} bytes as JSON; "
                f"the limit is {self._config.max_status_bytes}"
            )
        values["updated_at"] = time.time()
        self._registry.set_status(name, values)
        self._events.emit("status", self.view(name))

    def dataset(self, name: str) -> DatasetFile:
        task = self._registry.get_task(name)
        return DatasetFile(self._registry.get_dataset(task.dataset_id), self._files.dataset(task.dataset_id))
