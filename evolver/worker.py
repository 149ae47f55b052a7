"""The evolver worker: makes sure the server has a root, then seeds every pending task, and waits for new ones.

It keeps no state of its own: everything it needs (root, tasks, published paths, component weights, datasets) comes
from the server, so it can be stopped and restarted at any moment. A task that already has a version is not seeded
again; one task failing is reported as "failed" and does not stop the worker.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from munet_serve.clients.types import EvolutionStatus, PathComponent, RootInfo, TaskInfo

from .config import EvolverConfig
from .data import TaskData
from .errors import EvolverError, StopRequested
from .export import export_component, root_lineage
from .root import build_root
from .seed import SeedReport, seed_task
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
    """

    def __init__(self, config: EvolverConfig, client: Client) -> None:
        self.config = config
        self.client = client
        self.store = ComponentStore(client)
        self._root: RootInfo | None = None
        self._retry_at: dict[str, tuple[float, float]] = {}  # task -> (next attempt time, backoff)
        self._watch_handle: object | None = None
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
        now = time.monotonic()
        tasks = [t for t in self.client.list_tasks() if t.state == "pending" and t.current_version == 0]
        tasks = [t for t in tasks if self._retry_at.get(t.name, (0.0, 0.0))[0] <= now]
        return sorted(tasks, key=lambda t: (t.created_at is None, t.created_at or 0, t.name))  # type: ignore[arg-type]

    def seed(self, task: TaskInfo, stop: threading.Event | None = None) -> SeedReport:
        """Seeds one pending task and publishes its first version."""
        root = self.ensure_root()
        _, path = self.client.download_dataset(task.name, Path(self.config.cache_dir))
        data = TaskData.from_file(path)
        return seed_task(
            self.client,
            task,
            data,
            root=root,
            store=self.store,
            budget=self.config.budget,
            seed=self.config.seed,
            scale_factor=self.config.scale_factor,
            parity_tolerance=self.config.parity_tolerance,
            stop=stop,
            report=lambda status: self._report(task.name, status),
        )

    def run_once(self, stop: threading.Event | None = None) -> list[str]:
        """Seeds every pending task; returns the names of the tasks published.

        Raises:
            StopRequested: stop was set while a task was being seeded (nothing half-done is published).
        """
        self.ensure_root(stop)
        done: list[str] = []
        for task in self.pending_tasks():
            if stop is not None and stop.is_set():
                break
            try:
                current = self.client.get_task(task.name)
            except Exception as e:  # deleted meanwhile, or the server went away
                logger.warning("task %s: cannot refresh it (%s); skipping", task.name, e)
                continue
            if current.state != "pending" or current.current_version:
                continue
            self._report(task.name, EvolutionStatus(phase="seeding", iteration=1, message="starting"))
            try:
                self.seed(current, stop)
            except StopRequested:
                self._report(task.name, EvolutionStatus(phase="waiting", message="evolver stopped; will resume"))
                raise
            except Exception as e:
                _, backoff = self._retry_at.get(task.name, (0.0, _RETRY_FIRST / 2))
                backoff = min(backoff * 2, _RETRY_MAX)
                self._retry_at[task.name] = (time.monotonic() + backoff, backoff)
                logger.exception("task %s: seeding failed (retry in %.0f s)", task.name, backoff)
                self._report(task.name, EvolutionStatus(phase="failed", message=f"{type(e).__name__}: {e}"))
                continue
            self._retry_at.pop(task.name, None)
            done.append(task.name)
        return done

    def run_forever(self, stop: threading.Event) -> None:
        """Seeds pending tasks as they appear until stop is set (then returns after the current step at most)."""
        wake = threading.Event()
        watcher = threading.Thread(target=self._watch, args=(wake, stop), name="munet-evolver-watch", daemon=True)
        watcher.start()
        try:
            while not stop.is_set():
                wake.clear()
                try:
                    self.run_once(stop)
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

    def _report(self, task: str, status: EvolutionStatus) -> None:
        status = EvolutionStatus(
            phase=status.phase,
            iteration=status.iteration,
            generation=status.generation,
            candidates=status.candidates,
            best_score=status.best_score,
            message=status.message,
            worker=self.config.worker,
        )
        try:
            self.client.report_status(task, status)
        except Exception as e:  # status is informative only
            logger.warning("task %s: cannot report status %r: %s", task, status.phase, e)
