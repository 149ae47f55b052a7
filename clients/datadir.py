"""`munet-serve check` and `munet-serve backup`: commands on a data dir itself, not on a server (a running server
may go on serving it). They run the server package's checks (no torch, no ONNX Runtime session)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from rich.markup import escape

from .render import console

DEFAULT_DATA_DIR = Path(os.environ.get("MUNET_SERVE_DATA_DIR", "munet-data"))


def add_arguments(commands: argparse._SubParsersAction) -> None:
    check = commands.add_parser("check", help="verify a data dir: SQLite, every referenced file's hash, stray files")
    check.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="default $MUNET_SERVE_DATA_DIR or "
                                                                              "munet-data")
    check.add_argument("--remove-unreferenced", action="store_true",
                       help="delete the files nothing references (those older than --grace)")
    check.add_argument("--grace", type=float, default=600.0,
                       help="seconds an unreferenced file is spared: a publish in flight writes its files first "
                            "(default %(default)s)")
    check.add_argument("--no-hashes", action="store_true", help="check that files are there, not their hashes")
    backup = commands.add_parser("backup", help="a consistent copy of a data dir, taken while its server serves")
    backup.add_argument("dest", type=Path, help="a new (or empty) folder: a data dir a server can serve")
    backup.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)


def check(args: argparse.Namespace) -> int:
    """Exit 0 if the data dir is whole (stray files do not count as damage), 1 if not."""
    from munet_serve.server.check import check_data_dir, remove_unreferenced

    report = check_data_dir(args.data_dir, hashes=not args.no_hashes)
    counts = ", ".join(f"{n} {table}" for table, n in report.counts.items())
    console.print(f"{args.data_dir}: {counts}; {report.checked_files} referenced files checked"
                  f"{'' if not args.no_hashes else ' (presence only)'}", markup=False, soft_wrap=True)
    for problem in report.problems():
        console.print(f"[red]damaged:[/] {escape(problem)}", highlight=False, soft_wrap=True)
    for path in report.unreferenced:
        console.print(f"unreferenced: {path}", markup=False, highlight=False, soft_wrap=True)
    if args.remove_unreferenced and report.unreferenced:
        removed, kept = remove_unreferenced(report, args.grace)
        console.print(f"removed {len(removed)} unreferenced files"
                      + (f"; kept {len(kept)} younger than {args.grace:.0f} s" if kept else ""), markup=False,
                      soft_wrap=True)
    console.print("ok" if report.ok else f"[red]{len(report.problems())} problems[/]")
    return 0 if report.ok else 1


def backup(args: argparse.Namespace) -> int:
    from munet_serve.server.backup import BackupError
    from munet_serve.server.backup import backup as take

    try:
        report = take(args.data_dir, args.dest)
    except BackupError as e:
        console.print(f"[red]error:[/] {escape(str(e))}", highlight=False, soft_wrap=True)
        return 1
    console.print(f"backed up {args.data_dir} to {report.dest}: {report.check.counts.get('tasks', 0)} tasks, "
                  f"{report.files} files ({report.bytes / 1e6:.1f} MB); the copy checks "
                  f"{'ok' if report.check.ok else 'DAMAGED'}", markup=False, soft_wrap=True)
    return 0 if report.check.ok else 1
