"""The issue-14 targets, checked on a quality report: what each target asks, what was measured, whether it is met."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .run import QualityReport, SystemSummary

__all__ = ["FINETUNE", "LONG_FINETUNE", "frontier_accuracy", "targets"]

FINETUNE = "finetune-all"
LONG_FINETUNE = "finetune-all, one long run"
# the better variant at s = 1 must beat fine-tune-all (docs/evolution.md §8.6) by 2 points of average accuracy
GAIN = 0.02
PARAMS_SHARE = 0.5  # ... with at most half of fine-tune-all's parameters per task
DISTINCT = 0.01  # two sizes within 1 % of each other are the same size


def frontier_accuracy(points: list[tuple[float, float]], params: float) -> float | None:
    """The baselines' accuracy at `params` parameters per task: linear in log(params) between the two nearest
    baseline points (params, accuracy); None outside their range (no baseline of that size to compare with)."""
    points = sorted(points)
    if not points or params < points[0][0] * (1 - DISTINCT) or params > points[-1][0] * (1 + DISTINCT):
        return None
    for (p0, a0), (p1, a1) in zip(points, points[1:], strict=False):
        if p0 <= params <= p1:
            if math.isclose(p0, p1):
                return max(a0, a1)
            t = (math.log(params) - math.log(p0)) / (math.log(p1) - math.log(p0))
            return a0 + t * (a1 - a0)
    return min(points, key=lambda pa: abs(math.log(pa[0]) - math.log(params)))[1]


def _row(target: str, measured: str, met: bool | None, **values: Any) -> dict[str, Any]:
    return {"target": target, "measured": measured, "met": met, **values}


def _accuracy(s: SystemSummary) -> str:
    return f"{s.average_accuracy:.3f} ± {s.accuracy_spread:.3f}"


def targets(report: QualityReport) -> dict[str, Any]:
    """Every target the report can decide, as rows, with the better variant and the trade-off curve."""
    from .run import EvolutionSpec

    better = report.better_variant
    rows: list[dict[str, Any]] = []
    s1 = report.system(EvolutionSpec(better, 1.0).name) if better else None
    finetune, long_run = report.system(FINETUNE), report.system(LONG_FINETUNE)
    if s1 is not None and finetune is not None:
        gain = s1.average_accuracy - finetune.average_accuracy
        rows.append(_row(f"{s1.system} >= {FINETUNE} (§8.6) + {GAIN * 100:.0f} points",
                         f"{_accuracy(s1)} vs {_accuracy(finetune)}: {gain * 100:+.1f} points", gain >= GAIN,
                         gain=gain))
        share = s1.params_per_task / finetune.params_per_task
        rows.append(_row(f"{s1.system}: parameters per task <= {PARAMS_SHARE:.0%} of {FINETUNE}'s",
                         f"{s1.params_per_task / 1e6:.3f} M vs {finetune.params_per_task / 1e6:.3f} M: {share:.0%}",
                         share <= PARAMS_SHARE, share=share))
    if s1 is not None and long_run is not None:
        gain = s1.average_accuracy - long_run.average_accuracy
        rows.append(_row(f"{s1.system} >= {LONG_FINETUNE}",
                         f"{_accuracy(s1)} vs {_accuracy(long_run)}: {gain * 100:+.1f} points", gain >= 0, gain=gain))

    curve = [s for s in report.systems if s.kind == "munet" and s.variant == better]
    curve.sort(key=lambda s: -(s.scale_factor or 0))
    sizes = [s.params_per_task for s in curve]
    same = [(a.system, b.system) for i, a in enumerate(curve) for b in curve[i + 1 :]
            if math.isclose(a.params_per_task, b.params_per_task, rel_tol=DISTINCT)]
    if len(curve) > 1:
        rows.append(_row("each s gives a different size (a trade-off curve)",
                         ", ".join(f"s={s.scale_factor:g}: {s.params_per_task / 1e6:.3f} M" for s in curve)
                         + ("" if not same else "; the same size: " + ", ".join(f"{a} = {b}" for a, b in same)
                            + " (no curve between them)"),
                         not same))

    small = [s for s in report.systems if s.kind == "baseline" and s.system.startswith(("freeze-bottom", "adapters"))]
    points = [(s.params_per_task, s.average_accuracy) for s in small]
    for s in curve:
        if s.scale_factor is None or s.scale_factor >= 1:
            continue
        at = frontier_accuracy(points, s.params_per_task)
        if at is None:
            rows.append(_row(f"{s.system} above freeze-bottom and adapters at equal size",
                             f"{_accuracy(s)} at {s.params_per_task / 1e6:.3f} M: outside the baselines' sizes "
                             f"({', '.join(f'{p / 1e6:.3f} M' for p, _ in sorted(points))})", None))
        else:
            rows.append(_row(f"{s.system} above freeze-bottom and adapters at equal size",
                             f"{_accuracy(s)} at {s.params_per_task / 1e6:.3f} M vs {at:.3f} there",
                             s.average_accuracy > at, baseline_accuracy=at))

    checks = sum(len(c.checked) for s in report.systems for r in s.runs for c in r.forgetting_checks)
    rows.append(_row("every earlier task bit-identical after each new task",
                     f"{checks} checks, {'all identical' if report.no_forgetting else 'SOME CHANGED'}",
                     report.no_forgetting))
    return {"better_variant": better, "curve": [{"system": s.system, "scale_factor": s.scale_factor,
                                                 "params_per_task": p, "average_accuracy": s.average_accuracy}
                                                for s, p in zip(curve, sizes, strict=True)],
            "rows": rows}
