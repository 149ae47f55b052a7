"""The serving benchmark's KServe v2 mode: ModelInfer, sent by Triton's own gRPC client (tritonclient.grpc), beside
native Predict on the same workload against the same munet-serve server, in one run.

    python -m benchmarks.serving --kserve            # the quick profile's fleet and clients (about 4 minutes)

One server holds the profile's fleet (its root, `tasks` tasks). Both protocols send the same closed-loop Zipf traffic
from the same number of client threads, each thread with a connection of its own: one request of uint8 pixels
[1, S, S, 3] per call, tasks drawn alike. The runs alternate, native then KServe, for `rounds` rounds (the machine's
speed drifts; each protocol's throughput is the median of its rounds, and the ratio is the median of the rounds'
ratios). Target: ModelInfer throughput >= 0.9x native.

Triton's perf_analyzer is not installable here (the package index serves only a placeholder); docs/kserve.md gives its
command for a user with Triton's SDK.
"""

from __future__ import annotations

import contextlib
import json
import logging
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .fleet import Fleet, FleetSpec
from .load import KSERVE, NATIVE, LoadResult, closed_loop
from .run import Images, Profile, _fleet_server

logger = logging.getLogger(__name__)

TARGET_RATIO = 0.9
TENSOR = "UINT8 pixels [1, S, S, 3] per request, the same array by both protocols"


@dataclass
class ProtocolRun:
    """One protocol's rounds: their throughputs (answered requests per second) and every latency."""

    throughputs: list[float] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    requests: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)

    def add(self, result: LoadResult) -> None:
        self.throughputs.append(result.throughput)
        self.latencies_ms.extend(result.latencies_ms)
        self.requests += result.requests
        self.failed += result.failed
        self.errors.extend(result.errors[:3])

    def summary(self) -> dict[str, Any]:
        return {
            "throughput_rps": float(np.median(self.throughputs)) if self.throughputs else 0.0,
            "round_throughputs_rps": self.throughputs,
            "p50_ms": float(np.percentile(self.latencies_ms, 50)) if self.latencies_ms else None,
            "p99_ms": float(np.percentile(self.latencies_ms, 99)) if self.latencies_ms else None,
            "requests": self.requests,
            "failed": self.failed,
            "errors": self.errors[:5],
        }


def run_kserve(profile: Profile, rounds: int = 3, workdir: Path | None = None) -> dict[str, Any]:
    """Both protocols against one server, interleaved; returns the report (the caller writes it)."""
    started = time.perf_counter()
    runs = {NATIVE: ProtocolRun(), KSERVE: ProtocolRun()}
    with contextlib.ExitStack() as stack:
        if workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="munet-kserve-")))
        workdir.mkdir(parents=True, exist_ok=True)
        fleet = Fleet(FleetSpec(profile.root))
        tasks = [f"task-{i:02d}" for i in range(profile.tasks)]
        images = Images(fleet.image_size)
        munet, _ = stack.enter_context(_fleet_server(workdir, profile, fleet, tasks))
        logger.info("munet-serve: %d tasks published; warming both protocols", len(tasks))

        def load(protocol: str, seconds: float) -> LoadResult:
            return closed_loop(munet.target, tasks, images, concurrency=profile.concurrency, duration_s=seconds,
                               zipf_exponent=profile.zipf_exponent, protocol=protocol)

        for protocol in runs:
            load(protocol, profile.warmup_s)
        for index in range(rounds):
            for protocol, run in runs.items():
                result = load(protocol, profile.duration_s / rounds)
                run.add(result)
                logger.info("round %d %s: %.1f requests/s, %d failed", index + 1, protocol, result.throughput,
                            result.failed)
    ratios = [k / n if n else 0.0 for n, k in zip(runs[NATIVE].throughputs, runs[KSERVE].throughputs, strict=True)]
    return {
        "profile": {**asdict(profile), "root": asdict(profile.root)},
        "rounds": rounds,
        "tensor": TENSOR,
        "native": runs[NATIVE].summary(),
        "kserve": runs[KSERVE].summary(),
        "ratio": float(np.median(ratios)),
        "round_ratios": ratios,
        "target_ratio": TARGET_RATIO,
        "seconds": time.perf_counter() - started,
    }


def markdown(report: dict[str, Any]) -> str:
    p = report["profile"]
    lines = [
        f"KServe v2 ModelInfer (tritonclient.grpc) against native Predict, one server: {p['root']['model']} at "
        f"{p['root']['image_size']} px, {p['tasks']} tasks under Zipf traffic, {p['concurrency']} closed-loop "
        f"clients, {report['rounds']} interleaved rounds; {report['tensor']}",
        "",
        "| protocol | requests/s (median round) | p50 ms | p99 ms | requests | failed |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, label in ((NATIVE, "native Predict"), (KSERVE, "KServe v2 ModelInfer")):
        s = report[name]
        p50, p99 = (f"{v:.1f}" if v is not None else "-" for v in (s["p50_ms"], s["p99_ms"]))
        lines.append(f"| {label} | {s['throughput_rps']:.1f} | {p50} | {p99} | {s['requests']} | {s['failed']} |")
    met = "met" if report["ratio"] >= report["target_ratio"] else "not met"
    lines += ["", f"ModelInfer / native: {report['ratio']:.2f}x (rounds: "
                  f"{', '.join(f'{r:.2f}' for r in report['round_ratios'])}); target >= "
                  f"{report['target_ratio']}x: {met}. {report['seconds']:.0f} s in all."]
    return "\n".join(lines)


def write(report: dict[str, Any], out: Path, name: str) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out / f"serving-kserve-{name}.json", out / f"serving-kserve-{name}.md"
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    md_path.write_text(markdown(report) + "\n")
    return json_path, md_path
