"""The `munet-serve` command line.

  munet-serve serve | evolve | up          run the server, the evolver, or both (Ctrl-C stops them)
  munet-serve predict TASK IMAGE...        classify images
  munet-serve tasks register|list|show|watch|delete
  munet-serve versions list|rollback
  munet-serve datasets list                the built-in datasets (munet_serve.builtin) and whether each can be built
  munet-serve tokens create|list|revoke    the server's bearer tokens
  munet-serve check | backup DEST          verify a data dir; copy it consistently while it is served

`serve` and `evolve` hand their arguments to the server's and the evolver's own entry points, so this module imports
neither (the client side needs no torch).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from rich.markup import escape

from munet_serve.tokens import ROLES

from .client import DEFAULT_TARGET, Client
from .errors import MunetError
from .render import console


def _server_main(argv: list[str]) -> int:
    from munet_serve.server.__main__ import main

    return main(argv)


def _evolver_main(argv: list[str]) -> int:
    from munet_serve.evolver.__main__ import main

    return main(argv)


DELEGATED = {"serve": _server_main, "evolve": _evolver_main}


SERVER_COMMANDS = ("predict", "tasks", "versions")
SERVER_OPTIONS = {"server": DEFAULT_TARGET, "timeout": None, "token": None, "tls_ca": None}  # with the defaults


def _add_server_options(parser: argparse.ArgumentParser) -> None:
    # No defaults here (SUPPRESS): an option is set only where it is given, so a command's copy overrides the top
    # level's and neither erases the other; main() fills in the defaults.
    parser.add_argument("--server", default=argparse.SUPPRESS,
                        help=f"server address (default {DEFAULT_TARGET}, or $MUNET_SERVE_SERVER)")
    parser.add_argument("--timeout", type=float, default=argparse.SUPPRESS, help="per-call deadline in seconds")
    parser.add_argument("--tls-ca", default=argparse.SUPPRESS,
                        help="connect with TLS, trusting this CA file (default $MUNET_SERVE_TLS_CA)")
    parser.add_argument("--token", default=argparse.SUPPRESS,
                        help="bearer token to send (default $MUNET_SERVE_TOKEN; see munet-serve tokens)")


def build_parser() -> argparse.ArgumentParser:
    """--server and --timeout go before or after the command, as in git and kubectl: `munet-serve --server H:P
    tasks list` and `munet-serve tasks list --server H:P` are the same (given twice, the later one counts)."""
    parser = argparse.ArgumentParser(prog="munet-serve", description="muNet as a service: serve, evolve, predict.")
    _add_server_options(parser)
    common = argparse.ArgumentParser(add_help=False)
    _add_server_options(common)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("serve", help="run the server (see munet-serve serve --help)", add_help=False)
    commands.add_parser("evolve", help="run the evolver (see munet-serve evolve --help)", add_help=False)

    from . import up

    up_parser = commands.add_parser(
        "up", help="run the server and a co-located evolver; unknown options go to the evolver"
    )
    up.add_arguments(up_parser)

    predict = commands.add_parser("predict", parents=[common], help="classify images with a task's current version")
    predict.add_argument("task")
    predict.add_argument("images", nargs="+", type=Path)
    predict.add_argument("--top-k", type=int, default=3)
    predict.add_argument("--version", type=int, default=None, help="answer with this version (default: current)")

    tasks = commands.add_parser("tasks", parents=[common], help="register, list, show, watch or delete tasks")
    task_commands = tasks.add_subparsers(dest="action", required=True, metavar="ACTION")
    register = task_commands.add_parser("register", parents=[common], help="register a task with its dataset")
    register.add_argument("name")
    source = register.add_mutually_exclusive_group(required=True)
    source.add_argument("--from-folder", type=Path, metavar="DIR", help="one sub-folder of images per label")
    source.add_argument("--from-npz", type=Path, metavar="FILE", help="an .npz with images and labels")
    source.add_argument("--demo", action="store_true", help="the built-in demo dataset (scikit-learn digits)")
    source.add_argument("--builtin", metavar="NAME",
                        help="a built-in dataset with its own splits, e.g. chars/greek (see munet-serve datasets list)")
    register.add_argument("--sizes", metavar="TRAIN,VAL,TEST", default=None,
                          help="with --builtin: examples per class in each split (default: the dataset's own)")
    register.add_argument("--description", default="")
    register.add_argument("--image-size", type=int, default=0, help="store images at this size (default: as given)")
    register.add_argument("--validation-fraction", type=float, default=0.0,
                          help="default 0.1, at least min(16, a fifth) per class")
    register.add_argument("--test-fraction", type=float, default=0.0,
                          help="default 0.1, at least min(16, a fifth) per class")
    task_commands.add_parser("list", parents=[common], help="list tasks")
    show = task_commands.add_parser("show", parents=[common], help="show one task")
    show.add_argument("name")
    watch = task_commands.add_parser("watch", parents=[common], help="stream task events until Ctrl-C")
    watch.add_argument("name", nargs="?", default="")
    delete = task_commands.add_parser("delete", parents=[common], help="delete a task")
    delete.add_argument("name")

    versions = commands.add_parser("versions", parents=[common], help="list a task's versions or roll back")
    version_commands = versions.add_subparsers(dest="action", required=True, metavar="ACTION")
    vlist = version_commands.add_parser("list", parents=[common], help="list versions with metrics and lineage")
    vlist.add_argument("task")
    rollback = version_commands.add_parser("rollback", parents=[common], help="make an earlier version current")
    rollback.add_argument("task")
    rollback.add_argument("version", type=int)

    tokens = commands.add_parser("tokens", help="create, list or revoke the server's bearer tokens (no server needed)")
    tokens.add_argument("--file", type=Path, default=os.environ.get("MUNET_SERVE_TOKENS_FILE") or None,
                        help="the tokens file the server reads (--tokens-file; default $MUNET_SERVE_TOKENS_FILE)")
    token_commands = tokens.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = token_commands.add_parser("create", help="make a token, print it once, keep its hash in the file")
    create.add_argument("name")
    create.add_argument("--role", action="append", required=True, choices=ROLES,
                        help="predict, manage, evolver or admin (repeat for several)")
    token_commands.add_parser("list", help="names and roles (the file holds no token)")
    revoke = token_commands.add_parser("revoke", help="remove a token (the server drops it on SIGHUP or restart)")
    revoke.add_argument("name")

    from . import datadir

    datadir.add_arguments(commands)

    datasets_parser = commands.add_parser("datasets", help="the built-in datasets")
    dataset_commands = datasets_parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    dataset_commands.add_parser("list", help="names, classes, and whether each can be built here (no server needed)")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in DELEGATED:
        return DELEGATED[argv[0]](argv[1:])
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    given = [f"--{name.replace('_', '-')}" for name in SERVER_OPTIONS if name in vars(args)]
    if given and args.command not in SERVER_COMMANDS:
        parser.error(f"{' and '.join(given)}: only for predict, tasks and versions, not {args.command} "
                     f"(see munet-serve {args.command} --help)")
    for name, default in SERVER_OPTIONS.items():
        vars(args).setdefault(name, default)
    if extra and args.command != "up":
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    logging.basicConfig(level=os.environ.get("MUNET_SERVE_LOG", "WARNING"))
    try:
        if args.command == "up":
            from . import up

            return up.run(args, extra)
        if args.command == "datasets":
            return _datasets_list(args)
        if args.command == "tokens":
            return _tokens(args)
        if args.command in ("check", "backup"):
            from . import datadir

            return datadir.check(args) if args.command == "check" else datadir.backup(args)
        with Client(args.server, timeout=args.timeout, token=args.token, tls_ca=args.tls_ca) as client:
            return COMMANDS[(args.command, getattr(args, "action", None))](client, args)
    except MunetError as e:
        console.print(f"[red]error:[/] {escape(e.describe())}")
        return 1
    except (OSError, ValueError) as e:
        console.print(f"[red]error:[/] {escape(str(e))}")
        return 2
    except KeyboardInterrupt:
        return 130


def _tokens(args: argparse.Namespace) -> int:
    from munet_serve.server.auth import TokensFile

    if args.file is None:
        raise ValueError("give the tokens file: --file PATH (or $MUNET_SERVE_TOKENS_FILE)")
    tokens = TokensFile(args.file)
    if args.action == "create":
        token = tokens.create(args.name, tuple(dict.fromkeys(args.role)))
        console.print(f"token {args.name!r} ({', '.join(dict.fromkeys(args.role))}) added to {args.file}; it is "
                      f"shown this once:", markup=False)
        print(token)
    elif args.action == "list":
        for entry in tokens.read():
            print(f"{entry.name}\t{','.join(entry.roles)}")
    else:
        tokens.revoke(args.name)
        console.print(f"token {args.name!r} revoked; a running server drops it on SIGHUP", markup=False)
    return 0


def _predict(client: Client, args: argparse.Namespace) -> int:
    from . import render

    result = client.predict(args.task, [str(p) for p in args.images], top_k=args.top_k, version=args.version)
    console.print(render.predictions_table([p.name for p in args.images], result), markup=False)
    return 0


def _register(client: Client, args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from . import datasets, render

    spec = dict(
        description=args.description,
        image_size=args.image_size,
        validation_fraction=args.validation_fraction,
        test_fraction=args.test_fraction,
    )
    if args.sizes and not args.builtin:
        raise ValueError("--sizes goes with --builtin")
    if args.demo:
        upload = datasets.demo_digits(args.name)
    elif args.builtin:
        from munet_serve.builtin import MissingDataError, SplitSizes

        sizes = SplitSizes.parse(args.sizes) if args.sizes else None
        try:
            upload = datasets.from_builtin(args.name, args.builtin, sizes=sizes, **spec)
        except (MissingDataError, KeyError) as e:
            console.print(f"[red]error:[/] {escape(str(e.args[0] if isinstance(e, KeyError) else e))}")
            return 2
    elif args.from_folder:
        upload = datasets.from_folder(args.name, args.from_folder, **spec)
    else:
        upload = datasets.from_npz(args.name, args.from_npz, **spec)
    columns = (TextColumn("uploading {task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        bar = progress.add_task(args.name, total=len(upload.images))
        task = client.register(upload, progress=lambda done, total: progress.update(bar, completed=done))
    console.print(f"registered {task.name!r}: {len(task.labels)} labels, state {task.state}")
    console.print(render.task_detail(task), markup=False)
    return 0


def _list(client: Client, args: argparse.Namespace) -> int:
    from . import render

    tasks, system = client.list_tasks_with_stats()
    console.print(render.tasks_table(tasks), markup=False)
    console.print(render.system_line(system), markup=False)
    return 0


def _show(client: Client, args: argparse.Namespace) -> int:
    from . import render

    console.print(render.task_detail(client.get_task(args.name)), markup=False)
    return 0


def _watch(client: Client, args: argparse.Namespace) -> int:
    from . import render

    watch = client.watch_tasks(args.name, send_initial=True)
    try:
        for event in watch:
            console.print(render.event_line(event), markup=False)
    except KeyboardInterrupt:
        watch.cancel()
    return 0


def _delete(client: Client, args: argparse.Namespace) -> int:
    client.delete_task(args.name)
    console.print(f"deleted {args.name!r}")
    return 0


def _versions(client: Client, args: argparse.Namespace) -> int:
    from . import render

    console.print(render.versions_table(client.list_versions(args.task)), markup=False)
    return 0


def _rollback(client: Client, args: argparse.Namespace) -> int:
    task = client.rollback(args.task, args.version)
    console.print(f"{task.name} now serves version {task.current_version}")
    return 0


def _datasets_list(args: argparse.Namespace) -> int:
    from rich.table import Table

    from munet_serve.builtin import info, names

    table = Table("name", "kind", "classes", "per class (train/val/test)", "available", "description")
    for name in names():
        about = info(name)
        sizes = about["default_sizes"]
        available = "yes" if about["available"] else f"no: {about['install']}"
        table.add_row(name, about["kind"], str(about["classes"]),
                      f"{sizes['train']}/{sizes['validation']}/{sizes['test']}", available, about["description"])
    console.print(table, markup=False)
    console.print("Not available: run scripts/install-system-packages.sh (Debian packages) or the command shown. "
                  f"Generated datasets are cached in {_cache_dir()}.", markup=False)
    return 0


def _cache_dir() -> str:
    from munet_serve.builtin.cache import default_cache_dir

    return str(default_cache_dir())


COMMANDS = {
    ("predict", None): _predict,
    ("tasks", "register"): _register,
    ("tasks", "list"): _list,
    ("tasks", "show"): _show,
    ("tasks", "watch"): _watch,
    ("tasks", "delete"): _delete,
    ("versions", "list"): _versions,
    ("versions", "rollback"): _rollback,
}
