"""Training a candidate: a head learns digits, schedules, clipping, snapshots at the best validation, stop."""

from __future__ import annotations

import math
import threading

import pytest
import torch
import torch.nn.functional as F

from munet_serve.artifacts import Split
from munet_serve.evolver.components import fresh_head
from munet_serve.evolver.config import Hyperparameters
from munet_serve.evolver.data import Augmentation, TaskData
from munet_serve.evolver.errors import StopRequested
from munet_serve.evolver.path import Candidate, Origin, Slot
from munet_serve.evolver.train import GRAD_CLIP_NORM, evaluate, learning_rate, train_candidate


def _candidate(tiny_root, h: Hyperparameters) -> Candidate:
    slots = [
        Slot(name, module, Origin.SHARED, artifact.id)
        for (name, module), artifact in zip(tiny_root.root.components, tiny_root.artifacts, strict=True)
    ]
    slots.append(Slot("head", fresh_head(64, 10), Origin.FRESH))
    return Candidate("digits", slots, h, tiny_root.root.input, None, "root")


def _train(tiny_root, data: TaskData, h: Hyperparameters, k: int, v: int, **kwargs):
    candidate = _candidate(tiny_root, h)
    stream = data.train_batches(32, Augmentation.from_hparams(h), candidate.input, seed=0)
    validation = data.eval_tensors(Split.VALIDATION, candidate.input)
    result = train_candidate(
        candidate, stream, validation, steps_between_validations=k, validations=v, progress=False, **kwargs
    )
    return candidate, result, validation


def test_a_head_learns_digits_and_the_root_stays_frozen(tiny_root, digits):
    data = TaskData(digits)
    before = {n: {k: t.clone() for k, t in m.state_dict().items()} for n, m in tiny_root.root.components}
    h = Hyperparameters(num_layers=2, opt_lr=0.5, ds_area_range_min=1.0, ds_flip_left_right=False)
    candidate, result, _ = _train(tiny_root, data, h, k=100, v=4)
    # measured: 0.43 validation accuracy after 400 steps (chance is 0.1; a random root's features are weak)
    assert result.quality > 0.3
    assert result.retained and result.steps == 400 and len(result.history) == 4
    for name, module in tiny_root.root.components:
        assert all(not p.requires_grad for p in module.parameters())
        assert all(torch.equal(t, before[name][k]) for k, t in module.state_dict().items())
    assert [p.requires_grad for p in candidate.trainable_parameters()] == [True, True]


def test_snapshot_at_the_best_validation_is_restored(tiny_root, digits):
    data = TaskData(digits)
    h = Hyperparameters(num_layers=2, opt_lr=2.0, opt_lr_schedule="constant", ds_area_range_min=0.3)
    candidate, result, validation = _train(tiny_root, data, h, k=15, v=6)
    best_step, best = max(result.history, key=lambda sv: (sv[1], -sv[0]))
    assert result.best_step == best_step and result.quality == best
    assert result.history[-1][1] < best  # the last validation was worse, so restoring matters
    assert evaluate(candidate.module, *validation) == pytest.approx(best)


def test_nothing_is_retained_below_the_initial_best(tiny_root, digits):
    h = Hyperparameters(num_layers=2)
    _, result, _ = _train(tiny_root, TaskData(digits), h, k=3, v=2, initial_best=1.01)
    assert not result.retained and result.steps == 6 and result.best_step == 0


def test_gradients_are_clipped_to_global_norm_one(tiny_root, digits):
    data = TaskData(digits)
    h = Hyperparameters(num_layers=2, opt_lr=0.01)
    candidate, _, _ = _train(tiny_root, data, h, k=1, v=1)
    clipped = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in candidate.trainable_parameters()]))
    # the same first batch without clipping
    fresh = _candidate(tiny_root, h)
    x, y = next(data.train_batches(32, Augmentation.from_hparams(h), fresh.input, seed=0))
    F.cross_entropy(fresh.module(x), y).backward()
    raw = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in fresh.trainable_parameters()]))
    assert raw > 1.2 * GRAD_CLIP_NORM  # measured 1.38
    assert clipped == pytest.approx(GRAD_CLIP_NORM, abs=1e-4)  # scaled down to norm 1 exactly


def test_stop_interrupts_training(tiny_root, digits):
    stop = threading.Event()
    stop.set()
    with pytest.raises(StopRequested):
        _train(tiny_root, TaskData(digits), Hyperparameters(num_layers=2), k=3, v=2, stop=stop)


def test_cosine_schedule():
    h = Hyperparameters(opt_lr=0.1, opt_lr_schedule="cosine", opt_lr_warmup_ratio=0.1)
    total = 500  # warm-up: floor(0.1 * 500) = 50 steps
    assert learning_rate(0, total, h, 100) == pytest.approx(0.001)
    assert learning_rate(25, total, h, 100) == pytest.approx(0.001 + 0.099 * 0.5)
    assert learning_rate(50, total, h, 100) == pytest.approx(0.1)
    assert learning_rate(275, total, h, 100) == pytest.approx(0.05)  # half way through the decay
    assert learning_rate(total, total, h, 100) == pytest.approx(0.0, abs=1e-12)
    assert 0 < learning_rate(total - 1, total, h, 100) < 1e-5


def test_constant_schedule():
    h = Hyperparameters(opt_lr=0.02, opt_lr_schedule="constant")
    assert {learning_rate(s, 100, h, 10) for s in (0, 5, 50, 99)} == {0.01}


def test_restarts_schedule():
    h = Hyperparameters(opt_lr=0.1, opt_lr_schedule="restarts", opt_lr_warmup_ratio=0.2)
    k = 50  # V cycles of K steps, warm-up floor(0.2 * 50) = 10 steps each
    for cycle in range(3):
        s = cycle * k
        assert learning_rate(s, 3 * k, h, k) == pytest.approx(0.001)
        assert learning_rate(s + 10, 3 * k, h, k) == pytest.approx(0.1)
        assert learning_rate(s + 30, 3 * k, h, k) == pytest.approx(0.05)
        assert learning_rate(s + k - 1, 3 * k, h, k) < 0.001


def test_no_warmup_starts_at_the_peak():
    h = Hyperparameters(opt_lr=0.1, opt_lr_warmup_ratio=0.0)
    assert learning_rate(0, 10, h, 10) == pytest.approx(0.1)
    assert learning_rate(5, 10, h, 10) == pytest.approx(0.1 * 0.5 * (1 + math.cos(math.pi * 0.5)))


def test_plain_sgd_when_momentum_is_none(tiny_root, digits):
    h = Hyperparameters(num_layers=2, opt_momentum=None, opt_nesterov=True)
    _, result, _ = _train(tiny_root, TaskData(digits), h, k=2, v=1)
    assert result.steps == 2
    from munet_serve.evolver.train import make_optimizer

    opt = make_optimizer([torch.nn.Parameter(torch.zeros(2))], h)
    assert opt.param_groups[0]["momentum"] == 0 and opt.param_groups[0]["nesterov"] is False
