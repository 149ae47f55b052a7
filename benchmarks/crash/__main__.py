"""`python -m benchmarks.crash`: 20 kill -9 of the server under load and 20 of the evolver mid-publish, each
followed by munet-serve check and a check of the answers; prints the table and writes JSON and Markdown."""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

from .loops import Answers, evolver_kill_loop, server_kill_loop, start_server
from .setup import KILLED_ARGS, TASK, prepare


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.crash", description=__doc__)
    parser.add_argument("--server-kills", type=int, default=20)
    parser.add_argument("--evolver-kills", type=int, default=20)
    parser.add_argument("--clients", type=int, default=4, help="closed-loop predict clients during the server loop")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="munet-crash-") as tmp:
        workdir = Path(tmp)
        prepared = prepare(workdir)
        answers = Answers(TASK, prepared.images)
        server_kills = server_kill_loop(prepared.data_dir, workdir, answers, prepared.heads,
                                        kills=args.server_kills, clients=args.clients, seed=args.seed)
        server = start_server(prepared.data_dir, workdir, "evolver-loop")
        try:
            evolver_kills = evolver_kill_loop(server.target, prepared.data_dir, prepared.cache, answers,
                                              KILLED_ARGS, kills=args.evolver_kills, seed=args.seed)
        finally:
            server.stop()
    result = {
        "command": " ".join(["python -m benchmarks.crash", *(argv if argv is not None else sys.argv[1:])]),
        "date": time.strftime("%Y-%m-%d"),
        "machine": {"cores": os.cpu_count(), "python": platform.python_version()},
        "seconds": round(time.monotonic() - started, 1),
        "answers_checked": answers.checked,
        "versions_seen": len(answers.references),
        "acknowledged_version": answers.acknowledged,
        "kills": [asdict(k) for k in [*server_kills, *evolver_kills]],
    }
    text = markdown(result)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "crash.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "crash.md").write_text(text)
    print(text)
    print(f"wrote {args.out / 'crash.json'} and {args.out / 'crash.md'}")
    return 0


def markdown(result: dict) -> str:
    kills = result["kills"]
    lines = [f"`{result['command']}` on {result['date']} ({result['machine']['cores']} cores), "
             f"{result['seconds'] / 60:.1f} min.", "",
             "| process killed | kills | survived (check ok, answers unchanged or newer) | requests in flight at the "
             "kill (median) | failed by the kill (total) | restart s (median) | check s (median) |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for what in ("server", "evolver"):
        rows = [k for k in kills if k["what"] == what]
        if not rows:
            continue
        restart = f"{_median([k['restart_seconds'] for k in rows]):.1f}" if what == "server" else "—"
        lines.append(f"| {what} | {len(rows)} | {sum(k['check_ok'] for k in rows)} | "
                     f"{_median([k['in_flight'] for k in rows]):.0f} | {sum(k['failed_by_kill'] for k in rows)} | "
                     f"{restart} | {_median([k['check_seconds'] for k in rows]):.1f} |")
    lines += ["", f"{result['answers_checked']} answers checked bit-identical to the first answer of their version, "
              f"across {result['versions_seen']} versions; the last acknowledged publish was version "
              f"{result['acknowledged_version']}."]
    return "\n".join(lines) + "\n"


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2] if ordered else 0.0


if __name__ == "__main__":
    raise SystemExit(main())
