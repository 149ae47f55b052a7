"""The evolver worker: makes sure the server has a root, seeds every pending task (its first version), then runs
the round-robin of task iterations over the serving tasks (§5.1), taking new tasks in as they are registered.

It keeps no state of its own: everything it needs (root, tasks, published paths, component weights, datasets, and
each task's completed iterations and offspring counts in its evolution status) comes from the server, so it can be
killed and restarted at any moment and loses at most the iteration in progress. A task that already has a version
is not seeded again; one task failing is reported as "failed" and does not stop the worker.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from munet_serve.clients.types import EvolutionStatus, PathComponent, RootInfo, TaskInfo

from .config import EvolverConfig
from .data import TaskData
from .errors import EvolverError, StopRequested
from .evolution import SystemView, TaskIteration, completed_iterations, root_path
from .executors import Executor, make_executor
from .export import export_component, root_lineage
from .path import Path as Path_
from .root import build_root
from .store import ComponentStore

if TYPE_CHECKING:
    from munet_serve.clients import Client

logger = logging.getLogger(__name__)

__all__ = ["Evolver"]

_RETRY_FIRST, _RETRY_MAX = 30.0, 600.0


class Evolver:
    """Grows the root into a path per task, talking to the server only through the SDK client.

    Args:
        config: the worker's settings.
        client: a connected SDK client (the caller owns and closes it).
        executor: trains each generation's candidates (default: the one config.executor names).
    """

    def __init__(self, config: EvolverConfig, client: Client, executor: Executor | None = None) -> None:
        self.config = config
        self.client = client
        self.store = ComponentStore(client)
        self.executor = executor or make_executor(config.executor, config.ray_address, threads=config.threads or 1)
        self._root: RootInfo | None = None
        self._root_path_cache: Path_ | None = None
        self._retry_at: dict[str, tuple[float, float]] = {}  # task -> (next attempt time, backoff)
        self._watch_handle: object | None = None
        self._in_progress: dict[str, TaskIteration] = {}  # a task's first iteration after its seed phase
        self._data: dict[str, TaskData] = {}  # dataset id -> data
        torch.set_num_threads(config.threads or os.cpu_count() or 1)

    @property
    def root(self) -> RootInfo | None:
        return self._root

    def ensure_root(self, stop: threading.Event | None = None) -> RootInfo:
        """The server's root; builds, exports and uploads the configured one first if the server has none.

        Raises:
            RootUnavailableError, CheckpointError, UnsupportedRootError: the configured root cannot be built.
            StopRequested: stop was set between two component exports.
        """
        if self._root is not None:
            return self._root
        root = self.client.get_root()
        if root is not None:
            logger.info("root: using the server's root %s (%d components)", root.source, len(root.components))
            self._root = root
            return root
        start = time.perf_counter()
        built = build_root(self.config.root)
        artifacts = []
        for name, module in built.components:
            if stop is not None and stop.is_set():
                raise StopRequested("stopped while exporting the root")
            artifact = export_component(module, root_lineage(name), tolerance=self.config.parity_tolerance)
            self.store.add(artifact, module)
            artifacts.append(artifact)
            logger.info(
                "root: exported %s (%s, %d params, parity %.2g)", name, artifact.id[:12], artifact.info.num_params,
                artifact.info.parity_max_abs_error,
            )
        stored, existing = self.client.upload_components(artifacts)
        info = RootInfo(
            source=built.source,
            components=[PathComponent(name, a.id) for (name, _), a in zip(built.components, artifacts, strict=True)],
            config=built.describe(),
            params=built.params,
            input=built.input,
        )
        self._root = self.client.set_root(info)
        logger.info(
            "root: set %s (%d components uploaded, %d already stored, P_root=%d) in %.1f s", built.source,
            len(stored), len(existing), built.params, time.perf_counter() - start,
        )
        return self._root

    def pending_tasks(self) -> list[TaskInfo]:
        """Tasks with no version yet, oldest first, skipping those waiting to be retried after a failure."""
        tasks = [t for t in self.client.list_tasks() if t.state == "pending" and t.current_version == 0]
        return self._ready(sorted(tasks, key=_created))

    def next_task(self, once: bool = False) -> TaskInfo | None:
        """The round-robin's next serving task: the one with the fewest completed iterations (oldest first), among
        those below the budget's task iterations (all of them when it is 0, or at most one each with `once`)."""
        limit = self.config.search.task_iterations or (1 if once else 0)
        tasks = [t for t in self.client.list_tasks() if t.state == "serving"]
        tasks = [t for t in self._ready(tasks) if not limit or completed_iterations(t) < limit]
        return min(tasks, key=lambda t: (completed_iterations(t), _created(t)), default=None)

    def data(self, task: TaskInfo) -> TaskData:
        """The task's dataset, downloaded (or found in the cache) once per evolver."""
        info, path = self.client.download_dataset(task.name, Path(self.config.cache_dir))
        if info.id not in self._data:
            self._data[info.id] = TaskData.from_file(path)
        return self._data[info.id]

    def iteration(self, task: TaskInfo) -> TaskIteration:
        """The task's next iteration, or the one it is in the middle of (after its seed step)."""
        in_progress = self._in_progress.pop(task.name, None)
        if in_progress is not None and in_progress.number == completed_iterations(task) + 1:
            return in_progress
        root = self.ensure_root()
        return TaskIteration(
            client=self.client,
            task=task,
            number=completed_iterations(task) + 1,
            data=self.data(task),
            system=SystemView.load(self.client, root, self.store, self._root_path(root)),
            store=self.store,
            executor=self.executor,
            config=self.config,
            report=lambda status: self._report(task.name, status),
        )

    def seed(self, task: TaskInfo, stop: threading.Event | None = None) -> TaskIteration:
        """Runs the seed phase of a pending task's first iteration, publishing its first version (§7: a new task
        is servable before its full evolution runs); the rest of the iteration waits for its round-robin turn."""
        iteration = self.iteration(task)
        iteration.run_seed_phase(stop)
        if iteration.done:
            iteration.run(stop)
        else:
            self._in_progress[task.name] = iteration
            self._report(task.name, EvolutionStatus(
                phase="waiting", iteration=iteration.number, generation=iteration.generation,
                candidates=iteration.trained, best_score=max(iteration.best_score, 0.0),
                message=f"version {iteration.current.version if iteration.current else 0} published; "
                        "evolution continues in the round-robin",
                state=iteration.state(iteration.number - 1)))
        return iteration

    def seed_pending(self, stop: threading.Event | None = None) -> list[str]:
        """Seeds every pending task; returns the names of the tasks that got their first version."""
        self.ensure_root(stop)
        done = []
        for task in self.pending_tasks():
            if stop is not None and stop.is_set():
                break
            if self._guard(task, "seeding", functools.partial(self.seed, task, stop)):
                done.append(task.name)
        return done

    def evolve(self, task: TaskInfo, stop: threading.Event | None = None) -> TaskIteration:
        """Runs (or finishes) one iteration of the task."""
        iteration = self.iteration(task)
        iteration.run(stop)
        return iteration

    def run_once(self, stop: threading.Event | None = None) -> list[str]:
        """Seeds pending tasks, then evolves every task through its task iterations (one each when the budget's
        task iterations are unbounded); returns the names of the tasks that published something.

        Raises:
            StopRequested: stop was set (nothing half-done is published).
        """
        published = self.seed_pending(stop)
        while (task := self.next_task(once=True)) is not None:
            if stop is not None and stop.is_set():
                raise StopRequested("stopped")
            if self._guard(task, "evolving", functools.partial(self.evolve, task, stop)) and task.name not in published:
                published.append(task.name)
        return published

    def run_forever(self, stop: threading.Event) -> None:
        """Seeds pending tasks as they appear until stop is set (then returns after the current step at most)."""
        wake = threading.Event()
        watcher = threading.Thread(target=self._watch, args=(wake, stop), name="munet-evolver-watch", daemon=True)
        watcher.start()
        try:
            while not stop.is_set():
                wake.clear()
                try:
                    self.seed_pending(stop)
                    task = self.next_task()
                    if task is not None:
                        self._guard(task, "evolving", functools.partial(self.evolve, task, stop))
                        continue
                except StopRequested:
                    break
                except EvolverError:  # the root cannot be built: retrying will not help
                    raise
                except Exception as e:  # the server is down or restarting: wait and retry
                    logger.warning(
                        "evolver: %s: %s; retrying in %.0f s", type(e).__name__, e, self.config.poll_interval
                    )
                self._sleep(wake, stop, self.config.poll_interval)
        finally:
            self._cancel_watch()
            watcher.join(timeout=5)
        logger.info("evolver stopped")

    # internals

    def _watch(self, wake: threading.Event, stop: threading.Event) -> None:
        """Background thread: wakes the main loop on task events; reconnects after failures."""
        while not stop.is_set():
            try:
                watch = self.client.watch_tasks(send_initial=False)
                self._watch_handle = watch
                if stop.is_set():  # stop came while connecting: run_forever may have cancelled the old handle
                    watch.cancel()
                    break
                for event in watch:
                    if event.type in ("registered", "snapshot", "rolled_back", "deleted") or (
                        event.task is not None and event.task.state == "pending"
                    ):
                        wake.set()
                    if stop.is_set():
                        break
            except Exception as e:
                if stop.is_set():
                    break
                logger.debug("task watch ended (%s); polling every %.0f s", e, self.config.poll_interval)
            stop.wait(self.config.poll_interval)

    def _cancel_watch(self) -> None:
        handle = self._watch_handle
        cancel = getattr(handle, "cancel", None)
        if callable(cancel):
            try:
                cancel()
            except Exception:  # pragma: no cover - best effort on shutdown
                logger.debug("cancelling the task watch failed", exc_info=True)

    @staticmethod
    def _sleep(wake: threading.Event, stop: threading.Event, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not stop.is_set() and not wake.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            wake.wait(min(remaining, 0.25))

    def _ready(self, tasks: list[TaskInfo]) -> list[TaskInfo]:
        now = time.monotonic()
        return [t for t in tasks if self._retry_at.get(t.name, (0.0, 0.0))[0] <= now]

    def _guard(self, task: TaskInfo, phase: str, work: Callable[[], object]) -> bool:
        """Runs one task's work; a failure is reported and retried later (backing off) instead of stopping."""
        try:
            work()
        except StopRequested:
            self._in_progress.pop(task.name, None)
            self._report(task.name, dataclasses.replace(
                task.evolution, phase="waiting", message="evolver stopped; the iteration restarts on resume"))
            raise
        except EvolverError:
            raise
        except Exception as e:
            self._in_progress.pop(task.name, None)
            _, backoff = self._retry_at.get(task.name, (0.0, _RETRY_FIRST / 2))
            backoff = min(backoff * 2, _RETRY_MAX)
            self._retry_at[task.name] = (time.monotonic() + backoff, backoff)
            logger.exception("task %s: %s failed (retry in %.0f s)", task.name, phase, backoff)
            self._report(task.name, dataclasses.replace(
                task.evolution, phase="failed", message=f"{type(e).__name__}: {e}"))
            return False
        self._retry_at.pop(task.name, None)
        return True

    def _root_path(self, root: RootInfo) -> Path_:
        if self._root_path_cache is None:
            self._root_path_cache = root_path(root, self.store, mu=self.config.mutation_probability)
        return self._root_path_cache

    def _report(self, task: str, status: EvolutionStatus) -> None:
        status = dataclasses.replace(status, worker=self.config.worker, updated_at=None)
        try:
            self.client.report_status(task, status)
        except Exception as e:  # status is informative only
            logger.warning("task %s: cannot report status %r: %s", task, status.phase, e)


def _created(task: TaskInfo) -> float:
    return task.created_at.timestamp() if task.created_at else 0.0
