"""Writes the quality report: JSON (everything), a Markdown table, and a plot of accuracy against parameters."""

from __future__ import annotations

import json
from pathlib import Path

from .run import QualityReport

__all__ = ["markdown_table", "plot", "write_report"]


def _millions(params: float) -> str:
    return f"{params / 1e6:.3f} M"


def markdown_table(report: QualityReport) -> str:
    """Test accuracy per task and system; then the average, parameters per task, steps per task and wall time."""
    systems = report.systems
    header = "| task | " + " | ".join(s.system for s in systems) + " |"
    rule = "|---|" + "---:|" * len(systems)
    lines = [header, rule]
    for i, task in enumerate(systems[0].tasks if systems else []):
        cells = [f"{s.tasks[i].test_accuracy:.3f}" for s in systems]
        lines.append(f"| {task.task} ({task.classes} classes) | " + " | ".join(cells) + " |")
    lines.append("| **average test accuracy** | " + " | ".join(f"**{s.average_accuracy:.3f}**" for s in systems) + " |")
    lines.append("| parameters per task | " + " | ".join(_millions(s.params_per_task) for s in systems) + " |")
    lines.append("| training steps per task | " + " | ".join(f"{s.steps_per_task:.0f}" for s in systems) + " |")
    lines.append("| wall time | " + " | ".join(f"{s.seconds:.0f} s" for s in systems) + " |")
    forgetting = [s for s in systems if s.forgetting_checks]
    if forgetting:
        cells = []
        for s in systems:
            if not s.forgetting_checks:
                cells.append("n/a")
                continue
            checked = sum(len(c.checked) for c in s.forgetting_checks)
            same = all(c.identical for c in s.forgetting_checks)
            cells.append(f"{checked} checks, {'all identical' if same else 'CHANGED'}")
        lines.append("| earlier tasks bit-identical | " + " | ".join(cells) + " |")
    root = report.root
    notes = [
        "",
        f"Profile `{report.profile['name']}`: {len(report.profile['tasks'])} tasks, root {root.get('source', '?')} "
        f"({_millions(float(root.get('params', 0)))}), "
        f"{report.environment['cpus']} CPUs ({report.environment['device']}), total {report.seconds / 60:.1f} min.",
        "Parameters per task: the distinct parameters of the whole multitask system (each shared component once) "
        "divided by the number of tasks.",
    ]
    return "\n".join(lines + notes) + "\n"


def plot(report: QualityReport, path: Path) -> None:
    """Average test accuracy against parameters per task: muNet's scale factors as a line, baselines as points."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    munet = sorted((s for s in report.systems if s.kind == "munet"), key=lambda s: s.params_per_task)
    if munet:
        ax.plot([s.params_per_task / 1e6 for s in munet], [s.average_accuracy for s in munet], "o-",
                color="tab:red", label="muNet")
        for s in munet:
            ax.annotate(f"s={s.scale_factor:g}", (s.params_per_task / 1e6, s.average_accuracy),
                        textcoords="offset points", xytext=(5, -12), fontsize=8)
    markers = iter("s^vDP*Xph<>")
    for s in (s for s in report.systems if s.kind == "baseline"):
        ax.plot(s.params_per_task / 1e6, s.average_accuracy, next(markers, "o"), label=s.system, markersize=8)
    ax.set_xscale("log")
    ax.set_xlabel("parameters per task (M, log scale)")
    ax.set_ylabel("average test accuracy")
    ax.set_title(f"quality benchmark ({report.profile['name']}, {len(report.profile['tasks'])} tasks)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
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
