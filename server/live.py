"""The live routes: loading a path's sessions, warming it, swapping it in, and re-cutting the others.

Every route change (publish, roll back, delete, setting the root, start-up) holds the one lock `LiveRoutes.changes`
and follows the same order:
files durable -> new route loaded and warmed -> one registry transaction -> route swapped -> old sessions released
-> the other routes re-cut into the segments the live paths now make (segments.py), each swapped the same way.
So a failure before the transaction leaves the old version serving, and a crash after it serves the new one on
restart. The callers write the files and hold the lock around their step; `swap_in` runs the rest in this order.

Besides each task's current route, a request may ask for an explicit earlier (or later) version: `version_route`
loads it on demand, cut along the segments already loaded so that it shares the sessions of every component it has
in common with the live routes, and keeps at most `max_versions` such routes, the least recently asked for
released first. A task taken out of service (`unload`) keeps its versions and serves none until `load`.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager

from munet_serve import __version__
from munet_serve.artifacts import ComponentKind
from munet_serve.errors import InvalidArgumentError, MunetError, UnavailableError

from .heap import release_free_heap
from .metrics import ServerMetrics
from .records import LiveRoute, LoadedSession, ServedPath, ServingInfo, TaskRecord, VersionRecord
from .registry import Registry
from .routes import Route, Router
from .segments import Segments, segment_paths
from .sessions import Segment, SessionPool
from .values import ValueOps

logger = logging.getLogger(__name__)


class LiveRoutes:
    """task -> the route it serves, and every change to them (under `changes`), with the metrics of swaps."""

    def __init__(self, registry: Registry, pool: SessionPool, ops: ValueOps, metrics: ServerMetrics,
                 providers: Sequence[str], fuse_segments: bool = True, max_versions: int = 4) -> None:
        self.changes = threading.RLock()  # the one lock that serialises route changes
        self._registry = registry
        self._pool = pool
        self._ops = ops
        self._metrics = metrics
        self._providers = tuple(providers)
        self._fuse = fuse_segments
        self._router = Router()
        self._load_errors: dict[str, str] = {}
        self._max_versions = max_versions
        self._versions: OrderedDict[tuple[str, int], Route] = OrderedDict()  # non-current versions, oldest use first
        self._versions_lock = threading.Lock()

    # --- reading ---------------------------------------------------------------------------------------------------

    def get(self, task: str) -> Route | None:
        """The task's live route (no lock: a request takes it once and runs to the end on it)."""
        return self._router.get(task)

    def load_error(self, task: str) -> str | None:
        """Why the task's current version failed to load at start-up, until a route of it is swapped in."""
        return self._load_errors.get(task)

    def version_route(self, task: TaskRecord, version: VersionRecord) -> Route:
        """The route of a version of the task other than its current one, loaded on demand (see above)."""
        key = (task.name, version.version)
        with self._versions_lock:
            route = self._versions.get(key)
            if route is not None:
                self._versions.move_to_end(key)
                return route
        with self.changes:
            with self._versions_lock:
                route = self._versions.get(key)
            if route is not None:
                return route
            if self._registry.get_task(task.name).unloaded:  # NOT_FOUND if deleted meanwhile
                raise UnavailableError(f"task {task.name!r} is unloaded: it serves again once it is loaded")
            path = self.path_of(version)
            route = self.load(task, path, segments=self._cut_along_loaded(path.component_ids))
            with self._versions_lock:
                self._versions[key] = route
                evicted = []
                while len(self._versions) > self._max_versions:
                    evicted.append(self._versions.popitem(last=False)[1])
            for old in evicted:
                self._pool.release(old.step_ids)
            self._metrics.sessions.set(len(self._pool.loaded()))
            logger.info("loaded version %d of task %s on demand (%d non-current versions loaded)", version.version,
                        task.name, len(self._versions))
            return route

    def version_routes(self) -> list[Route]:
        """The non-current versions loaded on demand."""
        with self._versions_lock:
            return list(self._versions.values())

    def serving_info(self) -> ServingInfo:
        routes = self._router.all()
        users: dict[str, list[str]] = {}
        for route in [*routes, *self.version_routes()]:
            for sid in dict.fromkeys(route.step_ids):
                if route.task not in users.setdefault(sid, []):
                    users[sid].append(route.task)
        return ServingInfo(
            providers=self._providers,
            sessions=[LoadedSession(s.id, s.kind, sorted(users.get(s.id, [])), s.component_ids)
                      for s in self._pool.loaded()],
            routes=[LiveRoute(r.task, r.version, r.component_ids) for r in routes],
            server_version=__version__,
        )

    # --- start and stop --------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Loads the current version of every task, so a restarted server serves exactly what was current."""
        with self.changes:
            versions = self._registry.current_versions()
            cut = self._cut({v.task: v.component_ids for v in versions})  # once, with every path known
            for version in versions:
                task = self._registry.get_task(version.task)
                if task.unloaded:
                    continue
                try:
                    with self._counting_failures("start"):
                        route = self.load(task, self.path_of(version), segments=cut[task.name])
                    self._router.install(route)
                    self._metrics.version.labels(task.name).set(version.version)
                except MunetError as e:
                    self._load_errors[task.name] = str(e)
                    logger.error("task %s version %d could not be loaded: %s", task.name, version.version, e)
            self._recut()  # a path that failed to load cuts the others differently
            self._metrics.sessions.set(len(self._pool.loaded()))
        release_free_heap()
        logger.info("serving %d tasks with %d sessions", len(self._router.all()), len(self._pool.loaded()))

    def close(self) -> None:
        """Takes every route out of service and releases its sessions."""
        with self.changes:
            for route in self._router.all():
                self._router.remove(route.task)
                self._pool.release(route.step_ids)
            self._drop_versions()

    # --- changes ---------------------------------------------------------------------------------------------------

    def path_of(self, version: VersionRecord) -> ServedPath:
        """A stored version as a path to serve (its components' kinds from the registry)."""
        kinds = tuple((cid, self._registry.get_component(cid).kind) for cid in version.component_ids)
        return ServedPath(version=version.version, components=kinds, input=version.input)

    def load(self, task: TaskRecord, path: ServedPath, segments: Segments | None = None) -> Route:
        """Loads (or shares) the sessions of the path's segments and warms the chain; raises InvalidArgumentError if
        it cannot serve. The path is cut as `segments` says, or else against the live routes of the other tasks."""
        if segments is None:
            live = {r.task: r.component_ids for r in self._router.all()}
            segments = self._cut({**live, task.name: path.component_ids})[task.name]
        steps = self._pool.acquire(_grouped(path.components, segments))
        route = Route(task=task.name, version=path.version, labels=task.labels, input=path.input, steps=tuple(steps))
        try:
            route.warm(self._ops)
        except Exception as e:  # noqa: BLE001 - ORT raises several types
            self._pool.release(route.step_ids)
            what = f"version {path.version}" if path.version else "the published path"
            raise InvalidArgumentError(f"{what} of task {task.name!r} cannot be served: {e}") from e
        return route

    def swap_in(self, task: TaskRecord, path: ServedPath, kind: str,
                commit: Callable[[], VersionRecord]) -> VersionRecord:
        """Under the lock: loads and warms the path, runs `commit` (one registry transaction that makes a version
        current; returns it), swaps the route in as that version, releases the old one's sessions and re-cuts the
        others. If loading or the transaction fails, the old route goes on serving. `kind` names the change in the
        metrics ("publish", "rollback")."""
        with self.changes:
            started = time.perf_counter()
            with self._counting_failures(kind):
                route = self.load(task, path)
            try:
                record = commit()
            except BaseException:
                self._pool.release(route.step_ids)
                raise
            if self._registry.get_task(task.name).unloaded:  # published to or rolled back while out of service
                self._pool.release(route.step_ids)
                return record
            self._swap(dataclasses.replace(route, version=record.version), kind, started)
            return record

    def serve(self, task: TaskRecord, version: VersionRecord) -> None:
        """Loads the task's current version and serves it (a task brought back into service by a load)."""
        with self.changes:
            started = time.perf_counter()
            with self._counting_failures("load"):
                route = self.load(task, self.path_of(version))
            self._swap(route, "load", started)

    def remove(self, task: str) -> None:
        """Takes the task's routes out of service (its task is deleted or unloaded) and re-cuts the others."""
        with self.changes:
            self._drop_versions(task)
            old = self._router.remove(task)
            if old is not None:
                self._pool.release(old.step_ids)
            self._load_errors.pop(task, None)
            if old is not None:
                self._metrics.version.remove(task)
            self._recut()
            self._metrics.sessions.set(len(self._pool.loaded()))
            release_free_heap()

    def recut(self) -> None:
        """Re-cuts the live routes after a change of what segments are cut against (the root)."""
        with self.changes:
            self._recut()
            self._metrics.sessions.set(len(self._pool.loaded()))

    # --- internals -------------------------------------------------------------------------------------------------

    @contextmanager
    def _counting_failures(self, kind: str) -> Iterator[None]:
        try:
            yield
        except MunetError:
            self._metrics.swaps.labels(kind, "failed").inc()
            raise

    def _drop_versions(self, task: str | None = None, version: int | None = None) -> None:
        """Releases the non-current versions loaded on demand: the task's (one version of it), or all of them."""
        with self._versions_lock:
            keys = [k for k in self._versions if (task is None or k[0] == task) and version in (None, k[1])]
            dropped = [self._versions.pop(k) for k in keys]
        for route in dropped:
            self._pool.release(route.step_ids)

    def _cut_along_loaded(self, path: Sequence[str]) -> Segments:
        """A path not among the live ones, cut into the live routes' segments wherever it runs one of them whole
        (so it shares their sessions), and the rest as segments.py cuts a path of its own."""
        if not self._fuse:
            return tuple((cid,) for cid in path)
        loaded = {segment for route in self._router.all() for segment in route.segments}
        longest = max((len(segment) for segment in loaded), default=0)
        root = self._registry.get_root()
        stable = {cid for _, cid in root.components} if root else frozenset()
        cut: list[tuple[str, ...]] = []
        rest: list[str] = []

        def flush() -> None:
            if rest:
                cut.extend(segment_paths({0: tuple(rest)}, stable)[0])
                rest.clear()

        i = 0
        while i < len(path):
            match = next((tuple(path[i:i + n]) for n in range(min(longest, len(path) - i), 0, -1)
                          if tuple(path[i:i + n]) in loaded), None)
            if match is None:
                rest.append(path[i])
                i += 1
                continue
            flush()
            cut.append(match)
            i += len(match)
        flush()
        return tuple(cut)

    def _swap(self, route: Route, kind: str, started: float) -> None:
        self._drop_versions(route.task, route.version)  # now served as the current version
        old = self._router.install(route)
        if old is not None:
            self._pool.release(old.step_ids)
        self._recut()
        self._load_errors.pop(route.task, None)
        self._metrics.swaps.labels(kind, "ok").inc()
        self._metrics.swap_seconds.observe(time.perf_counter() - started)
        self._metrics.sessions.set(len(self._pool.loaded()))
        self._metrics.version.labels(route.task).set(route.version)
        release_free_heap()

    def _cut(self, paths: Mapping[str, Sequence[str]]) -> dict[str, Segments]:
        """The paths (task -> component ids) cut into segments (segments.py): where they part, and between the
        root's components and the tasks' own; one component per segment when fusing is off."""
        if not self._fuse:
            return {task: tuple((cid,) for cid in path) for task, path in paths.items()}
        root = self._registry.get_root()
        return segment_paths(paths, {cid for _, cid in root.components} if root else frozenset())

    def _recut(self) -> None:
        """After a route change, re-cuts the live routes whose segments the live paths now cut differently (a new
        path parted from their body, or the one that did is gone) and swaps them in; in-flight requests finish on
        the sessions they started on. A route whose new segments cannot be loaded keeps serving as it was. The path
        itself served before, so a re-cut route is warmed only if one of its sessions has not run yet (with many
        tasks on one body, cutting the body anew would otherwise run every task's whole path once)."""
        routes = self._router.all()
        cut = self._cut({r.task: r.component_ids for r in routes})
        ran = {sid for r in routes for sid in r.step_ids}
        for route in routes:
            if route.segments == cut[route.task]:
                continue
            try:
                recut = dataclasses.replace(route, steps=tuple(self._pool.acquire(_grouped(route.components,
                                                                                           cut[route.task]))))
            except Exception as e:  # noqa: BLE001 - the change that led here is done; this route serves as it was
                logger.warning("task %s keeps its segments: %s", route.task, e)
                continue
            try:
                if not ran.issuperset(recut.step_ids):
                    recut.warm(self._ops)
            except Exception as e:  # noqa: BLE001 - ORT raises several types
                logger.warning("task %s keeps its segments: the re-cut path failed to run: %s", route.task, e)
                self._pool.release(recut.step_ids)
                continue
            ran.update(recut.step_ids)
            self._router.install(recut)
            self._pool.release(route.step_ids)
            logger.debug("task %s re-cut into %d segments", route.task, len(recut.steps))


def _grouped(path: Sequence[tuple[str, ComponentKind]], segments: Segments) -> list[Segment]:
    """The (id, kind) pairs of a path, grouped as its segments (runs of ids) cut it."""
    components = iter(path)
    return [[next(components) for _ in segment] for segment in segments]
