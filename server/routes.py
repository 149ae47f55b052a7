"""Routes: a task's live path as a chain of loaded segment sessions, swapped by one reference assignment.

A request takes the task's route once and runs to the end on it, so a hot swap never changes a request midway: an
in-flight request finishes on the version it started on, and the old sessions live until it lets go of them.

A route runs one way: its steps in order, each as `ValueOps.run(step, value)` on the server's values (host arrays,
or device-resident ones on CUDA; values.py). The batcher walks them so, one step at a time for many requests at once
(batching.py); `run` walks them for one batch alone: the warm-up before a route is swapped in.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from munet_serve.artifacts import ComponentKind
from munet_serve.imaging import InputSpec

from .sessions import LoadedSegment
from .values import HostValues, ValueOps

_HOST = HostValues()


@dataclass(frozen=True)
class Route:
    """An immutable serving object: one task's version, its labels, input spec and its path as a chain of segment
    sessions (the server may re-cut the same path into other segments: a new Route, swapped like a new version)."""

    task: str
    version: int
    labels: tuple[str, ...]
    input: InputSpec
    steps: tuple[LoadedSegment, ...]

    @property
    def components(self) -> tuple[tuple[str, ComponentKind], ...]:
        """(id, kind) of every component of the path, in order."""
        return tuple(c for step in self.steps for c in step.components)

    @property
    def component_ids(self) -> tuple[str, ...]:
        return tuple(cid for step in self.steps for cid in step.component_ids)

    @property
    def step_ids(self) -> tuple[str, ...]:
        """The ids of its segment sessions (the session pool counts routes by them)."""
        return tuple(step.id for step in self.steps)

    @property
    def segments(self) -> tuple[tuple[str, ...], ...]:
        return tuple(step.component_ids for step in self.steps)

    def run(self, x: np.ndarray, ops: ValueOps = _HOST) -> np.ndarray:
        """Runs a preprocessed float32 [N, 3, S, S] batch alone through the chain, its values kept as `ops` keeps
        them between steps; returns logits [N, num_labels]."""
        value = ops.from_host(x)
        for step in self.steps:
            value = ops.run(step, value)
        return ops.to_host(value)

    def warm(self, ops: ValueOps = _HOST) -> None:
        """Runs one dummy image through the chain and checks the output shape; raises ValueError if wrong."""
        logits = self.run(np.zeros((1, *self.input.model_input_shape), dtype=np.float32), ops)
        if logits.shape != (1, len(self.labels)):
            raise ValueError(
                f"the path outputs shape {list(logits.shape)} for one image, but the task has {len(self.labels)} "
                f"labels (expected [1, {len(self.labels)}])"
            )


class Router:
    """task name -> Route. Reads take no lock; install/remove replace the whole mapping (copy on write)."""

    def __init__(self) -> None:
        self._routes: dict[str, Route] = {}
        self._write_lock = threading.Lock()

    def get(self, task: str) -> Route | None:
        return self._routes.get(task)

    def all(self) -> list[Route]:
        return list(self._routes.values())

    def install(self, route: Route) -> Route | None:
        """Makes route the task's live route; returns the one it replaced."""
        with self._write_lock:
            routes = dict(self._routes)
            old = routes.get(route.task)
            routes[route.task] = route
            self._routes = routes
            return old

    def remove(self, task: str) -> Route | None:
        with self._write_lock:
            routes = dict(self._routes)
            old = routes.pop(task, None)
            self._routes = routes
            return old
