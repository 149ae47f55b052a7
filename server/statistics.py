"""Inference statistics per task and version, as the KServe v2 protocol reports them (ModelStatistics): images
answered, the batched runs that answered them, successes and failures with their durations, and where the time of
the successes went (preprocessing, waiting in the batcher, running in it). Every predict call records here, whatever
protocol it came by; the figures come from the batcher's timing of each request (batching.Ran)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field, replace

from .batching import Ran


@dataclass(frozen=True)
class Duration:
    """How many times something happened and the seconds it took in all."""

    count: int = 0
    seconds: float = 0.0

    def add(self, seconds: float, count: int = 1) -> Duration:
        return Duration(self.count + count, self.seconds + seconds)


@dataclass(frozen=True)
class VersionStatistics:
    """The statistics of one task's version."""

    task: str
    version: int
    last_inference_ms: int = 0  # milliseconds since the epoch; 0: none yet
    inference_count: int = 0  # images answered
    execution_count: int = 0  # batched runs that finished requests of this version
    success: Duration = field(default_factory=Duration)  # whole requests, arrival to answer
    fail: Duration = field(default_factory=Duration)
    queue: Duration = field(default_factory=Duration)  # waiting in the batcher
    compute_input: Duration = field(default_factory=Duration)  # decoding and preprocessing
    compute_infer: Duration = field(default_factory=Duration)  # the batcher's runs
    compute_output: Duration = field(default_factory=Duration)


class Statistics:
    """(task, version) -> VersionStatistics, updated by every predict call."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_version: dict[tuple[str, int], VersionStatistics] = {}

    def succeeded(self, task: str, version: int, images: int, total_s: float, input_s: float, ran: Ran) -> None:
        with self._lock:
            s = self._get(task, version)
            self._by_version[(task, version)] = replace(
                s,
                last_inference_ms=int(time.time() * 1000),
                inference_count=s.inference_count + images,
                execution_count=s.execution_count + int(ran.executes),
                success=s.success.add(total_s),
                queue=s.queue.add(ran.queue_s),
                compute_input=s.compute_input.add(input_s),
                compute_infer=s.compute_infer.add(ran.compute_s),
                compute_output=s.compute_output.add(0.0),
            )

    def failed(self, task: str, version: int, total_s: float) -> None:
        with self._lock:
            s = self._get(task, version)
            self._by_version[(task, version)] = replace(s, fail=s.fail.add(total_s))

    def of(self, task: str, version: int) -> VersionStatistics:
        """The version's statistics (all zero before its first request)."""
        with self._lock:
            return self._get(task, version)

    def versions(self, task: str) -> list[VersionStatistics]:
        """Every version of the task that has been asked for, oldest first."""
        with self._lock:
            return sorted((s for (t, _), s in self._by_version.items() if t == task), key=lambda s: s.version)

    def forget(self, task: str) -> None:
        """Drops a deleted task's statistics (a task registered again under its name starts from zero)."""
        with self._lock:
            for key in [k for k in self._by_version if k[0] == task]:
                del self._by_version[key]

    def _get(self, task: str, version: int) -> VersionStatistics:
        return self._by_version.get((task, version)) or VersionStatistics(task, version)
