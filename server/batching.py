"""Dynamic and cross-task batching: predict requests share component runs, whatever task they are for.

Every request becomes a job that walks its route one step at a time: a step is a session of one component or of a
segment of components that every path runs together (segments.py); "component" below means such a step. Jobs
waiting at the same component with the same token shape form one batch, even when they come from different tasks:
paths share most of their components (the root's embedding and blocks), so the traffic of many tasks flows through
those sessions as a few large batches and splits only where the paths part (a task's own blocks and head). It is
iteration-level scheduling, as Orca does for LLM steps and S-LoRA / Punica do across adapters.

The schedule:
- A request that arrives waits at most `max_delay_ms` for others to join it at its first component, unless
  `max_batch_images` images are already waiting there.
- A worker always serves the component that the *oldest* waiting job needs next, and takes with it every other job
  waiting at that component (oldest first, up to `max_batch_images`). So a rare task's request is never starved by
  frequent ones: at most the jobs that arrived before it run ahead of it.
- Where paths part for a few components and join again (a task that cloned a middle block), the parts of one wave of
  requests would otherwise run the shared components after the join one after the other. So before a component
  runs, a waiting part that will reach it within `CATCH_UP_STEPS` runs goes first if its oldest job arrived no
  later than the batch's youngest, and the parts run the joined component together. (A part that another worker is
  running is not waited for: on 2 cores the idle worker cost more than the larger batch saved.)
- A request carrying more images than `max_batch_images` runs as one batch of its own.

A job holds its route to the end, so a hot swap never changes a request midway (routes.py).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from munet_serve.errors import InternalError, UnavailableError

from .config import BatchingConfig
from .routes import Route
from .sessions import LoadedSegment
from .values import ValueOps

logger = logging.getLogger(__name__)

__all__ = ["BatchingConfig", "Batcher", "Ran"]


@dataclass(eq=False)
class _Job:
    """One predict request on its way through its route."""

    route: Route
    rows: int
    arrival: float
    step: int = 0
    compute: float = 0.0  # seconds the runs it took part in took
    executes: bool = False  # the first job of its (task, version) that its last run finished
    result: np.ndarray | None = None
    error: BaseException | None = None
    done: threading.Event = field(default_factory=threading.Event)

    def finish(self, result: np.ndarray | None = None, error: BaseException | None = None) -> None:
        self.result, self.error = result, error
        self.done.set()


@dataclass(eq=False)
class _Cohort:
    """Jobs waiting at the same component with the same token shape, and their values (one part per job or group)."""

    key: tuple[str, tuple[int, ...]]
    jobs: list[_Job]
    parts: list[Any]
    arrival: float
    rows: int
    fresh: bool  # waiting at the first component of their routes


@dataclass(frozen=True)
class Ran:
    """A request's answer and how it went: its logits, the seconds it waited (before and between its runs) and ran,
    and whether it counts its (task, version)'s execution: one per run that finished requests of it."""

    logits: np.ndarray
    queue_s: float
    compute_s: float
    executes: bool


BatchObserver = Callable[[LoadedSegment, list[str], int], None]  # (component run, task of each job, images)

CATCH_UP_STEPS = 4  # how far behind a part of a wave may be for the components ahead of it to wait for it


