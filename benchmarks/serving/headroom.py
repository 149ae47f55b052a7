"""How much batching can win on this machine: one task's whole path timed at every batch size, in one process.

Cross-task batching turns many small per-task batches into a few large shared ones, so the most it can gain over
baseline A is what a large batch saves per image against the batches A actually ran. `BatchCost` measures that
curve with the servers' own session settings (one intra-op thread, no spinning), and `compute_ceiling` turns A's
measured mean batch into the throughput ratio munet-serve would reach if it ran *every* component at the best
batch size with no other cost: an upper bound, because a task's own components still run per task and every
request still pays its gRPC, decoding and scheduling costs.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

__all__ = ["BATCH_SIZES", "BatchCost", "a_ms_per_image", "compute_ceiling", "measure", "measure_apart"]

BATCH_SIZES = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64)


@dataclass(frozen=True)
class BatchCost:
    """Median milliseconds of one run of the whole path at each batch size."""

    batch_sizes: tuple[int, ...]
    ms_per_run: tuple[float, ...]
    threads: int
    device: str = "cpu"

    def ms_per_image(self, batch: float) -> float:
        """Per-image cost at a (possibly fractional, e.g. mean) batch size, the run time interpolated linearly."""
        if not self.batch_sizes[0] <= batch <= self.batch_sizes[-1]:
            raise ValueError(f"batch {batch} is outside the measured {self.batch_sizes[0]}..{self.batch_sizes[-1]}")
        return float(np.interp(batch, self.batch_sizes, self.ms_per_run)) / batch

    def best(self, max_batch: int) -> tuple[int, float]:
        """The batch size up to `max_batch` with the lowest cost per image, and that cost."""
        costs = [(ms / b, b) for b, ms in zip(self.batch_sizes, self.ms_per_run, strict=True) if b <= max_batch]
        cost, batch = min(costs)
        return batch, cost


def measure(graph: bytes, image_shape: tuple[int, int, int], batch_sizes: tuple[int, ...] = BATCH_SIZES,
            threads: int = 1, seconds: float = 0.8, device: str = "cpu") -> BatchCost:
    """Times `graph` (input [N, *image_shape]) at each batch size for about `seconds` each, after two warm runs, on
    the CPU or with the CUDA execution provider (inputs copied from the host, as a server's requests are)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if device == "cuda" else ["CPUExecutionProvider"]
    session = ort.InferenceSession(graph, options, providers=providers)
    name = session.get_inputs()[0].name
    rng = np.random.default_rng(0)
    medians = []
    for batch in batch_sizes:
        x = rng.standard_normal((batch, *image_shape), dtype=np.float32)
        for _ in range(2):
            session.run(None, {name: x})
        times: list[float] = []
        end = time.perf_counter() + seconds
        while len(times) < 3 or time.perf_counter() < end:
            t0 = time.perf_counter()
            session.run(None, {name: x})
            times.append((time.perf_counter() - t0) * 1000)
        medians.append(float(np.median(times)))
    return BatchCost(tuple(batch_sizes), tuple(medians), threads, device)


def measure_apart(graph: bytes, image_shape: tuple[int, int, int], threads: int = 1, seconds: float = 0.8,
                  device: str = "cpu") -> BatchCost:
    """`measure` in a fresh process (`python -m benchmarks.serving.headroom`): its sessions get their own threads,
    which ONNX Runtime refuses in a process that already set up a global thread pool (as a server does)."""
    with tempfile.TemporaryDirectory(prefix="munet-headroom-") as tmp:
        path = Path(tmp) / "path.onnx"
        path.write_bytes(graph)
        done = subprocess.run(
            [sys.executable, "-m", "benchmarks.serving.headroom", str(path), "--shape", *map(str, image_shape),
             "--threads", str(threads), "--seconds", str(seconds), "--device", device],
            capture_output=True, text=True, check=False, timeout=600,
        )
    if done.returncode != 0:
        raise RuntimeError(f"timing the batch sizes failed (exit code {done.returncode}): {done.stderr[-2000:]}")
    data = json.loads(done.stdout)
    return BatchCost(tuple(data["batch_sizes"]), tuple(data["ms_per_run"]), int(data["threads"]), data["device"])


def compute_ceiling(cost: BatchCost, a_mean_batch: float, max_batch: int, overhead_ms: float = 0.0) -> float:
    """munet-serve's throughput over baseline A's if every component ran at the best batch size, while A keeps the
    batches it ran and both pay `overhead_ms` per request beyond the model's arithmetic (0: nothing else costs):
    (overhead + A's per-image cost at its mean batch) / (overhead + the best per-image cost). (With a run time
    affine in the batch size, a + b * n, the cost per image of any mix of batches is exactly the cost per image at
    their mean size: sum(a + b * n_i) / sum(n_i).)"""
    return (overhead_ms + a_ms_per_image(cost, a_mean_batch)) / (overhead_ms + cost.best(max_batch)[1])


def a_ms_per_image(cost: BatchCost, mean_batch: float) -> float:
    """The per-image cost at a mean batch size (within the measured sizes; a mean below 1 image counts as 1)."""
    return cost.ms_per_image(min(max(mean_batch, cost.batch_sizes[0]), cost.batch_sizes[-1]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.serving.headroom", description=__doc__)
    parser.add_argument("graph", type=Path, help="an ONNX graph taking float32 [N, C, H, W]")
    parser.add_argument("--shape", type=int, nargs=3, required=True, metavar=("C", "H", "W"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=0.8, help="timing per batch size")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    args = parser.parse_args(argv)
    cost = measure(args.graph.read_bytes(), tuple(args.shape), threads=args.threads, seconds=args.seconds,
                   device=args.device)
    print(json.dumps(asdict(cost)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
