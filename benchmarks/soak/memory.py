"""The server's resident memory over the soak: VmRSS from /proc/<pid>/status (with the answered predicts and the
server's CPU time at the same moment), the sample times the report shows, and the growth the target bounds: the
last sample against the one nearest `reference_fraction` of the run (minute 2 of 10)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from benchmarks.serving.run import System

__all__ = ["AnswerCounter", "Sample", "Sampler", "growth", "mark_times", "nearest"]

MIB = 1024 * 1024


class AnswerCounter:
    """The closed loop's `on_answer` hook: counts answers, and keeps which versions of each task answered."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.count = 0
        self.versions: dict[str, set[int]] = {}

    def __call__(self, task: str, version: int, at: float) -> None:
        with self._lock:
            self.count += 1
            self.versions.setdefault(task, set()).add(version)


@dataclass(frozen=True)
class Sample:
    """At `at_s` seconds into the soak: the server's VmRSS, the predicts answered so far, its CPU seconds so far."""

    at_s: float
    rss_bytes: int
    answered: int
    cpu_s: float

    @property
    def rss_mib(self) -> float:
        return self.rss_bytes / MIB


class Sampler:
    """Reads the server process's figures when called (the soak calls it every second on a ticker)."""

    def __init__(self, server: System, answers: AnswerCounter, start: float, clock: Callable[[], float]) -> None:
        self._server, self._answers, self._start, self._clock = server, answers, start, clock
        self.samples: list[Sample] = []

    def __call__(self, tick: int = 0) -> None:
        at = self._clock() - self._start
        self.samples.append(Sample(at, self._server.rss, self._answers.count, self._server.cpu_seconds()))


def nearest(samples: list[Sample], at_s: float) -> Sample:
    """The sample taken nearest to `at_s`."""
    if not samples:
        raise ValueError("no samples")
    return min(samples, key=lambda s: abs(s.at_s - at_s))


def mark_times(duration_s: float, reference_fraction: float) -> list[float]:
    """The times the report shows RSS at: each whole minute, the reference, the end, and for runs under two minutes
    each tenth of the run."""
    marks = {60.0 * m for m in range(1, int(duration_s // 60) + 1)}
    if duration_s < 120:
        marks |= {duration_s * k / 10 for k in range(1, 10)}
    marks |= {0.0, reference_fraction * duration_s, duration_s}
    return sorted(round(m, 3) for m in marks)


def growth(samples: list[Sample], duration_s: float, reference_fraction: float) -> tuple[Sample, Sample, float]:
    """(the reference sample, the last sample, last RSS / reference RSS)."""
    reference = nearest(samples, reference_fraction * duration_s)
    end = max(samples, key=lambda s: s.at_s)
    return reference, end, end.rss_bytes / reference.rss_bytes