class Batcher:
    """Runs predict requests through their routes in shared batches; `run` is called from the gRPC threads."""

    def __init__(self, config: BatchingConfig, ops: ValueOps, observe: BatchObserver | None = None) -> None:
        self.config = config
        self._ops = ops
        self._observe = observe
        self._delay = config.max_delay_ms / 1000
        self._cohorts: list[_Cohort] = []
        self._cond = threading.Condition()
        self._closed = False
        self._threads = [
            threading.Thread(target=self._work, name=f"munet-batch-{i}", daemon=True) for i in range(config.workers)
        ]
        for thread in self._threads:
            thread.start()

    def run(self, route: Route, x: np.ndarray) -> np.ndarray:
        """Runs a preprocessed batch [N, 3, S, S] through the route with whatever else is waiting; returns logits."""
        return self.run_timed(route, x).logits

    def run_timed(self, route: Route, x: np.ndarray) -> Ran:
        """`run`, with the times the request waited and ran."""
        job = _Job(route=route, rows=int(x.shape[0]), arrival=time.monotonic())
        value = self._ops.from_host(x)
        cohort = _Cohort(self._key(route, 0, self._ops.shape(value)), [job], [value], job.arrival, job.rows, True)
        with self._cond:
            if self._closed:
                raise UnavailableError("the server is stopping")
            self._cohorts.append(cohort)
            self._cond.notify()
        job.done.wait()
        if job.error is not None:
            raise job.error
        assert job.result is not None
        elapsed = time.monotonic() - job.arrival
        return Ran(job.result, max(0.0, elapsed - job.compute), job.compute, job.executes)

    def close(self) -> None:
        """Fails the jobs still waiting (UNAVAILABLE) and stops the workers."""
        with self._cond:
            self._closed = True
            waiting, self._cohorts = self._cohorts, []
            self._cond.notify_all()
        for cohort in waiting:
            for job in cohort.jobs:
                job.finish(error=UnavailableError("the server stopped before this request ran"))
        for thread in self._threads:
            thread.join(timeout=10)

    # --- workers ---------------------------------------------------------------------------------------------------

    @staticmethod
    def _key(route: Route, step: int, shape: tuple[int, ...]) -> tuple[str, tuple[int, ...]]:
        return route.steps[step].id, shape[1:]

    def _work(self) -> None:
        while True:
            with self._cond:
                batch = self._take()
                if batch is None:
                    return
            queued = self._run(batch)
            if queued:
                self._queue(queued)

    def _queue(self, queued: list[_Cohort]) -> None:
        """Queues the jobs that go on to their next components (or fails them once the batcher is closed)."""
        with self._cond:
            if self._closed:
                for cohort in queued:
                    for job in cohort.jobs:
                        job.finish(error=UnavailableError("the server stopped while this request ran"))
                return
            self._cohorts.extend(queued)
            self._cond.notify(len(queued))

    def _take(self) -> list[_Cohort] | None:
        """Under the lock: waits for the next batch to run (None once closed) and removes it from the queue."""
        while not self._closed:
            now = time.monotonic()
            fresh_rows: Counter[tuple[str, tuple[int, ...]]] = Counter()
            for c in self._cohorts:
                if c.fresh:
                    fresh_rows[c.key] += c.rows
            ready: list[_Cohort] = []
            wake: float | None = None
            for c in self._cohorts:
                deadline = c.arrival + self._delay
                if c.fresh and fresh_rows[c.key] < self.config.max_batch_images and now < deadline:
                    wake = deadline if wake is None else min(wake, deadline)  # still gathering
                else:
                    ready.append(c)
            if ready:
                first = min(ready, key=lambda c: c.arrival)
                return self._remove_batch(self._straggler(first, ready) or first)
            self._cond.wait(None if wake is None else wake - now)
        return None

    def _straggler(self, first: _Cohort, ready: list[_Cohort]) -> _Cohort | None:
        """The oldest waiting part of a wave that will reach `first`'s component within CATCH_UP_STEPS runs and holds
        no job younger than `first`'s youngest; None if there is none."""
        component, youngest = first.key[0], max(job.arrival for job in first.jobs)
        best: _Cohort | None = None
        for c in ready:
            if c is first or c.key == first.key or c.arrival > youngest or (best and best.arrival <= c.arrival):
                continue
            lead = c.jobs[0]
            ahead = lead.route.steps[lead.step + 1:lead.step + 1 + CATCH_UP_STEPS]
            if any(next_component.id == component for next_component in ahead):
                best = c
        return best

    def _remove_batch(self, first: _Cohort) -> list[_Cohort]:
        same = sorted((c for c in self._cohorts if c.key == first.key), key=lambda c: c.arrival)
        batch, rows = [first], first.rows
        for c in same:
            if c is not first and rows + c.rows <= self.config.max_batch_images:
                batch.append(c)
                rows += c.rows
        taken = {id(c) for c in batch}
        self._cohorts = [c for c in self._cohorts if id(c) not in taken]
        return batch

    def _run(self, batch: list[_Cohort]) -> list[_Cohort]:
        """Runs one batch; finishes the jobs at the end of their routes or failed, returns the others regrouped."""
        jobs = [job for cohort in batch for job in cohort.jobs]
        lead = jobs[0]
        component = lead.route.steps[lead.step]
        try:
            started = time.monotonic()
            value = self._ops.concat([part for cohort in batch for part in cohort.parts])
            out = self._ops.run(component, value)
            took = time.monotonic() - started
        except Exception as e:  # noqa: BLE001 - ORT raises several types; every job of the batch gets the error
            logger.warning("component %s failed on a batch of %d requests: %s", component.id[:12], len(jobs), e)
            for job in jobs:
                error = InternalError(f"inference failed on version {job.route.version} of task {job.route.task!r}: "
                                      f"{e}")
                job.finish(error=error)
            return []
        for job in jobs:
            job.compute += took
        if self._observe is not None:
            self._observe(component, [job.route.task for job in jobs], sum(job.rows for job in jobs))
        return self._advance(jobs, out)

    def _advance(self, jobs: list[_Job], out: Any) -> list[_Cohort]:
        """Finishes the jobs at the end of their routes; returns the others grouped by their next component."""
        shape = self._ops.shape(out)
        for job in jobs:
            job.step += 1
        if len(jobs) == 1 or len({self._next(job, shape) for job in jobs}) == 1:
            groups = {self._next(jobs[0], shape): (jobs, [out])}  # all go on together: no split
        else:
            groups = {}
            for job, part in zip(jobs, self._ops.split(out, [job.rows for job in jobs]), strict=True):
                members, parts = groups.setdefault(self._next(job, shape), ([], []))
                members.append(job)
                parts.append(part)
        queued = []
        for key, (members, parts) in groups.items():
            if key is None:
                pieces = parts if len(parts) == len(members) else self._ops.split(parts[0], [j.rows for j in members])
                executed: set[tuple[str, int]] = set()
                for job in members:
                    model = (job.route.task, job.route.version)
                    job.executes = model not in executed
                    executed.add(model)
                for job, piece in zip(members, pieces, strict=True):
                    job.finish(self._ops.to_host(piece))
            else:
                arrival = min(job.arrival for job in members)
                queued.append(_Cohort(key, members, parts, arrival, sum(j.rows for j in members), False))
        return queued

    def _next(self, job: _Job, shape: tuple[int, ...]) -> tuple[str, tuple[int, ...]] | None:
        if job.step >= len(job.route.steps):
            return None
        return self._key(job.route, job.step, shape)
