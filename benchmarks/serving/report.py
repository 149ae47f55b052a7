"""The serving benchmark's report: a Markdown table (printed and written) and the JSON of every figure."""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .headroom import a_ms_per_image, compute_ceiling
from .per_task import WHOLE_PATH
from .run import UNFUSED, Report, clients_workload, many_tasks_workload

SYSTEMS = {"munet": "munet-serve", "onnx": "A: ONNX Runtime, model per task", "torch": "B: PyTorch eager, per task",
           UNFUSED: "munet-serve, one session per component"}
MIB = 1024 * 1024


def _ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}x" if a and b and not math.isnan(a) and not math.isnan(b) else "-"


def ratios(report: Report) -> dict[str, float | None]:
    """The issue's target figures, computed from the report."""
    def get(system: str, workload: str, attr: str) -> float | None:
        run = report.run(system, workload)
        return getattr(run, attr) if run else None

    out: dict[str, float | None] = {}
    closed_a, closed_m = get("onnx", "closed loop", "throughput_rps"), get("munet", "closed loop", "throughput_rps")
    single = get("munet", "single task", "throughput_rps")
    out["throughput_vs_A"] = closed_m / closed_a if closed_m and closed_a else None
    p99_a, p99_m = get("onnx", "closed loop", "p99_ms"), get("munet", "closed loop", "p99_ms")
    out["p99_vs_A"] = p99_m / p99_a if p99_m and p99_a else None
    out["throughput_vs_single_task"] = closed_m / single if closed_m and single else None
    single_a = get("onnx", "single task", "throughput_rps")
    out["single_task_vs_A_single_task"] = single / single_a if single and single_a else None
    unfused = get(UNFUSED, "closed loop", "throughput_rps")
    out["throughput_vs_unfused"] = closed_m / unfused if closed_m and unfused else None
    for run in report.runs:
        if run.system == "munet" and "images/request" in run.workload:
            base = report.run("onnx", run.workload)
            k = run.workload.split(", ")[1].split(" ")[0]
            out[f"throughput_vs_A_{k}_images_per_request"] = run.throughput_rps / base.throughput_rps if base else None
    for run in report.runs:
        if run.system == "munet" and run.workload == many_tasks_workload(run.tasks):
            base = report.run("onnx", run.workload)
            out[f"throughput_vs_A_{run.tasks}_tasks"] = run.throughput_rps / base.throughput_rps if base else None
            out.update(_ceilings(report, run.workload, f"_{run.tasks}_tasks"))
    for clients in report.profile.get("concurrencies", ()):
        workload = clients_workload(clients)
        ours, base = report.run("munet", workload), report.run("onnx", workload)
        out[f"throughput_vs_A_{clients}_clients"] = ours.throughput_rps / base.throughput_rps if ours and base else None
        out.update(_ceilings(report, workload, f"_{clients}_clients"))
    out.update(_ceilings(report, "closed loop", "", detail=True))
    for key, swap in (("swap", report.swap), ("small_root_swap", report.small_swap)):
        if swap:  # against the steady runs interleaved with the swap runs
            out[f"{key}_p99_vs_steady"] = swap["p99_swapping_ms"] / swap["p99_steady_ms"]
    counts = sorted(report.memory.get("munet", {}))
    if len(counts) >= 2:
        lo, hi = counts[-2], counts[-1]
        added = report.memory["munet"][hi] - report.memory["munet"][lo]
        own = report.own_bytes[hi] - report.own_bytes[lo]
        out["memory_added_vs_own_bytes"] = added / own if own else None
        a = report.memory.get("onnx", {})
        if lo in a and hi in a:
            out["A_memory_per_task_mib"] = (a[hi] - a[lo]) / (hi - lo) / MIB
        out["munet_memory_per_task_mib"] = added / (hi - lo) / MIB
    return out


def _ceilings(report: Report, workload: str, suffix: str, detail: bool = False) -> dict[str, float | None]:
    """What batching every component at the best size could give over A in a one-image-per-request workload, from
    A's mean batch in it and the batch-cost curve: `ceiling_vs_A_with_overhead{suffix}`, with what A's server spends
    per request beyond its model's arithmetic (gRPC, decoding, scheduling), which munet-serve pays as well; with
    `detail`, also A's mean batch, that overhead and the bound without it (`compute_ceiling_vs_A`)."""
    a = report.run("onnx", workload)
    a_mean = a.images_per_run(WHOLE_PATH) if a else None
    out: dict[str, float | None] = {f"A_images_per_run{suffix}": a_mean} if detail else {}
    if report.batch_cost is None or a is None or not a_mean:
        return out
    cost, max_batch = report.batch_cost, int(report.profile["max_batch"])
    if detail:
        out[f"compute_ceiling_vs_A{suffix}"] = compute_ceiling(cost, a_mean, max_batch)
    if a.server_cpu_ms:
        overhead = max(0.0, a.server_cpu_ms - a_ms_per_image(cost, a_mean))
        if detail:
            out[f"A_overhead_ms_per_request{suffix}"] = overhead
        out[f"ceiling_vs_A_with_overhead{suffix}"] = compute_ceiling(cost, a_mean, max_batch, overhead)
    return out


