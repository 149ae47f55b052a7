"""`python -m benchmarks.serving --quick`: the serving benchmark; prints the table and writes JSON and Markdown.
`--kserve` runs its KServe v2 mode instead (benchmarks/serving/kserve.py)."""

from __future__ import annotations

import argparse
import dataclasses
import logging
from pathlib import Path

from . import kserve
from .report import markdown, write
from .run import PROFILES, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.serving", description=__doc__)
    chosen = parser.add_mutually_exclusive_group()
    chosen.add_argument("--quick", action="store_const", const="quick", dest="profile",
                        help="the 2-core profile (about 10 minutes; the default)")
    chosen.add_argument("--profile", choices=sorted(PROFILES), help="any profile (clients, full, gpu, mini, quick)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"), help="where the results go")
    parser.add_argument("--duration", type=float, help="seconds per run (overrides the profile)")
    parser.add_argument("--kserve", action="store_true",
                        help="KServe v2 ModelInfer (tritonclient.grpc) beside native Predict on the profile's fleet")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of the --kserve mode")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("onnx_ir", "onnxscript", "torch.onnx"):  # the exporter's pass-by-pass INFO lines
        logging.getLogger(noisy).setLevel(logging.WARNING)
    profile = PROFILES[args.profile or "quick"]
    if args.duration:
        profile = dataclasses.replace(profile, duration_s=args.duration, swap_duration_s=args.duration)
    if args.kserve:
        result = kserve.run_kserve(profile, rounds=args.rounds)
        json_path, md_path = kserve.write(result, args.out, profile.name)
        print(kserve.markdown(result))
        print(f"wrote {json_path} and {md_path}")
        return 0
    report = run(profile)
    json_path, md_path = write(report, args.out, profile.name)
    print(markdown(report))
    print(f"wrote {json_path} and {md_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
