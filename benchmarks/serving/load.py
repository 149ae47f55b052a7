"""Load generators over the real gRPC API, tasks drawn from a Zipf law (rank k with probability ~ 1 / k^a).

- Closed loop: C client threads, each with its own channel, send one Predict of `batch` images at the task's input
  size, wait for the answer and repeat until the duration ends.
- Open loop: requests start at Poisson arrival times at a target rate whether or not earlier ones were answered
  (asyncio client), so queueing shows up in the latencies instead of slowing the sender down; a request's latency
  counts from its scheduled arrival, not from when the sender got to it (no coordinated omission).

Latencies are measured per request; any error counts as a failed request (and its message is kept). An optional
`on_answer(task, version, seconds)` hook sees every answer (the hot-swap measurement uses it).

The closed loop sends by either protocol the server speaks: native Predict through munet-serve's `Client`, or KServe
v2 ModelInfer through Triton's own gRPC client (`tritonclient.grpc`), the same uint8 pixels [batch, S, S, 3] to the
same server either way.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from munet_serve.clients import AsyncClient, Client

__all__ = ["PROTOCOLS", "LoadResult", "closed_loop", "open_loop", "zipf_weights"]

AnswerHook = Callable[[str, int, float], None]  # (task, version that answered, time.perf_counter() of the answer)
NATIVE, KSERVE = "native", "kserve"
PROTOCOLS = (NATIVE, KSERVE)


class _Sender:
    """One client thread's connection: sends a batch of uint8 pixels for a task, returns the version that answered."""

    def __init__(self, target: str, protocol: str) -> None:
        self.protocol = protocol
        if protocol == NATIVE:
            self._native = Client(target, timeout=60)
        elif protocol == KSERVE:
            import tritonclient.grpc as triton  # only this mode needs it

            self._triton = triton
            self._kserve = triton.InferenceServerClient(target)
            self._outputs = [triton.InferRequestedOutput("LOGITS")]
        else:
            raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")

    def send(self, task: str, images: np.ndarray) -> int:
        if self.protocol == NATIVE:
            return self._native.predict_batch(task, images, top_k=1).version
        tensor = self._triton.InferInput("IMAGE", list(images.shape), "UINT8")
        tensor.set_data_from_numpy(images)
        answer = self._kserve.infer(task, [tensor], outputs=self._outputs, client_timeout=60)
        return int(answer.get_response().model_version)

    def close(self) -> None:
        if self.protocol == NATIVE:
            self._native.close()
        else:
            self._kserve.close()


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
    on_answer: AnswerHook | None = None,
    protocol: str = NATIVE,
) -> LoadResult:
    """Runs `concurrency` clients against the server at `target` for `duration_s` seconds.

    Args:
        tasks: task names, most popular first (rank 1).
        images: a task's pool of uint8 images at its input size ([N, H, W] or [N, H, W, C]); requests cycle it.
        protocol: "native" (Predict) or "kserve" (ModelInfer, sent by tritonclient.grpc).
    """
    if concurrency < 1 or duration_s <= 0 or batch < 1:
        raise ValueError("concurrency and batch must be >= 1 and duration_s > 0")
    probabilities = zipf_weights(len(tasks), zipf_exponent)
    pools = {t: images(t) for t in tasks}
    _Sender(target, protocol).close()  # a protocol or client that cannot start fails here, not in every thread
    lock = threading.Lock()
    result = LoadResult(seconds=0.0, latencies_ms=[], failed=0)
    start_gate = threading.Barrier(concurrency + 1)
    deadline = [0.0]

    def worker(index: int) -> None:
        rng = np.random.default_rng([seed, index])
        latencies: list[float] = []
        counts: Counter[str] = Counter()
        failed, errors = 0, []
        sender = _Sender(target, protocol)
        try:
            start_gate.wait(timeout=60)
            i = 0
            while time.perf_counter() < deadline[0]:
                task = tasks[int(rng.choice(len(tasks), p=probabilities))]
                pool = pools[task]
                rows = [(i + k) % len(pool) for k in range(batch)]
                i += batch
                t0 = time.perf_counter()
                try:
                    version = sender.send(task, pool[rows])
                except Exception as e:  # every failure counts; the message is kept for the report
                    failed += 1
                    errors.append(f"{task}: {e}")
                    continue
                t1 = time.perf_counter()
                latencies.append((t1 - t0) * 1000)
                counts[task] += 1
                if on_answer is not None:
                    on_answer(task, version, t1)
        finally:
            sender.close()
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


def open_loop(
    target: str,
    tasks: Sequence[str],
    images: Callable[[str], np.ndarray],
    *,
    rate: float,
    duration_s: float,
    batch: int = 1,
    zipf_exponent: float = 1.0,
    seed: int = 0,
    channels: int = 4,
) -> LoadResult:
    """Sends requests at Poisson arrival times averaging `rate` per second for `duration_s` seconds, then waits
    for the last answers. Throughput is answered requests over the whole time, so a server that cannot keep up
    shows it in both throughput and latency."""
    if rate <= 0 or duration_s <= 0 or batch < 1 or channels < 1:
        raise ValueError("rate, duration_s, batch and channels must be positive")
    probabilities = zipf_weights(len(tasks), zipf_exponent)
    pools = {t: images(t) for t in tasks}
    rng = np.random.default_rng(seed)
    count = max(1, int(rng.poisson(rate * duration_s)))
    starts = np.sort(rng.uniform(0.0, duration_s, count))
    picks = rng.choice(len(tasks), size=count, p=probabilities)
    return asyncio.run(_open_loop(target, tasks, pools, starts, picks, batch, channels))


async def _open_loop(
    target: str, tasks: Sequence[str], pools: dict[str, np.ndarray], starts: np.ndarray, picks: np.ndarray,
    batch: int, channels: int,
) -> LoadResult:
    result = LoadResult(seconds=0.0, latencies_ms=[], failed=0)
    clients = [AsyncClient(target, timeout=60) for _ in range(channels)]
    try:
        warm = pools[tasks[0]][:1]
        await asyncio.gather(*(c.predict_batch(tasks[0], warm, top_k=1) for c in clients))  # connected first
        began = time.perf_counter()

        async def one(i: int) -> None:
            task = tasks[int(picks[i])]
            pool = pools[task]
            rows = [(i * batch + k) % len(pool) for k in range(batch)]
            t0 = began + float(starts[i])  # latency counts from the scheduled time: a late send is the load's delay
            delay = t0 - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            try:
                await clients[i % channels].predict_batch(task, pool[rows], top_k=1)
            except Exception as e:  # noqa: BLE001 - every failure counts
                result.failed += 1
                if len(result.errors) < 20:
                    result.errors.append(f"{task}: {e}")
                return
            result.latencies_ms.append((time.perf_counter() - t0) * 1000)
            result.per_task[task] += 1

        await asyncio.gather(*(one(i) for i in range(len(starts))))
        result.seconds = time.perf_counter() - began
    finally:
        await asyncio.gather(*(c.close() for c in clients))
    return result
