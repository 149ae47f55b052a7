"""How the command line shows tasks, versions, predictions and events (rich tables)."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.table import Table

from .types import PathVersion, PredictResult, SystemStats, TaskEvent, TaskInfo

console = Console(highlight=False)


def short(id: str) -> str:
    return id[:12]


def _pct(x: float) -> str:
    return f"{100 * x:.2f}%"


def _compact(value: Any, limit: int = 100) -> str:
    text = json.dumps(value, separators=(",", ":"), sort_keys=True)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def tasks_table(tasks: list[TaskInfo]) -> Table:
    """One row per task; "params" is the live accounted count (shared components divided among their tasks)."""
    table = Table("task", "state", "version", "labels", "val acc", "test acc", "params", "evolution")
    for t in tasks:
        table.add_row(
            t.name,
            t.state,
            str(t.current_version or "-"),
            str(len(t.labels)),
            _pct(t.metrics.validation_accuracy) if t.current_version else "-",
            _pct(t.metrics.test_accuracy) if t.current_version else "-",
            f"{t.accounted_params:,}" if t.current_version else "-",
            status_line(t),
        )
    return table


def system_line(s: SystemStats) -> str:
    """The system's parameter figures, printed under the tasks table."""
    root = f"root {s.root_params:,} params" if s.root_params else "no root set"
    if not s.serving_tasks:
        return f"system: no serving tasks; {root}"
    per_task = f"{s.params_per_task:,.0f} params per task"
    if s.root_params:
        per_task += f" ({s.root_fraction:.3f} x root)"
    tasks = f"{s.serving_tasks} serving task" + ("s" if s.serving_tasks != 1 else "")
    return f"system: {tasks}, {s.distinct_params:,} distinct params, {per_task}; {root}"


def status_line(t: TaskInfo) -> str:
    e = t.evolution
    if not e.phase:
        return "-"
    parts = [e.phase]
    if e.iteration or e.generation:
        parts.append(f"iter {e.iteration} gen {e.generation}")
    if e.candidates:
        parts.append(f"{e.candidates} candidates")
    if e.best_score:
        parts.append(f"best {e.best_score:.4f}")
    if e.message:
        parts.append(e.message)
    return ", ".join(parts)


def task_detail(t: TaskInfo) -> Table:
    """The task, its current version's figures and the evolution status; print with markup=False."""
    table = Table("field", "value", show_header=False)
    rows = [
        ("name", t.name),
        ("state", t.state),
        ("current version", str(t.current_version or "-")),
        ("labels", ", ".join(t.labels)),
        ("description", t.description or "-"),
    ]
    if t.dataset:
        d = t.dataset
        rows += [
            ("dataset", f"{short(d.id)}  {d.train_examples} train / {d.validation_examples} validation / "
                        f"{d.test_examples} test, images {'x'.join(map(str, d.image_shape))}"),
        ]
    if t.current_version:
        m = t.metrics
        rows += [
            ("validation accuracy", _pct(m.validation_accuracy)),
            ("test accuracy", _pct(m.test_accuracy)),
            ("score", f"{m.score:.4f}"),
            ("parameters (accounted, live)", f"{t.accounted_params:,}"),
            ("parameters (accounted at publish)", f"{m.accounted_params:,}"),
            ("input", f"{t.input.image_size}x{t.input.image_size}" if t.input else "-"),
        ]
    for k, v in rows:
        table.add_row(k, v)
    table.add_section()
    for k, v in evolution_rows(t):
        table.add_row(k, v)
    return table


def evolution_rows(t: TaskInfo) -> list[tuple[str, str]]:
    e = t.evolution
    published = ("versions published", str(t.num_versions))
    if not e.phase:
        return [("evolution", "- (no status reported yet)"), published]
    rows = [
        ("evolution phase", e.phase),
        ("iteration", str(e.iteration)),
        ("generation", str(e.generation)),
        ("candidates", str(e.candidates)),
        ("best score", f"{e.best_score:.4f}"),
        published,
        ("message", e.message or "-"),
        ("worker", e.worker or "-"),
        ("status updated", e.updated_at.isoformat(timespec="seconds") if e.updated_at else "-"),
    ]
    if e.state:
        rows.append(("evolver state", _compact(e.state)))
    return rows


def versions_table(versions: list[PathVersion]) -> Table:
    table = Table("version", "current", "val acc", "test acc", "score", "params", "new params", "components",
                  "parent", "created")
    for v in versions:
        parent = "-" if v.parent is None else ("root" if v.parent.is_root else f"{v.parent.task}@{v.parent.version}")
        table.add_row(
            str(v.version),
            "*" if v.current else "",
            _pct(v.metrics.validation_accuracy),
            _pct(v.metrics.test_accuracy),
            f"{v.metrics.score:.4f}",
            f"{v.metrics.accounted_params:,}",
            f"{v.metrics.new_params:,}",
            str(len(v.components)),
            parent,
            v.created_at.isoformat(timespec="seconds") if v.created_at else "-",
        )
    return table


def predictions_table(names: list[str], result: PredictResult) -> Table:
    table = Table("image", "label", "score", "runners-up", title=f"{result.task} (version {result.version})")
    for name, p in zip(names, result.predictions, strict=True):
        others = ", ".join(f"{s.label} {s.score:.3f}" for s in p.top[1:])
        table.add_row(name, p.top[0].label, f"{p.top[0].score:.3f}", others)
    return table


def event_line(e: TaskEvent) -> str:
    when = e.time.isoformat(timespec="seconds") if e.time else ""
    what = {"published": f"published version {e.version}", "rolled_back": f"rolled back to version {e.version}"}
    detail = what.get(e.type, e.type)
    t = e.task
    where = f"{t.state}, v{t.current_version}" + (f", {t.accounted_params:,} params" if t.current_version else "")
    status = status_line(t)
    if e.type == "status" and t.evolution.worker:
        status += f" (from {t.evolution.worker})"
    return f"{when} {t.name}: {detail} [{where}] {status}"
