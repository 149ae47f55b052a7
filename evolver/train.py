"""Trains the candidates of a generation (§5.2-5.3) and measures accuracy.

Only a candidate's own components (fresh or cloned) train: mean softmax cross-entropy, SGD with optional momentum
and Nesterov, global-norm clipping at 1.0, the method's learning-rate schedules, V validations every K steps on the
same validation examples, a snapshot of the trainable weights at the best validation score, and that snapshot
restored at the end. The candidates of a generation train in lock-step on one batch stream, and the frozen
components their paths start with run once per batch for all of them (`prefix.PrefixTree`).
"""

from __future__ import annotations

import logging
import math
import operator
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from .config import Hyperparameters
from .errors import StopRequested
from .path import Candidate, PathModule
from .prefix import PrefixTree, frozen_prefix_length

logger = logging.getLogger(__name__)

__all__ = [
    "GRAD_CLIP_NORM",
    "TieRule",
    "TrainResult",
    "evaluate",
    "evaluate_batches",
    "evaluate_generation",
    "learning_rate",
    "make_optimizer",
    "train_candidate",
    "train_generation",
]

GRAD_CLIP_NORM = 1.0

TieRule = Callable[[float, float], bool]
"""Whether a score improves on the best so far: (score, best) -> bool. A variant's is `Strategy.improves`; the
default, `operator.gt`, is strict improvement (muNet's)."""


@dataclass(frozen=True)
class TrainResult:
    """What training a candidate gave.

    Attributes:
        quality: best validation accuracy over the validations.
        score: best score (quality x the candidate's size penalty).
        retained: a snapshot improved on the initial best (by the tie rule); the candidate's weights are that
            snapshot.
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


@dataclass
class _Trainee:
    """One candidate's training state within its generation."""

    candidate: Candidate
    params: list[nn.Parameter]
    optimizer: torch.optim.SGD
    start: int  # index of its first trainable slot: the tree computes the slots before it
    best: float  # the score a snapshot must beat
    score_factor: float
    best_quality: float = -math.inf
    best_step: int = 0
    snapshot: dict[str, dict[str, torch.Tensor]] | None = None
    momentum_snapshot: dict[str, dict[str, torch.Tensor]] | None = None
    history: list[tuple[int, float]] = field(default_factory=list)
    seconds: float = 0.0  # its own compute, plus its share of the tree's
    loss: float = math.nan


def _snapshot(candidate: Candidate) -> dict[str, dict[str, torch.Tensor]]:
    return {
        s.name: {k: v.detach().clone() for k, v in s.module.state_dict().items()} for s in candidate.trainable_slots()
    }


def _restore(candidate: Candidate, snapshot: dict[str, dict[str, torch.Tensor]]) -> None:
    for slot in candidate.trainable_slots():
        slot.module.load_state_dict(snapshot[slot.name])


def _momentum(candidate: Candidate, optimizer: torch.optim.SGD) -> dict[str, dict[str, torch.Tensor]]:
    """The optimizer's momentum trace of every trainable slot, by slot and parameter name (zeros before a step)."""
    traces = {}
    for slot in candidate.trainable_slots():
        per_param = {}
        for name, p in slot.module.named_parameters():
            buf = optimizer.state.get(p, {}).get("momentum_buffer")
            per_param[name] = (buf.detach().clone() if buf is not None else torch.zeros_like(p)).float()
        traces[slot.name] = per_param
    return traces


def _inherit_momentum(candidate: Candidate, optimizer: torch.optim.SGD) -> None:
    """mu2Net (§5.3): a cloned component resumes with the momentum trace stored with it; new ones start at zero."""
    for slot in candidate.trainable_slots():
        traces = slot.module.momentum
        if not traces:
            continue
        for name, p in slot.module.named_parameters():
            trace = traces.get(name)
            if trace is not None and trace.shape == p.shape:
                optimizer.state[p]["momentum_buffer"] = trace.detach().clone().to(p.dtype)


def _trainee(
    candidate: Candidate, initial_best: float, score_factor: float, inherit_momentum: bool
) -> _Trainee:
    params = list(candidate.trainable_parameters())
    if not params:
        raise ValueError(f"candidate {candidate.label!r} has nothing to train")
    optimizer = make_optimizer(params, candidate.hparams)
    if inherit_momentum and optimizer.defaults["momentum"] > 0:
        _inherit_momentum(candidate, optimizer)
    start = frozen_prefix_length([s.trainable for s in candidate.slots])
    return _Trainee(candidate, params, optimizer, start, initial_best, score_factor)


