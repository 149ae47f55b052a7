"""Runs an action at a fixed rate on a thread of its own until a deadline, and records each call's outcome.

Call k starts at `start + k * interval` (k = 1, 2, ...); a call that overruns delays the next one, which then starts
at once (no call is skipped, none overlap). Any exception the action raises is a failed call: it is counted, its
message kept, and the ticker goes on."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Outcome", "Ticker", "call_stats"]


@dataclass(frozen=True)
class Outcome:
    """One call: when it started (seconds since the soak's start), how long it took, and its error if it raised."""

    at_s: float
    seconds: float
    error: str | None = None


class Ticker:
    """`action(k)` every `interval_s` seconds from `start` (a time.perf_counter() value) until `deadline`."""

    def __init__(self, name: str, interval_s: float, action: Callable[[int], None], start: float,
                 deadline: float) -> None:
        self.name, self.interval_s, self.action = name, interval_s, action
        self.start, self.deadline = start, deadline
        self.outcomes: list[Outcome] = []
        self._thread: threading.Thread | None = None

    def begin(self) -> None:
        self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
        self._thread.start()

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise TimeoutError(f"the {self.name} thread did not end")

    def _loop(self) -> None:
        k = 1
        while True:
            due = self.start + k * self.interval_s
            if due >= self.deadline:
                return
            time.sleep(max(0.0, due - time.perf_counter()))
            t0 = time.perf_counter()
            error = None
            try:
                self.action(k)
            except Exception as e:  # every failure counts, and the soak goes on
                error = f"{type(e).__name__}: {e}"
            self.outcomes.append(Outcome(t0 - self.start, time.perf_counter() - t0, error))
            k += 1


def call_stats(outcomes: list[Outcome]) -> dict[str, Any]:
    """Calls done and failed, the first errors, and the calls' median and largest time in ms."""
    ms = [o.seconds * 1000 for o in outcomes]
    errors = [o.error for o in outcomes if o.error]
    return {
        "done": len(outcomes) - len(errors),
        "failed": len(errors),
        "errors": errors[:5],
        "call_ms_p50": float(np.median(ms)) if ms else None,
        "call_ms_max": float(max(ms)) if ms else None,
    }