def markdown(report: Report) -> str:
    p = report.profile
    lines = [
        f"Profile `{p['name']}`: root `{p['root']['model']}` at {p['root']['image_size']} px, {p['tasks']} tasks, "
        f"Zipf exponent {p['zipf_exponent']}, {p['concurrency']} closed-loop clients, {p['duration_s']:g} s per run, "
        f"max batch {p['max_batch']}, batch delay {p['batch_delay_ms']:g} ms; {report.seconds / 60:.1f} min in all.",
        "",
        "| system | workload | tasks | requests | failed | throughput (req/s) | vs A | p50 ms | p99 ms | p99.9 ms |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report.runs:
        base = report.run("onnx", r.workload)
        lines.append(
            f"| {SYSTEMS[r.system]} | {r.workload} | {r.tasks} | {r.requests} | {r.failed} | {r.throughput_rps:.1f} "
            f"| {_ratio(r.throughput_rps, base.throughput_rps if base else None)} | {r.p50_ms:.1f} | {r.p99_ms:.1f} "
            f"| {r.p999_ms:.1f} |"
        )
    lines += _batch_lines(report)
    munet_mem, a_mem = report.memory.get("munet", {}), report.memory.get("onnx", {})
    lines += ["", "| tasks | munet-serve RSS (MiB) | own components of its tasks (MiB) | A RSS (MiB) |",
              "|---:|---:|---:|---:|"]
    for count in sorted(set(munet_mem) | set(a_mem)):
        m, a = munet_mem.get(count), a_mem.get(count)
        own = report.own_bytes.get(count)
        lines.append(f"| {count} | {m / MIB if m else float('nan'):.0f} | {own / MIB if own else float('nan'):.1f} "
                     f"| {a / MIB if a else float('nan'):.0f} |")
    lines.append(f"\nOne task's whole path as one graph: {report.whole_model_bytes / MIB:.1f} MiB.")
    figures = ratios(report)
    lines += ["", "| target | measured |", "|---|---:|"]
    for key, value in figures.items():
        lines.append(f"| {key} | {value:.2f} |" if value is not None else f"| {key} | - |")
    for s in (report.swap, report.small_swap):
        if s:
            lines.append(
                f"\nHot swap (root `{s['root']}`): {s['published']} versions of `{s['task']}` published under load, "
                f"{s['failed']} failed requests; publish call median {s['publish_call_ms_median'] or float('nan'):.0f} "
                f"ms, publish to first answer median {s['publish_to_first_answer_ms_median'] or float('nan'):.0f} ms "
                f"(max {s['publish_to_first_answer_ms_max'] or float('nan'):.0f} ms)."
            )
    return "\n".join(lines) + "\n"


def _batch_lines(report: Report) -> list[str]:
    """Mean images per session run, by the kind of its (first) component, in each closed-loop workload; and the
    batch-cost curve."""
    kinds = sorted({k for r in report.runs for k in r.batches}, key=lambda k: (k == WHOLE_PATH, k))
    lines: list[str] = []
    runs = [r for r in report.runs if r.batches]
    if runs:
        lines += ["", "Images per session run (mean), by the kind of its first component (a fused segment counts "
                  "under it), and the server's CPU time per request:", "",
                  f"| system | workload | {' | '.join(kinds)} | server CPU ms/request |",
                  "|---|---|" + "---:|" * (len(kinds) + 1)]
        for r in runs:
            cells = [f"{v:.1f}" if (v := r.images_per_run(k)) is not None else "" for k in kinds]
            cpu = f"{r.server_cpu_ms:.2f}" if r.server_cpu_ms is not None else "-"
            lines.append(f"| {SYSTEMS[r.system]} | {r.workload} | {' | '.join(cells)} | {cpu} |")
    cost = report.batch_cost
    if cost is not None:
        best_batch, best = cost.best(int(report.profile["max_batch"]))
        lines += ["", f"One task's whole path, ms per image at each batch size ({cost.device}, {cost.threads} intra-op "
                      f"thread; the best is {best:.2f} ms at batch {best_batch}):", "",
                  "| batch | " + " | ".join(str(b) for b in cost.batch_sizes) + " |",
                  "|---|" + "---:|" * len(cost.batch_sizes),
                  "| ms/image | " + " | ".join(f"{ms / b:.2f}" for b, ms in zip(cost.batch_sizes, cost.ms_per_run,
                                                                             strict=True)) + " |"]
    return lines


def write(report: Report, out_dir: Path, name: str) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    data: dict[str, Any] = asdict(report)
    data["ratios"] = ratios(report)
    json_path, md_path = out_dir / f"serving-{name}.json", out_dir / f"serving-{name}.md"
    json_path.write_text(json.dumps(data, indent=2) + "\n")
    md_path.write_text(markdown(report))
    return json_path, md_path
