"""A closed-loop load generator over the real gRPC API: C concurrent clients, tasks drawn from a Zipf law.

Each client thread has its own channel, picks a task (rank k with probability proportional to 1 / k^a), sends one
Predict of `batch` images at that task's input size, waits for the answer, and repeats until the duration ends.
Latencies are measured per request; any error counts as a failed request (and its message is kept).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from munet_serve.clients import Client

__all__ = ["LoadResult", "closed_loop", "zipf_weights"]


def zipf_weights(n: int, exponent: float = 1.0) -> np.ndarray:
    """Probabilities of ranks 1..n under a Zipf law with this exponent (0: uniform)."""
    if n < 1:
        raise ValueError("at least one task is needed")
    weights = 1.0 / np.arange(1, n + 1, dtype=np.float64) ** exponent
    return weights / weights.sum()


@dataclass
class LoadResult:
    seconds: float
    latencies_ms: list[float]
    failed: int
    per_task: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)

    @property
    def requests(self) -> int:
        return len(self.latencies_ms) + self.failed

    @property
    def throughput(self) -> float:
        """Answered requests per second."""
        return len(self.latencies_ms) / self.seconds if self.seconds > 0 else 0.0

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms else float("nan")

    def summary(self) -> dict[str, float | int]:
        return {
            "requests": self.requests,
            "failed": self.failed,
            "throughput_rps": self.throughput,
            "p50_ms": self.percentile(50),
            "p99_ms": self.percentile(99),
            "p99.9_ms": self.percentile(99.9),
        }


def closed_loop(
    target: str,
    tasks: Sequence[str],
    images: Callable[[str], np.ndarray],
    *,
    concurrency: int,
    duration_s: float,
    batch: int = 1,
    zipf_exponent: float = 1.0,
    seed: int = 0,
) -> LoadResult:
    """Runs `concurrency` clients against the server at `target` for `duration_s` seconds.

    Args:
        tasks: task names, most popular first (rank 1).
        images: a task's pool of uint8 images at its input size ([N, H, W] or [N, H, W, C]); requests cycle it.
    """
    if concurrency < 1 or duration_s <= 0 or batch < 1:
        raise ValueError("concurrency and batch must be >= 1 and duration_s > 0")
    probabilities = zipf_weights(len(tasks), zipf_exponent)
    pools = {t: images(t) for t in tasks}
    lock = threading.Lock()
    result = LoadResult(seconds=0.0, latencies_ms=[], failed=0)
    start_gate = threading.Barrier(concurrency + 1)
    deadline = [0.0]

    def worker(index: int) -> None:
        rng = np.random.default_rng([seed, index])
        latencies: list[float] = []
        counts: Counter[str] = Counter()
        failed, errors = 0, []
        with Client(target, timeout=60) as client:
            start_gate.wait(timeout=60)
            i = 0
            while time.perf_counter() < deadline[0]:
                task = tasks[int(rng.choice(len(tasks), p=probabilities))]
                pool = pools[task]
                rows = [(i + k) % len(pool) for k in range(batch)]
                i += batch
                t0 = time.perf_counter()
                try:
                    client.predict_batch(task, pool[rows], top_k=1)
                except Exception as e:  # every failure counts; the message is kept for the report
                    failed += 1
                    errors.append(f"{task}: {e}")
                    continue
                latencies.append((time.perf_counter() - t0) * 1000)
                counts[task] += 1
        with lock:
            result.latencies_ms.extend(latencies)
            result.failed += failed
            result.errors.extend(errors[:5])
            result.per_task.update(counts)

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(concurrency)]
    for thread in threads:
        thread.start()
    began = time.perf_counter()
    deadline[0] = began + duration_s  # set before the gate opens: the workers read it after
    start_gate.wait(timeout=60)
    for thread in threads:
        thread.join()
    result.seconds = time.perf_counter() - began
    return result
