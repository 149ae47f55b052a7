"""python -m benchmarks.quality [--standard | --quick | --full | --profile NAME] [--out DIR] [--workdir DIR]"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from .profiles import PROFILES, profile
from .report import markdown_table, write_report
from .run import run_quality


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.quality",
        description="muNet and mu2Net against the fine-tuning baselines on the built-in tasks",
    )
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--standard", action="store_const", const="standard", dest="profile",
                       help="the profile that decides the claim: under an hour on 2 cores (default)")
    which.add_argument("--quick", action="store_const", const="quick", dest="profile",
                       help="a smoke run: under 20 minutes on 2 cores")
    which.add_argument("--full", action="store_const", const="full", dest="profile", help="the full profile (GPU)")
    which.add_argument("--profile", choices=sorted(PROFILES), help="any named profile")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"), help="where the results go")
    parser.add_argument("--workdir", type=Path, help="servers' data dirs (default: a temporary folder)")
    parser.add_argument("--root-preset", help="override the profile's root preset")
    parser.add_argument("--threads", type=int, help="torch threads (default: all cores)")
    parser.add_argument("--seeds", help="comma-separated seeds (overrides the profile's)")
    parser.add_argument("--no-ablations", action="store_true", help="skip the profile's ablations")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    chosen = profile(args.profile or "standard")
    if args.seeds:
        chosen = replace(chosen, seeds=tuple(int(s) for s in args.seeds.split(",")))
    if args.no_ablations:
        chosen = replace(chosen, ablations=())
    if args.root_preset:
        chosen = replace(chosen, root_preset=args.root_preset)
    if args.threads:
        chosen = replace(chosen, threads=args.threads)
    start = time.perf_counter()

    def say(line: str) -> None:
        print(f"[{time.perf_counter() - start:6.0f} s] {line}", flush=True)

    with tempfile.TemporaryDirectory(prefix="munet-quality-") as tmp:
        report = run_quality(chosen, args.workdir or Path(tmp), progress=say)
    paths = write_report(report, args.out, f"quality-{chosen.name}")
    print()
    print(markdown_table(report))
    for kind, path in paths.items():
        print(f"{kind}: {path}")
    if not report.no_forgetting:
        print("an earlier task's predictions changed", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
