"""`python -m benchmarks.evolver`: the evolver's training speed; prints the table and writes JSON and Markdown."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import time
from pathlib import Path

from .report import markdown, write
from .run import PROFILES, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.evolver", description=__doc__)
    parser.add_argument("--profile", choices=sorted(PROFILES), default="quick", help="quick (default) or mini")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"), help="where the results go")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (overrides the profile)")
    parser.add_argument("--threads", type=int, help="torch threads (default: all cores)")
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    profile = PROFILES[args.profile]
    if args.rounds:
        profile = dataclasses.replace(profile, rounds=args.rounds)
    if args.threads:
        profile = dataclasses.replace(profile, threads=args.threads)
    start = time.perf_counter()
    report = run(profile, progress=lambda line: print(f"[{time.perf_counter() - start:5.0f} s] {line}", flush=True))
    json_path, md_path = write(report, args.out, f"evolver-{profile.name}")
    print(markdown(report))
    print(f"wrote {json_path} and {md_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
