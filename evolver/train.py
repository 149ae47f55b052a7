"""Trains one candidate (§5.2-5.3) and measures accuracy.

Only the candidate's own components (fresh or cloned) train: mean softmax cross-entropy, SGD with optional
momentum and Nesterov, global-norm clipping at 1.0, the method's learning-rate schedules, V validations every K
steps on the same validation examples, a snapshot of the trainable weights at the best validation score, and that
snapshot restored at the end.
"""

from __future__ import annotations

import logging
import math
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from .config import Hyperparameters
from .errors import StopRequested
from .path import Candidate

logger = logging.getLogger(__name__)

__all__ = [
    "GRAD_CLIP_NORM",
    "TrainResult",
    "evaluate",
    "evaluate_batches",
    "learning_rate",
    "make_optimizer",
    "train_candidate",
]

GRAD_CLIP_NORM = 1.0


@dataclass(frozen=True)
class TrainResult:
    """What training a candidate gave.

    Attributes:
        quality: best validation accuracy over the validations.
        score: best score (quality x the candidate's size penalty).
        retained: a snapshot beat the initial best; the candidate's weights are that snapshot.
        steps: training steps run.
        seconds: wall time, validations included.
        best_step: step of the kept snapshot (0 when not retained).
        history: (step, validation accuracy) of every validation.
    """

    quality: float
    score: float
    retained: bool
    steps: int
    seconds: float
    best_step: int = 0
    history: list[tuple[int, float]] = field(default_factory=list)


def learning_rate(step: int, total_steps: int, h: Hyperparameters, steps_between_validations: int) -> float:
    """The learning rate of a (0-based) step (§5.3).

    cosine: linear warm-up from lr/100 to lr over floor(warmup_ratio * T) steps, then cosine decay to 0 at T.
    constant: 0.5 * lr. restarts: V cycles of length K, each a warm-up then a cosine decay.
    """
    lr = h.opt_lr
    if h.opt_lr_schedule == "constant":
        return 0.5 * lr
    if h.opt_lr_schedule == "restarts":
        step, total_steps = step % steps_between_validations, steps_between_validations
    warmup = math.floor(h.opt_lr_warmup_ratio * total_steps)
    if step < warmup:
        return lr / 100 + (lr - lr / 100) * step / warmup
    decay = max(1, total_steps - warmup)
    progress = min(1.0, (step - warmup) / decay)
    return lr * 0.5 * (1 + math.cos(math.pi * progress))


def make_optimizer(params: list[nn.Parameter], h: Hyperparameters) -> torch.optim.SGD:
    """SGD with the path's momentum (None: none) and Nesterov flag; no weight decay."""
    momentum = h.opt_momentum or 0.0
    return torch.optim.SGD(params, lr=h.opt_lr, momentum=momentum, nesterov=h.opt_nesterov and momentum > 0)


def evaluate(module: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 256) -> float:
    """Top-1 accuracy of a path module on preprocessed images (every example, last partial batch included)."""
    batches = ((images[i : i + batch_size], labels[i : i + batch_size]) for i in range(0, images.shape[0], batch_size))
    return evaluate_batches(module, batches)


@torch.no_grad()
def evaluate_batches(module: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> float:
    """Top-1 accuracy of a path module over batches of (preprocessed images, labels)."""
    was_training = module.training
    module.eval()
    correct = total = 0
    try:
        for x, y in batches:
            correct += int((module(x).argmax(dim=1) == y).sum())
            total += int(y.shape[0])
    finally:
        module.train(was_training)
    return correct / max(1, total)


def _snapshot(candidate: Candidate) -> dict[str, dict[str, torch.Tensor]]:
    return {
        s.name: {k: v.detach().clone() for k, v in s.module.state_dict().items()} for s in candidate.trainable_slots()
    }


def _restore(candidate: Candidate, snapshot: dict[str, dict[str, torch.Tensor]]) -> None:
    for slot in candidate.trainable_slots():
        slot.module.load_state_dict(snapshot[slot.name])


def train_candidate(
    candidate: Candidate,
    batches: Iterator[tuple[torch.Tensor, torch.Tensor]],
    validation: tuple[torch.Tensor, torch.Tensor],
    *,
    steps_between_validations: int,
    validations: int,
    initial_best: float = -math.inf,
    score_factor: float = 1.0,
    eval_batch_size: int = 256,
    accept_ties: bool = False,
    stop: threading.Event | None = None,
    on_validation: Callable[[int, float], None] | None = None,
    progress: bool | None = None,
) -> TrainResult:
    """Trains the candidate's trainable components for V x K steps.

    Args:
        candidate: the candidate; shared components must already be frozen (Candidate does it).
        batches: training batches (preprocessed images, labels).
        validation: the validation images and labels, the same at every validation.
        steps_between_validations: K.
        validations: V.
        initial_best: the score to beat for a snapshot: the parent's score for a same-task parent, else -inf.
        score_factor: s ** (accounted params / P_root); score = validation accuracy x score_factor.
        eval_batch_size: batch size of validation.
        accept_ties: snapshot also when the score only equals the best so far (mu2Net's >=; muNet's is >).
        stop: checked before every step; when set, raises StopRequested.
        on_validation: called with (step, validation accuracy) after each validation.
        progress: show a progress bar (default: when stderr is a terminal).

    Raises:
        StopRequested: stop was set.
    """
    params = list(candidate.trainable_parameters())
    if not params:
        raise ValueError(f"candidate {candidate.label!r} has nothing to train")
    h = candidate.hparams
    total = steps_between_validations * validations
    optimizer = make_optimizer(params, h)
    module = candidate.module
    best, best_quality, best_step = initial_best, -math.inf, 0
    snapshot = None
    history: list[tuple[int, float]] = []
    start = time.perf_counter()
    bar = _progress_bar(total, candidate.label, progress)
    try:
        module.train()
        for step in range(total):
            if stop is not None and stop.is_set():
                raise StopRequested(f"stopped while training {candidate.label} at step {step}")
            x, y = next(batches)
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(step, total, h, steps_between_validations)
            loss = F.cross_entropy(module(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, GRAD_CLIP_NORM)
            optimizer.step()
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
            if (step + 1) % steps_between_validations == 0:
                quality = evaluate(module, *validation, batch_size=eval_batch_size)
                history.append((step + 1, quality))
                best_quality = max(best_quality, quality)
                score = quality * score_factor
                logger.debug("%s step %d: validation accuracy %.4f", candidate.label, step + 1, quality)
                if on_validation is not None:
                    on_validation(step + 1, quality)
                if score > best or (accept_ties and score == best):
                    best, best_step, snapshot = score, step + 1, _snapshot(candidate)
    finally:
        if bar is not None:
            bar.close()
    if snapshot is not None:
        _restore(candidate, snapshot)
    module.eval()
    return TrainResult(
        quality=best_quality if history else 0.0,
        score=best if snapshot is not None else best_quality * score_factor,
        retained=snapshot is not None,
        steps=total,
        seconds=time.perf_counter() - start,
        best_step=best_step,
        history=history,
    )


def _progress_bar(total: int, label: str, enabled: bool | None):  # type: ignore[no-untyped-def]
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=label, unit="step", leave=False, file=sys.stderr)
