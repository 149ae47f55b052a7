"""Measures how fast the evolver trains candidates: candidate-steps per second, side by side in interleaved rounds.

Workloads, all at the profile's batch size on one stream of real augmented batches (made once, so every system
trains on the very same tensors), each ending with one validation:

- one child (`child: ...`): the candidate trainer (`train.train_candidate`) against a bare PyTorch loop that trains
  the same parameters of the same model (timm's VisionTransformer holding the root's weights, the rest frozen with
  requires_grad False, the same SGD, clipping and schedule);
- a generation of 4 children (`generation: ...`): in lock-step with the shared frozen prefix run once per batch
  (`train.train_generation`), and without the sharing (each child alone, one after another);
- each of the evolver's own runs again with the shared prefix under bf16 autocast.

Then the bf16 accuracy check: the mixed generation trained for longer, once in float32 and once with the bf16
prefix, on the same batches; the validation accuracies of the two are compared candidate by candidate.
"""

from __future__ import annotations

import logging
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from timm.models.vision_transformer import VisionTransformer

from munet_serve.artifacts import Dataset, Split
from munet_serve.builtin import SplitSizes, load
from munet_serve.evolver.baselines import BaselineSpec, baseline_path
from munet_serve.evolver.config import Hyperparameters, root_preset
from munet_serve.evolver.data import Augmentation, TaskData
from munet_serve.evolver.path import Origin, Path, Slot
from munet_serve.evolver.root import Root, build_root, create_timm_model
from munet_serve.evolver.train import GRAD_CLIP_NORM, learning_rate, make_optimizer, train_candidate, train_generation

logger = logging.getLogger(__name__)

__all__ = ["PROFILES", "Measurement", "Profile", "Report", "bare_model", "run"]

Batches = list[tuple[torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class Profile:
    """One configuration of the benchmark.

    Attributes:
        root_preset: the evolver root preset to time (its architecture; its weights for the accuracy check).
        task: the built-in dataset the batches come from; sizes: its examples per class and split.
        batch_size: training batch size; steps: steps per timed run; rounds: interleaved rounds (medians reported).
        accuracy_steps: steps of the bf16 accuracy check (validated 3 times); threads: torch threads.
    """

    name: str
    root_preset: str
    task: str
    sizes: SplitSizes
    batch_size: int
    steps: int
    rounds: int
    accuracy_steps: int
    threads: int | None = None


PROFILES: dict[str, Profile] = {
    # The quality benchmark's root and batch size on 2 cores, about 4 minutes.
    "quick": Profile("quick", "chars-cjk", "chars/greek", SplitSizes(30, 16, 10), batch_size=32, steps=40,
                     rounds=5, accuracy_steps=300),
    # The test suite's miniature.
    "mini": Profile("mini", "tiny-test", "chars/digits", SplitSizes(8, 3, 3), batch_size=8, steps=3, rounds=1,
                    accuracy_steps=6, threads=2),
}

# The workloads: what each candidate trains, as baselines of docs/evolution.md §8.6 (L = the root's blocks).
CHILDREN = {
    "child: final norm + head": "freeze-bottom:{L}",
    "child: top block + norm + head": "freeze-bottom:{L-1}",
    "child: everything (fine-tune all)": "finetune-all",
}
GENERATIONS = {
    "generation: 4 children sharing all but norm + head": ["freeze-bottom:{L}"] * 4,
    "generation: 4 mixed children": ["freeze-bottom:{L}", "freeze-bottom:{L-1}", "freeze-bottom:{L-2}", "adapters:8"],
}
ONE_CHILD = "child: final norm + head"  # the child the generation of 4 alike is compared with
ALIKE = "generation: 4 children sharing all but norm + head"
MIXED = "generation: 4 mixed children"


@dataclass
class Measurement:
    workload: str
    system: str  # "evolver", "evolver, each alone", "evolver, bf16 prefix", "bare PyTorch loop"
    candidates: int
    steps: int
    seconds: list[float] = field(default_factory=list)  # one per round

    @property
    def median_seconds(self) -> float:
        return statistics.median(self.seconds)

    @property
    def candidate_steps_per_second(self) -> float:
        return self.candidates * self.steps / self.median_seconds

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "median_seconds": self.median_seconds,
                "candidate_steps_per_second": self.candidate_steps_per_second}


@dataclass
class Report:
    profile: dict[str, Any]
    environment: dict[str, Any]
    measurements: list[Measurement]
    accuracy: dict[str, Any]
    seconds: float

    def get(self, workload: str, system: str) -> Measurement | None:
        return next((m for m in self.measurements if m.workload == workload and m.system == system), None)

    def ratios(self) -> dict[str, float]:
        """The issue's figures: each child against the bare loop (steps/s), the generation of 4 alike against one
        child (time), what the sharing saves, and what bf16 saves (time ratios: above 1 is faster)."""
        out: dict[str, float] = {}

        def time_of(workload: str, system: str) -> float | None:
            m = self.get(workload, system)
            return m.median_seconds if m else None

        for workload in CHILDREN:
            ours, bare = time_of(workload, "evolver"), time_of(workload, "bare PyTorch loop")
            if ours and bare:
                out[f"{workload} vs bare loop"] = bare / ours
        one, four = time_of(ONE_CHILD, "evolver"), time_of(ALIKE, "evolver")
        if one and four:
            out["generation of 4 alike / one child (cost)"] = four / one
        for workload in GENERATIONS:
            shared, alone = time_of(workload, "evolver"), time_of(workload, "evolver, each alone")
            if shared and alone:
                out[f"{workload}: sharing speed-up"] = alone / shared
        for workload in (*CHILDREN, *GENERATIONS):
            fp32, bf16 = time_of(workload, "evolver"), time_of(workload, "evolver, bf16 prefix")
            if fp32 and bf16:
                out[f"{workload}: bf16 prefix speed-up"] = fp32 / bf16
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"profile": self.profile, "environment": self.environment,
                "measurements": [m.to_dict() for m in self.measurements], "ratios": self.ratios(),
                "accuracy": self.accuracy, "seconds": self.seconds}


