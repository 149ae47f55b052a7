"""Compares the offline roots on the quality benchmark's tasks: how well each transfers, against a random init.

Every root is built with the evolver's real root builder and trained on each task two ways, each for 120 steps at
batch 32 per task (the `roots` quality profile's training budget with 4 candidate-trainings of 30 steps): a probe
(`freeze-bottom:L`: only the final norm and a new head train on the frozen backbone) and full fine-tuning
(`finetune-all`). The root with the best average test accuracy after fine-tuning is
the evolver's default (measured: `dinov2-s14-imgfocus`; docs/benchmarks.md has the table).

    python -m benchmarks.roots [--roots chars-random,chars-cjk,dinov2-random,dinov2-imgfocus] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from munet_serve.artifacts import Dataset
from munet_serve.builtin import load
from munet_serve.evolver.config import SearchBudget

from ..quality.profiles import QualityProfile, profile

logger = logging.getLogger(__name__)

# 4 candidate-trainings per task: with the `roots` quality profile's TrainBudget (V = 3, K <= 10), 120 steps per task.
ROOTS_SEARCH = SearchBudget(children_per_generation=2, samples_per_task=4, task_iterations=1)


def _root_configs() -> dict[str, Callable[[], Any]]:
    from munet_serve.evolver.config import root_preset
    from munet_serve.evolver.pretrain import CHARS_ROOT, cjk_checkpoint

    def dinov2(random: bool) -> Any:
        preset = root_preset("dinov2-s14-imgfocus")
        return replace(preset, weights=None, random_init=True) if random else preset

    return {
        "chars-random": lambda: replace(CHARS_ROOT, random_init=True),
        "chars-cjk": lambda: replace(CHARS_ROOT, checkpoint=cjk_checkpoint()),
        "dinov2-random": lambda: dinov2(True),
        "dinov2-imgfocus": lambda: dinov2(False),
    }


@dataclass
class RootResult:
    root: str
    source: str
    params: int
    image_size: int
    build_seconds: float
    accuracy: dict[str, dict[str, float]]  # protocol -> task -> test accuracy
    average: dict[str, float]  # protocol -> average test accuracy
    seconds: dict[str, float]  # protocol -> wall time


def root_as_path(root: Any, tag: str) -> Any:
    """The root as the evolver's Path, its components shared (frozen), without a server."""
    from munet_serve.evolver.config import Hyperparameters
    from munet_serve.evolver.path import Origin, Path, Slot

    slots = [Slot(name, module, Origin.SHARED, f"{tag}:{name}") for name, module in root.components]
    hparams = Hyperparameters(num_layers=root.num_layers, ds_image_size=root.input.image_size)
    return Path(task="", slots=slots, hparams=hparams, input=root.input, parent=None, label=f"root {tag}")


def run_roots(
    names: list[str], chosen: QualityProfile, protocols: tuple[str, ...], say: Callable[[str], None]
) -> list[RootResult]:
    from munet_serve.evolver.baselines import BaselineSpec, train_baseline
    from munet_serve.evolver.data import TaskData
    from munet_serve.evolver.root import build_root

    datasets = {n: load(n, sizes=chosen.sizes) for n in chosen.tasks}
    data = {n: TaskData(Dataset(d.images, d.labels.astype(np.int64), d.splits), key=n) for n, d in datasets.items()}
    configs = _root_configs()
    results = []
    for name in names:
        t0 = time.perf_counter()
        root = build_root(configs[name]())
        build = time.perf_counter() - t0
        path = root_as_path(root, name)
        accuracy: dict[str, dict[str, float]] = {}
        seconds: dict[str, float] = {}
        for protocol in protocols:
            spec = BaselineSpec.parse(protocol.replace(":L", f":{root.num_layers}"))
            t1 = time.perf_counter()
            accuracy[protocol] = {}
            for task, task_data in data.items():
                r = train_baseline(spec, path, task_data, train=chosen.train, search=chosen.search, task=task,
                                   seed=chosen.seeds[0], replicas=chosen.baseline_replicas)
                accuracy[protocol][task] = r.test_accuracy
            seconds[protocol] = time.perf_counter() - t1
            say(f"{name} {protocol}: average {np.mean(list(accuracy[protocol].values())):.3f} "
                f"({seconds[protocol]:.0f} s)")
        results.append(RootResult(
            root=name, source=root.source, params=root.params, image_size=root.input.image_size,
            build_seconds=build, accuracy=accuracy,
            average={p: float(np.mean(list(a.values()))) for p, a in accuracy.items()}, seconds=seconds,
        ))
    return results


def markdown(results: list[RootResult], protocols: tuple[str, ...]) -> str:
    tasks = list(next(iter(results[0].accuracy.values())))
    header = "| task | " + " | ".join(f"{r.root} {p}" for r in results for p in protocols) + " |"
    lines = [header, "|---|" + "---:|" * (len(results) * len(protocols))]
    for task in tasks:
        lines.append(f"| {task} | " + " | ".join(f"{r.accuracy[p][task]:.3f}" for r in results for p in protocols)
                     + " |")
    lines.append("| **average** | " + " | ".join(f"**{r.average[p]:.3f}**" for r in results for p in protocols)
                 + " |")
    lines.append("| root params | " + " | ".join(f"{r.params / 1e6:.2f} M" for r in results for _ in protocols)
                 + " |")
    lines.append("| wall time | " + " | ".join(f"{r.seconds[p]:.0f} s" for r in results for p in protocols) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.roots", description=__doc__.split("\n")[0])
    parser.add_argument("--roots", default="chars-random,chars-cjk,dinov2-random,dinov2-imgfocus")
    parser.add_argument("--profile", default="roots", help="the quality profile whose tasks and budgets to use")
    parser.add_argument("--protocols", default="freeze-bottom:L,finetune-all")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)
    start = time.perf_counter()

    def say(line: str) -> None:
        print(f"[{time.perf_counter() - start:6.0f} s] {line}", flush=True)

    chosen = replace(profile(args.profile), search=ROOTS_SEARCH, baseline_replicas=1)
    protocols = tuple(args.protocols.split(","))
    results = run_roots(args.roots.split(","), chosen, protocols, say)
    args.out.mkdir(parents=True, exist_ok=True)
    payload = {"profile": chosen.name, "tasks": list(chosen.tasks), "protocols": list(protocols),
               "train": asdict(chosen.train), "search": asdict(chosen.search),
               "results": [asdict(r) for r in results], "seconds": time.perf_counter() - start}
    (args.out / "roots.json").write_text(json.dumps(payload, indent=2) + "\n")
    table = markdown(results, protocols)
    (args.out / "roots.md").write_text(table)
    print()
    print(table)
    best = max(results, key=lambda r: r.average[protocols[-1]])
    print(f"best by {protocols[-1]}: {best.root}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