def _frozen_chains(trainees: Sequence[_Trainee]) -> list[list[nn.Module]]:
    return [[s.module for s in t.candidate.slots[: t.start]] for t in trainees]


class _ValidationCache:
    """Each validation batch's tree outputs, kept across a generation's validations while they fit in `budget`
    bytes (the validation examples and the frozen prefixes are the same at every validation)."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.used = 0
        self.batches: dict[int, list[torch.Tensor]] = {}

    def get(self, index: int, tree: PrefixTree, x: torch.Tensor) -> list[torch.Tensor]:
        cached = self.batches.get(index)
        if cached is not None:
            return cached
        outputs = tree.run(x)
        size = sum(t.numel() * t.element_size() for t in {id(t): t for t in outputs}.values())
        if self.used + size <= self.budget:
            self.batches[index] = outputs
            self.used += size
        return outputs


@torch.no_grad()
def evaluate_generation(
    modules: Sequence[PathModule],
    starts: Sequence[int],
    tree: PrefixTree,
    images: torch.Tensor,
    labels: torch.Tensor,
    batch_size: int = 256,
    cache: _ValidationCache | None = None,
) -> list[float]:
    """Top-1 accuracy of each path module; the tree computes their frozen prefixes once per batch."""
    correct = [0] * len(modules)
    total = 0
    was_training = [m.training for m in modules]
    for m in modules:
        m.eval()
    try:
        for b, i in enumerate(range(0, images.shape[0], batch_size)):
            x, y = images[i : i + batch_size], labels[i : i + batch_size]
            inputs = cache.get(b, tree, x) if cache is not None else tree.run(x)
            for c, (module, start) in enumerate(zip(modules, starts, strict=True)):
                correct[c] += int((module.forward_from(inputs[c], start).argmax(dim=1) == y).sum())
            total += int(y.shape[0])
    finally:
        for m, training in zip(modules, was_training, strict=True):
            m.train(training)
    return [c / max(1, total) for c in correct]


VALIDATION_CACHE_BYTES = 512 << 20


def train_generation(
    candidates: Sequence[Candidate],
    batches: Iterator[tuple[torch.Tensor, torch.Tensor]],
    validation: tuple[torch.Tensor, torch.Tensor],
    *,
    steps_between_validations: int,
    validations: int,
    initial_best: Sequence[float] | None = None,
    score_factors: Sequence[float] | None = None,
    eval_batch_size: int = 256,
    improves: TieRule = operator.gt,
    inherit_momentum: bool = False,
    bf16_prefix: bool = False,
    stop: threading.Event | None = None,
    on_validation: Callable[[int, int, float], None] | None = None,
    progress: bool | None = None,
) -> list[TrainResult]:
    """Trains a generation's candidates in lock-step on one stream of batches, V x K steps each (§5.2).

    The frozen components the candidates' paths start with run once per batch for all of them (a `PrefixTree`);
    each candidate computes only from its first trainable component on, so training several candidates that share
    a frozen body costs little more than training one. Validations work the same way, and the tree's outputs on the
    validation examples are kept across the generation's validations while they fit in VALIDATION_CACHE_BYTES. Each
    candidate has its own optimizer, schedule and snapshot; the results are those of training each alone on the same
    batches (bit for bit in float32).

    Args:
        candidates: the candidates; shared components must already be frozen (Candidate does it).
        batches: training batches (preprocessed images, labels), one stream for all candidates.
        validation: the validation images and labels, the same at every validation.
        steps_between_validations: K.
        validations: V.
        initial_best: per candidate, the score to beat for a snapshot: the parent's score for a same-task parent,
            else -inf (the default).
        score_factors: per candidate, s ** (accounted params / P_root); score = validation accuracy x factor.
        eval_batch_size: batch size of validation.
        improves: the tie rule: whether a validation score improves on the best so far and is snapshotted
            (default strictly greater, muNet's; mu2Net's also keeps an equal one).
        inherit_momentum: start each cloned component's momentum from the trace stored with it, and store the best
            snapshot's trace with the candidate's components (mu2Net, §5.3).
        bf16_prefix: run the shared frozen prefix under bf16 autocast during training (validation stays float32).
        stop: checked before every step; when set, raises StopRequested.
        on_validation: called with (candidate index, step, validation accuracy) after each validation.
        progress: show a progress bar (default: when stderr is a terminal).

    Raises:
        StopRequested: stop was set.
    """
    n = len(candidates)
    if n == 0:
        return []
    initial = list(initial_best) if initial_best is not None else [-math.inf] * n
    factors = list(score_factors) if score_factors is not None else [1.0] * n
    trainees = [
        _trainee(c, b, f, inherit_momentum) for c, b, f in zip(candidates, initial, factors, strict=True)
    ]
    total = steps_between_validations * validations
    chains = _frozen_chains(trainees)
    tree = PrefixTree(chains, bf16=bf16_prefix)
    eval_tree = PrefixTree(chains) if bf16_prefix else tree
    cache = _ValidationCache(VALIDATION_CACHE_BYTES)
    label = candidates[0].label if n == 1 else f"{n} candidates"
    bar = _progress_bar(total, label, progress)
    start = time.perf_counter()
    shared_seconds = 0.0
    try:
        for t in trainees:
            t.candidate.module.train()
        for step in range(total):
            if stop is not None and stop.is_set():
                raise StopRequested(f"stopped while training {label} at step {step}")
            t0 = time.perf_counter()
            x, y = next(batches)
            inputs = tree.run(x)
            shared_seconds += time.perf_counter() - t0
            for c, t in enumerate(trainees):
                t1 = time.perf_counter()
                h = t.candidate.hparams
                for group in t.optimizer.param_groups:
                    group["lr"] = learning_rate(step, total, h, steps_between_validations)
                loss = F.cross_entropy(t.candidate.module.forward_from(inputs[c], t.start), y)
                t.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(t.params, GRAD_CLIP_NORM)
                t.optimizer.step()
                t.loss = float(loss.detach())
                t.seconds += time.perf_counter() - t1
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{min(t.loss for t in trainees):.3f}", refresh=False)
            if (step + 1) % steps_between_validations == 0:
                t0 = time.perf_counter()
                qualities = evaluate_generation(
                    [t.candidate.module for t in trainees], [t.start for t in trainees], eval_tree, *validation,
                    batch_size=eval_batch_size, cache=cache,
                )
                shared_seconds += time.perf_counter() - t0
                for c, (t, quality) in enumerate(zip(trainees, qualities, strict=True)):
                    t.history.append((step + 1, quality))
                    t.best_quality = max(t.best_quality, quality)
                    score = quality * t.score_factor
                    logger.debug("%s step %d: validation accuracy %.4f", t.candidate.label, step + 1, quality)
                    if on_validation is not None:
                        on_validation(c, step + 1, quality)
                    if improves(score, t.best):
                        t.best, t.best_step, t.snapshot = score, step + 1, _snapshot(t.candidate)
                        if inherit_momentum:
                            t.momentum_snapshot = _momentum(t.candidate, t.optimizer)
    finally:
        if bar is not None:
            bar.close()
    results = []
    for t in trainees:
        if t.snapshot is not None:
            _restore(t.candidate, t.snapshot)
            if t.momentum_snapshot is not None:
                for slot in t.candidate.trainable_slots():
                    slot.module.momentum = t.momentum_snapshot[slot.name]
        t.candidate.module.eval()
        results.append(
            TrainResult(
                quality=t.best_quality if t.history else 0.0,
                score=t.best if t.snapshot is not None else t.best_quality * t.score_factor,
                retained=t.snapshot is not None,
                steps=total,
                seconds=t.seconds + shared_seconds / n,
                best_step=t.best_step,
                history=t.history,
            )
        )
    logger.debug(
        "generation of %d trained in %.1f s (tree: %d module runs per batch for %d frozen slots)", n,
        time.perf_counter() - start, tree.module_runs, sum(len(c) for c in chains),
    )
    return results


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
    improves: TieRule = operator.gt,
    inherit_momentum: bool = False,
    bf16_prefix: bool = False,
    stop: threading.Event | None = None,
    on_validation: Callable[[int, float], None] | None = None,
    progress: bool | None = None,
) -> TrainResult:
    """Trains one candidate's trainable components for V x K steps (a generation of one; see train_generation)."""
    return train_generation(
        [candidate],
        batches,
        validation,
        steps_between_validations=steps_between_validations,
        validations=validations,
        initial_best=[initial_best],
        score_factors=[score_factor],
        eval_batch_size=eval_batch_size,
        improves=improves,
        inherit_momentum=inherit_momentum,
        bf16_prefix=bf16_prefix,
        stop=stop,
        on_validation=None if on_validation is None else (lambda _c, step, q: on_validation(step, q)),
        progress=progress,
    )[0]


def _progress_bar(total: int, label: str, enabled: bool | None):  # type: ignore[no-untyped-def]
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=label, unit="step", leave=False, file=sys.stderr)