def root_as_path(root: Root) -> Path:
    """The root's modules as a path (published-like ids), as the baselines take it."""
    slots = [Slot(name, module, Origin.SHARED, f"root:{name}") for name, module in root.components]
    h = Hyperparameters(num_layers=root.num_layers, ds_image_size=root.config.image_size)
    return Path(task="", slots=slots, hparams=h, input=root.input, parent=None, label="root")


def bare_model(root: Root, num_classes: int) -> VisionTransformer:
    """timm's own VisionTransformer with the root's weights and a zero head: the model a bare loop trains."""
    model: Any = create_timm_model(root.config)
    model.blocks = model.blocks[: root.num_layers]
    parts: dict[str, Any] = dict(root.components)
    with torch.no_grad():
        model.patch_embed.proj.load_state_dict(parts["embedding"].proj.state_dict())
        model.cls_token.copy_(parts["cls"].cls_token)
        pos = parts["posembed_input"].pos_embed
        model.pos_embed.copy_(pos[:, 1:] if model.no_embed_class else pos)
        for i, block in enumerate(model.blocks):
            block.load_state_dict(parts[f"encoderblock_{i}"].block.state_dict())
        model.norm.load_state_dict(parts["encoder_norm"].norm.state_dict())
        model.reset_classifier(num_classes)
        torch.nn.init.zeros_(model.head.weight)
        torch.nn.init.zeros_(model.head.bias)
    return model


def _bare_trainable(model: Any, spec: BaselineSpec, layers: int) -> None:
    """Freezes what the baseline keeps frozen (freeze-bottom and finetune-all only)."""
    for p in model.parameters():
        p.requires_grad_(spec.kind == "finetune-all")
    if spec.kind == "freeze-bottom":
        for block in list(model.blocks)[spec.x : layers]:
            block.requires_grad_(True)
    for module in (model.norm, model.head):
        module.requires_grad_(True)


def _spec(text: str, layers: int) -> BaselineSpec:
    text = text.replace("{L}", str(layers)).replace("{L-1}", str(max(0, layers - 1)))
    return BaselineSpec.parse(text.replace("{L-2}", str(max(0, layers - 2))))


def _paths(texts: list[str], root: Path, layers: int, classes: int) -> list[Path]:
    return [baseline_path(_spec(t, layers), root, task="bench", num_classes=classes, seed=i)
            for i, t in enumerate(texts)]


def _time(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _bare_loop(model: Any, batches: Batches, validation: tuple[torch.Tensor, torch.Tensor], h: Hyperparameters,
               eval_batch_size: int) -> float:
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = make_optimizer(params, h)
    total = len(batches)
    model.train()
    for step, (x, y) in enumerate(batches):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, total, h, total)
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, GRAD_CLIP_NORM)
        optimizer.step()
    model.eval()
    images, labels = validation
    correct = 0
    with torch.no_grad():
        for i in range(0, len(labels), eval_batch_size):
            correct += int((model(images[i : i + eval_batch_size]).argmax(1) == labels[i : i + eval_batch_size]).sum())
    return correct / len(labels)


def _environment(threads: int) -> dict[str, Any]:
    flags = ""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith("flags")), "")
    except OSError:
        pass
    return {
        "machine": platform.machine(), "cpus": os.cpu_count(), "torch_threads": threads,
        "torch": torch.__version__, "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "avx512_bf16": "avx512_bf16" in flags.split(), "amx_bf16": "amx_bf16" in flags.split(),
    }


