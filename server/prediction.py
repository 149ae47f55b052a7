"""Predictions: a task's live route (or an explicit version's, loaded on demand), the checks of the images against
its input spec, the run in shared batches, and the statistics of every call."""

from __future__ import annotations

import time

import numpy as np

from munet_serve.errors import FailedPreconditionError, InvalidArgumentError, UnavailableError
from munet_serve.imaging import ImageError, InputSpec, to_model_input

from .batching import Batcher, BatchObserver
from .live import LiveRoutes
from .metrics import ServerMetrics
from .records import PredictInput, Prediction
from .registry import Registry
from .routes import Route
from .sessions import LoadedSegment
from .statistics import Statistics


class Predictor:
    """Answers predict requests of any task on its current route, through the batcher (batching.py)."""

    def __init__(self, registry: Registry, live: LiveRoutes, batcher: Batcher, statistics: Statistics) -> None:
        self._registry = registry
        self._live = live
        self._batcher = batcher
        self.statistics = statistics

    def predict(self, task: str, inputs: PredictInput, version: int | None = None) -> Prediction:
        """Runs the inputs through the task's current route, or through `version`'s; says which version answered,
        with its logits."""
        started = time.perf_counter()
        route = self.route_for(task, version)
        try:
            if inputs.preprocessed is not None:
                check_preprocessed(inputs.preprocessed, route.input, f"version {route.version} of task {task!r}")
                x = inputs.preprocessed
            else:
                try:
                    x = to_model_input(inputs.pixels or [], route.input)
                except ImageError as e:
                    raise InvalidArgumentError(str(e)) from e
            prepared = time.perf_counter()
            ran = self._batcher.run_timed(route, x)
        except BaseException:
            self.statistics.failed(route.task, route.version, time.perf_counter() - started)
            raise
        self.statistics.succeeded(route.task, route.version, len(x), time.perf_counter() - started,
                                  prepared - started, ran)
        return Prediction(task=route.task, version=route.version, labels=route.labels, logits=ran.logits)

    def route_for(self, task: str, version: int | None = None) -> Route:
        """The task's live route, or the route of `version` (NOT_FOUND if it has none such); FAILED_PRECONDITION
        while it has no version, UNAVAILABLE while none is loaded or the task is unloaded."""
        route = self._live.get(task)
        if route is not None and (version is None or version == route.version):
            return route
        record = self._registry.get_task(task)
        if record.unloaded:
            raise UnavailableError(f"task {task!r} is unloaded: it serves again once it is loaded "
                                   f"(RepositoryModelLoad)")
        if version is not None and version != record.current_version:
            return self._live.version_route(record, self._registry.get_version(task, version))
        if route is not None:
            return route
        if record.current_version is None:
            raise FailedPreconditionError(
                f"task {task!r} is not servable yet: its state is pending (no version published; the evolver "
                f"publishes version 1 after its seed step)"
            )
        error = self._live.load_error(task)
        raise UnavailableError(f"task {task!r} version {record.current_version} is not loaded: "
                               f"{'it is being changed' if error is None else error}")

    def close(self) -> None:
        """Fails the requests still waiting (UNAVAILABLE) and stops the batcher."""
        self._batcher.close()


def check_preprocessed(batch: np.ndarray, spec: InputSpec, where: str) -> None:
    """A preprocessed batch must have the shape the route expects and finite values."""
    expected = (len(batch), *spec.model_input_shape)
    if batch.shape != expected:
        raise InvalidArgumentError(
            f"preprocessed images have shape {list(batch.shape)}, but {where} expects {list(expected)} "
            f"(float32 [N, 3, {spec.image_size}, {spec.image_size}])"
        )
    if not np.isfinite(batch).all():
        raise InvalidArgumentError("preprocessed images contain NaN or infinite values")


def batch_metrics(metrics: ServerMetrics) -> BatchObserver:
    """The batcher's observer that counts the images and the distinct tasks of each component run."""

    def observe(component: LoadedSegment, tasks: list[str], images: int) -> None:
        metrics.batch_images.labels(component.kind.value).observe(images)
        metrics.batch_tasks.labels(component.kind.value).observe(len(set(tasks)))

    return observe
