"""`python -m benchmarks.soak`: soaks one munet-serve server process for ten minutes (closed-loop predicts, a publish
every second, a registration every 30 s), prints the table and writes benchmarks/results/soak-<profile>.{json,md}."""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from pathlib import Path

from .config import PROFILES, SoakConfig
from .report import describe, failed_requests, figures, markdown, write
from .run import run


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    defaults = SoakConfig()
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__)
    parser.add_argument("--profile", choices=sorted(PROFILES), default="quick",
                        help="the serving benchmark's fleet to build (quick: ViT-S/14 at 28 px, 16 tasks; mini: the "
                             "tiny test root, 3 tasks)")
    parser.add_argument("--data-dir", type=Path,
                        help="soak a copy of this data directory (a root and serving tasks) instead of a fleet; the "
                             "profile then gives only the server's flags and the results' name")
    parser.add_argument("--minutes", type=float, default=defaults.minutes, help="length of the measured run")
    parser.add_argument("--clients", type=int, default=defaults.clients, help="closed-loop predict threads")
    parser.add_argument("--publish-interval", type=float, default=defaults.publish_interval_s,
                        help="seconds between publishes")
    parser.add_argument("--publish-tasks", type=int, default=defaults.publish_tasks,
                        help="how many tasks get new versions, in turn (0: all)")
    parser.add_argument("--heads-per-task", type=int, default=defaults.heads_per_task,
                        help="heads made per publishing task before the clock; publishes cycle through them")
    parser.add_argument("--register-interval", type=float, default=defaults.register_interval_s,
                        help="seconds between task registrations")
    parser.add_argument("--keep-registered", action="store_true",
                        help="keep every registered task (default: delete each when the next is registered)")
    parser.add_argument("--warmup", type=float, default=defaults.warmup_s, help="seconds of warm-up load")
    parser.add_argument("--workdir", type=Path, help="keep the data directory and server log here (default: a "
                        "temporary directory, removed afterwards)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"), help="where the results go")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("onnx_ir", "onnxscript", "torch.onnx"):  # the exporter's pass-by-pass INFO lines
        logging.getLogger(noisy).setLevel(logging.WARNING)
    config = SoakConfig(minutes=args.minutes, clients=args.clients, publish_interval_s=args.publish_interval,
                        publish_tasks=args.publish_tasks, heads_per_task=args.heads_per_task,
                        register_interval_s=args.register_interval, delete_registered=not args.keep_registered,
                        warmup_s=args.warmup)
    meta = describe(shlex.join(["python", "-m", "benchmarks.soak", *argv]))
    result = run(PROFILES[args.profile], config, args.workdir, args.data_dir)
    json_path, md_path = write(result, args.out, meta)
    print(markdown(result, meta))
    print(f"wrote {json_path} and {md_path}")
    if failed_requests(result):
        logging.getLogger(__name__).warning("%d requests failed", failed_requests(result))
    return 0 if figures(result)["all_met"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