def run(profile: Profile, progress: Callable[[str], None] | None = None) -> Report:
    """Runs every measurement of the profile in interleaved rounds, then the bf16 accuracy check."""
    say = progress or (lambda line: logger.info("%s", line))
    threads = profile.threads or os.cpu_count() or 1
    torch.set_num_threads(threads)
    start = time.perf_counter()
    root = build_root(root_preset(profile.root_preset))
    root_path = root_as_path(root)
    layers = root.num_layers
    ds = load(profile.task, sizes=profile.sizes)
    data = TaskData(Dataset(images=ds.images, labels=ds.labels, splits=ds.splits))
    classes = data.max_label + 1
    h = Hyperparameters(num_layers=layers, ds_image_size=root.config.image_size)
    aug = Augmentation.from_hparams(h)
    stream = data.train_batches(profile.batch_size, aug, root.input, seed=0)
    batches = [next(stream) for _ in range(max(profile.steps, profile.accuracy_steps))]
    timed = batches[: profile.steps]
    validation = data.eval_tensors(Split.VALIDATION, root.input)
    say(f"{profile.task}: {classes} classes, {data.num_train} training and {len(validation[1])} validation images; "
        f"root {root.source} ({layers} blocks); {profile.steps} steps x {profile.rounds} rounds, {threads} threads")

    def ours(texts: list[str], shared: bool, bf16: bool) -> Callable[[], object]:
        def go() -> object:
            paths = _paths(texts, root_path, layers, classes)
            k = len(timed)
            if shared:
                return train_generation(paths, iter(timed), validation, steps_between_validations=k, validations=1,
                                        bf16_prefix=bf16, progress=False)
            return [train_candidate(p, iter(timed), validation, steps_between_validations=k, validations=1,
                                    bf16_prefix=bf16, progress=False) for p in paths]
        return go

    def bare(text: str) -> Callable[[], object]:
        def go() -> object:
            model = bare_model(root, classes)
            _bare_trainable(model, _spec(text, layers), layers)
            return _bare_loop(model, timed, validation, h, 256)
        return go

    # every system once, checking that the bare model is the evolver's path (same logits at the start)
    check = _paths([CHILDREN[ONE_CHILD]], root_path, layers, classes)[0].module.eval()
    model: Any = bare_model(root, classes)
    with torch.no_grad():
        head: Any = check.slots["head"]
        torch.nn.init.normal_(head.fc.weight, generator=torch.Generator().manual_seed(0))
        model.head.weight.copy_(head.fc.weight)
        x = validation[0][:4]
        same_model = bool(torch.allclose(check(x), model.eval()(x), atol=1e-5))
    if not same_model:
        raise RuntimeError("the bare timm model does not compute what the evolver's path computes")

    jobs: list[tuple[Measurement, Callable[[], object]]] = []
    for workload, text in CHILDREN.items():
        jobs.append((Measurement(workload, "evolver", 1, len(timed)), ours([text], True, False)))
        jobs.append((Measurement(workload, "evolver, bf16 prefix", 1, len(timed)), ours([text], True, True)))
        jobs.append((Measurement(workload, "bare PyTorch loop", 1, len(timed)), bare(text)))
    for workload, texts in GENERATIONS.items():
        n = len(texts)
        jobs.append((Measurement(workload, "evolver", n, len(timed)), ours(texts, True, False)))
        jobs.append((Measurement(workload, "evolver, each alone", n, len(timed)), ours(texts, False, False)))
        jobs.append((Measurement(workload, "evolver, bf16 prefix", n, len(timed)), ours(texts, True, True)))
    for _, job in jobs:  # warm-up
        job()
    for r in range(profile.rounds):
        for m, job in jobs:
            m.seconds.append(_time(job))
        say(f"round {r + 1}/{profile.rounds} done")
    measurements = [m for m, _ in jobs]

    accuracy = _bf16_accuracy(profile, root_path, layers, classes, batches[: profile.accuracy_steps], validation)
    say(f"bf16 accuracy check: {accuracy}")
    return Report(
        profile={**asdict(profile), "sizes": asdict(profile.sizes)},
        environment=_environment(threads),
        measurements=measurements,
        accuracy=accuracy,
        seconds=time.perf_counter() - start,
    )


def _bf16_accuracy(profile: Profile, root_path: Path, layers: int, classes: int, batches: Batches,
                   validation: tuple[torch.Tensor, torch.Tensor]) -> dict[str, Any]:
    """The mixed generation trained in float32 and with the bf16 prefix on the same batches: best validation
    accuracy of each candidate, and the largest and mean difference."""
    k = max(1, len(batches) // 3)
    results = {}
    for bf16 in (False, True):
        paths = _paths(GENERATIONS[MIXED], root_path, layers, classes)
        trained = train_generation(paths, iter(batches), validation, steps_between_validations=k, validations=3,
                                   bf16_prefix=bf16, progress=False)
        results["bf16" if bf16 else "fp32"] = [r.quality for r in trained]
    diffs = [b - a for a, b in zip(results["fp32"], results["bf16"], strict=True)]
    return {
        "steps": 3 * k,
        "candidates": [_spec(t, layers).name for t in GENERATIONS[MIXED]],
        "validation_accuracy_fp32": results["fp32"],
        "validation_accuracy_bf16": results["bf16"],
        "mean_difference": statistics.fmean(diffs),
        "largest_difference": max(diffs, key=abs),
        "validation_examples": len(validation[1]),
    }
