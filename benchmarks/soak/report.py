"""The soak's report: the targets beside what was measured, RSS and throughput at the sample times, and the same as
JSON, written to <out>/soak-<profile>.{json,md} as the other benchmarks write theirs."""

from __future__ import annotations

import datetime
import json
import os
import platform
import re
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .memory import growth, mark_times, nearest
from .run import SoakRun

__all__ = ["describe", "failed_requests", "figures", "machine", "markdown", "write"]

_NUMBERS = re.compile(r"\[\s*(-?[\d.eE+-]+(?:,\s*-?[\d.eE+-]+)*)\s*\]")  # a list of numbers, one per line
_SEPARATOR = re.compile(r",\s*")


def _compact(text: str) -> str:
    """Indented JSON with each list of numbers (a sample row, a load average) on one line."""
    return _NUMBERS.sub(lambda m: "[" + ", ".join(_SEPARATOR.split(m.group(1))) + "]", text)


def machine() -> dict[str, Any]:
    """The machine the soak ran on: cores, CPU model, memory, platform."""
    model, mem_kib = "", 0
    with open("/proc/cpuinfo") as f:
        model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    with open("/proc/meminfo") as f:
        mem_kib = next((int(line.split()[1]) for line in f if line.startswith("MemTotal:")), 0)
    return {"cores": os.cpu_count(), "usable_cores": len(os.sched_getaffinity(0)), "cpu": model,
            "memory_gib": round(mem_kib / 2**20, 1), "platform": platform.platform(),
            "python": platform.python_version()}


def failed_requests(run: SoakRun) -> int:
    """Predicts, publishes and registrations (with their deletions) whose call raised."""
    return int(run.predicts["failed"]) + int(run.publishes["failed"]) + int(run.registrations["failed"])


def figures(run: SoakRun) -> dict[str, Any]:
    """The figures the report shows: the targets, the memory at the sample times and what lies between them."""
    duration = run.config["minutes"] * 60.0
    fraction, limit = run.config["reference_fraction"], run.config["max_rss_growth"]
    reference, end, ratio = growth(run.samples, duration, fraction)
    failed = failed_requests(run)
    targets = [
        {"target": "failed requests (predicts, publishes, registrations)", "goal": "0", "measured": failed,
         "met": failed == 0},
        {"target": f"RSS at the end / RSS at {fraction:.0%} of the run ({reference.at_s:.0f} s)",
         "goal": f"<= {limit:.2f}", "measured": round(ratio, 4), "met": ratio <= limit},
        {"target": "publishes that did not make the next version current", "goal": "0",
         "measured": run.publishes["did_not_raise_version"], "met": run.publishes["did_not_raise_version"] == 0},
    ]
    marks, previous = [], run.samples[0]
    for at in mark_times(duration, fraction):
        s = nearest(run.samples, at)
        dt = s.at_s - previous.at_s
        marks.append({"at_s": round(s.at_s, 1), "rss_mib": round(s.rss_mib, 1),
                      "req_per_s": round((s.answered - previous.answered) / dt, 1) if dt > 0 else None,
                      "server_cpu_pct": round(100 * (s.cpu_s - previous.cpu_s) / dt) if dt > 0 else None})
        previous = s
    peak = max(run.samples, key=lambda s: s.rss_bytes)
    memory = {"reference": asdict(reference), "end": asdict(end), "growth": ratio, "peak_mib": peak.rss_mib,
              "peak_at_s": peak.at_s, "samples": len(run.samples)}
    return {"targets": targets, "marks": marks, "memory": memory, "all_met": all(t["met"] for t in targets)}


