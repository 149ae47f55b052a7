"""The server's domain logic: registering tasks, publishing and rolling back versions with hot swaps, predicting.

Route changes (publish, roll back, delete, start-up) are serialised by one lock and always follow the same order:
files durable -> new route loaded and warmed -> one registry transaction -> route swapped -> old sessions released
-> the other routes re-cut into the segments the live paths now make (segments.py), each swapped the same way.
So a failure before the transaction leaves the old version serving, and a crash after it serves the new one on
restart.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from munet_serve.artifacts import ComponentKind
from munet_serve.errors import (
    AlreadyExistsError,
    FailedPreconditionError,
    InvalidArgumentError,
    MunetError,
    NotFoundError,
    ResourceExhaustedError,
    UnavailableError,
)
from munet_serve.imaging import ImageError, InputSpec, to_model_input
from munet_serve.proto.v1 import evolution_pb2, tasks_pb2, types_pb2
from munet_serve.structs import from_struct

from . import codec
from .accounting import ParamAccount, account
from .batching import Batcher
from .config import ServerConfig
from .datasets import DatasetBuilder, SplitPolicy
from .events import EventHub, TaskEvent
from .heap import release_free_heap
from .metrics import ServerMetrics
from .ort_env import OrtEnvironment, check_loadable
from .records import ComponentFiles, DatasetRecord, NewVersion, TaskRecord, TaskView, VersionRecord
from .registry import Registry
from .routes import Route, Router
from .segments import Segments, segment_paths
from .sessions import LoadedSegment, Segment, SessionPool
from .uploads import ComponentReader
from .values import value_ops

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TaskListing:
    """Tasks as ListTasks shows them, with their live accounted parameters and the system's figures."""

    views: list[TaskView]
    params: ParamAccount


