"""The evolver benchmark's report: a Markdown table (printed and written) and the JSON of every figure."""

from __future__ import annotations

import json
from pathlib import Path

from .run import CHILDREN, GENERATIONS, Report

__all__ = ["markdown", "write"]

SYSTEMS = ("evolver", "evolver, each alone", "evolver, bf16 prefix", "bare PyTorch loop")


def markdown(report: Report) -> str:
    """Candidate-steps per second per workload and system (medians over the rounds), the ratios, the bf16 check."""
    lines = ["| workload | " + " | ".join(SYSTEMS) + " |", "|---|" + "---:|" * len(SYSTEMS)]
    for workload in (*CHILDREN, *GENERATIONS):
        cells = []
        for system in SYSTEMS:
            m = report.get(workload, system)
            cells.append(f"{m.candidate_steps_per_second:.1f}" if m else "-")
        lines.append(f"| {workload} | " + " | ".join(cells) + " |")
    lines += ["", "| figure | value |", "|---|---:|"]
    lines += [f"| {name} | {value:.2f}x |" for name, value in report.ratios().items()]
    acc = report.accuracy
    env = report.environment
    p = report.profile
    lines += [
        "",
        f"Candidate-steps per second, medians of {p['rounds']} interleaved rounds of {p['steps']} steps at batch "
        f"{p['batch_size']} ({p['task']}, root `{p['root_preset']}`), {env['torch_threads']} threads, "
        f"torch {env['torch']}, CPU capability {env['cpu_capability']}, avx512_bf16 {env['avx512_bf16']}; "
        f"{report.seconds / 60:.1f} min in all.",
        f"bf16 accuracy check ({acc['steps']} steps, {acc['validation_examples']} validation images; "
        f"{', '.join(acc['candidates'])}): validation accuracy float32 "
        f"{', '.join(f'{a:.3f}' for a in acc['validation_accuracy_fp32'])}, bf16 prefix "
        f"{', '.join(f'{a:.3f}' for a in acc['validation_accuracy_bf16'])} (mean difference "
        f"{acc['mean_difference']:+.3f}, largest {acc['largest_difference']:+.3f}).",
    ]
    return "\n".join(lines) + "\n"


def write(report: Report, out_dir: Path, stem: str) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out_dir / f"{stem}.json", out_dir / f"{stem}.md"
    json_path.write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    md_path.write_text(markdown(report))
    return json_path, md_path
