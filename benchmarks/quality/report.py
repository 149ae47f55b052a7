"""Writes the quality report: JSON (everything), Markdown tables, and a plot of accuracy against parameters."""

from __future__ import annotations

import json
from pathlib import Path

from .run import QualityReport
from .targets import targets

__all__ = ["markdown_table", "plot", "write_report"]


def _millions(params: float) -> str:
    return f"{params / 1e6:.3f} M"


def markdown_table(report: QualityReport) -> str:
    """The systems (mean ± spread over the seeds), their test accuracy per task, and the targets."""
    systems = report.systems
    lines = [
        "| system | average test accuracy | per seed | parameters per task | training steps per task "
        "| candidate-seconds per task | wall time |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for s in systems:
        seeds = ", ".join(f"{r.average_accuracy:.3f}" for r in s.runs)
        lines.append(
            f"| {s.system} | **{s.average_accuracy:.3f}** ± {s.accuracy_spread:.3f} | {seeds} | "
            f"{_millions(s.params_per_task)} | {s.steps_per_task:.0f} | {s.candidate_seconds_per_task:.1f} s | "
            f"{s.seconds:.0f} s |"
        )
    tasks = systems[0].runs[0].tasks if systems else []
    lines += ["", "| system | " + " | ".join(f"{t.task} ({t.classes})" for t in tasks) + " |",
              "|---|" + "---:|" * len(tasks)]
    for s in systems:
        lines.append(f"| {s.system} | " + " | ".join(f"{s.task_accuracy(i):.3f}" for i in range(len(tasks))) + " |")
    lines += ["", "| target | measured | met |", "|---|---|---|"]
    for row in targets(report)["rows"]:
        met = {True: "yes", False: "**no**", None: "-"}[row["met"]]
        lines.append(f"| {row['target']} | {row['measured']} | {met} |")
    p, root = report.profile, report.root
    search, train = p["search"], p["train"]
    sizes = p.get("sizes") or {}
    ds_mu = p.get("ds_mutation_probability")
    ds_mu = p["mutation_probability"] if ds_mu is None else ds_mu
    transfer = ", a new task starts from the last task's augmentation" if p.get("transfer_ds") else ""
    notes = [
        "",
        f"Profile `{p['name']}`: {len(p['tasks'])} tasks ({sizes.get('train', '?')} / {sizes.get('validation', '?')} "
        f"/ {sizes.get('test', '?')} examples per class, train / validation / test), root {root.get('source', '?')} "
        f"({_millions(float(root.get('params', 0)))}); seeds {', '.join(str(s) for s in p['seeds'])}; "
        f"{report.environment['cpus']} CPUs ({report.environment['device']}), total {report.seconds / 60:.1f} min.",
        f"Evolution: {search['samples_per_task']} candidates per task iteration, {search['children_per_generation']} "
        f"per generation, {search['task_iterations']} iteration(s), each candidate {train['validations']} x "
        f"{train['max_steps_between_validations']} steps at batch {train['batch_size']}, "
        f"mu {p['mutation_probability']} (dataset mu {ds_mu}{transfer}); the better variant at s=1: "
        f"{report.better_variant}. "
        f"Baselines: {p['baseline_replicas']} replicas, each with the steps of the longest lineage (§8.6), best by "
        "validation; the long run: every step in one run.",
        "Accuracy: mean over the seeds ± half their range. Parameters per task: the distinct parameters of the whole "
        "multitask system (each shared component once) divided by the number of tasks. Candidate-seconds: time spent "
        "training candidates or replicas.",
    ]
    return "\n".join(lines + notes) + "\n"


def plot(report: QualityReport, path: Path) -> None:
    """Average test accuracy against parameters per task: each variant's scale factors as a line, baselines and
    ablations as points; error bars are the spread over the seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.8), dpi=120)
    colours = {"munet": "tab:red", "mu2net": "tab:purple"}
    for variant, colour in colours.items():
        curve = sorted((s for s in report.systems if s.kind == "munet" and s.variant == variant),
                       key=lambda s: s.params_per_task)
        if not curve:
            continue
        ax.errorbar([s.params_per_task / 1e6 for s in curve], [s.average_accuracy for s in curve],
                    yerr=[s.accuracy_spread for s in curve], fmt="o-", color=colour, capsize=3,
                    label=curve[0].system.split(" ")[0])
        for s in curve:
            ax.annotate(f"s={s.scale_factor:g}", (s.params_per_task / 1e6, s.average_accuracy),
                        textcoords="offset points", xytext=(5, -12), fontsize=8)
    markers = iter("s^vDP*Xph<>")
    for s in (s for s in report.systems if s.kind == "baseline"):
        ax.errorbar(s.params_per_task / 1e6, s.average_accuracy, yerr=s.accuracy_spread, fmt=next(markers, "o"),
                    label=s.system, markersize=7, capsize=3)
    ablations = [s for s in report.systems if s.kind == "ablation"]
    if ablations:
        ax.plot([s.params_per_task / 1e6 for s in ablations], [s.average_accuracy for s in ablations], "x",
                color="grey", label="ablations (seed 0)")
    ax.set_xscale("log")
    ax.set_xlabel("parameters per task (M, log scale)")
    ax.set_ylabel("average test accuracy")
    ax.set_title(f"quality benchmark ({report.profile['name']}, {len(report.profile['tasks'])} tasks)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_report(report: QualityReport, out_dir: Path, stem: str) -> dict[str, Path]:
    """Writes <stem>.json, <stem>.md and <stem>.png into out_dir; returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / f"{stem}.json", "markdown": out_dir / f"{stem}.md", "plot": out_dir / f"{stem}.png"}
    paths["json"].write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    paths["markdown"].write_text(markdown_table(report))
    plot(report, paths["plot"])
    return paths