class ServeCore:
    """Everything the gRPC servicers call; owns the registry, the session pool, the router and the event hub."""

    def __init__(self, config: ServerConfig, env: OrtEnvironment, metrics: ServerMetrics) -> None:
        self.config = config
        self.env = env
        self.metrics = metrics
        self.registry = Registry(config.data_dir)
        self.pool = SessionPool(env, self.registry.onnx_path)
        self.router = Router()
        self.events = EventHub()
        self._changes = threading.RLock()
        self._load_errors: dict[str, str] = {}
        self.batcher = Batcher(config.batching, value_ops(env), self._observe_batch)

    def start(self) -> None:
        """Loads the current version of every task, so a restarted server serves exactly what was current."""
        with self._changes:
            versions = self.registry.current_versions()
            cut = self._cut({v.task: v.component_ids for v in versions})  # once, with every path known
            for version in versions:
                task = self.registry.get_task(version.task)
                try:
                    self.router.install(self._load_route(task, version, segments=cut[task.name]))
                    self.metrics.version.labels(task.name).set(version.version)
                except MunetError as e:
                    self._load_errors[task.name] = str(e)
                    logger.error("task %s version %d could not be loaded: %s", task.name, version.version, e)
            self._recut()  # a path that failed to load cuts the others differently
            self.metrics.sessions.set(len(self.pool.loaded()))
        release_free_heap()
        logger.info("serving %d tasks with %d sessions", len(self.router.all()), len(self.pool.loaded()))

    def close(self) -> None:
        self.events.close()
        self.batcher.close()
        with self._changes:
            for route in self.router.all():
                self.router.remove(route.task)
                self.pool.release(route.step_ids)
            self.registry.close()

    # --- predictions -----------------------------------------------------------------------------------------------

    def route_for(self, task: str) -> Route:
        route = self.router.get(task)
        if route is not None:
            return route
        record = self.registry.get_task(task)
        if record.current_version is None:
            raise FailedPreconditionError(
                f"task {task!r} is not servable yet: its state is pending (no version published; the evolver "
                f"publishes version 1 after its seed step)"
            )
        error = self._load_errors.get(task, "it is being changed")
        raise UnavailableError(f"task {task!r} version {record.current_version} is not loaded: {error}")

    def predict(self, task: str, inputs: codec.PredictInput) -> tuple[Route, np.ndarray]:
        """Runs the inputs through the task's current route; returns the route that answered and the logits."""
        route = self.route_for(task)
        if inputs.preprocessed is not None:
            codec.check_preprocessed(inputs.preprocessed, route.input, f"version {route.version} of task {task!r}")
            x = inputs.preprocessed
        else:
            try:
                x = to_model_input(inputs.pixels or [], route.input)
            except ImageError as e:
                raise InvalidArgumentError(str(e)) from e
        return route, self.batcher.run(route, x)

    def _observe_batch(self, component: LoadedSegment, tasks: list[str], images: int) -> None:
        self.metrics.batch_images.labels(component.kind.value).observe(images)
        self.metrics.batch_tasks.labels(component.kind.value).observe(len(set(tasks)))

    # --- tasks -----------------------------------------------------------------------------------------------------

    def register_task(self, requests: Iterator[tasks_pb2.RegisterTaskRequest]) -> TaskView:
        first = next(requests, None)
        if first is None or first.WhichOneof("part") != "spec":
            raise InvalidArgumentError("the first RegisterTask message must carry the TaskSpec")
        spec = first.spec
        name = codec.check_task_name(spec.name)
        labels = list(spec.labels)
        if not labels:
            raise InvalidArgumentError(f"task {name!r}: labels missing (give the class names, at least 2)")
        if len(labels) < 2 or any(not label for label in labels) or len(set(labels)) != len(labels):
            raise InvalidArgumentError(
                f"task {name!r}: labels must be at least 2 distinct non-empty names, got {labels}"
            )
        if self.registry.has_task(name):
            raise AlreadyExistsError(f"task {name!r} already exists")
        if spec.image_size > 4096:
            raise InvalidArgumentError(f"image_size {spec.image_size} is over 4096")
        policy = SplitPolicy.of(spec.validation_fraction, spec.test_fraction)
        builder = DatasetBuilder(len(labels), spec.image_size, self.config.max_dataset_bytes)
        for request in requests:
            if request.WhichOneof("part") != "chunk":
                raise InvalidArgumentError("only the first RegisterTask message may carry a TaskSpec")
            for example in request.chunk.examples:
                what = f"example {len(builder)}"
                pixels = codec.image_array(example.image, what)
                if pixels.dtype != np.uint8:
                    raise InvalidArgumentError(f"{what}: dataset images must be encoded or uint8 pixels, not float32")
                builder.add(pixels, example.label, example.split)
        dataset, data = builder.build(policy)
        self.registry.create_task(name, labels, spec.description, dataset, data)
        view = self.view(name)
        logger.info("registered task %s: %d labels, dataset %s (%d/%d/%d)", name, len(labels), dataset.id[:12],
                    dataset.train, dataset.validation, dataset.test)
        self._emit("registered", view)
        return view

    def view(self, name: str) -> TaskView:
        return self.listing(name).views[0]

    def views(self) -> list[TaskView]:
        return self.listing().views

    def listing(self, name: str | None = None) -> TaskListing:
        """Every task (or the one named) with its live accounted parameters: a fixed number of queries, one state."""
        registry = self.registry
        with registry.consistent_reads():
            views = registry.task_views(name)
            paths = registry.current_paths()
            params = registry.component_params(cid for ids in paths.values() for cid in ids)
            root = registry.get_root()
        accounting = account(paths, params, root.params if root else 0)
        views = [dataclasses.replace(v, accounted_params=accounting.accounted.get(v.task.name, 0)) for v in views]
        return TaskListing(views=views, params=accounting)

    def delete_task(self, name: str) -> None:
        with self._changes:
            task = self.registry.delete_task(name)
            old = self.router.remove(name)
            if old is not None:
                self.pool.release(old.step_ids)
            self._load_errors.pop(name, None)
            if old is not None:
                self.metrics.version.remove(name)
            self._recut()
            self.metrics.sessions.set(len(self.pool.loaded()))
            release_free_heap()
        view = TaskView(task=task, dataset=self.registry.get_dataset(task.dataset_id), current=None, num_versions=0)
        logger.info("deleted task %s", name)
        self._emit("deleted", view)

    def report_status(self, name: str, status: types_pb2.EvolutionStatus) -> None:
        """Replaces the task's status, the evolver's state included; the server stamps updated_at."""
        values: dict[str, Any] = codec.status_values(status)
        size = len(json.dumps(values["state"]))
        if size > self.config.max_status_bytes:
            raise ResourceExhaustedError(
                f"the evolver state in the status of task {name!r} takes {size} bytes as JSON; "
                f"the limit is {self.config.max_status_bytes}"
            )
        values["updated_at"] = time.time()
        self.registry.set_status(name, values)
        self._emit("status", self.view(name))

    def dataset(self, name: str) -> tuple[DatasetRecord, Path]:
        task = self.registry.get_task(name)
        return self.registry.get_dataset(task.dataset_id), self.registry.dataset_path(task.dataset_id)

    # --- versions --------------------------------------------------------------------------------------------------

    def publish(self, requests: Iterator[evolution_pb2.PublishPathRequest]) -> VersionRecord:
        first = next(requests, None)
        if first is None or first.WhichOneof("part") != "path":
            raise InvalidArgumentError("the first PublishPath message must carry the PathVersion")
        header = first.path
        task = self.registry.get_task(header.task)
        reader = ComponentReader(self.config.max_upload_bytes)
        for request in requests:
            if request.WhichOneof("part") != "component":
                raise InvalidArgumentError("only the first PublishPath message may carry the PathVersion")
            reader.add(request.component)
        uploaded = {c.record.id: c for c in reader.finish()}
        new = NewVersion(
            components=codec.slots(header.components, f"path of {task.name!r}"),
            hparams=from_struct(header.hparams),
            metrics=codec.message_to_dict(header.metrics),
            input=codec.input_spec(header.input, f"path of {task.name!r}"),
            parent=(header.parent.task, header.parent.version) if header.HasField("parent") else None,
        )
        if new.parent and new.parent[0]:
            try:
                self.registry.get_version(*new.parent)
            except NotFoundError as e:
                raise NotFoundError(f"the parent of the published path does not exist: {e}") from e
        kinds = self._kinds(new.components, uploaded)
        _check_path(kinds)
        with self._changes:
            self.registry.write_component_files(uploaded.values())
            started = time.perf_counter()
            route = self._load_route(task, None, new, kinds, reason="publish")
            try:
                record = self.registry.commit_publish(task.name, new, [c.record for c in uploaded.values()])
            except BaseException:
                self.pool.release(route.step_ids)
                raise
            self._swap(dataclasses.replace(route, version=record.version), "publish", started)
        logger.info("published %s version %d (%d new components, val acc %.4f)", task.name, record.version,
                    len(uploaded), new.metrics.get("validation_accuracy", 0.0))
        self._emit("published", self.view(task.name), record.version)
        return record

    def rollback(self, name: str, version: int) -> TaskView:
        with self._changes:
            task = self.registry.get_task(name)
            target = self.registry.get_version(name, version)
            if task.current_version != version or self.router.get(name) is None:
                started = time.perf_counter()
                route = self._load_route(task, target, reason="rollback")
                try:
                    self.registry.set_current(name, version)
                except BaseException:
                    self.pool.release(route.step_ids)
                    raise
                self._swap(route, "rollback", started)
        logger.info("rolled %s back to version %d", name, version)
        view = self.view(name)
        self._emit("rolled_back", view, version)
        return view

    def versions(self, name: str) -> tuple[TaskRecord, list[VersionRecord]]:
        return self.registry.get_task(name), self.registry.list_versions(name)

    # --- components and root ---------------------------------------------------------------------------------------

    def store_components(self, parts: Iterator[evolution_pb2.ComponentPart]) -> tuple[list[str], list[str]]:
        reader = ComponentReader(self.config.max_upload_bytes)
        for part in parts:
            reader.add(part)
        stored, existing = [], []
        for files in reader.finish():
            if self.registry.has_component(files.record.id):
                existing.append(files.record.id)
                continue
            check_loadable(self.env, files.onnx, files.record.id)
            self.registry.write_component_files([files])
            self.registry.record_components([files.record])
            stored.append(files.record.id)
        return stored, existing

    def set_root(self, root: types_pb2.RootInfo) -> types_pb2.RootInfo:
        record = codec.root_record(root)
        for _, cid in record.components:
            if not self.registry.has_component(cid):
                raise NotFoundError(f"root component {cid} is not stored; upload it first")
        with self._changes:
            stored = self.registry.set_root(record)
            self._recut()  # paths published before the root was set: their root components become a segment apart
            self.metrics.sessions.set(len(self.pool.loaded()))
        return codec.root_pb(stored)

    # --- internals -------------------------------------------------------------------------------------------------

    def _kinds(
        self, slots: Sequence[tuple[str, str]], uploaded: dict[str, ComponentFiles]
    ) -> list[tuple[str, ComponentKind]]:
        kinds = []
        for _, cid in slots:
            if cid in uploaded:
                kinds.append((cid, uploaded[cid].record.kind))
            elif self.registry.has_component(cid):
                kinds.append((cid, self.registry.get_component(cid).kind))
            else:
                raise NotFoundError(f"component {cid} is neither stored nor uploaded with this publish")
        return kinds

    def _load_route(
        self,
        task: TaskRecord,
        version: VersionRecord | None,
        new: NewVersion | None = None,
        kinds: list[tuple[str, ComponentKind]] | None = None,
        reason: str = "start",
        segments: Segments | None = None,
    ) -> Route:
        """Loads (or shares) the sessions of a path's segments and warms the chain; raises InvalidArgumentError if it
        cannot serve. The path is cut as `segments` says, or else against the live routes of the other tasks."""
        try:
            return self._build_route(task, version, new, kinds, segments)
        except MunetError:
            self.metrics.swaps.labels(reason, "failed").inc()
            raise

    def _build_route(
        self,
        task: TaskRecord,
        version: VersionRecord | None,
        new: NewVersion | None,
        kinds: list[tuple[str, ComponentKind]] | None,
        segments: Segments | None,
    ) -> Route:
        if version is not None:
            kinds = [(cid, self.registry.get_component(cid).kind) for cid in version.component_ids]
            spec: InputSpec = version.input
        else:
            assert new is not None and kinds is not None
            spec = new.input
        if segments is None:
            live = {r.task: r.component_ids for r in self.router.all()}
            segments = self._cut({**live, task.name: [cid for cid, _ in kinds]})[task.name]
        steps = self.pool.acquire(_grouped(kinds, segments))
        route = Route(
            task=task.name,
            version=version.version if version else 0,
            labels=task.labels,
            input=spec,
            steps=tuple(steps),
        )
        try:
            route.warm()
        except Exception as e:  # noqa: BLE001 - ORT raises several types
            self.pool.release(route.step_ids)
            what = f"version {route.version}" if version else "the published path"
            raise InvalidArgumentError(f"{what} of task {task.name!r} cannot be served: {e}") from e
        return route

    def _swap(self, route: Route, kind: str, started: float) -> None:
        old = self.router.install(route)
        if old is not None:
            self.pool.release(old.step_ids)
        self._recut()
        self._load_errors.pop(route.task, None)
        self.metrics.swaps.labels(kind, "ok").inc()
        self.metrics.swap_seconds.observe(time.perf_counter() - started)
        self.metrics.sessions.set(len(self.pool.loaded()))
        self.metrics.version.labels(route.task).set(route.version)
        release_free_heap()

    def _cut(self, paths: Mapping[str, Sequence[str]]) -> dict[str, Segments]:
        """The paths (task -> component ids) cut into segments (segments.py): where they part, and between the
        root's components and the tasks' own; one component per segment when fusing is off."""
        if not self.config.fuse_segments:
            return {task: tuple((cid,) for cid in path) for task, path in paths.items()}
        root = self.registry.get_root()
        return segment_paths(paths, {cid for _, cid in root.components} if root else frozenset())

    def _recut(self) -> None:
        """After a route change, re-cuts the live routes whose segments the live paths now cut differently (a new
        path parted from their body, or the one that did is gone) and swaps them in; in-flight requests finish on
        the sessions they started on. A route whose new segments cannot be loaded keeps serving as it was. The path
        itself served before, so a re-cut route is warmed only if one of its sessions has not run yet (with many
        tasks on one body, cutting the body anew would otherwise run every task's whole path once)."""
        routes = self.router.all()
        cut = self._cut({r.task: r.component_ids for r in routes})
        ran = {sid for r in routes for sid in r.step_ids}
        for route in routes:
            if route.segments == cut[route.task]:
                continue
            try:
                recut = dataclasses.replace(route, steps=tuple(self.pool.acquire(_grouped(route.components,
                                                                                          cut[route.task]))))
            except Exception as e:  # noqa: BLE001 - the change that led here is done; this route serves as it was
                logger.warning("task %s keeps its segments: %s", route.task, e)
                continue
            try:
                if not ran.issuperset(recut.step_ids):
                    recut.warm()
            except Exception as e:  # noqa: BLE001 - ORT raises several types
                logger.warning("task %s keeps its segments: the re-cut path failed to run: %s", route.task, e)
                self.pool.release(recut.step_ids)
                continue
            ran.update(recut.step_ids)
            self.router.install(recut)
            self.pool.release(route.step_ids)
            logger.debug("task %s re-cut into %d segments", route.task, len(recut.steps))

    def _emit(self, type: str, view: TaskView, version: int = 0) -> None:
        self.events.publish(TaskEvent(type=type, view=view, version=version, time=time.time()))


def _grouped(path: Sequence[tuple[str, ComponentKind]], segments: Segments) -> list[Segment]:
    """The (id, kind) pairs of a path, grouped as its segments (runs of ids) cut it."""
    components = iter(path)
    return [[next(components) for _ in segment] for segment in segments]


def _check_path(kinds: list[tuple[str, ComponentKind]]) -> None:
    if not kinds or kinds[0][1] != ComponentKind.EMBEDDING or kinds[-1][1] != ComponentKind.HEAD:
        raise InvalidArgumentError(
            f"a path must start with an embedding and end with a head, got {[k.value for _, k in kinds]}"
        )
