"""Pretrains a root offline: a timm ViT trained to classify CJK ideographs rendered from the system's fonts.

Nothing can be downloaded here, so the project makes its own pretrained root (issue 4, option a). The source task,
`source/cjk` of `munet_serve.builtin`, holds hundreds of ideograph classes; no benchmark task has an ideograph, so
the root never saw a benchmark class. Training uses the evolver's own input pipeline (`TaskData`, the server's
preprocessing), AdamW with warmup and a cosine decay, and keeps the backbone (no head) as a timm state dict in a
`.safetensors` file that `RootConfig(checkpoint=...)` and the `cjk-glyphs` weight source load like any checkpoint.
Accuracy on the test split measures fonts the training never saw.

    python -m munet_serve.evolver.pretrain --out root.safetensors [--steps 1200]
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from munet_serve.artifacts import Dataset, Split
from munet_serve.files import atomic_write_bytes
from munet_serve.imaging import METHOD_MEAN, METHOD_STD, InputSpec

from .config import ROOT_PRESETS, RootConfig
from .data import Augmentation, TaskData
from .root import create_timm_model
from .train import evaluate

logger = logging.getLogger(__name__)

__all__ = ["PretrainConfig", "PretrainResult", "cjk_checkpoint", "default_cache_dir", "pretrain_root"]

# The architecture of the `chars-cjk` root preset (4 blocks of width 192, 8 px patches at 32 px): small enough to
# train and evolve on two CPU cores.
CHARS_ROOT = replace(ROOT_PRESETS["chars-cjk"], weights=None)


@dataclass(frozen=True)
class PretrainConfig:
    """How the root is pretrained.

    Attributes:
        root: the architecture (its weight fields are ignored: training starts from a seeded random init).
        source: the built-in dataset to train on.
        classes: how many of the source's classes to use (None: all).
        steps, batch_size: optimizer steps and examples per step.
        lr, weight_decay, warmup_steps: AdamW with linear warmup, then cosine decay to 0.
        label_smoothing: of the cross-entropy.
        seed: initialisation, data order and augmentation.
    """

    root: RootConfig = CHARS_ROOT
    source: str = "source/cjk"
    classes: int | None = None
    steps: int = 1000
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup_steps: int = 100
    label_smoothing: float = 0.1
    seed: int = 0
    augmentation: dict[str, Any] = field(
        # the renders already carry affine, stroke, noise and blur augmentation; crops and flips only slowed learning
        default_factory=lambda: {"area_range_min": 1.0, "aspect_ratio_range_min": 1.0, "flip_left_right": False}
    )

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1 or self.lr <= 0 or self.warmup_steps < 0:
            raise ValueError("steps and batch_size must be >= 1, lr > 0 and warmup_steps >= 0")

    def key(self) -> str:
        """A short stable digest of everything that changes the weights (names the cached file)."""
        import hashlib

        text = json.dumps({**asdict(self), "root": self.root.to_dict()}, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class PretrainResult:
    path: Path
    steps: int
    seconds: float
    classes: int
    train_examples: int
    validation_accuracy: float  # validation split: unseen renders of training fonts
    test_accuracy: float  # test split: fonts the training never saw


def default_cache_dir() -> Path:
    base = os.environ.get("MUNET_SERVE_CACHE")
    return (Path(base) if base else Path.home() / ".cache" / "munet-serve") / "roots"


class _Classifier(nn.Module):
    def __init__(self, backbone: nn.Module, dim: int, classes: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(dim, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b: Any = self.backbone
        return self.head(b.forward_head(b.forward_features(x), pre_logits=True))


def _source_dataset(config: PretrainConfig) -> tuple[Dataset, int]:
    from munet_serve.builtin import load

    ds = load(config.source)
    keep = np.ones(len(ds.labels), dtype=bool)
    classes = len(ds.label_names)
    if config.classes is not None and config.classes < classes:
        classes = config.classes
        keep = ds.labels < classes
    images = ds.images[keep]
    return Dataset(images=images, labels=ds.labels[keep].astype(np.int64), splits=ds.splits[keep]), classes


def _lr(step: int, config: PretrainConfig) -> float:
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    return config.lr * 0.5 * (1 + math.cos(math.pi * progress))


def pretrain_root(config: PretrainConfig, out: Path, *, log_every: int = 100) -> PretrainResult:
    """Trains the root on the source task and writes its backbone to `out` (.safetensors, timm key names)."""
    from safetensors.torch import save

    start = time.perf_counter()
    dataset, classes = _source_dataset(config)
    data = TaskData(dataset, key=config.source)
    spec = InputSpec(config.root.image_size, METHOD_MEAN, METHOD_STD)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        backbone = create_timm_model(
            replace(config.root, weights=None, checkpoint=None, pretrained=False, random_init=True)
        )
        model = _Classifier(backbone, int(backbone.embed_dim), classes)
    def decays(name: str, p: torch.Tensor) -> bool:
        return p.ndim > 1 and "pos_embed" not in name and "cls_token" not in name

    decay = [p for n, p in model.named_parameters() if decays(n, p)]
    no_decay = [p for n, p in model.named_parameters() if not decays(n, p)]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=config.lr,
    )
    aug = Augmentation(image_size=config.root.image_size, **config.augmentation)
    batches = data.train_batches(config.batch_size, aug, spec, seed=config.seed)
    validation = data.eval_tensors(Split.VALIDATION, spec, limit=2048)
    model.train()
    for step in range(config.steps):
        x, y = next(batches)
        for group in optimizer.param_groups:
            group["lr"] = _lr(step, config)
        loss = F.cross_entropy(model(x), y, label_smoothing=config.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if log_every and (step + 1) % log_every == 0:
            logger.info("pretrain step %d/%d: loss %.3f (%.0f s)", step + 1, config.steps, loss.item(),
                        time.perf_counter() - start)
    model.eval()
    val_acc = evaluate(model, *validation)
    test_acc = evaluate(model, *data.eval_tensors(Split.TEST, spec))
    out = Path(out)
    state = {k: v.detach().contiguous() for k, v in backbone.state_dict().items()}
    metadata = {
        "format": "pt",
        "source": config.source,
        "classes": str(classes),
        "steps": str(config.steps),
        "config": json.dumps({**asdict(config), "root": config.root.to_dict()}, default=str),
        "validation_accuracy": f"{val_acc:.4f}",
        "test_accuracy": f"{test_acc:.4f}",
    }
    atomic_write_bytes(out, save(state, metadata=metadata))
    seconds = time.perf_counter() - start
    logger.info("pretrained root written to %s: %d classes, validation %.3f, unseen fonts %.3f, %.0f s",
                out, classes, val_acc, test_acc, seconds)
    return PretrainResult(out, config.steps, seconds, classes, data.num_train, val_acc, test_acc)


def cjk_checkpoint(cache_dir: Path | None = None, config: PretrainConfig | None = None) -> Path:
    """The pretrained chars root, trained once into the cache (a few minutes on 2 cores) and reused after."""
    config = config or PretrainConfig()
    path = (cache_dir or default_cache_dir()) / f"chars-cjk-{config.key()}.safetensors"
    if not path.is_file():
        logger.info("no cached pretrained chars root at %s: pretraining it now (%d steps)", path, config.steps)
        pretrain_root(config, path)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m munet_serve.evolver.pretrain", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, help="the .safetensors file to write (default: the cache)")
    parser.add_argument("--steps", type=int, default=PretrainConfig.steps)
    parser.add_argument("--batch-size", type=int, default=PretrainConfig.batch_size)
    parser.add_argument("--classes", type=int, default=None, help="use only the first N source classes")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    config = PretrainConfig(steps=args.steps, batch_size=args.batch_size, classes=args.classes)
    out = args.out or default_cache_dir() / f"chars-cjk-{config.key()}.safetensors"
    result = pretrain_root(config, out)
    print(json.dumps({**asdict(result), "path": str(result.path)}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