def markdown(run: SoakRun, meta: dict[str, Any] | None = None) -> str:
    f = figures(run)
    c, load = run.config, run.predicts
    pub, reg = run.publishes, run.registrations
    lines = [
        f"Soak of {_what(run)}, "
        f"{len(run.tasks)} serving tasks, {c['clients']} closed-loop clients (Zipf {c['zipf_exponent']:g}), "
        f"a publish every {c['publish_interval_s']:g} s over {len(run.publishing)} tasks "
        f"({c['heads_per_task']} heads each, reused), a registration every {c['register_interval_s']:g} s "
        f"({'each deleted at the next' if c['delete_registered'] else 'kept'}); {run.seconds / 60:.1f} min measured "
        f"after {run.setup_s:.0f} s of setup.",
    ]
    if meta:
        m = meta["machine"]
        lines.append(f"`{meta['command']}` on {meta['date']}, {m['cores']} cores ({m['cpu']}); load average "
                     f"{_load(run, 'start')} at the start, {_load(run, 'end')} at the end.")
    lines += ["", "| target | goal | measured | met |", "|---|---|---:|---|"]
    lines += [f"| {t['target']} | {t['goal']} | {t['measured']} | {'yes' if t['met'] else 'no'} |"
              for t in f["targets"]]
    lines += [
        "", "| load | done | failed | figures |", "|---|---:|---:|---|",
        f"| predicts | {load['requests'] - load['failed']} | {load['failed']} | {load['throughput_rps']:.1f} req/s, "
        f"p50 {load['p50_ms']:.1f} ms, p99 {load['p99_ms']:.1f} ms, p99.9 {load['p99.9_ms']:.1f} ms |",
        f"| publishes | {pub['done']} | {pub['failed']} | call p50 {_ms(pub['call_ms_p50'])}, max "
        f"{_ms(pub['call_ms_max'])}; {pub['answered_by_a_predict']} of the new versions answered a predict |",
        f"| registrations | {reg['registered']} | {reg['failed']} | {reg['deleted']} deleted; call p50 "
        f"{_ms(reg['call_ms_p50'])}, max {_ms(reg['call_ms_max'])} |",
        "", "| at (s) | server RSS (MiB) | req/s since the previous row | server CPU % since the previous row |",
        "|---:|---:|---:|---:|",
    ]
    for m in f["marks"]:
        rps = "" if m["req_per_s"] is None else f"{m['req_per_s']:.1f}"
        cpu = "" if m["server_cpu_pct"] is None else f"{m['server_cpu_pct']}"
        lines.append(f"| {m['at_s']:.0f} | {m['rss_mib']:.1f} | {rps} | {cpu} |")
    mem = f["memory"]
    lines.append(f"\nPeak RSS {mem['peak_mib']:.1f} MiB at {mem['peak_at_s']:.0f} s; {mem['samples']} samples.")
    errors = [*load["errors"], *pub["errors"], *reg["errors"]]
    if errors:
        lines += ["", "First errors:", *(f"- {e}" for e in errors[:10])]
    if run.server_problems:
        lines += ["", f"The server logged {len(run.server_problems)} ERROR/Traceback lines; the first:",
                  *(f"- `{line}`" for line in run.server_problems[:5])]
    return "\n".join(lines) + "\n"


def _what(run: SoakRun) -> str:
    p = run.profile
    if run.source != "fleet":
        return f"a copy of `{run.source}` (server flags of profile `{p['name']}`)"
    return f"profile `{p['name']}`'s fleet: root `{p['root']['model']}` at {p['root']['image_size']} px"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} ms"


def _load(run: SoakRun, when: str) -> str:
    return "/".join(f"{x:.2f}" for x in run.load_average.get(when, [])) or "-"


def describe(command: str) -> dict[str, Any]:
    """The run's command, date (now, UTC) and machine, as the JSON and the Markdown record them."""
    return {"command": command, "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "machine": machine()}


def write(run: SoakRun, out_dir: Path, meta: dict[str, Any]) -> tuple[Path, Path]:
    """Writes soak-<profile>.json (every figure, the RSS samples, `meta` from describe) and soak-<profile>.md."""
    out_dir.mkdir(parents=True, exist_ok=True)
    data: dict[str, Any] = {**meta, **asdict(run), **figures(run)}
    data["samples"] = {"columns": ["at_s", "rss_mib", "answered", "server_cpu_s"],
                       "rows": [[round(s.at_s, 2), round(s.rss_mib, 2), s.answered, round(s.cpu_s, 2)]
                                for s in run.samples]}
    del data["published"]  # one record per publish; publishes has their counts
    name = run.profile["name"]
    json_path, md_path = out_dir / f"soak-{name}.json", out_dir / f"soak-{name}.md"
    json_path.write_text(_compact(json.dumps(data, indent=2)) + "\n")
    md_path.write_text(markdown(run, meta))
    return json_path, md_path
